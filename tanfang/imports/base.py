"""What every kind of import shares: the error report, the context, and the registry of kinds.

An importer is a class with two steps. ``validate`` reads the whole file and records every
error in ``ctx.errors``, writing nothing. ``write`` runs only when there was no error, inside
the one transaction that ``services.import_file`` opens, and returns the counts. A kind whose
checks cannot be separated from writing (areas) may instead raise ``ImportRejected`` from
``write``; the transaction then rolls back. New kinds (visits) register themselves with
``register``; the command, the upload page and ``ImportRun`` need no change.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, Protocol

from django.utils.translation import gettext as _

from tanfang.areas.models import Area

MAX_REPORTED_ERRORS = 1000


@dataclass(frozen=True, slots=True)
class RowError:
    """One error: the row as a spreadsheet numbers it (header = 1; 0 for the whole file), the
    column header as the file spells it, its letter, and the reason in the user's language."""

    row: int
    column: str
    message: str
    letter: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "column": self.column,
            "letter": self.letter,
            "message": self.message,
        }

    def __str__(self) -> str:
        if self.row == 0:
            return self.message
        if self.column:
            return _("Row %(row)d, column “%(column)s”%(letter)s: %(message)s") % {
                "row": self.row,
                "column": self.column,
                "message": self.message,
                "letter": f" ({self.letter})" if self.letter else "",
            }
        return _("Row %(row)d: %(message)s") % {"row": self.row, "message": self.message}


@dataclass
class ErrorList:
    """Every error is counted; the first ``limit`` are kept for the report."""

    limit: int = MAX_REPORTED_ERRORS
    kept: list[RowError] = field(default_factory=list)
    count: int = 0

    def add(self, row: int, column: str, message: str, letter: str = "") -> None:
        self.count += 1
        if len(self.kept) < self.limit:
            self.kept.append(RowError(row, column, message, letter))

    def extend(self, errors: Iterable[RowError]) -> None:
        for error in errors:
            self.add(error.row, error.column, error.message, error.letter)

    def __bool__(self) -> bool:
        return self.count > 0

    def sorted(self) -> list[RowError]:
        return sorted(self.kept, key=lambda e: (e.row, e.letter.rjust(3), e.column))

    @property
    def not_shown(self) -> int:
        return self.count - len(self.kept)


@dataclass
class Counts:
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0


@dataclass
class ImportContext:
    """One run of an import. ``actor`` None is the system (the command line): no area limit;
    a user may import only inside her own area."""

    path: Path
    file_name: str
    actor: Any
    source: str
    source_date: dt.date
    dry_run: bool = False
    parallel: bool = False  # may read the file in worker processes (the command line)
    errors: ErrorList = field(default_factory=ErrorList)
    rows: int = 0
    # The code of the smallest area holding everything imported; places the audit entry.
    area_code: str = ""

    @property
    def scoped(self) -> bool:
        return getattr(self.actor, "pk", None) is not None


def smallest_area_code(community_ids: Collection[int]) -> str:
    """The code of the smallest area holding all these communities ("" for none): where
    the audit entry of an import is placed."""
    areas = list(
        Area.objects.filter(pk__in=community_ids).values_list(
            "pk", "subdistrict_id", "district_id", "city_id"
        )
    )
    for column in range(4):
        ids = {area[column] for area in areas}
        if len(ids) == 1 and None not in ids:
            return Area.objects.get(pk=ids.pop()).code
    return ""


class ImportRejected(Exception):
    """Raised by ``write`` of a kind that finds errors only while writing."""

    def __init__(self, errors: Iterable[RowError]) -> None:
        self.errors = list(errors)
        super().__init__(f"{len(self.errors)} errors")


class Importer(Protocol):
    kind: ClassVar[str]

    def validate(self, ctx: ImportContext) -> None: ...

    def write(self, ctx: ImportContext) -> Counts: ...


TemplateWriter = Callable[[BinaryIO], None]

_IMPORTERS: dict[str, type[Importer]] = {}
_TEMPLATES: dict[str, TemplateWriter] = {}


def register(kind: str, *, template: TemplateWriter | None = None) -> Callable[[type], type]:
    """Class decorator: make ``kind`` importable (and its template downloadable)."""

    def decorate(cls: type) -> type:
        _IMPORTERS[kind] = cls
        if template is not None:
            _TEMPLATES[kind] = template
        return cls

    return decorate


def _load_kinds() -> None:
    # Importing the modules runs their ``@register``; kept here to avoid import cycles.
    from tanfang.imports import area_files, elders, visits  # noqa: F401


def importer_kinds() -> list[str]:
    _load_kinds()
    return sorted(_IMPORTERS)


def importer_for(kind: str) -> Importer:
    _load_kinds()
    return _IMPORTERS[kind]()


def template_kinds() -> list[str]:
    _load_kinds()
    return sorted(_TEMPLATES)


def template_for(kind: str) -> TemplateWriter:
    _load_kinds()
    return _TEMPLATES[kind]
