"""Building test data through the real services: a small tree, users of every role, elders,
visitors with their elders, and visits."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from dataclasses import dataclass
from typing import Any

from django.utils import timezone
from rest_framework.test import APIClient

from tanfang.accounts.models import Role, User
from tanfang.areas.models import Area, AreaLevel, CommunityKind, SubdistrictKind
from tanfang.registry.models import Elder, VisitorAssignment
from tanfang.registry.records import ChildRecord, ElderRecord, FirstContactRecord
from tanfang.registry.services import elders_upsert
from tanfang.registry.synthetic import synthetic_id_number
from tanfang.visits.models import Visit, VisitSource
from tanfang.visits.services import VisitInput, visit_record

_serial = itertools.count(1)
PASSWORD = "test-pass-123"


def make_area(code: str, name: str, level: str, parent: Area | None = None, **kw: Any) -> Area:
    area = Area(code=code, name=name, level=level, parent=parent, **kw)
    for ancestor_level in ("city", "district", "subdistrict", "community"):
        if ancestor_level == level:
            continue
        if parent is not None:
            setattr(area, f"{ancestor_level}_id", parent.ancestor_id(ancestor_level))
    area.save()
    if level != AreaLevel.GRID:
        setattr(area, f"{level}_id", area.pk)
        area.save()
    return area


@dataclass
class Tree:
    city: Area
    districts: list[Area]
    subdistricts: list[Area]
    communities: list[Area]


def make_tree() -> Tree:
    """Beijing; Dongcheng and Fangshan; two subdistricts each; two communities each.

    The second community of each Fangshan subdistrict is a villagers' committee (rural).
    """
    city = make_area("110000", "北京市", AreaLevel.CITY)
    districts, subdistricts, communities = [], [], []
    for d_code, d_name in (("110101", "东城区"), ("110111", "房山区")):
        district = make_area(d_code, d_name, AreaLevel.DISTRICT, city)
        districts.append(district)
        for s in (1, 2):
            kind = SubdistrictKind.STREET if d_code == "110101" else SubdistrictKind.TOWN
            s_code = f"{d_code}{(s if kind == SubdistrictKind.STREET else 100 + s):03d}"
            sub = make_area(
                s_code, f"{d_name}第{s}街道", AreaLevel.SUBDISTRICT, district, subdistrict_kind=kind
            )
            subdistricts.append(sub)
            for c in (1, 2):
                rural = d_code == "110111" and c == 2
                community = make_area(
                    f"{s_code}{(200 + c) if rural else c:03d}",
                    f"{sub.name}第{c}{'村' if rural else '社区'}",
                    AreaLevel.COMMUNITY,
                    sub,
                    community_kind=CommunityKind.VILLAGERS if rural else CommunityKind.RESIDENTS,
                )
                communities.append(community)
    return Tree(city, districts, subdistricts, communities)


def make_user(role: str, area: Area | None, username: str | None = None) -> User:
    return User.objects.create_user(
        username=username or f"{role}-{area.code if area else 'none'}-{next(_serial)}",
        password=PASSWORD,
        role=role,
        area=area,
    )


def new_id_number(birth_date: dt.date, gender: str = "female", place: str = "110101") -> str:
    return synthetic_id_number(place, birth_date, next(_serial), gender)


def make_elder(
    community: Area,
    *,
    name: str = "王秀兰",
    birth_date: dt.date = dt.date(1940, 5, 1),
    gender: str = "female",
    actor: Any = None,
    **facts: Any,
) -> Elder:
    """An elder created through ``elders_upsert``; ``facts`` are ElderRecord fields."""
    number = facts.pop("id_number", None) or new_id_number(birth_date, gender)
    record = ElderRecord(
        id_number=number,
        name=name,
        gender=gender,
        birth_date=birth_date,
        community_code=community.code,
        **facts,
    )
    elders_upsert(actor=actor, records=[record], source="test", source_date=dt.date(2026, 1, 5))
    return Elder.objects.get(id_number_masked=number[:6] + "*" * 8 + number[-4:])


def lonely_widow(community: Area, **kw: Any) -> Elder:
    """An 86-year-old widow with no children: living alone, advanced age, census focus."""
    return make_elder(
        community,
        name=kw.pop("name", "李桂英"),
        birth_date=dt.date(1940, 3, 2),
        spouse_status="deceased",
        children=[],
        household=[],
        relatives_same_subdistrict=False,
        daily_companionship=False,
        disability_status="none",
        **kw,
    )


def parent_with_son(community: Area, **kw: Any) -> Elder:
    return make_elder(
        community,
        name=kw.pop("name", "张建国"),
        birth_date=dt.date(1950, 8, 8),
        gender="male",
        spouse_status="alive",
        spouse_lives_with=True,
        children=[
            ChildRecord(
                name="张伟",
                alive=True,
                birth_year=1975,
                lives_with=False,
                same_subdistrict=True,
                can_support=True,
            )
        ],
        first_contact=FirstContactRecord(name="张伟", relation="child", phone="13800138000"),
        **kw,
    )


def assign(elder: Elder, visitor: User, *, days_ago: int = 0) -> VisitorAssignment:
    """``visitor`` visits ``elder``, from ``days_ago`` days ago on."""
    return VisitorAssignment.objects.create(
        elder=elder, visitor=visitor, starts_on=timezone.localdate() - dt.timedelta(days=days_ago)
    )


def assigned_visitor(community: Area, *, days_ago: int = 0) -> tuple[User, Elder]:
    """A visitor of ``community`` and a lonely widow there assigned to her."""
    visitor = make_user(Role.VISITOR, community)
    elder = lonely_widow(community)
    assign(elder, visitor, days_ago=days_ago)
    return visitor, elder


def visit_input(**fields: Any) -> VisitInput:
    """An in-home visit that met the elder, from 30 to 10 minutes ago, with ``fields`` changed."""
    now = timezone.now()
    values: dict[str, Any] = {
        "client_uuid": uuid.uuid4(),
        "mode": "in_home",
        "started_at": now - dt.timedelta(minutes=30),
        "ended_at": now - dt.timedelta(minutes=10),
        "person_met": "elder",
        "outcome": "met",
    }
    values.update(fields)
    return VisitInput(**values)


def record_visit(
    actor: User | None, elder: Elder, *, source: str = VisitSource.APP, **fields: Any
) -> Visit:
    """``visit_input(**fields)`` recorded through the visit service (``actor`` None: the
    system, as an import)."""
    visit, _created = visit_record(
        actor=actor, elder=elder, data=visit_input(**fields), source=source
    )
    return visit


def api_client(user: User, language: str = "") -> APIClient:
    """An API client signed in as ``user``, asking for ``language`` when given."""
    client = APIClient()
    client.force_login(user)
    if language:
        client.credentials(HTTP_ACCEPT_LANGUAGE=language)
    return client


ROLES_AT_LEVEL = {
    Role.CITY_ADMIN: "city",
    Role.DISTRICT_SUPERVISOR: "district",
    Role.SUBDISTRICT_STAFF: "subdistrict",
    Role.COMMUNITY_WORKER: "community",
    Role.VISITOR: "community",
    Role.DATA_PARTNER: "city",
    Role.AUDITOR: "city",
}
