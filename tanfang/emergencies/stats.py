"""Supervision counts of emergencies per child area: were they handled in time?
(突发事件处置不及时; docs/supervision.md, "Emergencies, referrals and family notifications").

For an area and a period, the cases opened in it per child area: how many, how many are not
closed yet, how many were confirmed late, the median and 90th percentile of the minutes from
opening to a person's confirmation, and how the closed ones ended.

**Late.** A case is late when nobody confirmed it within the time it may wait at the visitor
and at the community (``EmergencyRules.visitor_minutes + community_minutes``: it had to climb
to the subdistrict), or when it is still unconfirmed and that time has passed. The rules are
those the escalation uses (``services.emergency_rules``): the community's, else the
subdistrict's, else the district's, else the city's default row, else the built-in defaults.

Emergencies are rare (a few a day in a district), so the cases of the period are read as
one list of small tuples and counted here; one more query reads the rules that apply.

The list behind a "confirmed late" count (``/emergencies/?area=…&late=1``) filters with
``late_cases``: the same ``late_after`` and the same rules, written as one queryset filter,
so that the count and the list cannot disagree.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import operator
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import F, Q, QuerySet
from django.utils import timezone

from tanfang.areas.models import Area
from tanfang.emergencies.models import CaseOutcome, CaseState, EmergencyCase, EmergencyRules
from tanfang.notifications.stats import area_column, child_areas, may_supervise, row_level

_DIRECT = ("district", "subdistrict", "community")


@dataclass
class EmergencyRow:
    """One area's emergencies over a period."""

    area_id: int
    code: str
    name: str
    opened: int = 0
    open: int = 0
    late: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    minutes: list[float] = field(default_factory=list, repr=False)

    @property
    def confirmed(self) -> int:
        return len(self.minutes)

    @property
    def median_minutes(self) -> float | None:
        return round(statistics.median(self.minutes), 1) if self.minutes else None

    @property
    def p90_minutes(self) -> float | None:
        return percentile(self.minutes, 90)


def percentile(values: list[float], p: int) -> float | None:
    """The ``p``-th percentile by nearest rank (a value that occurred: the smallest with at
    least ``p`` % of the values at or below it), one decimal; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return round(ordered[rank - 1], 1)


def late_after(rules: EmergencyRules) -> dt.timedelta:
    """How long a case may wait unconfirmed before it counts as handled late."""
    return dt.timedelta(minutes=rules.visitor_minutes + rules.community_minutes)


def _rules_by_area(where: Q) -> tuple[dict[int, EmergencyRules], EmergencyRules]:
    """The rules rows of the areas ``where`` selects, by area, and the city's default (the row
    without an area, else the built-in defaults). One query."""
    rows = list(EmergencyRules.objects.filter(where | Q(area=None)))
    default = next((r for r in rows if r.area_id is None), None) or EmergencyRules()
    return {r.area_id: r for r in rows if r.area_id is not None}, default


# The columns of a case holding its areas, the most specific first: the first with its own
# rules decides (``services.emergency_rules``).
_RULES_ORDER = ("community_id", "subdistrict_id", "district_id")


def rules_for(
    by_area: dict[int, EmergencyRules], default: EmergencyRules, *area_ids: int
) -> EmergencyRules:
    """The rules of the first of ``area_ids`` (community, subdistrict, district) that has its
    own, else ``default``."""
    for area_id in area_ids:
        if area_id in by_area:
            return by_area[area_id]
    return default


def _late_q(limit: dt.timedelta, now: dt.datetime) -> Q:
    """``(confirmed_at or now) - opened_at > limit`` as a filter."""
    return Q(confirmed_at__gt=F("opened_at") + limit) | Q(
        confirmed_at__isnull=True, opened_at__lt=now - limit
    )


def late_filter(by_area: dict[int, EmergencyRules], default: EmergencyRules, now: dt.datetime) -> Q:
    """The cases handled late at ``now`` as one filter: per column of ``_RULES_ORDER``, the
    cases whose area there has its own rules (and no more specific area had), grouped by
    their ``late_after``; then the others by the default's."""
    by_limit: dict[dt.timedelta, list[int]] = {}
    for area_id, rules in by_area.items():
        by_limit.setdefault(late_after(rules), []).append(area_id)
    own = sorted(by_area)
    found: list[Q] = []
    decided = Q()  # the cases a more specific area's own rules already decide
    for column in _RULES_ORDER:
        for limit, ids in by_limit.items():
            found.append(~decided & Q(**{f"{column}__in": sorted(ids)}) & _late_q(limit, now))
        if own:
            decided |= Q(**{f"{column}__in": own})
    found.append(~decided & _late_q(late_after(default), now))
    return functools.reduce(operator.or_, found)


def late_cases(
    cases: QuerySet[EmergencyCase], *, now: dt.datetime | None = None
) -> QuerySet[EmergencyCase]:
    """The cases of ``cases`` handled late at ``now`` (default: the current time), by the
    definition ``emergency_stats`` counts with: confirmed later than ``late_after(rules)``
    after opening, or unconfirmed past it. One query for the rules of the cases' areas."""
    areas = Q()
    for column in _RULES_ORDER:
        areas |= Q(area_id__in=cases.order_by().values(column))
    by_area, default = _rules_by_area(areas)
    return cases.filter(late_filter(by_area, default, now or timezone.now()))


def emergency_stats(
    *,
    user: Any,
    area: Area,
    since: dt.datetime,
    until: dt.datetime,
    now: dt.datetime | None = None,
    children: Iterable[Area] | None = None,
) -> list[EmergencyRow]:
    """Cases opened in [since, until) per child area of ``area`` (empty when the user does
    not supervise ``area``); ``now`` (default ``until``) decides whether an unconfirmed case
    has waited too long. Two queries, plus one for the child areas unless passed."""
    if not may_supervise(user, area):
        return []
    now = now or until
    rows = {a.pk: EmergencyRow(a.pk, a.code, a.name) for a in child_areas(area, children)}
    group = area_column(row_level(area), _DIRECT)
    cases = list(
        EmergencyCase.objects.filter(
            **{area_column(area.level, _DIRECT): area.pk},
            opened_at__gte=since,
            opened_at__lt=until,
        )
        .order_by()
        .values_list(
            group,
            "community_id",
            "subdistrict_id",
            "district_id",
            "state",
            "outcome",
            "opened_at",
            "confirmed_at",
        )
    )
    ids = {a for case in cases for a in case[1:4]}
    by_area, default = _rules_by_area(Q(area_id__in=ids)) if cases else ({}, EmergencyRules())
    for area_id, community, subdistrict, district, state, outcome, opened, confirmed in cases:
        row = rows.get(area_id)
        if row is None:
            continue
        limit = late_after(rules_for(by_area, default, community, subdistrict, district))
        row.opened += 1
        if state != CaseState.CLOSED:
            row.open += 1
        elif outcome:
            row.outcomes[outcome] = row.outcomes.get(outcome, 0) + 1
        if confirmed is not None:
            row.minutes.append((confirmed - opened).total_seconds() / 60)
        if (confirmed or now) - opened > limit:
            row.late += 1
    for row in rows.values():
        row.outcomes = {o: row.outcomes[o] for o in CaseOutcome.values if o in row.outcomes}
    return list(rows.values())
