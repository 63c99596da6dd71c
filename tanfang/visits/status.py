"""Recompute and store each elder's visit status (what is due by when) with the pure engine.

Steps, for a batch of elders:
1. read the facts the engine needs as plain values (one query for elders, one for their
   station contracts, one for recent visits, one for open care actions);
2. run ``due_status`` and ``obligations_for`` for each elder, with the policy loaded once;
3. write all statuses with one bulk upsert.

Called for one elder after each visit, care action or fact change, for an area after a surge
is declared, and for everyone by ``tanfang obligations`` (the nightly job).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Max, OuterRef, Q, Subquery
from django.utils import timezone

from tanfang.areas.models import Area
from tanfang.care.models import CareAction
from tanfang.registry.models import CareContract, Elder
from tanfang.visits.models import ElderVisitStatus, OrganisedBy, Visit
from tanfang.visits.obligations import (
    Calendar,
    DueStatus,
    ElderFacts,
    Obligation,
    PastVisit,
    VisitPolicy,
    due_status,
    obligations_for,
)
from tanfang.visits.obligations.types import MODE_RANK
from tanfang.visits.policy import lookback_days, policy_load

BATCH = 2000
# Holiday windows are computed once per year and process (the calendar is safe to share);
# a new Calendar per call recomputed them on every visit recorded (~80 ms).
# One calendar per process: it computes each year's holiday windows once and keeps them.
CALENDAR = Calendar()

_ELDER_FIELDS = (
    "id",
    "community_id",
    "subdistrict_id",
    "district_id",
    "city_id",
    "categories",
    "life_status",
    "willing_to_be_visited",
    "willingness_recorded_on",
    "advanced_age",
)

_RISK_WEIGHT = {"high": 300, "priority": 150}
_STATUS_FIELDS = [
    "community",
    "excluded",
    "frequency",
    "period_key",
    "scheduled",
    "next_due_on",
    "overdue_since",
    "open_obligations",
    "last_visit_at",
    "last_counted_at",
    "last_contact_at",
    "last_in_home_at",
    "risk_level",
    "urgency",
    "computed_on",
]


@dataclass(frozen=True, slots=True)
class _Context:
    policy: VisitPolicy
    calendar: Calendar
    on: dt.date
    since: dt.date
    codes: dict[int, str]


def urgency_score(
    *, status: DueStatus, on: dt.date, risk_level: str, open_actions: int, advanced_age: bool
) -> int:
    """How far up a worklist an elder goes: overdue days first, then risk, open care actions
    and advanced age (docs/visits.md, "Worklists")."""
    score = 0
    if status.overdue_since is not None:
        score += 1000 + 20 * min((on - status.overdue_since).days, 60)
    elif status.next_due_on is not None and status.next_due_on <= on:
        score += 500
    score += _RISK_WEIGHT.get(risk_level, 0)
    score += 50 * min(open_actions, 6)
    score += 40 if advanced_age else 0
    return score


def status_refresh(*, elder_ids: Sequence[int] | None = None, on: dt.date | None = None) -> int:
    """Recompute the visit status of the given elders (all elders when None); returns how many."""
    on = on or timezone.localdate()
    policy = policy_load()
    context = _Context(
        policy=policy,
        calendar=CALENDAR,
        on=on,
        since=on - dt.timedelta(days=lookback_days(policy, on)),
        codes=_AREA_CODES,
    )
    done = 0
    for chunk in _chunks(elder_ids):
        rows = list(Elder.objects.filter(id__in=chunk).values(*_ELDER_FIELDS))
        if rows:
            _codes_load(context.codes, rows)
            ElderVisitStatus.objects.bulk_create(
                _statuses(rows, context),
                update_conflicts=True,
                unique_fields=["elder"],
                update_fields=_STATUS_FIELDS,
            )
        done += len(rows)
    return done


# Area id → code, filled as elders of new areas come by. An area's code never changes once
# created (the tree import finds areas by their code), so the map lives with the process.
_AREA_CODES: dict[int, str] = {}


def area_code_of(area_id: int) -> str:
    """The code of an area, from the process-wide map (one query the first time)."""
    code = _AREA_CODES.get(area_id)
    if code is None:
        code = _AREA_CODES[area_id] = Area.objects.values_list("code", flat=True).get(pk=area_id)
    return code


def _codes_load(codes: dict[int, str], rows: list[dict[str, Any]]) -> None:
    """Add the codes of the areas of ``rows`` not yet known (a handful per batch)."""
    wanted = {
        row[column]
        for row in rows
        for column in ("city_id", "district_id", "subdistrict_id", "community_id")
    } - codes.keys()
    if wanted:
        codes.update(Area.objects.filter(id__in=wanted).values_list("id", "code"))


def _chunks(elder_ids: Sequence[int] | None) -> Iterator[list[int]]:
    if elder_ids is not None:
        ids = sorted(set(elder_ids))
        for start in range(0, len(ids), BATCH):
            yield ids[start : start + BATCH]
        return
    last = 0
    while True:
        ids = list(
            Elder.objects.filter(id__gt=last).order_by("id").values_list("id", flat=True)[:BATCH]
        )
        if not ids:
            return
        yield ids
        last = ids[-1]


def _statuses(rows: list[dict[str, Any]], ctx: _Context) -> list[ElderVisitStatus]:
    ids = [row["id"] for row in rows]
    contracts = _contracts(ids, ctx.on)
    visits = _visits(ids, ctx.since)
    actions = dict(
        CareAction.objects.filter(elder_id__in=ids, closed=False)
        .values_list("elder_id")
        .annotate(n=Count("id"))
        .values_list("elder_id", "n")
    )
    history = _history(ids)
    out = []
    for row in rows:
        elder_id = row["id"]
        seen = history.get(elder_id, _NO_HISTORY)
        risk = seen[4] or ""
        facts = ElderFacts(
            elder_id=elder_id,
            area_codes=tuple(
                ctx.codes[row[column]]
                for column in ("city_id", "district_id", "subdistrict_id", "community_id")
            ),
            categories=frozenset(row["categories"] or ()),
            risk_level=risk,
            life_status=row["life_status"],
            willing=row["willing_to_be_visited"],
            willingness_recorded_on=row["willingness_recorded_on"],
            station_contracts=contracts.get(elder_id, ()),
            advanced_age=row["advanced_age"],
        )
        past = [*visits.get(elder_id, []), *summary_visits(seen[1], seen[2], seen[3])]
        status = due_status(
            elder=facts, policy=ctx.policy, calendar=ctx.calendar, visits=past, on=ctx.on
        )
        open_now = obligations_for(
            elder=facts, policy=ctx.policy, calendar=ctx.calendar, visits=past, on=ctx.on
        )
        out.append(
            ElderVisitStatus(
                elder_id=elder_id,
                community_id=row["community_id"],
                excluded=status.excluded,
                frequency=str(status.frequency or ""),
                period_key=status.period_key or "",
                scheduled=not status.station,
                next_due_on=status.next_due_on,
                overdue_since=status.overdue_since,
                open_obligations=[obligation_json(o) for o in open_now if not o.satisfied],
                last_visit_at=seen[0],
                last_counted_at=seen[1],
                last_contact_at=seen[2],
                last_in_home_at=seen[3],
                risk_level=risk,
                urgency=urgency_score(
                    status=status,
                    on=ctx.on,
                    risk_level=risk,
                    open_actions=actions.get(elder_id, 0),
                    advanced_age=row["advanced_age"],
                ),
                computed_on=ctx.on,
            )
        )
    return out


_NO_HISTORY: tuple[Any, ...] = (None, None, None, None, None)
_CONTACT_MODES = [mode for mode, rank in MODE_RANK.items() if rank >= 1]
_IN_HOME_MODES = [mode for mode, rank in MODE_RANK.items() if rank >= 2]


def _history(ids: list[int]) -> dict[int, tuple[Any, ...]]:
    """Per elder, over all her visits: the latest visit, the latest counting one, the latest
    counting one by phone or better, the latest counting one in person, and the risk level of
    the latest visit (the elder's current risk level)."""
    counting = Q(visits__counts=True)
    latest_risk = (
        Visit.objects.filter(elder_id=OuterRef("pk"))
        .order_by("-started_at", "-id")
        .values("risk_level")[:1]
    )
    rows = (
        Elder.objects.filter(id__in=ids, visits__isnull=False)
        .annotate(
            last=Max("visits__started_at"),
            counted=Max("visits__started_at", filter=counting),
            contact=Max("visits__started_at", filter=counting & Q(visits__mode__in=_CONTACT_MODES)),
            home=Max("visits__started_at", filter=counting & Q(visits__mode__in=_IN_HOME_MODES)),
            risk=Subquery(latest_risk),
        )
        .values_list("id", "last", "counted", "contact", "home", "risk")
    )
    return {row[0]: row[1:] for row in rows}


def summary_visits(
    counted: dt.datetime | None, contact: dt.datetime | None, home: dt.datetime | None
) -> list[PastVisit]:
    """Stand-ins for all history before the recent window: the latest counting visit of each
    mode rank. For "is there a qualifying visit in this period" and "since when overdue" under
    one rule, the latest qualifying visit is all that matters (docs/visit-obligations.md)."""
    out = []
    for at, mode in ((home, "in_home"), (contact, "phone"), (counted, "remote_monitoring")):
        if at is not None:
            out.append(PastVisit(at=at, mode=mode, outcome="met", by_station=False))
    return out


def obligation_json(o: Obligation) -> dict[str, Any]:
    """An open obligation as stored in ``ElderVisitStatus.open_obligations``."""
    return {
        "kind": o.kind,
        "code": o.code,
        "due_by": o.due_by.isoformat(),
        "mode": str(o.mode),
        "frequency": str(o.frequency),
        "scheduled": o.scheduled,
    }


def _contracts(
    ids: Iterable[int], on: dt.date
) -> dict[int, tuple[tuple[dt.date, dt.date | None], ...]]:
    periods: dict[int, list[tuple[dt.date, dt.date | None]]] = defaultdict(list)
    rows = CareContract.objects.filter(elder_id__in=ids).filter(
        Q(ends_on__isnull=True) | Q(ends_on__gte=on - dt.timedelta(days=400))
    )
    for elder_id, starts, ends in rows.values_list("elder_id", "starts_on", "ends_on"):
        periods[elder_id].append((starts, ends))
    return {k: tuple(v) for k, v in periods.items()}


def _visits(ids: Iterable[int], since: dt.date) -> dict[int, list[PastVisit]]:
    found: dict[int, list[PastVisit]] = defaultdict(list)
    rows = Visit.objects.filter(elder_id__in=ids, local_date__gte=since).values_list(
        "elder_id", "started_at", "mode", "outcome", "organised_by"
    )
    for elder_id, at, mode, outcome, organised_by in rows:
        found[elder_id].append(
            PastVisit(
                at=at, mode=mode, outcome=outcome, by_station=organised_by == OrganisedBy.STATION
            )
        )
    return found
