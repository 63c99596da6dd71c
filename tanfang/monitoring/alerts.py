"""Every change of a monitoring alert: raise, assign, escalate, acknowledge, resolve, close.

Business rules in plain functions (docs/monitoring.md, "Alerts"):

- An alert is one episode, identified by ``episode_key``; raising the same episode twice
  returns the first alert (``created`` False) and writes nothing.
- A person alert goes first to the elder's visitor (or her substitute), else the community
  worker; a technical alert (data silence) goes to the data partner's contact, never to them.
- Elders away, in hospital, moved away, in an institution or deceased get no person alerts
  from meters (the home is quiet); device alarms (someone pressed SOS) and continuous use
  (gas left on) are always raised.
- Only a user who handles alerts and sees the alert (``selectors.alerts_visible_to``) may
  acknowledge or close it; a technical alert closes only as a false alarm or all well.
- Unacknowledged alerts climb visitor -> community worker -> subdistrict on the district's
  timers; acknowledging stops the climb. Activity resuming resolves the alert (it says so in
  its history) but a person still closes it with an outcome, which is counted.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from tanfang.accounts.models import Role, User
from tanfang.accounts.roles import Capability, can
from tanfang.audit.models import AuditAction
from tanfang.audit.services import audit_record
from tanfang.monitoring.models import (
    Absence,
    Alert,
    AlertAction,
    AlertEvent,
    AlertKind,
    AlertLevel,
    AlertOutcome,
    AlertState,
    Device,
    DeviceEvent,
    DistrictRules,
    Meter,
    Severity,
)
from tanfang.registry.models import Elder, LifeStatus, VisitorAssignment

DEVICE_ALARMS = {"sos", "fall", "smoke", "gas"}
# Kinds that say something about the person (the home is quiet): not raised while the elder is
# known to be elsewhere. Continuous use (gas left on, a tap running) is raised whoever is home.
PERSON_KINDS = {AlertKind.INACTIVITY, AlertKind.MISSED_ROUTINE, AlertKind.LOW_USAGE}
# The rule book's severities (detection/config.py) on the alert's three-step scale.
RULE_SEVERITY: dict[str, str] = {
    "technical": Severity.INFO,
    "low": Severity.INFO,
    "medium": Severity.WARNING,
    "high": Severity.CRITICAL,
    "critical": Severity.CRITICAL,
}
# What a technical alert (a meter that stopped reporting) can be closed with.
TECHNICAL_OUTCOMES = {AlertOutcome.FALSE_ALARM, AlertOutcome.ALL_WELL}
NOT_HOME_STATUSES = {
    LifeStatus.IN_HOSPITAL,
    LifeStatus.DECEASED,
    LifeStatus.MOVED_AWAY,
    LifeStatus.IN_INSTITUTION,
}
NEXT_LEVEL: dict[str, str] = {
    AlertLevel.VISITOR: AlertLevel.COMMUNITY,
    AlertLevel.COMMUNITY: AlertLevel.SUBDISTRICT,
}


class AlertError(Exception):
    """A change of an alert that is not allowed, with a message for the user."""


@dataclass(frozen=True)
class Timers:
    visitor_minutes: int
    community_minutes: int
    remote_visit_counts: bool


def severity_of(severity: str) -> str:
    """The alert's severity (info, warning, critical) for a rule book severity (low, medium,
    high, critical, technical); a stored severity is kept as it is."""
    if severity in Severity.values:
        return severity
    try:
        return RULE_SEVERITY[severity]
    except KeyError:
        raise AlertError(f"unknown severity {severity!r}") from None


def district_rules(district_id: int | None) -> DistrictRules:
    """The district's row, else the city's default row, else the built-in defaults."""
    found = DistrictRules.objects.filter(Q(area_id=district_id) | Q(area=None))
    rows = {r.area_id: r for r in found}
    return rows.get(district_id) or rows.get(None) or DistrictRules()


def timers_for(elder: Elder | None) -> Timers:
    rules = district_rules(elder.district_id if elder is not None else None)
    return Timers(
        rules.escalate_visitor_minutes,
        rules.escalate_community_minutes,
        rules.remote_visit_counts,
    )


def elder_at_home(elder: Elder, on: dt.date) -> bool:
    """False when the elder is known not to be at home: life status or a recorded absence."""
    if elder.life_status in NOT_HOME_STATUSES:
        return False
    return not Absence.objects.filter(
        Q(ends_on__isnull=True) | Q(ends_on__gte=on), elder=elder, starts_on__lte=on
    ).exists()


def visitor_of(elder: Elder, on: dt.date) -> User | None:
    """The elder's visitor on ``on``, or the substitute covering for her that day."""
    from tanfang.visits.models import Substitution

    assignment = (
        VisitorAssignment.objects.filter(
            Q(ends_on__isnull=True) | Q(ends_on__gte=on), elder=elder, starts_on__lte=on
        )
        .select_related("visitor")
        .order_by("-starts_on", "-id")
        .first()
    )
    if assignment is None or not assignment.visitor.is_active:
        return None
    cover = (
        Substitution.objects.filter(visitor=assignment.visitor, starts_on__lte=on, ends_on__gte=on)
        .select_related("substitute")
        .order_by("-starts_on")
        .first()
    )
    if cover is not None and cover.substitute.is_active:
        return cover.substitute
    return assignment.visitor


def _staff_of(role: str, area_id: int | None) -> User | None:
    from tanfang.notifications.recipients import on_duty

    return on_duty(role, area_id)


def responsible(alert: Alert, level: str, on: dt.date) -> User | None:
    """Who an alert goes to at ``level`` (None when nobody holds that post)."""
    if level == AlertLevel.PARTNER:
        return alert.partner.contact if alert.partner is not None else None
    elder = alert.elder
    if elder is None:
        return None
    if level == AlertLevel.VISITOR:
        return visitor_of(elder, on)
    if level == AlertLevel.COMMUNITY:
        return _staff_of(Role.COMMUNITY_WORKER, elder.community_id)
    return _staff_of(Role.SUBDISTRICT_STAFF, elder.subdistrict_id)


def _assign(alert: Alert, level: str, now: dt.datetime, timers: Timers) -> None:
    """Put the alert at ``level`` (or the first level above it where someone is on duty)."""
    person = responsible(alert, level, timezone.localdate(now))
    while person is None and level in NEXT_LEVEL:
        level = NEXT_LEVEL[level]
        person = responsible(alert, level, timezone.localdate(now))
    alert.level = level
    alert.assigned_to = person
    waits: dict[str, int] = {
        AlertLevel.VISITOR: timers.visitor_minutes,
        AlertLevel.COMMUNITY: timers.community_minutes,
    }
    wait = waits.get(level)
    alert.escalate_at = now + dt.timedelta(minutes=wait) if wait else None


@dataclass(frozen=True)
class Raise:
    """What a detector found: enough to store, assign and explain an alert."""

    key: str
    kind: str
    rule: str
    severity: str
    started_at: dt.datetime
    detected_at: dt.datetime
    evidence: dict[str, Any]
    meter: Meter | None = None
    device: Device | None = None
    elder: Elder | None = None


def alert_raise(found: Raise, *, now: dt.datetime | None = None) -> tuple[Alert | None, bool]:
    """Store and assign one episode; ``(alert, created)``. Person alerts of an elder who is
    not at home are not raised: ``(None, False)``."""
    now = now or timezone.now()
    existing = Alert.objects.filter(episode_key=found.key).first()
    if existing is not None:
        return existing, False
    source = found.meter or found.device
    elder = found.elder or (source.elder if source is not None else None)
    technical = found.kind == AlertKind.DATA_SILENCE
    person_alert = found.kind in PERSON_KINDS
    if person_alert and (elder is None or not elder_at_home(elder, timezone.localdate(now))):
        return None, False
    alert = Alert(
        episode_key=found.key,
        elder=elder,
        community_id=elder.community_id if elder is not None else None,
        meter=found.meter,
        device=found.device,
        partner=source.partner if source is not None else None,
        kind=found.kind,
        rule=found.rule,
        severity=severity_of(found.severity),
        technical=technical,
        started_at=found.started_at,
        detected_at=found.detected_at,
        evidence=found.evidence,
    )
    timers = timers_for(elder)
    _assign(alert, AlertLevel.PARTNER if technical else AlertLevel.VISITOR, now, timers)
    try:
        with transaction.atomic():
            alert.save()
            AlertEvent.objects.create(alert=alert, action=AlertAction.RAISED, at=now)
            AlertEvent.objects.create(
                alert=alert,
                action=AlertAction.ASSIGNED,
                at=now,
                level=alert.level,
                to_user=alert.assigned_to,
            )
            # The first contact is told in this transaction (the outbox); not for technical
            # alerts, elders without a first contact, or SOS/fall (the emergency case tells).
            from tanfang.notifications.family import family_tell_alert

            family_tell_alert(alert=alert, now=now)
    except IntegrityError:
        # Raised by another worker at the same moment: theirs is the alert.
        return Alert.objects.get(episode_key=found.key), False
    return alert, True


def device_alert_raise(
    device: Device,
    *,
    kind: str,
    at: dt.datetime,
    message_id: str,
    payload: dict[str, Any] | None = None,
    received_at: dt.datetime | None = None,
) -> tuple[Alert | None, bool]:
    """Store a device event (idempotent on ``message_id``) and, for an alarm, raise its alert
    at once, in one transaction. Other events (heartbeat, battery) only mark the device seen."""
    received_at = received_at or timezone.now()
    with transaction.atomic():
        event, _new = DeviceEvent.objects.get_or_create(
            message_id=message_id,
            defaults={
                "device": device,
                "kind": kind,
                "at": at,
                "received_at": received_at,
                "payload": payload or {},
            },
        )
        Device.objects.filter(pk=device.pk).update(last_seen_at=received_at)
        if kind not in DEVICE_ALARMS:
            return None, False
        raised = alert_raise(
            Raise(
                # In UTC: a re-delivery reads the event's time back from the database.
                key=f"{device.device_id}:device_{kind}:{event.at.astimezone(dt.UTC).isoformat()}",
                kind=AlertKind.DEVICE,
                rule=f"device_{kind}",
                severity="critical",
                started_at=event.at,
                detected_at=received_at,
                evidence={"device_kind": kind, "message_id": message_id, **(payload or {})},
                device=device,
            ),
            now=received_at,
        )
        # Danger to life (issue 5): an SOS or fall opens the emergency case in this same
        # transaction, so its outbox messages leave as soon as it commits.
        from tanfang.emergencies.triggers import after_device_alarm

        after_device_alarm(raised[0], kind=kind, created=raised[1], now=received_at)
        return raised


def _event(alert: Alert, action: str, *, at: dt.datetime, by: Any = None, note: str = "") -> None:
    AlertEvent.objects.create(
        alert=alert,
        action=action,
        at=at,
        level=alert.level,
        to_user=alert.assigned_to if action in (AlertAction.ESCALATED,) else None,
        by=by if getattr(by, "pk", None) else None,
        note=note[:500],
    )


def _locked(alert: Alert) -> Alert:
    return Alert.objects.select_for_update().get(pk=alert.pk)


def _may_handle(alert: Alert, actor: Any) -> None:
    """Only someone who handles alerts and sees this one may acknowledge or close it."""
    from tanfang.monitoring.selectors import alerts_visible_to

    if (
        not can(actor, Capability.HANDLE_ALERTS)
        or not alerts_visible_to(actor).filter(pk=alert.pk).exists()
    ):
        raise AlertError(_("You cannot act on this alert."))


def alert_acknowledge(alert: Alert, *, actor: User, note: str = "", request: Any = None) -> Alert:
    """The person on duty has seen the alert and is acting: the climb stops."""
    _may_handle(alert, actor)
    now = timezone.now()
    with transaction.atomic():
        alert = _locked(alert)
        if alert.state != AlertState.OPEN:
            raise AlertError(_("This alert has already been acknowledged or closed."))
        alert.state = AlertState.ACKNOWLEDGED
        alert.acknowledged_at = now
        alert.acknowledged_by = actor
        alert.escalate_at = None
        alert.save(update_fields=["state", "acknowledged_at", "acknowledged_by", "escalate_at"])
        _event(alert, AlertAction.ACKNOWLEDGED, at=now, by=actor, note=note)
        _audit(alert, actor, "acknowledge", request)
    return alert


def alert_close(
    alert: Alert, *, actor: User, outcome: str, note: str = "", request: Any = None
) -> Alert:
    """Record what was found; the alert is closed and its outcome counted. Closing an alert
    nobody acknowledged acknowledges it too. A technical alert (a meter that stopped
    reporting) closes only as a false alarm or all well: it says nothing about the person.
    Hospitalised and found deceased set the elder's life status (and so her visit
    obligations) through the registry's service."""
    if outcome not in AlertOutcome.values:
        raise AlertError(_("Choose what was found."))
    _may_handle(alert, actor)
    now = timezone.now()
    with transaction.atomic():
        alert = _locked(alert)
        if alert.state == AlertState.CLOSED:
            raise AlertError(_("This alert is already closed."))
        if alert.technical and outcome not in TECHNICAL_OUTCOMES:
            raise AlertError(
                _("A meter that stopped reporting is closed as a false alarm or as all well.")
            )
        if alert.state == AlertState.OPEN:
            alert.acknowledged_at = now
            alert.acknowledged_by = actor
            _event(alert, AlertAction.ACKNOWLEDGED, at=now, by=actor)
        alert.state = AlertState.CLOSED
        alert.outcome = outcome
        alert.outcome_note = note
        alert.closed_at = now
        alert.closed_by = actor
        alert.escalate_at = None
        alert.save()
        _event(alert, AlertAction.CLOSED, at=now, by=actor, note=note)
        _audit(alert, actor, "close", request, outcome=outcome)
        if alert.elder is not None and outcome == AlertOutcome.NEEDED_HELP:
            # Referral-route elders' needs go to the subdistrict (docs/referrals.md).
            from tanfang.referrals.routing import needs_route
            from tanfang.referrals.rules import ALERT_HELP

            needs_route(
                actor=actor,
                elder=alert.elder,
                needs=[(ALERT_HELP, note[:300])],
                source="alert",
                alert=alert,
            )
        if alert.elder is not None and outcome in (
            AlertOutcome.HOSPITALISED,
            AlertOutcome.FOUND_DECEASED,
        ):
            from tanfang.registry.services import life_status_set

            status = (
                LifeStatus.IN_HOSPITAL
                if outcome == AlertOutcome.HOSPITALISED
                else LifeStatus.DECEASED
            )
            life_status_set(
                actor=actor,
                elder=alert.elder,
                status=status,
                since=timezone.localdate(now),
                source="monitoring alert",
            )
            from tanfang.visits.status import status_refresh

            status_refresh(elder_ids=[alert.elder.pk])
    return alert


def alert_resolve(alert: Alert, *, at: dt.datetime, note: str = "") -> bool:
    """Activity resumed (or the meter reports again): say so and stop the climb. A person
    still closes the alert with what was found. Idempotent: False when already resolved."""
    with transaction.atomic():
        alert = _locked(alert)
        if alert.resolved_at is not None:
            return False
        alert.resolved_at = at
        alert.escalate_at = None
        alert.save(update_fields=["resolved_at", "escalate_at"])
        _event(alert, AlertAction.RESOLVED, at=at, note=note)
    return True


def alerts_escalate(*, now: dt.datetime | None = None) -> int:
    """Climb every open alert whose timer ran out; returns how many climbed."""
    now = now or timezone.now()
    due = Alert.objects.filter(state=AlertState.OPEN, escalate_at__lte=now).values_list(
        "pk", flat=True
    )
    count = 0
    for pk in list(due):
        with transaction.atomic():
            alert = (
                Alert.objects.select_for_update(of=("self",))
                .select_related("elder", "partner")
                .get(pk=pk)
            )
            waiting = alert.escalate_at
            if alert.state != AlertState.OPEN or waiting is None or waiting > now:
                continue
            nxt = NEXT_LEVEL.get(alert.level)
            if nxt is None:
                alert.escalate_at = None
                alert.save(update_fields=["escalate_at"])
                continue
            _assign(alert, nxt, now, timers_for(alert.elder))
            alert.save(update_fields=["level", "assigned_to", "escalate_at"])
            _event(
                alert,
                AlertAction.ESCALATED,
                at=now,
                note=_("Not acknowledged in time"),
            )
            # A critical person alert nobody answered at the community: an emergency.
            from tanfang.emergencies.triggers import after_alert_escalated

            after_alert_escalated(alert, now=now)
            count += 1
    return count


def _audit(alert: Alert, actor: Any, what: str, request: Any, **details: Any) -> None:
    if alert.elder is None:
        return
    audit_record(
        actor=actor,
        action=AuditAction.UPDATE_RECORD,
        elder=alert.elder,
        reason=f"alert {what}",
        details={"alert": alert.pk, "rule": alert.rule, **details},
        request=request,
    )
