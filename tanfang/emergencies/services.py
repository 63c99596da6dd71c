"""Every change of an emergency case: open (or join), tell everyone, log calls, confirm,
close, escalate. docs/emergencies.md explains the rules; in short:

- One open case per elder: a second alarm while a case is open joins it (a ``joined``
  timeline line, nobody told twice). Opening is idempotent on the case ``key``.
- Opening tells, in the caller's transaction (the outbox): everyone on the contact list
  (the first contact, then the active family contacts) on every channel at once, urgent,
  with a confirmation link; and the staff (the person on duty and the community worker:
  inbox, SMS when a phone is known, the community's WeCom group) with a link to the case.
- The case waits at each level (visitor → community → subdistrict → district) for the
  ``EmergencyRules`` minutes, then climbs and tells the next level; it stops climbing when a
  person confirms it is being handled (an answered call alone does not confirm) and at the
  district, where it stays open and visible until closed.
- Closing needs an outcome (and a note for hospitalised and found deceased, which set the
  elder's life status). Closing an open case confirms it too, and closes the alert that
  opened it if that is still open (outcome mapped, ``ALERT_OUTCOME``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from tanfang.accounts.models import Role, User
from tanfang.audit.models import AuditAction
from tanfang.audit.services import audit_record
from tanfang.core import crypto
from tanfang.emergencies.models import (
    CallAttempt,
    CallResult,
    CaseLevel,
    CaseOutcome,
    CaseState,
    EmergencyCase,
    EmergencyEvent,
    EmergencyRules,
    Trigger,
)
from tanfang.emergencies.telling import staff_of, tell_level, tell_on_open, trigger_label
from tanfang.notifications.models import (
    FamilyContact,
)
from tanfang.registry.identity import mask_phone
from tanfang.registry.models import Elder, FirstContact, LifeStatus

LEVELS = (CaseLevel.VISITOR, CaseLevel.COMMUNITY, CaseLevel.SUBDISTRICT, CaseLevel.DISTRICT)
NEEDS_NOTE = {CaseOutcome.HOSPITALISED, CaseOutcome.FOUND_DECEASED}
LIFE_STATUS = {
    CaseOutcome.HOSPITALISED: LifeStatus.IN_HOSPITAL,
    CaseOutcome.FOUND_DECEASED: LifeStatus.DECEASED,
}
# The linked alert closes with: the emergency's own outcome where the alert has it; otherwise
# "emergency handled" (the case, not the alert, sets the elder's life status).
ALERT_OUTCOME = {
    CaseOutcome.FALSE_ALARM: "false_alarm",
    CaseOutcome.ALL_WELL: "all_well",
}


class Event:
    """The kinds of timeline lines (``EmergencyEvent.kind``)."""

    OPENED = "opened"
    JOINED = "joined"
    ASSIGNED = "assigned"
    NOTIFIED = "notified"
    CALL = "call"
    ESCALATED = "escalated"
    CONFIRMED = "confirmed"
    CLOSED = "closed"


EVENT_LABELS = {
    Event.OPENED: gettext_lazy("Emergency opened"),
    Event.JOINED: gettext_lazy("Another alarm joined the case"),
    Event.ASSIGNED: gettext_lazy("Assigned"),
    Event.NOTIFIED: gettext_lazy("Told"),
    Event.CALL: gettext_lazy("Call logged"),
    Event.ESCALATED: gettext_lazy("Escalated: not confirmed in time"),
    Event.CONFIRMED: gettext_lazy("Confirmed: being handled"),
    Event.CLOSED: gettext_lazy("Closed"),
}


class EmergencyError(Exception):
    """A change of a case that is not allowed, with a message for the user."""


# -- who is on duty ------------------------------------------------------------------------
def emergency_rules(area_ids: list[int | None]) -> EmergencyRules:
    """The most specific rules among ``area_ids`` (community, subdistrict, district), else
    the city's default row, else the built-in defaults."""
    wanted = [a for a in area_ids if a is not None]
    rows = {
        r.area_id: r for r in EmergencyRules.objects.filter(Q(area_id__in=wanted) | Q(area=None))
    }
    for area_id in [*wanted, None]:
        if area_id in rows:
            return rows[area_id]
    return EmergencyRules()


def _rules_for(elder: Elder) -> EmergencyRules:
    return emergency_rules([elder.community_id, elder.subdistrict_id, elder.district_id])


def _wait(rules: EmergencyRules, level: str) -> int | None:
    waits: dict[str, int] = {
        CaseLevel.VISITOR: rules.visitor_minutes,
        CaseLevel.COMMUNITY: rules.community_minutes,
        CaseLevel.SUBDISTRICT: rules.subdistrict_minutes,
    }
    return waits.get(level)


_staff = staff_of


def on_duty(elder: Elder, level: str, on: dt.date) -> User | None:
    """Who holds the case at ``level`` (None when nobody holds that post)."""
    from tanfang.monitoring.alerts import visitor_of

    if level == CaseLevel.VISITOR:
        return visitor_of(elder, on)
    if level == CaseLevel.COMMUNITY:
        return _staff(Role.COMMUNITY_WORKER, elder.community_id)
    if level == CaseLevel.SUBDISTRICT:
        return _staff(Role.SUBDISTRICT_STAFF, elder.subdistrict_id)
    return _staff(Role.DISTRICT_SUPERVISOR, elder.district_id)


def _place(case: EmergencyCase, level: str, now: dt.datetime) -> None:
    """Put the case at ``level``, or the first level above it where someone is on duty; the
    district is the last step whoever is there (the case then stops climbing)."""
    elder = case.elder
    on = timezone.localdate(now)
    start = LEVELS.index(CaseLevel(level))
    index, person = start, None
    for index in range(start, len(LEVELS)):
        person = on_duty(elder, LEVELS[index], on)
        if person is not None:
            break
    case.level = LEVELS[index]
    case.assigned_to = person
    wait = _wait(_rules_for(elder), case.level)
    case.escalate_at = (
        now + dt.timedelta(minutes=wait)
        if wait is not None and case.state == CaseState.OPEN
        else None
    )


# -- opening -------------------------------------------------------------------------------
def _case_key(trigger: str, alert: Any, visit: Any) -> str:
    if alert is not None:
        return f"alert:{alert.pk}"
    if visit is not None:
        return f"visit:{visit.pk}"
    return f"{trigger}:{uuid.uuid4().hex}"


def _user_or_none(actor: Any) -> Any:
    return actor if getattr(actor, "pk", None) else None


def emergency_open(
    *,
    elder: Elder,
    trigger: str,
    summary: str,
    alert: Any = None,
    visit: Any = None,
    actor: Any = None,
    now: dt.datetime | None = None,
) -> tuple[EmergencyCase, bool]:
    """Open an emergency for ``elder`` and tell everyone, or join the case already open:
    ``(case, created)``. Runs inside the caller's transaction (its own savepoint), so the
    outbox messages exist exactly when the case does."""
    if trigger not in Trigger.values:
        raise EmergencyError(_("Unknown emergency trigger."))
    now = now or timezone.now()
    key = _case_key(trigger, alert, visit)
    by = _user_or_none(actor)
    with transaction.atomic():
        same = EmergencyCase.objects.filter(key=key).first()
        if same is not None:
            return same, False
        joined = _join(elder, trigger, summary, by, now)
        if joined is not None:
            return joined, False
        case = EmergencyCase(
            key=key,
            elder=elder,
            community_id=elder.community_id,
            subdistrict_id=elder.subdistrict_id,
            district_id=elder.district_id,
            trigger=trigger,
            summary=summary[:300],
            alert=alert,
            visit=visit,
            state=CaseState.OPEN,
            opened_at=now,
            opened_by=by,
        )
        _place(case, CaseLevel.VISITOR, now)
        try:
            with transaction.atomic():
                case.save(force_insert=True)
        except IntegrityError:
            # Another alarm opened her case at the same moment: this one joins it.
            joined = _join(elder, trigger, summary, by, now)
            if joined is None:
                raise
            return joined, False
        EmergencyEvent.objects.bulk_create(
            [
                EmergencyEvent(case=case, at=now, kind=Event.OPENED, by=by, text=summary[:300]),
                EmergencyEvent(
                    case=case,
                    at=now,
                    kind=Event.ASSIGNED,
                    level=case.level,
                    to_user=case.assigned_to,
                ),
            ]
        )
        tell_on_open(case, now)
        if by is not None:
            audit_record(
                actor=by,
                action=AuditAction.CREATE_RECORD,
                elder=elder,
                reason="emergency opened",
                details={"emergency": case.pk, "trigger": trigger},
            )
    return case, True


def _join(
    elder: Elder, trigger: str, summary: str, by: Any, now: dt.datetime
) -> EmergencyCase | None:
    case = (
        EmergencyCase.objects.select_for_update()
        .filter(elder=elder)
        .exclude(state=CaseState.CLOSED)
        .first()
    )
    if case is None:
        return None
    text = f"{trigger_label(trigger)}: {summary}" if summary else trigger_label(trigger)
    EmergencyEvent.objects.create(case=case, at=now, kind=Event.JOINED, by=by, text=text[:300])
    return case


# -- the call list -------------------------------------------------------------------------
@dataclass(frozen=True)
class CallLine:
    ref: str
    name: str
    role: str
    phone_masked: str
    phone: str  # the full number for the tel: link ("" when not revealed or unknown)
    kind: str  # first_contact, family, user


def call_list(case: EmergencyCase, *, reveal: bool = True) -> list[CallLine]:
    """Whom to call, in order: the first contact, the family contacts, the visitor, the
    community worker, the subdistrict staff. ``reveal`` decrypts the full numbers (the
    caller audits that once, ``call_list_audit``)."""
    elder = case.elder
    lines: list[CallLine] = []

    def phone_of(cipher: str) -> str:
        return crypto.decrypt(cipher) if reveal and cipher else ""

    first = FirstContact.objects.filter(elder=elder, is_current=True).first()
    if first is not None:
        lines.append(
            CallLine(
                f"first_contact:{first.pk}",
                first.name,
                f"{_('First contact')} · {first.get_relation_display()}",
                first.phone_masked,
                phone_of(first.phone_cipher),
                "first_contact",
            )
        )
    for contact in FamilyContact.objects.filter(elder=elder, active=True):
        lines.append(
            CallLine(
                f"family:{contact.pk}",
                contact.name,
                contact.relation,
                contact.phone_masked,
                phone_of(contact.phone_cipher),
                "family",
            )
        )
    on = timezone.localdate()
    seen: set[int] = set()
    for level, role in (
        (CaseLevel.VISITOR, _("Visitor")),
        (CaseLevel.COMMUNITY, _("Community worker")),
        (CaseLevel.SUBDISTRICT, _("Subdistrict staff")),
    ):
        person = on_duty(elder, level, on)
        if person is None or person.pk in seen:
            continue
        seen.add(person.pk)
        lines.append(
            CallLine(
                f"user:{person.pk}",
                str(person),
                role,
                mask_phone(person.phone) if person.phone else "",
                person.phone if reveal else "",
                "user",
            )
        )
    return lines


def call_list_audit(
    *, case: EmergencyCase, actor: Any, lines: list[CallLine], request: Any = None
) -> None:
    """One audit entry per page view that showed full phone numbers."""
    shown = [line.ref for line in lines if line.phone]
    if not shown:
        return
    audit_record(
        actor=actor,
        action=AuditAction.REVEAL_IDENTIFIER,
        elder=case.elder,
        reason="emergency call list",
        details={"emergency": case.pk, "phones": shown},
        request=request,
    )


# -- changes by people ---------------------------------------------------------------------
def _locked(case: EmergencyCase) -> EmergencyCase:
    return (
        EmergencyCase.objects.select_for_update(of=("self",))
        .select_related("elder__community")
        .get(pk=case.pk)
    )


def _may_handle(case: EmergencyCase, actor: Any) -> None:
    from tanfang.accounts.roles import Capability, can
    from tanfang.emergencies.selectors import visible_to

    if (
        not can(actor, Capability.HANDLE_EMERGENCIES)
        or not visible_to(actor).filter(pk=case.pk).exists()
    ):
        raise EmergencyError(_("You cannot act on this emergency."))


def _audit(case: EmergencyCase, actor: Any, what: str, request: Any, **details: Any) -> None:
    audit_record(
        actor=actor,
        action=AuditAction.UPDATE_RECORD,
        elder=case.elder,
        reason=f"emergency {what}",
        details={"emergency": case.pk, **details},
        request=request,
    )


def call_log(
    *,
    case: EmergencyCase,
    actor: User,
    contact_ref: str,
    result: str,
    note: str = "",
    request: Any = None,
    now: dt.datetime | None = None,
) -> CallAttempt:
    """One call from the call list and what came of it. An answered call does not by itself
    confirm the case: the worker confirms it is being handled."""
    if result not in CallResult.values:
        raise EmergencyError(_("Choose what came of the call."))
    _may_handle(case, actor)
    line = next((x for x in call_list(case, reveal=False) if x.ref == contact_ref), None)
    if line is None:
        raise EmergencyError(_("That person is not on the call list."))
    now = now or timezone.now()
    with transaction.atomic():
        case = _locked(case)
        if case.state == CaseState.CLOSED:
            raise EmergencyError(_("This emergency is already closed."))
        call = CallAttempt.objects.create(
            case=case,
            contact_ref=line.ref,
            contact_name=line.name[:80],
            contact_role=line.role[:40],
            phone_masked=line.phone_masked,
            result=result,
            note=note.strip()[:300],
            by=actor,
            at=now,
        )
        EmergencyEvent.objects.create(
            case=case, at=now, kind=Event.CALL, by=actor, call=call, text=note.strip()[:300]
        )
        _audit(case, actor, "call", request, contact=line.ref, result=result)
    return call


def emergency_confirm(
    *,
    case: EmergencyCase,
    actor: User,
    note: str = "",
    request: Any = None,
    now: dt.datetime | None = None,
) -> EmergencyCase:
    """A person confirms the emergency is being handled: it stops climbing."""
    _may_handle(case, actor)
    now = now or timezone.now()
    with transaction.atomic():
        case = _locked(case)
        if case.state != CaseState.OPEN:
            raise EmergencyError(_("This emergency is already confirmed or closed."))
        _confirm(case, actor, note, now)
        case.save(update_fields=["state", "confirmed_at", "confirmed_by", "escalate_at"])
        _audit(case, actor, "confirm", request)
    return case


def _confirm(case: EmergencyCase, actor: User, note: str, now: dt.datetime) -> None:
    case.state = CaseState.CONFIRMED
    case.confirmed_at = now
    case.confirmed_by = actor
    case.escalate_at = None
    EmergencyEvent.objects.create(
        case=case, at=now, kind=Event.CONFIRMED, by=actor, text=note.strip()[:300]
    )


def emergency_close(
    *,
    case: EmergencyCase,
    actor: User,
    outcome: str,
    note: str = "",
    request: Any = None,
    now: dt.datetime | None = None,
) -> EmergencyCase:
    """What came of it; the case is closed. See the module's docstring for the rules."""
    if outcome not in CaseOutcome.values:
        raise EmergencyError(_("Choose what came of the emergency."))
    note = note.strip()
    if outcome in NEEDS_NOTE and not note:
        raise EmergencyError(_("Say what happened: a note is required for this outcome."))
    _may_handle(case, actor)
    now = now or timezone.now()
    with transaction.atomic():
        case = _locked(case)
        if case.state == CaseState.CLOSED:
            raise EmergencyError(_("This emergency is already closed."))
        if case.state == CaseState.OPEN:
            _confirm(case, actor, "", now)
        case.state = CaseState.CLOSED
        case.outcome = outcome
        case.outcome_note = note[:500]
        case.closed_at = now
        case.closed_by = actor
        case.escalate_at = None
        case.save()
        EmergencyEvent.objects.create(
            case=case, at=now, kind=Event.CLOSED, by=actor, text=note[:300]
        )
        _audit(case, actor, "close", request, outcome=outcome)
        _close_alert(case, actor, outcome, note, request)
        status = LIFE_STATUS.get(CaseOutcome(outcome))
        if status is not None:
            from tanfang.registry.services import life_status_set
            from tanfang.visits.status import status_refresh

            life_status_set(
                actor=actor,
                elder=case.elder,
                status=status,
                since=timezone.localdate(now),
                source="emergency",
            )
            status_refresh(elder_ids=[case.elder_id])
    return case


def _close_alert(case: EmergencyCase, actor: User, outcome: str, note: str, request: Any) -> None:
    """The alert that opened the case is closed with it, when still open and the closer
    handles alerts (otherwise it stays for the alert's own people)."""
    if case.alert_id is None:
        return
    from tanfang.monitoring.alerts import AlertError, alert_close
    from tanfang.monitoring.models import Alert, AlertState

    alert = Alert.objects.filter(pk=case.alert_id).exclude(state=AlertState.CLOSED).first()
    if alert is None:
        return
    with contextlib.suppress(AlertError):  # closed meanwhile, or not hers to close
        alert_close(
            alert,
            actor=actor,
            outcome=ALERT_OUTCOME.get(CaseOutcome(outcome), "emergency_handled"),
            note=(_("Emergency #%(case)s closed.") % {"case": case.pk} + " " + note)[:500],
            request=request,
        )


# -- timers --------------------------------------------------------------------------------
def emergencies_escalate(*, now: dt.datetime | None = None) -> int:
    """Climb every unconfirmed case whose timer ran out and tell the next level; returns how
    many climbed. At the district the case stops climbing and stays open."""
    now = now or timezone.now()
    due = EmergencyCase.objects.filter(state=CaseState.OPEN, escalate_at__lte=now).values_list(
        "pk", flat=True
    )
    count = 0
    for pk in list(due):
        with transaction.atomic():
            case = (
                EmergencyCase.objects.select_for_update(of=("self",))
                .select_related("elder__community")
                .get(pk=pk)
            )
            if case.state != CaseState.OPEN or case.escalate_at is None or case.escalate_at > now:
                continue
            index = LEVELS.index(CaseLevel(case.level))
            if index + 1 >= len(LEVELS):
                case.escalate_at = None
                case.save(update_fields=["escalate_at"])
                continue
            _place(case, LEVELS[index + 1], now)
            case.save(update_fields=["level", "assigned_to", "escalate_at"])
            EmergencyEvent.objects.create(
                case=case,
                at=now,
                kind=Event.ESCALATED,
                level=case.level,
                to_user=case.assigned_to,
            )
            tell_level(case, now)
            count += 1
    return count
