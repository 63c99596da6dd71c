"""Reads of emergency cases with the acting user's scope (denied by default):

- a visitor sees the cases of the elders she visits (and of a visitor she stands in for)
  and every case assigned to her;
- a community worker, subdistrict staff, a district supervisor and the city administrator
  see the cases of their area (the tree), and cases assigned to them;
- every other role, and anyone without an area, sees nothing.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Case, IntegerField, Q, QuerySet, Value, When

from tanfang.accounts.models import Role
from tanfang.accounts.scope import elders_visible_to
from tanfang.emergencies.models import CaseState, EmergencyCase
from tanfang.notifications.models import Message
from tanfang.registry.models import Elder

_AREA_COLUMN = {
    Role.CITY_ADMIN: "elder__city_id",
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


def visible_to(
    user: Any, queryset: QuerySet[EmergencyCase] | None = None
) -> QuerySet[EmergencyCase]:
    """The cases ``user`` may see (the module's docstring lists who sees what)."""
    cases = EmergencyCase.objects.all() if queryset is None else queryset
    if not _active(user):
        return cases.none()
    column = _AREA_COLUMN.get(user.role)
    if column is not None:
        return cases.filter(Q(**{column: user.area_id}) | Q(assigned_to=user))
    if user.role == Role.VISITOR:
        elders = elders_visible_to(user, Elder.objects.all()).values("pk")
        return cases.filter(Q(elder__in=elders) | Q(assigned_to=user))
    return cases.none()


def ordered(cases: QuerySet[EmergencyCase]) -> QuerySet[EmergencyCase]:
    """Open first, then being handled, then closed; newest first."""
    rank = Case(
        When(state=CaseState.OPEN, then=Value(0)),
        When(state=CaseState.CONFIRMED, then=Value(1)),
        default=Value(2),
        output_field=IntegerField(),
    )
    return cases.annotate(state_rank=rank).order_by("state_rank", "-opened_at", "-id")


def cases_list(
    *, user: Any, state: str = "", elder: Elder | None = None
) -> QuerySet[EmergencyCase]:
    """The cases in scope (``state``: open, confirmed, closed, or ``active`` = not closed),
    open first, with what a list shows."""
    cases = visible_to(user)
    if state == "active":
        cases = cases.exclude(state=CaseState.CLOSED)
    elif state:
        cases = cases.filter(state=state)
    if elder is not None:
        cases = cases.filter(elder=elder)
    return ordered(cases).select_related("elder", "community", "assigned_to")


def cases_open_for(*, user: Any, limit: int = 20) -> list[EmergencyCase]:
    """The user's open cases (not closed), assigned to her first, unconfirmed first."""
    rows = list(
        visible_to(user)
        .exclude(state=CaseState.CLOSED)
        .select_related("elder", "community", "assigned_to")
        .order_by("-opened_at", "-id")[: limit * 2]
    )
    rows.sort(
        key=lambda c: (
            c.assigned_to_id != user.pk,
            c.state != CaseState.OPEN,
            -c.opened_at.timestamp(),
        )
    )
    return rows[:limit]


def case_visible(*, user: Any, pk: int) -> EmergencyCase | None:
    """One case with what its page shows, or None outside the user's scope."""
    return (
        visible_to(user)
        .select_related(
            "elder__community",
            "assigned_to",
            "opened_by",
            "confirmed_by",
            "closed_by",
            "alert",
        )
        .filter(pk=pk)
        .first()
    )


def timeline(case: EmergencyCase) -> list[dict[str, Any]]:
    """The case's timeline in time order: its events, each ``notified`` line with its
    message's current state read from the outbox row (sent, delivered, failed), and the
    outbox's later moments (sent, delivered) as lines of their own. Three queries."""
    events = list(
        case.events.select_related("by", "to_user", "call", "message").order_by("at", "id")
    )
    ids = [e.message_id for e in events if e.message_id]
    messages = {
        m.pk: m
        for m in Message.objects.filter(pk__in=ids).only(
            "id", "channel", "state", "address_masked", "sent_at", "delivered_at", "last_error"
        )
    }
    rows: list[dict[str, Any]] = []
    for e in events:
        message = messages.get(e.message_id) if e.message_id else None
        rows.append({"at": e.at, "kind": e.kind, "event": e, "message": message})
        if message is not None:
            for kind, at in (("sent", message.sent_at), ("delivered", message.delivered_at)):
                if at is not None:
                    rows.append({"at": at, "kind": kind, "event": e, "message": message})
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
    rows.sort(key=lambda r: (r["at"] or epoch, r["event"].pk))
    return rows


def minutes_to_confirm(case: EmergencyCase) -> int | None:
    if case.confirmed_at is None:
        return None
    return max(0, int((case.confirmed_at - case.opened_at).total_seconds() // 60))
