"""Supervision counts of family notifications per child area (docs/supervision.md,
"Emergencies, referrals and family notifications").

For an area and a period: urgent notifications told to the family (the first contact and the
family contacts), how many of them the family confirmed, how many escalated unconfirmed, and
the family notifications (urgent or not) whose every channel was tried and failed: the
family members who were never reached.

The module also holds the small helpers the three supervision selectors share (the child
areas of an area, the column that places a row in one, the scope check), since
``emergencies`` and ``referrals`` already build on ``notifications``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Exists, OuterRef, Q

from tanfang.accounts.models import Role
from tanfang.areas.models import Area, AreaLevel
from tanfang.notifications.models import Message, MessageState, Notification, RecipientKind

# Role -> the level of the user's own area: she supervises that node's subtree.
SUPERVISING_LEVEL: dict[str, str] = {
    Role.CITY_ADMIN: AreaLevel.CITY,
    Role.DISTRICT_SUPERVISOR: AreaLevel.DISTRICT,
    Role.SUBDISTRICT_STAFF: AreaLevel.SUBDISTRICT,
    Role.COMMUNITY_WORKER: AreaLevel.COMMUNITY,
}
FAMILY = (RecipientKind.FIRST_CONTACT, RecipientKind.FAMILY)
# A message in one of these states may still reach the family, or did.
_NOT_FAILED = (
    MessageState.PENDING,
    MessageState.SENDING,
    MessageState.SENT,
    MessageState.DELIVERED,
)


def may_supervise(user: Any, area: Area) -> bool:
    """Whether ``area`` lies in the subtree of the supervising user's own area (no query:
    the node carries its ancestors). Deny by default: other roles, inactive users, no area."""
    if not (
        getattr(user, "is_authenticated", False)
        and getattr(user, "is_active", False)
        and getattr(user, "area_id", None) is not None
    ):
        return False
    level = SUPERVISING_LEVEL.get(getattr(user, "role", ""))
    return level is not None and area.ancestor_id(level) == user.area_id


def child_areas(area: Area, children: Iterable[Area] | None = None) -> list[Area]:
    """The rows of a supervision table: ``area``'s children (grids excepted), in code order;
    a community is its own single row. ``children``: already read by the caller."""
    if area.level == AreaLevel.COMMUNITY:
        return [area]
    if children is not None:
        return list(children)
    return list(Area.objects.filter(parent=area).exclude(level=AreaLevel.GRID).order_by("code"))


def area_column(level: str, direct: Iterable[str]) -> str:
    """The column of a row holding its ancestor at ``level``: ``<level>_id`` when the row has
    that foreign key (``direct``), else through its community (``community__<level>_id``)."""
    if level in direct:
        return f"{level}_id"
    return f"community__{level}_id"


def row_level(area: Area) -> str:
    """The level of the rows of ``area``'s table (its children's; a community's own)."""
    return {
        AreaLevel.CITY: AreaLevel.DISTRICT,
        AreaLevel.DISTRICT: AreaLevel.SUBDISTRICT,
        AreaLevel.SUBDISTRICT: AreaLevel.COMMUNITY,
    }.get(AreaLevel(area.level), AreaLevel.COMMUNITY)


@dataclass
class FamilyRow:
    """One area's family notifications over a period."""

    area_id: int
    code: str
    name: str
    urgent: int = 0
    confirmed: int = 0
    escalated: int = 0
    never_reached: int = 0

    @property
    def unconfirmed(self) -> int:
        return self.urgent - self.confirmed


_DIRECT = ("district", "community")


def family_stats(
    *,
    user: Any,
    area: Area,
    since: dt.datetime,
    until: dt.datetime,
    children: Iterable[Area] | None = None,
) -> list[FamilyRow]:
    """Family notifications created in [since, until) per child area of ``area`` (empty when
    the user does not supervise ``area``). One query, plus one for the child areas unless
    the caller passes them."""
    if not may_supervise(user, area):
        return []
    rows = {a.pk: FamilyRow(a.pk, a.code, a.name) for a in child_areas(area, children)}
    group = area_column(row_level(area), _DIRECT)
    failed = Message.objects.filter(notification=OuterRef("pk"), state=MessageState.FAILED)
    alive = Message.objects.filter(notification=OuterRef("pk"), state__in=_NOT_FAILED)
    urgent = Q(urgent=True)
    counts = (
        Notification.objects.filter(
            **{area_column(area.level, _DIRECT): area.pk},
            recipient_kind__in=FAMILY,
            created_at__gte=since,
            created_at__lt=until,
        )
        .values(group)
        .annotate(
            # Named apart from the fields, which later filters would otherwise read as these.
            n_urgent=Count("id", filter=urgent),
            n_confirmed=Count("id", filter=urgent & Q(confirmed_at__isnull=False)),
            n_escalated=Count(
                "id", filter=urgent & Q(confirmed_at__isnull=True, escalated_at__isnull=False)
            ),
            n_never=Count("id", filter=Q(Exists(failed)) & ~Q(Exists(alive))),
        )
        .order_by()
        .values_list(group, "n_urgent", "n_confirmed", "n_escalated", "n_never")
    )
    for area_id, n_urgent, n_confirmed, n_escalated, n_never in counts:
        row = rows.get(area_id)
        if row is not None:
            row.urgent, row.confirmed = n_urgent, n_confirmed
            row.escalated, row.never_reached = n_escalated, n_never
    return list(rows.values())
