"""Service teams at work: assigning elders to visitors, by hand or balanced automatically,
substitutes for visitors who are away, and surges declared by supervisors."""

from __future__ import annotations

import datetime as dt
import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from tanfang.accounts.models import Role, User
from tanfang.areas.models import Area
from tanfang.audit.models import AuditAction
from tanfang.audit.services import audit_record
from tanfang.registry.models import Elder, LifeStatus, VisitorAssignment
from tanfang.registry.selectors import category_bits_matching
from tanfang.visits.models import Substitution, VisitorProfile, VisitSurge


class TeamError(Exception):
    """An assignment, substitution or surge that is not allowed, with a message for the user."""


def _current(on: dt.date) -> Q:
    return Q(starts_on__lte=on) & (Q(ends_on__isnull=True) | Q(ends_on__gte=on))


def _check_visitor(visitor: User, elder_community_id: int) -> None:
    if visitor.role != Role.VISITOR or not visitor.is_active:
        raise TeamError(_("Elders can only be assigned to an active visitor."))
    area = visitor.area
    if area is None:
        raise TeamError(_("The visitor has no area."))
    community = Area.objects.get(pk=elder_community_id)
    if area.pk != community.pk and getattr(community, f"{area.level}_id", None) != area.pk:
        raise TeamError(_("The visitor does not work in the elder's community."))


def visitor_assign(
    *, actor: Any, elder: Elder, visitor: User, on: dt.date | None = None
) -> VisitorAssignment:
    """Assign ``elder`` to ``visitor`` from ``on``; the previous assignment ends the day before."""
    on = on or timezone.localdate()
    _check_visitor(visitor, elder.community_id)
    with transaction.atomic():
        current = VisitorAssignment.objects.select_for_update().filter(_current(on), elder=elder)
        same = current.filter(visitor=visitor).first()
        if same is not None:
            return same
        for old in current:
            old.ends_on = max(old.starts_on, on - dt.timedelta(days=1))
            old.save(update_fields=["ends_on"])
        assignment = VisitorAssignment.objects.create(
            elder=elder, visitor=visitor, starts_on=on, assigned_by=actor
        )
        audit_record(
            actor=actor,
            action=AuditAction.UPDATE_RECORD,
            elder=elder,
            details={"assigned_to": visitor.username, "from": on.isoformat()},
        )
    return assignment


@dataclass(frozen=True)
class BalanceResult:
    assigned: int
    unassigned_left: int


def assignments_balance(*, actor: Any, community: Area, on: dt.date | None = None) -> BalanceResult:
    """Give every active elder of ``community`` without a current visitor to the visitor with
    the most room (capacity minus current load), so workloads stay even.

    Steps: load the community's active visitors and their current loads; put them in a heap
    keyed by load relative to capacity; hand out the unassigned elders oldest first (most
    in need of a regular visitor), one at a time, to the least loaded visitor with room.
    """
    on = on or timezone.localdate()
    visitors = list(
        User.objects.filter(role=Role.VISITOR, is_active=True, area=community).annotate(
            load=Count("assignments", filter=_assignment_current(on))
        )
    )
    capacity = dict(
        VisitorProfile.objects.filter(user__in=visitors, active=True).values_list(
            "user_id", "capacity"
        )
    )
    inactive = set(
        VisitorProfile.objects.filter(user__in=visitors, active=False).values_list(
            "user_id", flat=True
        )
    )
    heap = [
        (v.load / max(capacity.get(v.pk, 40), 1), v.load, v.pk)
        for v in visitors
        if v.pk not in inactive and capacity.get(v.pk, 40) > v.load
    ]
    heapq.heapify(heap)
    assigned_now = VisitorAssignment.objects.filter(_current(on)).values("elder_id")
    waiting = (
        Elder.objects.filter(community=community, life_status=LifeStatus.ACTIVE)
        .exclude(willing_to_be_visited=False)
        .exclude(pk__in=assigned_now)
        .order_by("birth_date", "id")
    )
    new: list[VisitorAssignment] = []
    left = 0
    for elder_id in waiting.values_list("id", flat=True):
        if not heap:
            left += 1
            continue
        _, load, visitor_id = heapq.heappop(heap)
        new.append(
            VisitorAssignment(
                elder_id=elder_id, visitor_id=visitor_id, starts_on=on, assigned_by=actor
            )
        )
        load += 1
        room = capacity.get(visitor_id, 40)
        if load < room:
            heapq.heappush(heap, (load / room, load, visitor_id))
    with transaction.atomic():
        VisitorAssignment.objects.bulk_create(new)
        audit_record(
            actor=actor,
            action=AuditAction.UPDATE_RECORD,
            area_code=community.code,
            details={"balanced": len(new), "left_unassigned": left},
        )
    return BalanceResult(assigned=len(new), unassigned_left=left)


def _assignment_current(on: dt.date) -> Q:
    return Q(assignments__starts_on__lte=on) & (
        Q(assignments__ends_on__isnull=True) | Q(assignments__ends_on__gte=on)
    )


def substitution_create(
    *,
    actor: Any,
    visitor: User,
    substitute: User,
    starts_on: dt.date,
    ends_on: dt.date,
    reason: str = "",
) -> Substitution:
    """While ``visitor`` is away, ``substitute`` sees and visits her elders."""
    if ends_on < starts_on:
        raise TeamError(_("The substitution cannot end before it starts."))
    if visitor.pk == substitute.pk:
        raise TeamError(_("A visitor cannot stand in for herself."))
    for person in (visitor, substitute):
        if person.role != Role.VISITOR:
            raise TeamError(_("Both people must be visitors."))
    if visitor.area_id != substitute.area_id:
        raise TeamError(_("The substitute must work in the same area."))
    for person in (visitor, substitute):
        person.__dict__.pop("_tanfang_covered", None)  # what scope.py remembered is stale
    with transaction.atomic():
        substitution = Substitution.objects.create(
            visitor=visitor,
            substitute=substitute,
            starts_on=starts_on,
            ends_on=ends_on,
            reason=reason[:200],
            created_by=actor,
        )
        audit_record(
            actor=actor,
            action=AuditAction.UPDATE_RECORD,
            area_code=visitor.area.code if visitor.area else "",
            details={
                "substitution": substitution.pk,
                "away": visitor.username,
                "substitute": substitute.username,
                "from": starts_on.isoformat(),
                "to": ends_on.isoformat(),
            },
        )
    return substitution


def surge_declare(
    *,
    actor: Any,
    code: str,
    area: Area,
    reason: str,
    starts_on: dt.date,
    ends_on: dt.date,
    frequency: str = "day",
    mode: str = "phone",
    categories_all: Sequence[str] = (),
) -> VisitSurge:
    """A supervisor declares a surge (extreme weather) for an area; the elders concerned get
    their new due dates at once."""
    from tanfang.visits.status import status_refresh

    if ends_on < starts_on:
        raise TeamError(_("The surge cannot end before it starts."))
    with transaction.atomic():
        surge = VisitSurge.objects.create(
            code=code,
            area=area,
            reason=reason,
            starts_on=starts_on,
            ends_on=ends_on,
            frequency=frequency,
            mode=mode,
            categories_all=list(categories_all),
            declared_by=actor,
        )
        audit_record(
            actor=actor,
            action=AuditAction.CREATE_RECORD,
            area_code=area.code,
            details={"surge": code, "from": starts_on.isoformat(), "to": ends_on.isoformat()},
        )
    # Only the elders the surge can concern are recomputed now; the nightly run does the rest.
    concerned = Elder.objects.filter(**{f"{area.level}_id": area.pk})
    for category in categories_all:
        concerned = concerned.filter(category_bits__in=category_bits_matching(category))
    ids = list(concerned.values_list("id", flat=True))
    status_refresh(elder_ids=ids)
    return surge
