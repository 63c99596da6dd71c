"""The plain data the obligation engine reads and returns.

Every type is a frozen dataclass with slots: cheap to build in bulk (a million elders per
recomputation), hashable where the engine caches on it (policies), and free of Django. Policy
types normalise their enum fields in ``__post_init__`` so rows read from the database (plain
strings) work; the per-elder types (``ElderFacts``, ``PastVisit``) do no work on construction,
because the caller builds a million of them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum


class Frequency(StrEnum):
    """How often a visit is due: one visit per period of this length."""

    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"


class ModeRequirement(StrEnum):
    """Which visit modes satisfy an obligation (each level accepts the ones above it)."""

    ANY = "any"  # every mode that counts under the counting policy
    PHONE_OR_BETTER = "phone"  # phone, online (video), in-home, combined
    IN_HOME = "in_home"  # in-home or combined


# Visit modes and outcomes, as stored on a visit record.
MODES: tuple[str, ...] = ("phone", "online", "in_home", "remote_monitoring", "combined")
OUTCOMES: tuple[str, ...] = ("met", "not_home", "refused", "in_hospital", "deceased")
LIFE_STATUSES: tuple[str, ...] = (
    "active",
    "moved_away",
    "in_hospital",
    "in_institution",
    "deceased",
)
RISK_LEVELS: tuple[str, ...] = ("high", "priority", "general")
# Why an elder has no regular obligation; "" when she has one.
EXCLUSIONS: tuple[str, ...] = (
    "deceased",
    "moved_away",
    "in_institution",
    "in_hospital",
    "declined",
)
OBLIGATION_KINDS: tuple[str, ...] = ("regular", "surge", "holiday", "reconfirm")
# A pseudo-category: rules and surges may name it to match elders aged 80 or over (高龄).
ADVANCED_AGE = "advanced_age"

# How strong a visit mode is. A visit satisfies a requirement when its rank is at least the
# requirement's rank. A combined visit includes an in-home part; remote monitoring satisfies
# only ANY, and only when the counting policy lists it at all.
MODE_RANK: dict[str, int] = {
    "remote_monitoring": 0,
    "phone": 1,
    "online": 1,
    "in_home": 2,
    "combined": 2,
}
REQUIREMENT_RANK: dict[str, int] = {
    ModeRequirement.ANY: 0,
    ModeRequirement.PHONE_OR_BETTER: 1,
    ModeRequirement.IN_HOME: 2,
}
# Smaller is more frequent; used to break priority ties in favour of the more frequent rule.
FREQUENCY_RANK: dict[str, int] = {
    Frequency.DAY: 0,
    Frequency.WEEK: 1,
    Frequency.MONTH: 2,
    Frequency.QUARTER: 3,
}


@dataclass(frozen=True, slots=True)
class ElderFacts:
    """What the engine needs to know about one elder, as of the day asked about.

    ``area_codes`` holds the codes of her city, district, subdistrict and community; an
    area-scoped rule or surge applies when its code is one of them. ``station_contracts``
    lists the periods (end inclusive, ``None`` = open) of a contract with a community
    elder-care station or a home care bed. ``due_from`` (optional) is the first day she can
    owe a visit at all — registration, or the day she returned from hospital or agreed to
    visits again; periods that begin before it are never counted as missed.
    """

    elder_id: int
    area_codes: tuple[str, ...]
    categories: frozenset[str]
    risk_level: str
    life_status: str
    willing: bool | None
    willingness_recorded_on: dt.date | None
    station_contracts: tuple[tuple[dt.date, dt.date | None], ...]
    advanced_age: bool
    due_from: dt.date | None = None


@dataclass(frozen=True, slots=True)
class PastVisit:
    """One recorded visit. ``at`` is timezone-aware; its Asia/Shanghai date is what counts."""

    at: dt.datetime
    mode: str
    outcome: str
    by_station: bool


def _normalise(obj: object, field: str, enum: type[StrEnum]) -> None:
    """Coerce a string field to its enum (rows from the database hold plain strings)."""
    object.__setattr__(obj, field, enum(getattr(obj, field)))


def _freeze(obj: object, *fields: str) -> None:
    """Make set-valued fields frozensets, so policies stay hashable whatever the caller gave."""
    for field in fields:
        value = getattr(obj, field)
        if not isinstance(value, frozenset):
            object.__setattr__(obj, field, frozenset(value))


def _check_dates(code: str, start: dt.date, end: dt.date | None) -> None:
    if end is not None and end < start:
        raise ValueError(f"{code}: ends on {end} before it starts on {start}")


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """A regular obligation: one visit per ``frequency`` period, for the elders it matches.

    A rule matches an elder when every non-empty selector matches: ``categories`` (she has
    ANY of them), ``risk_levels`` (hers is one of them), ``area_code`` (one of her area
    codes) and ``elder_id``. Among the rules that match and are effective on a day, the
    highest ``priority`` wins; ties go to the more frequent rule, then to the stricter mode,
    then to the smaller code (so the choice never depends on the order of the rules).
    """

    code: str
    effective_from: dt.date
    effective_to: dt.date | None
    frequency: Frequency
    mode: ModeRequirement = ModeRequirement.ANY
    categories: frozenset[str] = frozenset()
    risk_levels: frozenset[str] = frozenset()
    area_code: str = ""
    elder_id: int | None = None
    priority: int = 0

    def __post_init__(self) -> None:
        _normalise(self, "frequency", Frequency)
        _normalise(self, "mode", ModeRequirement)
        _freeze(self, "categories", "risk_levels")
        _check_dates(self.code, self.effective_from, self.effective_to)


@dataclass(frozen=True, slots=True)
class Surge:
    """A temporary extra obligation for an area and a period, e.g. a heat wave.

    Applies from ``starts_on`` to ``ends_on`` (inclusive) to elders in ``area_code`` ("" =
    everywhere) who have ALL of ``categories_all`` and whose risk level is in ``risk_levels``
    (empty = any). Periods of ``frequency`` are clipped to the surge's days.
    """

    code: str
    reason: str
    area_code: str
    starts_on: dt.date
    ends_on: dt.date
    frequency: Frequency
    mode: ModeRequirement = ModeRequirement.ANY
    categories_all: frozenset[str] = frozenset()
    risk_levels: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        _normalise(self, "frequency", Frequency)
        _normalise(self, "mode", ModeRequirement)
        _freeze(self, "categories_all", "risk_levels")
        _check_dates(self.code, self.starts_on, self.ends_on)


@dataclass(frozen=True, slots=True)
class HolidaySurge:
    """One visit due around each occurrence of the named traditional holidays.

    ``holidays`` holds ``chinese_calendar.Holiday`` values ("Spring Festival", ...). The
    visit is due in the window [first holiday day - ``days_before``, last holiday day].
    ``area_code`` and ``risk_levels`` narrow it like a ``Surge``'s (empty = everyone).
    """

    code: str
    holidays: frozenset[str]
    mode: ModeRequirement = ModeRequirement.ANY
    categories_all: frozenset[str] = frozenset()
    days_before: int = 0
    area_code: str = ""
    risk_levels: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        _normalise(self, "mode", ModeRequirement)
        _freeze(self, "holidays", "categories_all", "risk_levels")
        if not 0 <= self.days_before <= 60:
            raise ValueError(f"{self.code}: days_before must be between 0 and 60")
        if not self.holidays:
            raise ValueError(f"{self.code}: names no holiday")


@dataclass(frozen=True, slots=True)
class CountingPolicy:
    """Which visits count (for obligations and rates), from ``effective_from`` on.

    A visit counts when its mode is in ``modes`` and its outcome in ``outcomes``, under the
    counting policy effective on the visit's Asia/Shanghai date (the latest one that has
    started). A visit dated before every counting policy does not count.
    """

    effective_from: dt.date
    modes: frozenset[str] = frozenset({"phone", "online", "in_home", "combined"})
    outcomes: frozenset[str] = frozenset({"met", "in_hospital"})

    def __post_init__(self) -> None:
        _freeze(self, "modes", "outcomes")


@dataclass(frozen=True, slots=True)
class VisitPolicy:
    """The whole visit policy: regular rules, surges, holiday surges and counting."""

    rules: tuple[PolicyRule, ...]
    surges: tuple[Surge, ...] = ()
    holiday_surges: tuple[HolidaySurge, ...] = ()
    counting: tuple[CountingPolicy, ...] = (CountingPolicy(effective_from=dt.date.min),)
    reconfirm_willingness_days: int = 365

    def __post_init__(self) -> None:
        for field in ("rules", "surges", "holiday_surges", "counting"):
            if not isinstance(getattr(self, field), tuple):
                object.__setattr__(self, field, tuple(getattr(self, field)))
        if not self.counting:
            raise ValueError("counting must hold at least one CountingPolicy")
        if self.reconfirm_willingness_days < 1:
            raise ValueError("reconfirm_willingness_days must be at least 1")
        for group in (self.rules, self.surges, self.holiday_surges):
            codes = [item.code for item in group]
            if len(codes) != len(set(codes)):
                raise ValueError(f"duplicate codes in {codes}")


@dataclass(frozen=True, slots=True)
class Obligation:
    """One visit an elder is owed, open on the day asked about.

    ``kind``: "regular" (the winning rule's current period), "surge", "holiday" or
    "reconfirm" (re-confirm a refusal of visits). ``due_by`` is ``period_end``. ``frequency``
    is ``None`` for holiday windows and re-confirmations, which do not recur by period.
    ``satisfied``: a counting visit dated in [period_start, period_end] meets ``mode``
    (always False for a re-confirmation, which a new willingness record closes).
    ``scheduled`` is False under a station contract: the station visits, so no
    government-purchased visit is planned, yet the obligation still counts for the rates.
    ``label`` is the surge's reason or the holiday's name.
    """

    elder_id: int
    kind: str
    code: str
    period_start: dt.date
    period_end: dt.date
    due_by: dt.date
    mode: ModeRequirement
    frequency: Frequency | None
    satisfied: bool
    scheduled: bool
    label: str = ""


@dataclass(frozen=True, slots=True)
class DueStatus:
    """An elder's visit status on one day: what the worklists and the row's due date use.

    ``excluded`` names why she is not due at all ("" when she is). ``frequency``,
    ``period_key``, ``mode`` and ``rule_code`` describe her regular obligation (empty when
    there is none). ``next_due_on`` and ``overdue_since`` are defined in
    docs/visit-obligations.md; ``last_counted_at`` is her latest counting visit; ``station``
    says she is under a station contract on the day. ``satisfied`` is her current regular
    period's state; ``reconfirm_due_on`` is when her refusal must be re-confirmed.
    """

    excluded: str
    frequency: Frequency | None
    period_key: str
    next_due_on: dt.date | None
    overdue_since: dt.date | None
    last_counted_at: dt.datetime | None
    station: bool
    mode: ModeRequirement | None = None
    rule_code: str = ""
    satisfied: bool = False
    reconfirm_due_on: dt.date | None = None


@dataclass(frozen=True, slots=True)
class RateStatus:
    """One elder's place in a visit rate for one period (see docs/visit-obligations.md)."""

    period_key: str
    due: bool
    visited: bool
    excluded: str
