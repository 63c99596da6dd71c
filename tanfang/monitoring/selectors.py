"""Reads of monitoring alerts that users see: lists, worklists, an elder's alerts, outcomes.

Scope is decided here, in one place (``alerts_visible_to``), the way ``accounts/scope.py``
decides it for elders, and is denied by default:

- a visitor sees the alerts of the elders she visits (and of a visitor she stands in for)
  and every alert assigned to her;
- a community worker, subdistrict staff, a district supervisor and the city administrator
  see the alerts of the elders of their area, and alerts assigned to them;
- a data partner's user sees only the technical alerts (meters that stopped reporting) of
  the partner whose contact she is, and the API shows her no elder's personal data;
- every other role, and anyone without an area, sees nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, Q, QuerySet

from tanfang.accounts.models import Role
from tanfang.accounts.scope import elders_visible_to
from tanfang.areas.models import Area, AreaLevel
from tanfang.monitoring.models import Alert, AlertOutcome, AlertState
from tanfang.registry.models import Elder

# Role -> the ancestor column of the alert's community that must equal the user's area.
_AREA_COLUMN = {
    Role.CITY_ADMIN: "community__city_id",
    Role.DISTRICT_SUPERVISOR: "community__district_id",
    Role.SUBDISTRICT_STAFF: "community__subdistrict_id",
    Role.COMMUNITY_WORKER: "community_id",
}
# The alert's state as people speak of it: ``active`` is every alert not closed yet.
STATE_FILTERS = ("open", "acknowledged", "closed", "active")
_CHILD_LEVEL = {
    AreaLevel.CITY: AreaLevel.DISTRICT,
    AreaLevel.DISTRICT: AreaLevel.SUBDISTRICT,
    AreaLevel.SUBDISTRICT: AreaLevel.COMMUNITY,
    AreaLevel.COMMUNITY: AreaLevel.COMMUNITY,
}


def _active(user: Any) -> bool:
    return bool(
        getattr(user, "is_authenticated", False)
        and getattr(user, "is_active", False)
        and getattr(user, "area_id", None) is not None
    )


def _community_column(level: str) -> str:
    """The column of an alert that holds its ancestor at ``level`` (a grid: its community)."""
    if level in (AreaLevel.COMMUNITY, AreaLevel.GRID):
        return "community_id"
    return f"community__{level}_id"


def alerts_visible_to(user: Any, queryset: QuerySet[Alert] | None = None) -> QuerySet[Alert]:
    """The alerts ``user`` may see (the module's docstring lists who sees what)."""
    alerts = Alert.objects.all() if queryset is None else queryset
    if not _active(user):
        return alerts.none()
    role = user.role
    if role == Role.DATA_PARTNER:
        return alerts.filter(technical=True, partner__contact=user)
    column = _AREA_COLUMN.get(role)
    if column is not None:
        return alerts.filter(Q(**{column: user.area_id}) | Q(assigned_to=user))
    if role == Role.VISITOR:
        elders = elders_visible_to(user, Elder.objects.all()).values("pk")
        return alerts.filter(Q(elder__in=elders) | Q(assigned_to=user))
    return alerts.none()


def is_partner_view(user: Any) -> bool:
    """Whether ``user`` reads alerts as a data partner: no elder, no community shown."""
    return getattr(user, "role", "") == Role.DATA_PARTNER


def alert_visible(*, user: Any, pk: int) -> Alert | None:
    """One alert with what its page shows, or None outside the user's scope."""
    return (
        alerts_visible_to(user)
        .select_related(
            "elder__community",
            "community",
            "meter",
            "device",
            "partner",
            "assigned_to",
            "acknowledged_by",
            "closed_by",
        )
        .prefetch_related("events__by", "events__to_user")
        .filter(pk=pk)
        .first()
    )


def alerts_list(
    *,
    user: Any,
    state: str = "",
    kind: str = "",
    area: Area | None = None,
    elder: Elder | None = None,
) -> QuerySet[Alert]:
    """The alerts in scope, filtered: ``state`` one of ``STATE_FILTERS`` (``active``: not
    closed), ``kind`` an alert kind, ``area`` any node of the tree (its subtree)."""
    alerts = alerts_visible_to(user)
    if state == "active":
        alerts = alerts.exclude(state=AlertState.CLOSED)
    elif state:
        alerts = alerts.filter(state=state)
    if kind:
        alerts = alerts.filter(kind=kind)
    if area is not None:
        alerts = alerts.filter(**{_community_column(area.level): area.pk})
    if elder is not None:
        alerts = alerts.filter(elder=elder)
    return alerts.select_related(
        "elder", "community", "meter", "device", "partner", "assigned_to"
    ).order_by("-detected_at", "-id")


def alerts_open_for(*, user: Any, limit: int = 200) -> list[Alert]:
    """The user's alert worklist: alerts not closed yet, assigned to her first, then the
    others of her scope (a community worker sees what her visitors have not acknowledged),
    open before acknowledged, newest first. Technical alerts are left to their partner: a
    visitor or a worker sees one only when it is assigned to her."""
    alerts = alerts_visible_to(user).exclude(state=AlertState.CLOSED)
    if not is_partner_view(user):
        alerts = alerts.filter(Q(technical=False) | Q(assigned_to=user))
    rows = list(
        alerts.select_related(
            "elder", "community", "meter", "device", "partner", "assigned_to"
        ).order_by("-detected_at", "-id")[: limit * 2]
    )
    rank: dict[str, int] = {AlertState.OPEN: 0, AlertState.ACKNOWLEDGED: 1}
    rows.sort(
        key=lambda a: (
            a.assigned_to_id != user.pk,
            rank.get(a.state, 2),
            -a.detected_at.timestamp(),
        )
    )
    return rows[:limit]


def elder_alerts(*, user: Any, elder: Elder, limit: int = 50) -> QuerySet[Alert]:
    """An elder's alerts, newest first, when the elder is visible to the user (a data
    partner sees no elder's alerts this way)."""
    if (
        is_partner_view(user)
        or not elders_visible_to(user, Elder.objects.filter(pk=elder.pk)).exists()
    ):
        return Alert.objects.none()
    return alerts_list(user=user, elder=elder)[:limit]


@dataclass
class OutcomeRow:
    """One area's alerts over a period: raised, still open, and closed by outcome."""

    area_id: int
    code: str
    name: str
    raised: int = 0
    open: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)

    @property
    def closed(self) -> int:
        return sum(self.outcomes.values())


def outcome_counts(
    *, user: Any, since: dt.datetime, until: dt.datetime, technical: bool = False
) -> list[OutcomeRow]:
    """Alerts detected in [since, until) per area one level below the user's (a district
    supervisor gets her subdistricts, subdistrict staff her communities), with how many are
    still open and how the closed ones ended. Person and device alerts by default;
    ``technical`` counts meters that stopped reporting instead."""
    if not _active(user) or user.role not in _AREA_COLUMN:
        return []
    area = user.area
    level = _CHILD_LEVEL[area.level]
    group = _community_column(level)
    alerts = alerts_visible_to(user).filter(
        detected_at__gte=since, detected_at__lt=until, technical=technical
    )
    counts = (
        alerts.values(group, "state", "outcome")
        .annotate(n=Count("id"))
        .order_by()
        .values_list(group, "state", "outcome", "n")
    )
    children = Area.objects.filter(**{f"{area.level}_id": area.pk, "level": level}).order_by("code")
    if area.level == AreaLevel.COMMUNITY:
        children = Area.objects.filter(pk=area.pk)
    rows = {a.pk: OutcomeRow(a.pk, a.code, a.name) for a in children}
    for area_id, state, outcome, n in counts:
        row = rows.get(area_id)
        if row is None:
            continue
        row.raised += n
        if state != AlertState.CLOSED:
            row.open += n
        elif outcome:
            row.outcomes[outcome] = row.outcomes.get(outcome, 0) + n
    for row in rows.values():
        row.outcomes = {o: row.outcomes[o] for o in AlertOutcome.values if o in row.outcomes}
    return list(rows.values())
