"""Supervision counts of referrals per child area: did the subdistricts act in time?
(docs/supervision.md, "Emergencies, referrals and family notifications").

Two kinds of number, read together:

- the **period's flow**: referrals received (created) in the period, escalated in it
  (``escalated_at``: open past a step's time limit, told to the district), done or declined
  in it (``closed_at``), and the median days from receiving to done of those done in it;
- the **backlog now**: referrals still open, whenever received, and the overdue among them
  (open and past their current step's ``due_at``) — an old referral nobody acted on is what
  a supervisor must see, so these are not limited to the period.

All counted in the database: one query for the counts, one for the done referrals' days.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, Q

from tanfang.areas.models import Area
from tanfang.notifications.stats import area_column, child_areas, may_supervise, row_level
from tanfang.referrals.models import Referral, ReferralState

_DIRECT = ("district", "subdistrict", "community")


@dataclass
class ReferralRow:
    """One area's referrals: the period's flow and the backlog now."""

    area_id: int
    code: str
    name: str
    received: int = 0
    open: int = 0
    overdue: int = 0
    escalated: int = 0
    done: int = 0
    declined: int = 0
    days_to_done: list[float] = field(default_factory=list, repr=False)

    @property
    def median_days(self) -> float | None:
        return round(statistics.median(self.days_to_done), 1) if self.days_to_done else None


def referral_stats(
    *,
    user: Any,
    area: Area,
    since: dt.datetime,
    until: dt.datetime,
    now: dt.datetime | None = None,
    children: Iterable[Area] | None = None,
) -> list[ReferralRow]:
    """Referrals per child area of ``area`` (empty when the user does not supervise it): the
    flow of [since, until) and the backlog at ``now`` (default ``until``). Two queries, plus
    one for the child areas unless passed."""
    if not may_supervise(user, area):
        return []
    now = now or until
    rows = {a.pk: ReferralRow(a.pk, a.code, a.name) for a in child_areas(area, children)}
    group = area_column(row_level(area), _DIRECT)
    in_area = Referral.objects.filter(**{area_column(area.level, _DIRECT): area.pk})
    received = Q(created_at__gte=since, created_at__lt=until)
    closed_in = Q(closed=True, closed_at__gte=since, closed_at__lt=until)
    counts = (
        in_area.filter(
            received
            | Q(closed=False)
            | Q(escalated_at__gte=since, escalated_at__lt=until)
            | closed_in
        )
        .values(group)
        .annotate(
            received=Count("id", filter=received),
            open=Count("id", filter=Q(closed=False)),
            overdue=Count("id", filter=Q(closed=False, due_at__lt=now)),
            escalated=Count("id", filter=Q(escalated_at__gte=since, escalated_at__lt=until)),
            done=Count("id", filter=closed_in & Q(state=ReferralState.DONE)),
            declined=Count("id", filter=closed_in & Q(state=ReferralState.DECLINED)),
        )
        .order_by()
        .values_list(group, "received", "open", "overdue", "escalated", "done", "declined")
    )
    for area_id, *numbers in counts:
        row = rows.get(area_id)
        if row is not None:
            row.received, row.open, row.overdue, row.escalated, row.done, row.declined = numbers
    done = (
        in_area.filter(closed_in, state=ReferralState.DONE)
        .order_by()
        .values_list(group, "created_at", "closed_at")
    )
    for area_id, created, closed in done:
        row = rows.get(area_id)
        if row is not None:
            row.days_to_done.append((closed - created).total_seconds() / 86400)
    return list(rows.values())
