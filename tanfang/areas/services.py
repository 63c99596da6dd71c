"""Changes to the administrative tree: importing it from a CSV of codes and names.

The level and the parent of an area follow from its code (see ``docs/areas.md``):

- 6 digits ending ``0000``: the city (a province-level municipality, GB/T 2260);
- 6 digits otherwise: a district, child of ``XX0000``;
- 9 digits: a subdistrict, child of the first 6; its last three digits give its kind —
  001–099 street (街道), 100–199 town (镇), 200–399 township (乡);
- 12 digits: a community, child of the first 9; 001–199 residents' committee (居委会),
  200–399 villagers' committee (村委会), as in the statistical division codes;
- 15 digits: a grid, child of the first 12.

A ``kind`` column, when given, overrides the kind read from the code (and is required for the
codes whose range does not say it, such as the 400–599 "similar to a township" units).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import transaction
from django.utils.translation import gettext as _

from tanfang.areas.models import LEVEL_ORDER, Area, AreaLevel, CommunityKind, SubdistrictKind

COLUMNS: tuple[str, ...] = ("code", "name", "name_en", "kind")
REQUIRED_COLUMNS: tuple[str, ...] = ("code", "name")
NAME_MAX = 64

_LEVEL_BY_LENGTH = {9: AreaLevel.SUBDISTRICT, 12: AreaLevel.COMMUNITY, 15: AreaLevel.GRID}
_ANCESTOR_LEVELS: tuple[str, ...] = (
    AreaLevel.CITY,
    AreaLevel.DISTRICT,
    AreaLevel.SUBDISTRICT,
    AreaLevel.COMMUNITY,
)

# Words accepted in the kind column, in English or Chinese.
_SUBDISTRICT_KINDS = {
    "street": SubdistrictKind.STREET,
    "街道": SubdistrictKind.STREET,
    "town": SubdistrictKind.TOWN,
    "镇": SubdistrictKind.TOWN,
    "township": SubdistrictKind.TOWNSHIP,
    "乡": SubdistrictKind.TOWNSHIP,
}
_COMMUNITY_KINDS = {
    "residents": CommunityKind.RESIDENTS,
    "居委会": CommunityKind.RESIDENTS,
    "社区": CommunityKind.RESIDENTS,
    "villagers": CommunityKind.VILLAGERS,
    "村委会": CommunityKind.VILLAGERS,
    "村": CommunityKind.VILLAGERS,
}


@dataclass(frozen=True, slots=True)
class AreaRowError:
    """One problem in an import: the row (1 is the header), the column, what is wrong."""

    row: int
    column: str
    message: str

    def __str__(self) -> str:
        return _("row %(row)s, column %(column)s: %(message)s") % {
            "row": self.row,
            "column": self.column,
            "message": self.message,
        }


class AreaImportError(ValueError):
    """The import was refused and nothing was written; ``errors`` lists every problem."""

    def __init__(self, errors: Sequence[AreaRowError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


@dataclass
class AreasImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    created_by_level: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Row:
    """A validated row: what the area must look like after the import."""

    row: int
    code: str
    name: str
    name_en: str | None  # None: the file says nothing, keep what is stored
    level: str
    parent_code: str | None
    subdistrict_kind: str
    community_kind: str
    kind_given: bool


def level_of_code(code: str) -> str | None:
    """The level an area code denotes, or None when it denotes none of ours."""
    if not code.isascii() or not code.isdigit():
        return None
    if len(code) == 6:
        if code.endswith("0000"):
            return AreaLevel.CITY
        return None if code.endswith("00") else AreaLevel.DISTRICT
    return _LEVEL_BY_LENGTH.get(len(code))


def parent_code_of(code: str, level: str) -> str | None:
    if level == AreaLevel.CITY:
        return None
    if level == AreaLevel.DISTRICT:
        return code[:2] + "0000"
    return code[: len(code) - 3]


def kind_from_code(code: str, level: str) -> str:
    """The subdistrict or community kind the statistical code's range gives ("" if none)."""
    if level not in (AreaLevel.SUBDISTRICT, AreaLevel.COMMUNITY):
        return ""
    number = int(code[-3:])
    if level == AreaLevel.SUBDISTRICT:
        if 1 <= number <= 99:
            return SubdistrictKind.STREET
        if 100 <= number <= 199:
            return SubdistrictKind.TOWN
        if 200 <= number <= 399:
            return SubdistrictKind.TOWNSHIP
        return ""
    if 1 <= number <= 199:
        return CommunityKind.RESIDENTS
    if 200 <= number <= 399:
        return CommunityKind.VILLAGERS
    return ""


def _cell(raw: Mapping[str, Any], column: str) -> str | None:
    value = raw.get(column)
    if value is None:
        return None
    return str(value).strip()


def _check_code(number: int, raw: Mapping[str, Any], errors: list[AreaRowError]) -> str | None:
    code = _cell(raw, "code") or ""
    if not code:
        errors.append(AreaRowError(number, "code", _("the code is missing")))
        return None
    if not code.isascii() or not code.isdigit():
        errors.append(
            AreaRowError(number, "code", _("%(code)s: a code has digits only") % {"code": code})
        )
        return None
    if len(code) not in (6, 9, 12, 15):
        errors.append(
            AreaRowError(
                number,
                "code",
                _("%(code)s: a code has 6, 9, 12 or 15 digits") % {"code": code},
            )
        )
        return None
    if level_of_code(code) is None:
        errors.append(
            AreaRowError(
                number,
                "code",
                _(
                    "%(code)s: a six-digit code is the city (ending in 0000) or a district "
                    "(not ending in 00)"
                )
                % {"code": code},
            )
        )
        return None
    if len(code) > 6 and code.endswith("000"):
        errors.append(
            AreaRowError(
                number,
                "code",
                _("%(code)s: the last three digits must not be 000") % {"code": code},
            )
        )
        return None
    return code


def _check_kind(
    number: int, raw: Mapping[str, Any], code: str, level: str, errors: list[AreaRowError]
) -> tuple[str, str, bool]:
    """(subdistrict_kind, community_kind, given in the file)."""
    word = _cell(raw, "kind") or ""
    if level == AreaLevel.SUBDISTRICT:
        table: dict[str, str] = dict(_SUBDISTRICT_KINDS)
    elif level == AreaLevel.COMMUNITY:
        table = dict(_COMMUNITY_KINDS)
    else:
        if word:
            errors.append(
                AreaRowError(
                    number,
                    "kind",
                    _("only subdistricts and communities have a kind; leave it empty"),
                )
            )
        return "", "", False
    if word:
        kind = table.get(word.lower())
        if kind is None:
            errors.append(
                AreaRowError(
                    number,
                    "kind",
                    _("%(kind)s is not a kind of %(level)s; use one of: %(choices)s")
                    % {
                        "kind": word,
                        "level": AreaLevel(level).label,
                        "choices": ", ".join(table),
                    },
                )
            )
            return "", "", True
    else:
        kind = kind_from_code(code, level)
        if not kind:
            errors.append(
                AreaRowError(
                    number,
                    "kind",
                    _("the code %(code)s does not say the kind of area; give it in this column")
                    % {"code": code},
                )
            )
    if level == AreaLevel.SUBDISTRICT:
        return kind or "", "", bool(word)
    return "", kind or "", bool(word)


def _validate(
    numbered: Sequence[tuple[int, Mapping[str, Any]]], existing: Mapping[str, Area]
) -> tuple[list[_Row], list[AreaRowError]]:
    errors: list[AreaRowError] = []
    rows: list[_Row] = []
    first_row_of: dict[str, int] = {}
    for number, raw in numbered:
        code = _check_code(number, raw, errors)
        name = _cell(raw, "name") or ""
        if not name:
            errors.append(AreaRowError(number, "name", _("the name is missing")))
        elif len(name) > NAME_MAX:
            errors.append(
                AreaRowError(
                    number,
                    "name",
                    _("a name has at most %(max)s characters") % {"max": NAME_MAX},
                )
            )
        name_en = _cell(raw, "name_en")
        if name_en is not None and len(name_en) > NAME_MAX:
            errors.append(
                AreaRowError(
                    number,
                    "name_en",
                    _("a name has at most %(max)s characters") % {"max": NAME_MAX},
                )
            )
        if code is None:
            continue
        if code in first_row_of:
            errors.append(
                AreaRowError(
                    number,
                    "code",
                    _("the code %(code)s is already in row %(row)s")
                    % {"code": code, "row": first_row_of[code]},
                )
            )
            continue
        first_row_of[code] = number
        level = level_of_code(code)
        assert level is not None
        sub_kind, com_kind, given = _check_kind(number, raw, code, level, errors)
        rows.append(
            _Row(
                row=number,
                code=code,
                name=name,
                name_en=name_en,
                level=level,
                parent_code=parent_code_of(code, level),
                subdistrict_kind=sub_kind,
                community_kind=com_kind,
                kind_given=given,
            )
        )
    for row in rows:
        if (
            row.parent_code is not None
            and row.parent_code not in first_row_of
            and row.parent_code not in existing
        ):
            errors.append(
                AreaRowError(
                    row.row,
                    "code",
                    _("the parent %(parent)s of %(code)s is neither in this file nor in the tree")
                    % {"parent": row.parent_code, "code": row.code},
                )
            )
    errors.sort(key=lambda e: (e.row, COLUMNS.index(e.column) if e.column in COLUMNS else 9))
    return rows, errors


def _wanted_ancestors(level: str, parent: Area | None) -> dict[str, int | None]:
    """The ancestor ids an area at ``level`` under ``parent`` must hold (not its own level)."""
    wanted: dict[str, int | None] = {}
    for ancestor in _ANCESTOR_LEVELS:
        if ancestor == level:
            continue
        wanted[f"{ancestor}_id"] = parent.ancestor_id(ancestor) if parent is not None else None
    return wanted


_UPDATABLE = (
    "name",
    "name_en",
    "subdistrict_kind",
    "community_kind",
    "parent_id",
    "city_id",
    "district_id",
    "subdistrict_id",
    "community_id",
)


def _write(rows: Sequence[_Row], existing: dict[str, Area]) -> AreasImportResult:
    """Upsert the rows level by level, so that every parent exists before its children."""
    result = AreasImportResult()
    by_code = dict(existing)
    for level in LEVEL_ORDER:
        new: list[Area] = []
        changed: list[Area] = []
        for row in (r for r in rows if r.level == level):
            parent = by_code[row.parent_code] if row.parent_code else None
            area = by_code.get(row.code)
            if area is None:
                area = Area(
                    code=row.code,
                    name=row.name,
                    name_en=row.name_en or "",
                    level=level,
                    parent=parent,
                    subdistrict_kind=row.subdistrict_kind,
                    community_kind=row.community_kind,
                    **_wanted_ancestors(level, parent),
                )
                new.append(area)
                continue
            before = tuple(getattr(area, f) for f in _UPDATABLE)
            area.name = row.name
            if row.name_en is not None:
                area.name_en = row.name_en
            if row.kind_given or not (area.subdistrict_kind or area.community_kind):
                area.subdistrict_kind = row.subdistrict_kind
                area.community_kind = row.community_kind
            area.parent_id = parent.pk if parent is not None else None
            for column, value in _wanted_ancestors(level, parent).items():
                setattr(area, column, value)
            if level in _ANCESTOR_LEVELS:
                setattr(area, f"{level}_id", area.pk)
            if tuple(getattr(area, f) for f in _UPDATABLE) != before:
                changed.append(area)
            else:
                result.unchanged += 1
        if new:
            Area.objects.bulk_create(new, batch_size=500)
            if level in _ANCESTOR_LEVELS:
                for area in new:
                    setattr(area, f"{level}_id", area.pk)
                Area.objects.bulk_update(new, [f"{level}_id"], batch_size=500)
            for area in new:
                by_code[area.code] = area
            result.created += len(new)
            result.created_by_level[level] = len(new)
        if changed:
            Area.objects.bulk_update(changed, list(_UPDATABLE), batch_size=500)
            result.updated += len(changed)
    return result


def _import(numbered: Sequence[tuple[int, Mapping[str, Any]]], actor: Any) -> AreasImportResult:
    codes: set[str] = set()
    for _number, raw in numbered:
        code = _cell(raw, "code") or ""
        level = level_of_code(code)
        if level is not None:
            codes.add(code)
            parent = parent_code_of(code, level)
            if parent:
                codes.add(parent)
    with transaction.atomic():
        existing = {a.code: a for a in Area.objects.filter(code__in=codes)}
        rows, errors = _validate(numbered, existing)
        if errors:
            raise AreaImportError(errors)
        result = _write(rows, existing)
        if result.created or result.updated:
            from tanfang.audit.models import AuditAction
            from tanfang.audit.services import audit_record

            top = min(rows, key=lambda r: (len(r.code), r.code))
            audit_record(
                actor=actor,
                action=AuditAction.IMPORT,
                area_code=top.code if top.level == AreaLevel.CITY else top.code[:2] + "0000",
                details={
                    "what": "areas",
                    "created": result.created,
                    "updated": result.updated,
                    "unchanged": result.unchanged,
                },
            )
    return result


def areas_import_rows(
    rows: Iterable[Mapping[str, Any]], *, actor: Any = None, first_row: int = 2
) -> AreasImportResult:
    """Create or update areas from mappings with the keys of ``COLUMNS``.

    Steps: read each row's level and parent from its code; check every row (code, name,
    kind, duplicates, parent in the file or the tree) and refuse the whole import, writing
    nothing, with every problem listed; then, in one transaction, create the new areas level
    by level with their ancestor columns filled, and update names and kinds of the others.
    Idempotent: importing the same rows again changes nothing. Areas are never deleted.
    ``first_row`` is the number reported for the first mapping (2 for a CSV with a header).
    """
    numbered = [(first_row + i, raw) for i, raw in enumerate(rows)]
    return _import(numbered, actor)


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Spreadsheets saved on Chinese Windows write GB18030 (a superset of GBK).
        return data.decode("gb18030")


def areas_import_csv(path: str | Path, *, actor: Any = None) -> AreasImportResult:
    """Import areas from a CSV file with a header ``code,name[,name_en][,kind]``.

    The file is UTF-8 (with or without a byte-order mark) or GB18030. Rows are numbered as a
    spreadsheet shows them: the header is row 1. See ``areas_import_rows``.
    """
    text = _read_text(Path(path))
    reader = csv.reader(io.StringIO(text, newline=""))
    header_errors: list[AreaRowError] = []
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise AreaImportError([AreaRowError(1, "code", _("the file is empty"))]) from None
    for column in header:
        if column not in COLUMNS:
            header_errors.append(
                AreaRowError(
                    1,
                    column,
                    _("unknown column %(column)s; the columns are: %(columns)s")
                    % {"column": column, "columns": ", ".join(COLUMNS)},
                )
            )
    for column in REQUIRED_COLUMNS:
        if column not in header:
            header_errors.append(
                AreaRowError(1, column, _("the column %(column)s is missing") % {"column": column})
            )
    if len(set(header)) != len(header):
        header_errors.append(AreaRowError(1, "", _("a column appears twice in the header")))
    if header_errors:
        raise AreaImportError(header_errors)
    numbered: list[tuple[int, Mapping[str, Any]]] = []
    for cells in reader:
        if not any(c.strip() for c in cells):
            continue
        values = dict(zip(header, cells, strict=False))
        numbered.append((reader.line_num, values))
    return _import(numbered, actor)


def area_create(
    *, code: str, name: str, name_en: str = "", kind: str = "", actor: Any = None
) -> Area:
    """Create (or update) one area, with the same checks as an import."""
    areas_import_rows(
        [{"code": code, "name": name, "name_en": name_en, "kind": kind}],
        actor=actor,
        first_row=1,
    )
    return Area.objects.get(code=code.strip())
