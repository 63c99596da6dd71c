"""Importing visits recorded elsewhere, e.g. by stations (CSV or xlsx; docs/import-visits.md).

Steps:

1. Validate (writes nothing). Read the header row into the columns of ``visit_columns``;
   read every row: each cell, the required cells, the resident ID number; build the visit
   as the visit service takes it (``VisitInput``) with a client UUID derived from the source
   system and the visit's external id, so that importing the same visits again creates
   nothing. Per chunk of rows, find the elders through the registry's blind index (and, for
   a user, only among the elders she may see), check an optional name against the registry,
   and check that no UUID is already a visit of another elder. Then run the visit service's
   own checks on each row (mode, outcome, times, findings), so the write cannot fail on them.
2. Write (only when there was no error, inside the caller's one transaction): each visit
   through ``visits.services.visit_record`` with ``source="import"``; a visit already
   imported is counted as unchanged.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

from django.utils.translation import gettext as _

from tanfang.core import crypto
from tanfang.imports import values as v
from tanfang.imports.base import (
    Counts,
    ErrorList,
    ImportContext,
    ImportRejected,
    RowError,
    register,
    smallest_area_code,
)
from tanfang.imports.headers import Placed, read_header_row, unnamed_cell_errors
from tanfang.imports.readers import open_table
from tanfang.imports.template import columns_table, write_template
from tanfang.imports.visit_columns import (
    HEADER_OF,
    IGNORED_HEADERS,
    REQUIRED,
    VISIT_COLUMNS,
    find_column,
)
from tanfang.registry.identity import IdentifierError, normalise_id_number
from tanfang.registry.models import Elder
from tanfang.visits import services as visit_services
from tanfang.visits.models import OrganisedBy, Visit, VisitSource
from tanfang.visits.services import VisitError, VisitInput, visit_record

CHUNK = 1000
# Fixed for ever: the client UUID of an imported visit is uuid5(this, "system:external id").
VISIT_IMPORT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "tanfang:import:visits")

# Where an error of the visit service belongs in the file.
_FIELD_COLUMN = {
    "elder": "id_number",
    "client_uuid": "external_id",
    "mode": "mode",
    "started_at": "started_at",
    "ended_at": "ended_at",
    "person_met": "person_met",
    "outcome": "outcome",
    "organised_by": "organised_by",
    "sections.safety": "hazards",
    "sections.needs": "needs",
    "sections.consent": "consent",
}


def client_uuid_of(*, source_system: str, external_id: str, key: str = "") -> uuid.UUID:
    """The client UUID of an imported visit: from its external id in its source system, or,
    without one, from ``key`` (the elder's blind index, the start time and the mode)."""
    name = f"{source_system}:{external_id}" if external_id else f"{source_system}:#{key}"
    return uuid.uuid5(VISIT_IMPORT_NAMESPACE, name)


class _Layout:
    """The columns of one visits file, read from its header row."""

    def __init__(self, placed: list[Placed], unnamed: list[int]) -> None:
        self.placed = placed
        self.unnamed = unnamed
        self.by_code = {p.column.code: p for p in placed}

    @classmethod
    def read(cls, header: list[str], errors: ErrorList) -> _Layout | None:
        found = read_header_row(header, errors, find=find_column, ignored=IGNORED_HEADERS)
        missing = [code for code in REQUIRED if code not in found.codes]
        for code in missing:
            errors.add(1, HEADER_OF[code], _("the file has no such column: it is required"))
        if missing:
            return None
        return cls(found.placed, found.unnamed)

    def error(self, row: int, code: str, message: str) -> RowError:
        placed = self.by_code.get(code)
        if placed is None:
            return RowError(row, HEADER_OF.get(code, code), message)
        return RowError(row, placed.header, message, placed.letter)

    def cells(self, row: int, cells: Sequence[Any]) -> tuple[dict[str, Any], list[RowError]]:
        """The parsed cells of a row by column code (blank cells absent), and its errors."""
        found: dict[str, Any] = {}
        errors: list[RowError] = []
        for p in self.placed:
            raw = cells[p.index] if p.index < len(cells) else None
            if v.is_blank(raw):
                continue
            try:
                found[p.column.code] = p.column.parse(raw)
            except v.CellError as exc:
                errors.append(RowError(row, p.header, str(exc), p.letter))
                found[p.column.code] = _BAD
        errors.extend(unnamed_cell_errors(row, cells, self.unnamed))
        for code in REQUIRED:
            if code not in found:
                errors.append(self.error(row, code, _("this column is required on every row")))
        return found, errors


_BAD = object()  # a cell that did not parse (its error is reported already)


@dataclass(frozen=True, slots=True)
class _Row:
    """A row that was read: its visit, and whose it is (by the ID number's blind index)."""

    row: int
    digest: str
    name: str
    data: VisitInput


def _sections(found: dict[str, Any], layout: _Layout, row: int) -> tuple[dict, list[RowError]]:
    sections: dict[str, Any] = {}
    errors: list[RowError] = []
    hazards = found.get("hazards")
    if isinstance(hazards, dict) and hazards:
        sections["safety"] = {
            code: {"hazard": True, **({"what": what} if what else {})}
            for code, what in hazards.items()
        }
    needs = found.get("needs")
    if isinstance(needs, dict) and needs:
        described = [code for code, what in needs.items() if what and code != "other"]
        if described:
            errors.append(
                layout.error(row, "needs", _("only 其他 (other) takes a description after :"))
            )
        sections["needs"] = {"kinds": list(needs)}
        if needs.get("other"):
            sections["needs"]["other"] = needs["other"]
    if found.get("consent") is True:
        sections["consent"] = {"care_actions": True}
    return sections, errors


def _read_row(
    layout: _Layout, row: int, cells: Sequence[Any], source_system: str
) -> tuple[_Row | None, list[RowError]]:
    found, errors = layout.cells(row, cells)
    number = found.get("id_number")
    digest = ""
    if isinstance(number, str):
        try:
            digest = crypto.blind_index("id", normalise_id_number(number))
        except IdentifierError as exc:
            errors.append(layout.error(row, "id_number", str(exc)))
    sections, section_errors = _sections(found, layout, row)
    errors.extend(section_errors)
    if errors or _BAD in found.values() or not digest:
        return None, errors
    started: dt.datetime = found["started_at"]
    system = found.get("source_system") or source_system
    key = f"{digest}:{started.astimezone(dt.UTC).isoformat()}:{found['mode']}"
    data = VisitInput(
        client_uuid=client_uuid_of(
            source_system=system, external_id=found.get("external_id", ""), key=key
        ),
        mode=found["mode"],
        started_at=started,
        ended_at=found.get("ended_at") or started,
        person_met=found["person_met"],
        outcome=found["outcome"],
        sections=sections,
        notes=found.get("notes", ""),
        consent=found.get("consent") is True,
        organised_by=found.get("organised_by") or OrganisedBy.GOVERNMENT,
        visitor_name=found["visitor_name"],
    )
    return _Row(row=row, digest=digest, name=found.get("name", ""), data=data), errors


def _column_of(field: str) -> str:
    for prefix, code in _FIELD_COLUMN.items():
        if field == prefix or field.startswith(prefix + "."):
            return code
    return ""


def write_visits_template(stream: BinaryIO) -> None:
    """The xlsx template: the header row, drop-down lists, text format on identifier
    columns, and a second sheet explaining each column in the active language."""
    write_template(
        stream,
        data_sheet="探访记录",
        columns=VISIT_COLUMNS,
        documented=VISIT_COLUMNS,
        note_widths=(14, 16, 18, 60, 40, 22),
    )


def columns_markdown() -> str:
    """The column table of docs/import-visits.md (English; a test keeps the two equal)."""
    return columns_table(VISIT_COLUMNS, required=REQUIRED)


@register("visits", template=write_visits_template)
class VisitsImporter:
    kind = "visits"

    def __init__(self) -> None:
        self.layout: _Layout | None = None
        self.rows: list[_Row] = []
        self.elder_of: dict[str, int] = {}  # blind index → elder id
        self.communities: set[int] = set()

    def validate(self, ctx: ImportContext) -> None:
        table = open_table(ctx.path)
        layout = _Layout.read(table.header, ctx.errors)
        if layout is None:
            return
        self.layout = layout
        first_row: dict[uuid.UUID, int] = {}
        chunk: list[_Row] = []
        for number, cells in table.rows():
            if all(v.is_blank(cell) for cell in cells):
                continue
            ctx.rows += 1
            parsed, errors = _read_row(layout, number, cells, ctx.source)
            ctx.errors.extend(errors)
            if parsed is None:
                continue
            other = first_row.setdefault(parsed.data.client_uuid, number)
            if other != number:
                message = _(
                    "row %(other)d is the same visit (the same external id, or the same "
                    "elder, start time and mode)"
                ) % {"other": other}
                ctx.errors.extend([layout.error(number, "external_id", message)])
                continue
            chunk.append(parsed)
            if len(chunk) >= CHUNK:
                self._check(ctx, chunk)
                chunk = []
        self._check(ctx, chunk)
        ctx.area_code = smallest_area_code(self.communities)

    def _check(self, ctx: ImportContext, chunk: list[_Row]) -> None:
        """The elders exist (and are the user's), names agree, UUIDs are not another elder's
        visits, and the visit service accepts each visit."""
        if not chunk:
            return
        assert self.layout is not None
        layout = self.layout
        digests = {r.digest for r in chunk}
        elders = Elder.objects.filter(id_number_hash__in=digests)
        held = {
            digest: (pk, name, community)
            for digest, pk, name, community in elders.values_list(
                "id_number_hash", "pk", "name", "community_id"
            )
        }
        visible = set(held)
        if ctx.scoped and held:
            visible = set(
                Elder.objects.visible_to(ctx.actor)
                .filter(id_number_hash__in=list(held))
                .values_list("id_number_hash", flat=True)
            )
        taken = dict(
            Visit.objects.filter(client_uuid__in=[r.data.client_uuid for r in chunk]).values_list(
                "client_uuid", "elder_id"
            )
        )
        for parsed in chunk:
            found = held.get(parsed.digest)
            if found is None or parsed.digest not in visible:
                message = (
                    _("no elder in the registry has this resident ID number")
                    if found is None
                    else _("this elder is registered in a community outside your area")
                )
                ctx.errors.extend([layout.error(parsed.row, "id_number", message)])
                continue
            elder_id, name, community_id = found
            problems: list[RowError] = []
            if parsed.name and parsed.name != name:
                problems.append(
                    layout.error(
                        parsed.row,
                        "name",
                        _("the registry has another name for this resident ID number"),
                    )
                )
            if taken.get(parsed.data.client_uuid, elder_id) != elder_id:
                problems.append(
                    layout.error(
                        parsed.row,
                        "external_id",
                        _("this external id was already imported as a visit of another elder"),
                    )
                )
            problems.extend(self._service_errors(parsed))
            if problems:
                ctx.errors.extend(problems)
                continue
            self.elder_of[parsed.digest] = elder_id
            self.communities.add(community_id)
            self.rows.append(parsed)

    def _service_errors(self, parsed: _Row) -> list[RowError]:
        """The visit service's own checks of the visit, as errors of the row's columns."""
        assert self.layout is not None
        try:
            visit_services.visit_validate(parsed.data)
        except VisitError as exc:
            return [self._row_error(parsed.row, field, message) for field, message in exc.errors]
        return []

    def _row_error(self, row: int, field: str, message: str) -> RowError:
        assert self.layout is not None
        code = _column_of(field)
        if code:
            return self.layout.error(row, code, message)
        return RowError(row, "", message)

    def _chunks(self) -> Iterator[list[_Row]]:
        for start in range(0, len(self.rows), CHUNK):
            yield self.rows[start : start + CHUNK]

    def write(self, ctx: ImportContext) -> Counts:
        counts = Counts(rows=ctx.rows)
        rejected: list[RowError] = []
        for chunk in self._chunks():
            elders = Elder.objects.in_bulk([self.elder_of[r.digest] for r in chunk])
            for parsed in chunk:
                elder = elders[self.elder_of[parsed.digest]]
                try:
                    _visit, created = visit_record(
                        actor=ctx.actor, elder=elder, data=parsed.data, source=VisitSource.IMPORT
                    )
                except VisitError as exc:
                    rejected.extend(
                        self._row_error(parsed.row, field, message) for field, message in exc.errors
                    )
                    continue
                if created:
                    counts.created += 1
                else:
                    counts.unchanged += 1
        if rejected:
            raise ImportRejected(rejected)
        return counts
