"""Every change of care actions: open them from a visit, move them on, escalate overdue ones."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from tanfang.accounts.models import Role, User
from tanfang.audit.models import AuditAction
from tanfang.audit.services import audit_record
from tanfang.care.models import CareAction, CareActionEvent, ServiceEntry
from tanfang.care.rules import (
    FIRST_STATE,
    CareKind,
    can_move,
    default_due,
    is_closed,
)


class CareError(Exception):
    """A care action change that is not allowed, with a message for the user."""


def care_actions_from_visit(*, actor: Any, visit: Any) -> list[CareAction]:
    """Open the care actions a consented visit calls for: one per hazard found, per need,
    and per benefit the elder may qualify for. Opening twice (a correction) adds nothing."""
    from tanfang.visits.record_form import benefit_hints, hazards, needs

    elder = visit.elder
    owner = visit.visitor or _community_worker(elder.community_id)
    if owner is None:
        return []
    wanted: list[tuple[str, str, str]] = []
    safety = visit.sections.get("safety", {}) if isinstance(visit.sections, dict) else {}
    for subject in hazards(visit.sections):
        what = safety.get(subject, {}).get("what", "") if isinstance(safety, dict) else ""
        wanted.append((CareKind.HAZARD, subject, str(what)[:200]))
    for subject in needs(visit.sections):
        wanted.append((CareKind.SERVICE, subject, ""))
    born = elder.birth_date
    day = visit.local_date
    age = day.year - born.year - ((day.month, day.day) < (born.month, born.day))
    hints = benefit_hints(
        visit.sections,
        frozenset(elder.categories or ()),
        age=age,
        extremely_poor=elder.extremely_poor,
    )
    for subject in hints:
        wanted.append((CareKind.BENEFIT, subject, ""))
    opened = []
    existing = set(CareAction.objects.filter(visit=visit).values_list("kind", "subject"))
    for kind, subject, detail in wanted:
        if (kind, subject) in existing:
            continue
        action = CareAction.objects.create(
            elder=elder,
            community_id=elder.community_id,
            visit=visit,
            kind=kind,
            subject=subject,
            detail=detail,
            state=FIRST_STATE[CareKind(kind)],
            owner=owner,
            due_on=default_due(kind, subject, visit.local_date),
            created_by=actor if getattr(actor, "pk", None) else None,
        )
        CareActionEvent.objects.create(
            action=action,
            by=actor if getattr(actor, "pk", None) else None,
            to_state=action.state,
            event="opened",
        )
        opened.append(action)
    return opened


def care_action_move(
    *,
    actor: Any,
    action: CareAction,
    to: str,
    note: str = "",
    result: str = "",
    service: ServiceEntry | None = None,
) -> CareAction:
    """Move an action one step on; closing steps close it. Every step is a history row."""
    with transaction.atomic():
        locked = CareAction.objects.select_for_update().get(pk=action.pk)
        if not can_move(locked.kind, locked.state, to):
            raise CareError(_("This step is not possible from the action's current state."))
        if service is not None and locked.kind != CareKind.SERVICE:
            raise CareError(_("Only a service need is connected to a service."))
        before = locked.state
        locked.state = to
        fields = ["state"]
        if service is not None:
            locked.service = service
            fields.append("service")
        if result:
            locked.result = result[:300]
            fields.append("result")
        if is_closed(to):
            locked.closed = True
            locked.closed_at = timezone.now()
            fields += ["closed", "closed_at"]
        locked.save(update_fields=fields)
        CareActionEvent.objects.create(
            action=locked,
            by=actor,
            from_state=before,
            to_state=to,
            note=(note or result)[:300],
        )
        audit_record(
            actor=actor,
            action=AuditAction.UPDATE_RECORD,
            elder=locked.elder,
            details={"care_action": locked.pk, "from": before, "to": to},
        )
        _status_touch(locked.elder_id)
        if locked.closed and before != to:
            # The first contact is told how it ended, in this transaction (the outbox).
            from tanfang.notifications.family import family_tell_care_result

            family_tell_care_result(action=locked)
    return locked


def care_actions_escalate(*, on: dt.date | None = None) -> int:
    """Overdue open actions go to a community worker of the elder's community (once)."""
    on = on or timezone.localdate()
    overdue = CareAction.objects.filter(closed=False, due_on__lt=on, escalated_at__isnull=True)
    count = 0
    for action in overdue.select_related("owner"):
        worker = _community_worker(action.community_id)
        if worker is None:
            continue
        with transaction.atomic():
            claimed = CareAction.objects.filter(pk=action.pk, escalated_at__isnull=True).update(
                escalated_to=worker, escalated_at=timezone.now()
            )
            if claimed:
                CareActionEvent.objects.create(
                    action=action,
                    event="escalated",
                    from_state=action.state,
                    to_state=action.state,
                    note=_("Overdue since %(day)s; escalated to %(worker)s")
                    % {"day": action.due_on.isoformat(), "worker": worker.username},
                )
                count += 1
    return count


def _community_worker(community_id: int) -> User | None:
    from tanfang.notifications.recipients import on_duty

    return on_duty(Role.COMMUNITY_WORKER, community_id)


def _status_touch(elder_id: int) -> None:
    from tanfang.visits.status import status_refresh

    status_refresh(elder_ids=[elder_id])
