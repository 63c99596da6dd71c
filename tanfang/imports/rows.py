"""From a row of the elders file to an ``ElderRecord``, with every error of the row.

``Layout`` maps the file's header row to the column definitions (``columns.py``); its
``parse_row`` reads one data row. A blank cell leaves the fact ``UNSET`` (the file says nothing
about it). Besides each cell on its own, a row is checked as a whole: the ID number against the
birth date and gender, columns that only make sense together (an assessment's level, scheme and
date), and statements that contradict each other.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import fields
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _

from tanfang.core import crypto
from tanfang.imports import values as v
from tanfang.imports.base import ErrorList, RowError
from tanfang.imports.columns import CHILD_FIELD_OF, ELDER_COLUMNS, IGNORED_HEADERS, HeaderIndex
from tanfang.imports.headers import Placed, read_header_row, unnamed_cell_errors
from tanfang.registry.identity import IdentifierError, gender_of, normalise_id_number
from tanfang.registry.records import (
    UNSET,
    AssessmentRecord,
    ChildRecord,
    ContractRecord,
    ElderRecord,
    FirstContactRecord,
    WillingnessRecord,
)

ELDER_AGE = 60

# Columns copied one-to-one onto the record.
_SCALARS = (
    "name",
    "gender",
    "phone",
    "community_code",
    "grid_code",
    "address",
    "spouse_status",
    "spouse_lives_with",
    "relatives_same_subdistrict",
    "daily_companionship",
    "disability_status",
    "disability_grade",
    "disability_type",
    "extremely_poor",
    "dispersed_supported",
    "life_status",
    "household",
)
# Groups of columns that make one fact: all of ``required`` are needed when any is given.
_GROUPS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "assessment": (("assessment_level", "assessment_scheme", "assessment_date"), ()),
    "contract": (
        ("contract_kind", "contract_provider", "contract_group", "contract_date"),
        ("contract_end_date",),
    ),
    "willingness": (("willing", "willingness_date", "willingness_recorder"), ()),
    "first_contact": (
        ("first_contact_name", "first_contact_relation", "first_contact_phone"),
        ("first_contact_designated",),
    ),
}
# The column that stands for a record field in messages about the whole fact.
FIELD_COLUMN = {
    "children": "children_count",
    "assessment": "assessment_level",
    "contract": "contract_kind",
    "willingness": "willing",
    "first_contact": "first_contact_name",
    "birth_date": "birth_date",
}
_HEADERS = HeaderIndex.build()
_DEFAULT_HEADER = {column.code: column.header for column in ELDER_COLUMNS}


class Layout:
    """The columns of one file, read from its header row."""

    def __init__(self, placed: list[Placed], unnamed: list[int]) -> None:
        self.placed = placed
        self.unnamed = unnamed
        self.by_code = {p.column.code: p for p in placed}
        self.child_groups = sorted({p.column.child_group for p in placed if p.column.child_group})
        self.child_codes = {
            n: [(name, f"child{n}_{name}") for name in CHILD_FIELD_OF] for n in self.child_groups
        }
        self.id_index = self.by_code["id_number"].index
        # What reading a cell needs, by column index (None: no column), flattened for speed.
        self._by_index: list[tuple[str, Any, str, str, int] | None] = [None] * (
            max(p.index for p in placed) + 1
        )
        for p in placed:
            self._by_index[p.index] = (
                p.column.code,
                p.column.parse,
                p.header,
                p.letter,
                p.column.child_group,
            )

    @classmethod
    def read(cls, header: list[str], errors: ErrorList) -> Layout | None:
        """The layout, or None when the file cannot be read at all (no ID column)."""
        found = read_header_row(header, errors, find=_HEADERS.find, ignored=IGNORED_HEADERS)
        if "id_number" not in found.codes:
            errors.add(
                1,
                _DEFAULT_HEADER["id_number"],
                _("the file has no column of resident ID numbers (公民身份号码)"),
            )
            return None
        return cls(found.placed, found.unnamed)

    def header_of(self, code: str) -> tuple[str, str]:
        """The header and letter of a column, or its Chinese header if the file lacks it."""
        placed = self.by_code.get(code)
        if placed is not None:
            return placed.header, placed.letter
        if code in _DEFAULT_HEADER:
            return _DEFAULT_HEADER[code], ""
        group, _sep, name = code.partition("_")
        template = CHILD_FIELD_OF.get(name)
        if template is not None and group.startswith("child"):
            return template.header.format(n=group.removeprefix("child")), ""
        return code, ""

    def error(self, row: int, code: str, message: str) -> RowError:
        header, letter = self.header_of(code)
        return RowError(row, header, message, letter)

    def parse_row(
        self, row: int, cells: list[Any]
    ) -> tuple[ElderRecord | None, str | None, list[RowError]]:
        """The row's record (None without a valid ID number), its key, and its errors."""
        found: dict[str, Any] = {}
        errors: list[RowError] = []
        specs = self._by_index
        width = len(specs)
        groups: set[int] = set()
        # Only the filled cells are looked at: most cells of a wide row are empty.
        for index, raw in [(i, c) for i, c in enumerate(cells) if c is not None and c != ""]:
            spec = specs[index] if index < width else None
            if spec is None or (type(raw) is str and raw.isspace()):
                continue
            code, parse, header, letter, group = spec
            try:
                found[code] = parse(raw)
            except v.CellError as exc:
                errors.append(RowError(row, header, str(exc), letter))
                found[code] = _BAD
            if group:
                groups.add(group)
        errors.extend(unnamed_cell_errors(row, cells, self.unnamed))
        return _RowReader(self, row, found, errors, groups).record()


class _Bad:
    """A cell that did not parse (its error is reported already)."""


_BAD = _Bad()


class _RowReader:
    def __init__(
        self,
        layout: Layout,
        row: int,
        found: dict[str, Any],
        errors: list[RowError],
        groups: set[int],
    ) -> None:
        self.layout, self.row, self.found, self.errors = layout, row, found, errors
        self.groups = groups  # the children's groups with a filled cell

    def fail(self, code: str, message: str) -> None:
        self.errors.append(self.layout.error(self.row, code, message))

    def get(self, code: str) -> Any:
        """The parsed value, ``None`` if blank, ``_BAD`` if it failed."""
        return self.found.get(code)

    def record(self) -> tuple[ElderRecord | None, str | None, list[RowError]]:
        number = self.id_number()
        if number is None:
            return None, None, self.errors
        record = ElderRecord(id_number=number)
        for code in _SCALARS:
            value = self.get(code)
            if value is not None and value is not _BAD:
                setattr(record, code, value)
        birth = self.get("birth_date")
        if isinstance(birth, dt.date):
            record.birth_date = birth
        self.check_person(record, number)
        record.children = self.children()
        for name, (required, optional) in _GROUPS.items():
            if any(self.get(code) is not None for code in required + optional):
                missing = [code for code in required if self.get(code) is None]
                for code in missing:
                    self.fail(code, _("required together with the other columns of this fact"))
                given = [self.get(code) for code in required + optional]
                if not missing and _BAD not in given:
                    setattr(record, name, getattr(self, f"make_{name}")())
        self.check_consistency(record)
        return record, crypto.blind_index("id", number), self.errors

    def id_number(self) -> str | None:
        raw = self.get("id_number")
        if raw is _BAD:
            return None
        if raw is None:
            self.fail("id_number", _("the resident ID number is required on every row"))
            return None
        try:
            return normalise_id_number(raw)
        except IdentifierError as exc:
            self.fail("id_number", str(exc))
            return None

    def check_person(self, record: ElderRecord, number: str) -> None:
        # The number is valid: its birth date is a date (``birth_date_of`` would re-parse it).
        born = dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
        if record.birth_date is not UNSET and record.birth_date != born:
            self.fail(
                "birth_date",
                _("the birth date in the resident ID number does not match the birth date"),
            )
        if record.gender is not UNSET and record.gender != gender_of(number):
            self.fail("gender", _("the gender does not match the resident ID number"))
        today = timezone.localdate()
        age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
        if age < ELDER_AGE:
            self.fail(
                "id_number",
                _(
                    "by this ID number the person is %(age)d: the registry holds people aged "
                    "%(min)d or over"
                )
                % {"age": age, "min": ELDER_AGE},
            )

    def children(self) -> Any:
        count = self.get("children_count")
        described: list[ChildRecord] = []
        found = self.found
        for n in sorted(self.groups):
            cells = {name: found.get(code) for name, code in self.layout.child_codes[n]}
            clean = {k: (None if val is _BAD else val) for k, val in cells.items()}
            described.append(
                ChildRecord(
                    name=clean["name"] or "",
                    alive=clean["alive"],
                    birth_year=clean["birth_year"],
                    lives_with=clean["lives_with"],
                    same_subdistrict=clean["same_subdistrict"],
                    away_months=clean["away_months"],
                    away_reason=clean["away_reason"] or "",
                    can_support=clean["can_support"],
                    disability_grade=clean["disability_grade"],
                    adopted=clean["adopted"],
                )
            )
        if count is _BAD:
            return UNSET
        if count is not None and count != len(described):
            self.fail(
                "children_count",
                _(
                    "%(count)d children are stated but %(described)d are described in the "
                    "children's columns; describe each child in its own group (add columns "
                    "子女%(next)d姓名 … for more)"
                )
                % {
                    "count": count,
                    "described": len(described),
                    "next": (self.layout.child_groups or [0])[-1] + 1,
                },
            )
            return UNSET
        if count is None and not described:
            return UNSET
        return described

    def make_assessment(self) -> AssessmentRecord | Any:
        scheme, level = self.get("assessment_scheme"), self.get("assessment_level")
        top = 3 if scheme == "beijing" else 4
        if level > top:
            self.fail(
                "assessment_level",
                _("levels of this scheme are 0 to %(top)d") % {"top": top},
            )
            return UNSET
        return AssessmentRecord(scheme=scheme, level=level, assessed_on=self.get("assessment_date"))

    def make_contract(self) -> ContractRecord | Any:
        starts, ends = self.get("contract_date"), self.get("contract_end_date")
        if ends is not None and ends < starts:
            self.fail("contract_end_date", _("the contract ends before it starts"))
            return UNSET
        return ContractRecord(
            kind=self.get("contract_kind"),
            provider_name=self.get("contract_provider"),
            recipient_group=self.get("contract_group"),
            starts_on=starts,
            ends_on=ends,
        )

    def make_willingness(self) -> WillingnessRecord:
        return WillingnessRecord(
            willing=self.get("willing"),
            recorded_on=self.get("willingness_date"),
            recorded_by_name=self.get("willingness_recorder"),
        )

    def make_first_contact(self) -> FirstContactRecord:
        return FirstContactRecord(
            name=self.get("first_contact_name"),
            relation=self.get("first_contact_relation"),
            phone=self.get("first_contact_phone"),
            designated_by_community=bool(self.get("first_contact_designated")),
        )

    def check_consistency(self, record: ElderRecord) -> None:
        if record.spouse_status in ("none", "deceased") and record.spouse_lives_with is True:
            self.fail("spouse_lives_with", _("the spouse column says there is no living spouse"))
        if record.disability_status == "none":
            for code in ("disability_grade", "disability_type"):
                if getattr(record, code) is not UNSET:
                    self.fail(code, _("the certificate column says there is no certificate"))
        if record.dispersed_supported is True and record.extremely_poor is False:
            self.fail(
                "dispersed_supported",
                _("only an extremely poor elder can be supported at home (分散供养)"),
            )


def merge_into(
    held: ElderRecord, record: ElderRecord, origin: dict[str, int], row: int, layout: Layout
) -> list[RowError]:
    """Add ``record``'s facts to ``held`` (same elder); a fact both give differently is an
    error naming both rows. ``origin`` remembers which row gave each fact."""
    errors: list[RowError] = []
    for item in fields(ElderRecord):
        name = item.name
        if name in ("id_number", "extra"):
            continue
        new = getattr(record, name)
        if new is UNSET:
            continue
        old = getattr(held, name)
        if old is UNSET:
            setattr(held, name, new)
            origin[name] = row
        elif old != new:
            errors.append(
                layout.error(
                    row,
                    FIELD_COLUMN.get(name, name),
                    _("row %(other)d has the same resident ID number and a different value here")
                    % {"other": origin[name]},
                )
            )
    return errors
