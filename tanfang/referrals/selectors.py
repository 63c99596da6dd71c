"""Reads of referrals that users see, scoped in one place (``referrals_visible_to``).

Deny by default:

- subdistrict staff see the referrals their subdistrict received (and handle them);
- a community worker sees those of her community's elders;
- a district supervisor sees her district's, the city administrator her city's;
- every other role (a visitor, a data partner, an auditor), and anyone without an area,
  sees none.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from tanfang.accounts.models import Role
from tanfang.accounts.scope import elders_visible_to
from tanfang.areas.models import Area, AreaLevel
from tanfang.referrals.models import Referral
from tanfang.registry.models import Elder

# Role -> the column of a referral that must equal the user's area.
_AREA_COLUMN = {
    Role.CITY_ADMIN: "community__city_id",
    Role.DISTRICT_SUPERVISOR: "district_id",
    Role.SUBDISTRICT_STAFF: "subdistrict_id",
    Role.COMMUNITY_WORKER: "community_id",
}
# Role -> (level of the areas a referral count is grouped by, the referral's column).
_GROUP_BY = {
    Role.CITY_ADMIN: (AreaLevel.DISTRICT, "district_id"),
    Role.DISTRICT_SUPERVISOR: (AreaLevel.SUBDISTRICT, "subdistrict_id"),
}
_RELATED = ("elder", "community", "subdistrict", "service", "handled_by")


def _active(user: Any) -> bool:
    return bool(
        getattr(user, "is_authenticated", False)
        and getattr(user, "is_active", False)
        and getattr(user, "area_id", None) is not None
    )


def referrals_visible_to(
    user: Any, queryset: QuerySet[Referral] | None = None
) -> QuerySet[Referral]:
    """The referrals ``user`` may see (the module's docstring lists who sees what)."""
    referrals = Referral.objects.all() if queryset is None else queryset
    if not _active(user):
        return referrals.none()
    column = _AREA_COLUMN.get(user.role)
    if column is None:
        return referrals.none()
    return referrals.filter(**{column: user.area_id})


def referral_visible(*, user: Any, pk: int) -> Referral | None:
    """One referral with what its page shows, or None outside the user's scope."""
    return (
        referrals_visible_to(user)
        .select_related(
            "elder__community", "community", "subdistrict", "district", "service", "handled_by"
        )
        .select_related("visit", "alert", "care_action")
        .prefetch_related("events__by")
        .filter(pk=pk)
        .first()
    )


def referrals_open(*, user: Any) -> QuerySet[Referral]:
    """Open referrals in scope, the soonest due (so the overdue) first."""
    return (
        referrals_visible_to(user)
        .filter(closed=False)
        .select_related(*_RELATED)
        .order_by("due_at", "id")
    )


def referrals_overdue(*, user: Any, now: dt.datetime | None = None) -> QuerySet[Referral]:
    """Open referrals in scope past their step's time limit, the longest overdue first."""
    now = now or timezone.now()
    return referrals_open(user=user).filter(due_at__lt=now)


def referrals_list(*, user: Any, state: str = "", overdue: bool = False) -> QuerySet[Referral]:
    """The referrals in scope for the API: open ones (``state`` "all": every one, or one
    state), soonest due first; ``overdue`` only those past their time limit."""
    referrals = referrals_visible_to(user).select_related(*_RELATED)
    if state == "all":
        pass
    elif state:
        referrals = referrals.filter(state=state)
    else:
        referrals = referrals.filter(closed=False)
    if overdue:
        referrals = referrals.filter(closed=False, due_at__lt=timezone.now())
    return referrals.order_by("due_at", "id")


@dataclass
class CountRow:
    """One area's referrals: still open, overdue, escalated."""

    area_id: int
    code: str
    name: str
    open: int = 0
    overdue: int = 0
    escalated: int = 0


def referral_counts(*, user: Any, now: dt.datetime | None = None) -> list[CountRow]:
    """Open referrals per area one level below a district supervisor's (her subdistricts) or
    the city administrator's (her districts), with the overdue and escalated among them.
    Empty for other roles."""
    if not _active(user) or user.role not in _GROUP_BY:
        return []
    now = now or timezone.now()
    level, column = _GROUP_BY[user.role]
    counts = (
        referrals_visible_to(user)
        .filter(closed=False)
        .values(column)
        .annotate(
            n=Count("id"),
            late=Count("id", filter=Q(due_at__lt=now)),
            up=Count("id", filter=Q(escalated_at__isnull=False)),
        )
        .order_by()
        .values_list(column, "n", "late", "up")
    )
    area = user.area
    children = Area.objects.filter(**{f"{area.level}_id": area.pk, "level": level}).order_by("code")
    rows = {a.pk: CountRow(a.pk, a.code, a.name) for a in children}
    for area_id, n, late, up in counts:
        row = rows.get(area_id)
        if row is not None:
            row.open, row.overdue, row.escalated = n, late, up
    return list(rows.values())


def elder_referrals(
    *, user: Any, elder: Elder, limit: int = 20, elder_checked: bool = False
) -> list[Referral]:
    """An elder's referrals, open first then newest, when the elder is visible to the user
    (``elder_checked``: the caller has just made sure of it, as the elder page does)."""
    if (
        not elder_checked
        and not elders_visible_to(user, Elder.objects.filter(pk=elder.pk)).exists()
    ):
        return []
    return list(
        referrals_visible_to(user)
        .filter(elder=elder)
        .select_related("subdistrict", "service")
        .order_by("closed", "-created_at", "-id")[:limit]
    )
