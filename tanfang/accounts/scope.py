"""The one place that decides which rows of personal data a user may see.

Deny by default: an anonymous or inactive user, a user without an area, and any role not
named below sees nothing. Superusers are installation accounts and get no personal data either;
they act through a role like everyone else.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from django.db.models import Q, QuerySet
from django.utils import timezone

from tanfang.accounts.models import Role

if TYPE_CHECKING:
    from tanfang.areas.models import AreaQuerySet
    from tanfang.registry.models import ElderQuerySet

# Role → the ancestor column of an elder that must equal the user's area.
_ELDER_SCOPE_COLUMN = {
    Role.CITY_ADMIN: "city_id",
    Role.DISTRICT_SUPERVISOR: "district_id",
    Role.SUBDISTRICT_STAFF: "subdistrict_id",
    Role.COMMUNITY_WORKER: "community_id",
}


def _active(user: Any) -> bool:
    return bool(
        getattr(user, "is_authenticated", False)
        and getattr(user, "is_active", False)
        and getattr(user, "area_id", None) is not None
    )


def today() -> dt.date:
    return timezone.localdate()


def elders_visible_to(user: Any, queryset: ElderQuerySet) -> ElderQuerySet:
    if not _active(user):
        return queryset.none()
    column = _ELDER_SCOPE_COLUMN.get(user.role)
    if column is not None:
        return queryset.filter(**{column: user.area_id})
    if user.role == Role.VISITOR:
        # A visitor's assignments never leave her own area, whatever was recorded.
        area_column = f"{user.area.level}_id"
        visitors = visitors_covered_by(user)
        current = queryset.model.objects.filter(
            assignment_current_q(visitors, today()), **{area_column: user.area_id}
        ).values("pk")
        return queryset.filter(pk__in=current)
    return queryset.none()


def assignment_current_q(visitors: list[int], on: dt.date) -> Q:
    """Elders assigned, on ``on``, to any of ``visitors`` (user ids)."""
    return Q(assignments__visitor_id__in=visitors, assignments__starts_on__lte=on) & (
        Q(assignments__ends_on__isnull=True) | Q(assignments__ends_on__gte=on)
    )


def visitors_covered_by(user: Any, on: dt.date | None = None) -> list[int]:
    """The visitor herself and every visitor she stands in for on ``on`` (a substitution)."""
    from tanfang.visits.models import Substitution

    on = on or today()
    # Asked several times in one request (the page, then the service): remembered on the
    # user object, which lives as long as the request.
    remembered = getattr(user, "_tanfang_covered", None)
    if remembered is not None and remembered[0] == on:
        return list(remembered[1])
    away = Substitution.objects.filter(
        substitute_id=user.pk, starts_on__lte=on, ends_on__gte=on
    ).values_list("visitor_id", flat=True)
    covered = [user.pk, *away]
    user._tanfang_covered = (on, tuple(covered))
    return covered


def areas_visible_to(user: Any, queryset: AreaQuerySet) -> AreaQuerySet:
    """The subtree under the user's area (its ancestors are visible as names only elsewhere)."""
    allowed = {*_ELDER_SCOPE_COLUMN, Role.VISITOR, Role.DATA_PARTNER}
    if not _active(user) or user.role not in allowed:
        return queryset.none()
    area = user.area
    return queryset.filter(Q(pk=area.pk) | Q(**{f"{area.level}_id": area.pk}))


def audit_visible_to(user: Any, queryset: QuerySet[Any]) -> QuerySet[Any]:
    """Auditors read the log of their own area (by code prefix)."""
    from tanfang.areas.models import code_prefix

    if not _active(user) or user.role != Role.AUDITOR:
        return queryset.none()
    return queryset.filter(area_code__startswith=code_prefix(user.area.code, user.area.level))
