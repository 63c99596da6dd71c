"""The plain data the demo generator deals in: communities, identities, deliveries, and the
synthetic identifiers (ID place codes and the demo's reserved phone blocks)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from tanfang.registry.records import ElderRecord, FirstContactRecord

# Birth dates are fixed relative to this date (so the same seed gives the same ID numbers
# whenever the demo is built, and everyone is at least 60 from then on); dates of events
# (assessments, census visits) are relative to the day of the build.
BIRTH_REFERENCE = dt.date(2026, 1, 1)

SOURCE_CIVIL_AFFAIRS = "civil_affairs"
SOURCE_DISABLED_FEDERATION = "disabled_federation"
SOURCE_CENSUS = "census"

# Mobile blocks 1xx-0000-xxxx and the Beijing landline block 010-0000-xxxx are the demo's
# (a Beijing local number never starts with 0). Numbers repeat after 300,000 mobiles and
# 10,000 landlines.
MOBILE_PREFIXES: tuple[str, ...] = (
    "130",
    "131",
    "132",
    "133",
    "135",
    "136",
    "137",
    "138",
    "139",
    "150",
    "151",
    "152",
    "155",
    "156",
    "157",
    "158",
    "159",
    "176",
    "177",
    "178",
    "180",
    "181",
    "182",
    "183",
    "185",
    "186",
    "187",
    "188",
    "189",
    "199",
)


# The place code (first six digits) of an ID number is the county's code when the number
# was first issued, and validators (python-stdnum, which the registry uses) accept a code only
# for people born while it existed. The ten outer districts became districts between 1986 and
# 2015; people born before then carry their county's pre-1982 code.
ID_PLACE: dict[str, str] = {
    "110111": "110205",  # 房山县
    "110112": "110203",  # 通县
    "110113": "110202",  # 顺义县
    "110114": "110201",  # 昌平县
    "110115": "110204",  # 大兴县
    "110116": "110207",  # 怀柔县
    "110117": "110206",  # 平谷县
    "110118": "110208",  # 密云县
    "110119": "110209",  # 延庆县
}


def id_place(district_code: str) -> str:
    """The place code of the ID number of an elder (born before 1982) of this district."""
    return ID_PLACE.get(district_code, district_code)


def demo_mobile(serial: int) -> str:
    prefix = MOBILE_PREFIXES[(serial // 10000) % len(MOBILE_PREFIXES)]
    return f"{prefix}0000{serial % 10000:04d}"


def demo_landline(serial: int) -> str:
    return f"0100000{serial % 10000:04d}"


def is_demo_phone(number: str) -> bool:
    if number.startswith("0100000") and len(number) == 11:
        return True
    return len(number) == 11 and number[:3] in MOBILE_PREFIXES and number[3:7] == "0000"


@dataclass(frozen=True, slots=True)
class Community:
    """What the generator needs to know about a community."""

    code: str
    name: str
    rural: bool
    district_code: str
    grid_codes: tuple[str, ...] = ()


@dataclass(slots=True)
class Delivery:
    """One department's record about an elder, as ``elders_upsert`` would receive it."""

    source: str
    source_date: dt.date
    record: ElderRecord


@dataclass(frozen=True, slots=True)
class Identity:
    """What must be decided in index order: the ID number's sequence code is unique."""

    index: int
    community: int  # position in the factory's list of communities
    age: int
    gender: str
    birth_date: dt.date
    serial: int
    profile: str


@dataclass(slots=True)
class DemoElder:
    index: int
    id_number: str
    name: str
    gender: str
    birth_date: dt.date
    community: Community
    deliveries: list[Delivery]
    # The first contact as the demo sets it, when it was set and last confirmed.
    first_contact: FirstContactRecord | None = None
    first_contact_confirmed_on: dt.date | None = None
    first_contact_since: dt.date | None = None
    extra: dict[str, Any] = field(default_factory=dict)
