"""Reads of visits that users see: worklists, an elder's visits, supervisors' overviews.

Every selector takes the acting user and starts from ``elders_visible_to`` (the one place of
scope), so a visitor sees her own elders, a community worker her community, and so on up.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from tanfang.accounts.models import Role, User
from tanfang.accounts.scope import areas_visible_to, elders_visible_to
from tanfang.areas.models import Area, AreaLevel
from tanfang.care.models import CareAction
from tanfang.registry.models import Elder, VisitorAssignment
from tanfang.visits.models import ElderVisitStatus, Visit
from tanfang.visits.obligations import Frequency, period_of


@dataclass(frozen=True)
class WorklistRow:
    elder_id: int
    name: str
    community: str
    categories: list[str]
    advanced_age: bool
    risk_level: str
    next_due_on: dt.date | None
    overdue_since: dt.date | None
    overdue_days: int
    urgency: int
    obligations: list[dict[str, Any]]
    open_actions: int
    last_visit_at: dt.datetime | None
    scheduled: bool


@dataclass
class Worklist:
    on: dt.date
    overdue: list[WorklistRow] = field(default_factory=list)
    today: list[WorklistRow] = field(default_factory=list)
    week: list[WorklistRow] = field(default_factory=list)
    later: list[WorklistRow] = field(default_factory=list)

    @property
    def rows(self) -> list[WorklistRow]:
        return [*self.overdue, *self.today, *self.week, *self.later]


def worklist(*, user: Any, on: dt.date | None = None, limit: int = 200) -> Worklist:
    """Whom the user must visit or call: overdue, due today, due this week, most urgent first.

    Visitors get their elders (and those of a visitor they stand in for); community workers
    and the levels above get the due elders of their area. Elders not due (deceased, moved,
    declined...) never appear; elders visited by their contracted station are listed only
    when overdue, since no government-purchased visit is scheduled for them.
    """
    on = on or timezone.localdate()
    week_end = period_of(on, Frequency.WEEK)[1]
    elders = elders_visible_to(user, Elder.objects.all())
    statuses = (
        ElderVisitStatus.objects.filter(elder__in=elders.values("pk"), excluded="")
        .filter(Q(next_due_on__lte=week_end) | Q(overdue_since__isnull=False))
        .filter(Q(scheduled=True) | Q(overdue_since__isnull=False))
        .select_related("elder", "community")
        .order_by("-urgency", "next_due_on", "elder_id")[:limit]
    )
    rows = list(statuses)
    actions = dict(
        CareAction.objects.filter(elder_id__in=[s.elder_id for s in rows], closed=False)
        .values_list("elder_id")
        .annotate(n=Count("id"))
        .values_list("elder_id", "n")
    )
    result = Worklist(on=on)
    for status in rows:
        row = _row(status, on, actions.get(status.elder_id, 0))
        if status.overdue_since is not None:
            result.overdue.append(row)
        elif status.next_due_on is not None and status.next_due_on <= on:
            result.today.append(row)
        elif status.next_due_on is not None and status.next_due_on <= week_end:
            result.week.append(row)
        else:
            result.later.append(row)
    return result


def _row(status: ElderVisitStatus, on: dt.date, open_actions: int) -> WorklistRow:
    elder = status.elder
    return WorklistRow(
        elder_id=elder.pk,
        name=elder.name,
        community=status.community.name,
        categories=list(elder.categories or ()),
        advanced_age=elder.advanced_age,
        risk_level=status.risk_level,
        next_due_on=status.next_due_on,
        overdue_since=status.overdue_since,
        overdue_days=(on - status.overdue_since).days if status.overdue_since else 0,
        urgency=status.urgency,
        obligations=list(status.open_obligations or ()),
        open_actions=open_actions,
        last_visit_at=status.last_visit_at,
        scheduled=status.scheduled,
    )


def elder_visits(*, user: Any, elder: Elder, limit: int = 50) -> QuerySet[Visit]:
    """An elder's visits, newest first, if the elder is visible to the user."""
    if not elders_visible_to(user, Elder.objects.filter(pk=elder.pk)).exists():
        return Visit.objects.none()
    return (
        Visit.objects.filter(elder=elder)
        .select_related("visitor", "provider")
        .order_by("-started_at", "-id")[:limit]
    )


def visit_visible(*, user: Any, visit_id: int) -> Visit | None:
    """One visit if the user may see its elder."""
    visit = (
        Visit.objects.select_related("elder", "elder__community", "visitor")
        .filter(pk=visit_id)
        .first()
    )
    if visit is None:
        return None
    if not elders_visible_to(user, Elder.objects.filter(pk=visit.elder_id)).exists():
        return None
    return visit


def elder_status(*, user: Any, elder: Elder) -> ElderVisitStatus | None:
    if not elders_visible_to(user, Elder.objects.filter(pk=elder.pk)).exists():
        return None
    return ElderVisitStatus.objects.filter(elder=elder).first()


@dataclass(frozen=True)
class AreaOverdue:
    area: Area
    due: int
    overdue: int


def overdue_by_area(*, user: Any, area: Area, on: dt.date | None = None) -> list[AreaOverdue]:
    """For each child of ``area`` (visible to the user): elders due and elders overdue."""
    if not areas_visible_to(user, Area.objects.filter(pk=area.pk)).exists():
        return []
    children = list(Area.objects.filter(parent=area).exclude(level=AreaLevel.GRID).order_by("code"))
    level = children[0].level if children else area.level
    column = f"community__{level}_id" if level != "community" else "community_id"
    base = ElderVisitStatus.objects.filter(excluded="").filter(
        **(
            {f"community__{area.level}_id": area.pk}
            if area.level != "community"
            else {"community_id": area.pk}
        )
    )
    counts = {
        row[column]: row
        for row in base.values(column).annotate(
            due=Count("elder_id"), overdue=Count("elder_id", filter=Q(overdue_since__isnull=False))
        )
    }
    return [
        AreaOverdue(
            area=child,
            due=counts.get(child.pk, {}).get("due", 0),
            overdue=counts.get(child.pk, {}).get("overdue", 0),
        )
        for child in children
    ]


_NEVER = dt.datetime.min.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class VisitorLoad:
    visitor: User
    elders: int
    visited_this_week: int
    overdue: int

    @property
    def completion(self) -> float | None:
        return None if not self.elders else self.visited_this_week / self.elders


def visitor_workload(*, user: Any, area: Area, on: dt.date | None = None) -> list[VisitorLoad]:
    """Each visitor working under ``area``: how many elders, visited this week, overdue."""
    if not areas_visible_to(user, Area.objects.filter(pk=area.pk)).exists():
        return []
    if user.role == Role.VISITOR:
        return []
    on = on or timezone.localdate()
    week_start = period_of(on, Frequency.WEEK)[0]
    visitors = User.objects.filter(role=Role.VISITOR, is_active=True).filter(
        Q(area=area) | Q(**{f"area__{area.level}_id": area.pk})
        if area.level != "community"
        else Q(area=area)
    )
    current = Q(starts_on__lte=on) & (Q(ends_on__isnull=True) | Q(ends_on__gte=on))
    assigned = VisitorAssignment.objects.filter(current, visitor__in=visitors)
    loads: dict[int, list[int]] = {}
    for visitor_id, elder_id in assigned.values_list("visitor_id", "elder_id"):
        loads.setdefault(visitor_id, []).append(elder_id)
    all_ids = [e for ids in loads.values() for e in ids]
    statuses = dict(
        (s_id, (counted, overdue))
        for s_id, counted, overdue in ElderVisitStatus.objects.filter(
            elder_id__in=all_ids, excluded=""
        ).values_list("elder_id", "last_counted_at", "overdue_since")
    )
    start = timezone.make_aware(dt.datetime.combine(week_start, dt.time()))
    result = []
    for visitor in visitors.order_by("username"):
        ids = [e for e in loads.get(visitor.pk, []) if e in statuses]
        visited = sum(1 for e in ids if (statuses[e][0] or _NEVER) >= start)
        overdue = sum(1 for e in ids if statuses[e][1] is not None)
        result.append(
            VisitorLoad(
                visitor=visitor, elders=len(ids), visited_this_week=visited, overdue=overdue
            )
        )
    return result


def care_actions_for(*, user: Any, include_closed: bool = False) -> QuerySet[CareAction]:
    """Care actions the user works on: her own and those escalated to her; a community worker
    (or above) also sees every action of the elders in her area."""
    visible = elders_visible_to(user, Elder.objects.all())
    actions = CareAction.objects.filter(elder__in=visible.values("pk"))
    if user.role == Role.VISITOR:
        actions = actions.filter(Q(owner=user) | Q(escalated_to=user))
    if not include_closed:
        actions = actions.filter(closed=False)
    return actions.select_related("elder", "owner", "escalated_to", "service").order_by(
        "closed", "due_on", "id"
    )
