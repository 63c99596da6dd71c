"""The plain-data shape of an elder's record as it arrives from a form, a file or the API.

A field left ``UNSET`` is not touched by an upsert (a file that does not carry a fact says
nothing about it); ``None`` says the fact is unknown.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Final


class _Unset:
    _instance: _Unset | None = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Final[Any] = _Unset()


@dataclass(slots=True)
class ChildRecord:
    name: str = ""
    alive: bool | None = None
    birth_year: int | None = None
    lives_with: bool | None = None
    same_subdistrict: bool | None = None
    away_months: int | None = None
    away_reason: str = ""
    can_support: bool | None = None
    disability_grade: int | None = None
    adopted: bool | None = None
    phone: str = ""

    def key(self) -> tuple[Any, ...]:
        return (
            self.name,
            self.alive,
            self.birth_year,
            self.lives_with,
            self.same_subdistrict,
            self.away_months,
            self.away_reason,
            self.can_support,
            self.disability_grade,
            self.adopted,
        )


@dataclass(slots=True)
class HouseholdRecord:
    relation: str
    age: int | None = None

    def key(self) -> tuple[Any, ...]:
        return (self.relation, self.age)


@dataclass(slots=True)
class AssessmentRecord:
    scheme: str
    level: int
    assessed_on: dt.date


@dataclass(slots=True)
class ContractRecord:
    kind: str
    provider_name: str
    recipient_group: str
    starts_on: dt.date
    ends_on: dt.date | None = None


@dataclass(slots=True)
class WillingnessRecord:
    willing: bool
    recorded_on: dt.date
    recorded_by_name: str
    note: str = ""


@dataclass(slots=True)
class FirstContactRecord:
    name: str
    relation: str
    phone: str
    designated_by_community: bool = False


@dataclass(slots=True)
class ElderRecord:
    """One elder's facts. ``id_number`` identifies the elder (duplicates merge on it)."""

    id_number: str
    name: Any = UNSET
    gender: Any = UNSET
    birth_date: Any = UNSET
    phone: Any = UNSET
    community_code: Any = UNSET
    grid_code: Any = UNSET
    address: Any = UNSET
    spouse_status: Any = UNSET
    spouse_lives_with: Any = UNSET
    relatives_same_subdistrict: Any = UNSET
    daily_companionship: Any = UNSET
    disability_status: Any = UNSET
    disability_grade: Any = UNSET
    disability_type: Any = UNSET
    extremely_poor: Any = UNSET
    dispersed_supported: Any = UNSET
    life_status: Any = UNSET
    children: Any = UNSET  # list[ChildRecord] | None | UNSET
    household: Any = UNSET  # list[HouseholdRecord] | None | UNSET
    assessment: Any = UNSET  # AssessmentRecord | UNSET
    contract: Any = UNSET  # ContractRecord | UNSET
    willingness: Any = UNSET  # WillingnessRecord | UNSET
    first_contact: Any = UNSET  # FirstContactRecord | UNSET
    extra: dict[str, Any] = field(default_factory=dict)


# Scalar facts copied one-to-one onto the Elder row, in the order forms show them.
SCALAR_FACTS: tuple[str, ...] = (
    "name",
    "gender",
    "birth_date",
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
)
