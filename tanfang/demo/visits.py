"""The demo city's service teams, visit history, care actions and visit statuses.

Each subdistrict gets a community elder-care station and each district a social-work
organisation and a services directory; the demo visitors get profiles. Visits of the past
weeks are generated for most elders (so that rates, trends and worklists have something true
to show) and written in bulk with the same derived fields the visit service computes. The
``visitor`` account's elders are left unvisited this week, so her worklist has work.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from typing import Any

from django.db import transaction
from django.utils import timezone

from tanfang.accounts.models import Role, User
from tanfang.areas.models import Area, AreaLevel
from tanfang.care.models import ServiceEntry
from tanfang.registry.models import Elder, LifeStatus, VisitorAssignment
from tanfang.visits.models import (
    OrganisedBy,
    ProviderKind,
    ServiceProvider,
    Visit,
    VisitorProfile,
)
from tanfang.visits.obligations import Frequency, PastVisit, counts_for_rates, period_of
from tanfang.visits.policy import policy_load
from tanfang.visits.record_form import validate_sections
from tanfang.visits.status_bulk import status_refresh_all

DEMO_NAMESPACE = uuid.UUID("4f0c7a52-1f0e-4f6b-9a39-6d2f1c1e7a10")
BATCH = 5000
# Share of due elders visited in a past week; the rest are the misses supervisors look for.
VISITED_SHARE = 0.88


def demo_teams_create() -> None:
    """Stations, social-work organisations, the services directory and visitor profiles."""
    providers = []
    for sub in Area.objects.filter(level=AreaLevel.SUBDISTRICT):
        providers.append(
            ServiceProvider(
                name=f"{sub.name}社区养老服务驿站", kind=ProviderKind.COMMUNITY_STATION, area=sub
            )
        )
    districts = list(Area.objects.filter(level=AreaLevel.DISTRICT))
    for district in districts:
        providers.append(
            ServiceProvider(
                name=f"{district.name}社会工作服务中心",
                kind=ProviderKind.SOCIAL_WORK,
                area=district,
            )
        )
    ServiceProvider.objects.bulk_create(providers)
    entries = []
    for district in districts:
        entries += [
            ServiceEntry(
                name=f"{district.name}康复护理上门服务",
                needs=["rehabilitation_nursing", "daily_life_care"],
                area=district,
                phone="010-00000000",
            ),
            ServiceEntry(
                name=f"{district.name}适老化改造服务",
                needs=["age_friendly_modification", "assistive_devices"],
                area=district,
            ),
            ServiceEntry(
                name=f"{district.name}心理慰藉热线",
                needs=["emotional_comfort"],
                area=district,
            ),
        ]
    ServiceEntry.objects.bulk_create(entries)
    for user in User.objects.filter(role=Role.VISITOR).select_related("area"):
        area = user.area
        if area is None or area.subdistrict_id is None:
            continue
        station = ServiceProvider.objects.filter(
            kind=ProviderKind.COMMUNITY_STATION, area_id=area.subdistrict_id
        ).first()
        VisitorProfile.objects.get_or_create(
            user=user,
            defaults={"provider": station, "volunteer": user.username == "volunteer"},
        )


def demo_visits_create(*, seed: int, today: dt.date, weeks: int = 8) -> int:
    """Visits of the past ``weeks`` weeks and of this week so far; returns how many."""
    rng = random.Random(f"tanfang-demo-visits:{seed}")
    policy = policy_load()
    visitors = {
        elder_id: visitor_id
        for elder_id, visitor_id in VisitorAssignment.objects.values_list("elder_id", "visitor_id")
    }
    spared = set(
        VisitorAssignment.objects.filter(visitor__username="visitor").values_list(
            "elder_id", flat=True
        )
    )
    names = dict(User.objects.filter(role=Role.VISITOR).values_list("id", "username"))
    this_week = period_of(today, Frequency.WEEK)[0]
    created = 0
    batch: list[Visit] = []
    elders = Elder.objects.filter(life_status=LifeStatus.ACTIVE).exclude(
        willing_to_be_visited=False
    )
    for elder_id, community_id in elders.order_by("id").values_list("id", "community_id"):
        for week in range(weeks, -1, -1):
            start = this_week - dt.timedelta(weeks=week)
            if week == 0 and elder_id in spared:
                continue
            share = VISITED_SHARE if week else 0.45
            if rng.random() >= share:
                continue
            day = start + dt.timedelta(
                days=rng.randrange(0, 7 if week else max(1, today.weekday() + 1))
            )
            if day > today:
                continue
            batch.append(_visit(rng, elder_id, community_id, day, visitors, names, policy))
        if len(batch) >= BATCH:
            created += _write(batch)
            batch = []
    created += _write(batch)
    return created


def _visit(
    rng: random.Random,
    elder_id: int,
    community_id: int,
    day: dt.date,
    visitors: dict[int, int],
    names: dict[int, str],
    policy: object,
) -> Visit:
    at = timezone.make_aware(
        dt.datetime.combine(day, dt.time(9 + rng.randrange(0, 8), rng.randrange(0, 60)))
    )
    mode = rng.choices(["in_home", "phone", "online"], weights=[5, 4, 1])[0]
    outcome = rng.choices(["met", "not_home"], weights=[19, 1])[0]
    visitor_id = visitors.get(elder_id)
    station = rng.random() < 0.05
    counts = counts_for_rates(
        PastVisit(at=at, mode=mode, outcome=outcome, by_station=station),
        policy,  # type: ignore[arg-type]
    )
    return Visit(
        client_uuid=uuid.uuid5(DEMO_NAMESPACE, f"{elder_id}:{day.isoformat()}"),
        elder_id=elder_id,
        community_id=community_id,
        visitor_id=visitor_id,
        visitor_name=names.get(visitor_id, "社区工作者") if visitor_id else "社区工作者",
        organised_by=OrganisedBy.STATION if station else OrganisedBy.GOVERNMENT,
        mode=mode,
        started_at=at,
        ended_at=at + dt.timedelta(minutes=10 + rng.randrange(0, 30)),
        person_met="elder" if outcome == "met" else "nobody",
        outcome=outcome,
        sections=_sections(),
        risk_level="general",
        counts=counts,
        local_date=day,
        week_key=period_of(day, Frequency.WEEK)[2],
        month_key=period_of(day, Frequency.MONTH)[2],
        source="app",
        locked_after=at + dt.timedelta(hours=24),
    )


def _sections() -> dict[str, Any]:
    """Nothing recorded: the canonical empty record."""
    return validate_sections({})[0]


def _write(batch: list[Visit]) -> int:
    if not batch:
        return 0
    with transaction.atomic():
        Visit.objects.bulk_create(batch, ignore_conflicts=True)
    return len(batch)


def demo_statuses_refresh(*, today: dt.date) -> int:
    """Every elder's visit status, by the nightly recomputation; returns how many elders."""
    return status_refresh_all(on=today).elders
