"""Telling the family: needs and hazards found at a visit, care-action results, monitoring
alerts; and escalating urgent messages nobody confirmed.

Rules (docs/notifications.md, "Family notifications"):

- Elders on the referral route (extremely poor, bereaved/disabled only-child families, and a
  district's extra categories) are not told about NEEDS: the subdistrict acts on a referral.
  Hazards, alerts and care results of other kinds are still told to the first contact.
- Everything here goes to the first contact only, by SMS; an elder without a current first
  contact tells nobody (emergencies, which tell the whole list, are ``emergencies``' job).
- Non-urgent messages wait for the end of the quiet hours (``notify`` does it); a critical
  alert is urgent, carries a confirm link and escalates when unconfirmed.
- Texts carry the least personal data: the elder by surname, the subjects found, the time.
- Every trigger is idempotent on its key (a visit correction tells only what is new).

All triggers run inside their cause's transaction (the outbox): call them there.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from tanfang.accounts.models import Role
from tanfang.notifications.models import Channel, Notification, RecipientKind, Topic
from tanfang.notifications.recipients import (
    first_contact_recipient,
    group_recipients,
    on_duty,
    staff_recipient,
)
from tanfang.notifications.rules import notification_rules
from tanfang.notifications.services import Delivery, Recipient, Told, notify

LOCAL = ZoneInfo("Asia/Shanghai")
# Two-character surnames; every other name's surname is its first character.
COMPOUND_SURNAMES = frozenset(
    {"欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "令狐", "长孙"}
)
# Needs an emergency case handles (it tells the whole contact list itself).
EMERGENCY_NEEDS = frozenset({"emergency_rescue"})
# Device alarms that open an emergency case (the case tells the family, not this module).
EMERGENCY_RULES = frozenset({"device_sos", "device_fall"})


# --------------------------------------------------------------------------- wording


def elder_label(elder: Any) -> str:
    """The elder as messages name her: surname + 老人 (``张老人``), nothing more."""
    name = (getattr(elder, "name", "") or "").strip()
    if not name:
        return "老人"
    surname = name[:2] if name[:2] in COMPOUND_SURNAMES else name[:1]
    return f"{surname}老人"


def local_time(at: dt.datetime) -> str:
    return at.astimezone(LOCAL).strftime("%m-%d %H:%M")


def local_date(at: dt.datetime | dt.date) -> str:
    day = at.astimezone(LOCAL).date() if isinstance(at, dt.datetime) else at
    return day.strftime("%m-%d")


def _labels(codes: Iterable[str], choices: Sequence[tuple[str, Any]]) -> str:
    """The Chinese labels of ``codes`` joined with 、 (unknown codes as they are)."""
    table = dict(choices)
    with translation.override("zh-hans"):
        return "、".join(str(table.get(code, code)) for code in codes)


def _in_chinese(label: Any) -> str:
    with translation.override("zh-hans"):
        return str(label)


# --------------------------------------------------------------------------- routing


def is_referral_route(elder: Any) -> bool:
    """Whether the elder's needs go to the subdistrict as referrals (DOMAIN.md): extremely
    poor, a bereaved/disabled only-child family, or a category her district adds. The
    referrals app decides (``referrals.services.route_for``); this only asks."""
    from tanfang.referrals.services import route_for

    return route_for(elder).referral


def _first_contact(elder: Any) -> list[Recipient]:
    found = first_contact_recipient(elder)
    return [found] if found is not None else []


def _already_told(topic: str, cause: tuple[str, int]) -> set[str]:
    """The subjects already told for ``cause`` (kept in the notifications' params)."""
    told: set[str] = set()
    for params in Notification.objects.filter(
        topic=topic, cause_type=cause[0], cause_id=cause[1]
    ).values_list("params", flat=True):
        told.update((params or {}).get("subjects", ()))
    return told


# --------------------------------------------------------------------------- triggers


def family_tell_needs(
    *, elder: Any, needs: Sequence[str], visit: Any, now: dt.datetime | None = None
) -> list[Told]:
    """Tell the first contact the needs a visit recorded (not for referral-route elders;
    not the emergency-rescue need, which opens an emergency case)."""
    from tanfang.visits.record_form import NEEDS

    wanted = [n for n in needs if n not in EMERGENCY_NEEDS]
    if not wanted or is_referral_route(elder):
        return []
    return _tell_visit_subjects(
        visit=visit, elder=elder, topic=Topic.NEED, subjects=wanted, labels=NEEDS, now=now
    )


def family_tell_hazards(*, visit: Any, now: dt.datetime | None = None) -> list[Told]:
    """Tell the first contact the hazards a visit found (every route; new ones only)."""
    from tanfang.visits.record_form import SAFETY_ITEMS, hazards

    found = hazards(visit.sections or {})
    if not found:
        return []
    return _tell_visit_subjects(
        visit=visit,
        elder=visit.elder,
        topic=Topic.HAZARD,
        subjects=found,
        labels=SAFETY_ITEMS,
        now=now,
    )


def _tell_visit_subjects(
    *,
    visit: Any,
    elder: Any,
    topic: str,
    subjects: Sequence[str],
    labels: Any,
    now: dt.datetime | None,
) -> list[Told]:
    """Tell the first contact the subjects (needs or hazards) of a visit not yet told; a
    correction tells only what it added. Template ``need_found`` or ``hazard_found``."""
    cause = ("visit", visit.pk)
    recipients = _first_contact(elder)
    if not recipients:
        return []
    new = [x for x in subjects if x not in _already_told(topic, cause)]
    if not new:
        return []
    plural = "needs" if topic == Topic.NEED else "hazards"
    return notify(
        key=f"{topic}:visit:{visit.pk}:r{visit.revision}",
        topic=topic,
        template=f"{topic}_found",
        params={
            "elder": elder_label(elder),
            plural: _labels(new, labels),
            "date": local_date(visit.local_date),
            "subjects": new,
        },
        recipients=recipients,
        elder=elder,
        confirm=True,
        cause=cause,
        now=now,
    )


def family_tell_visit(*, visit: Any, now: dt.datetime | None = None) -> list[Told]:
    """What a recorded (or corrected) visit tells the family: hazards, then needs."""
    from tanfang.visits.record_form import hazards, needs

    sections = visit.sections or {}
    if not hazards(sections) and not needs(sections):
        return []
    if getattr(visit.elder, "first_contact_id", 0) is None:
        return []  # nobody to tell (and no query to find that out)
    told = family_tell_hazards(visit=visit, now=now)
    told += family_tell_needs(
        elder=visit.elder, needs=needs(visit.sections or {}), visit=visit, now=now
    )
    return told


def family_tell_care_result(*, action: Any, now: dt.datetime | None = None) -> list[Told]:
    """Tell the first contact how a closed care action ended (its state, never the free
    text a worker typed). Service needs of referral-route elders are the subdistrict's."""
    from tanfang.care.rules import CareKind, CareState
    from tanfang.visits.record_form import BENEFITS, NEEDS, SAFETY_ITEMS

    if not action.closed:
        return []
    elder = action.elder
    if action.kind == CareKind.SERVICE and is_referral_route(elder):
        return []
    recipients = _first_contact(elder)
    if not recipients:
        return []
    choices = {
        CareKind.HAZARD: SAFETY_ITEMS,
        CareKind.SERVICE: NEEDS,
        CareKind.BENEFIT: BENEFITS,
    }[CareKind(action.kind)]
    what = _labels([action.subject], choices)
    outcomes = {
        CareState.REMOVED: _in_chinese(_("the hazard was removed")),
        CareState.SERVED: _in_chinese(_("the service was provided")),
        CareState.GRANTED: _in_chinese(_("the benefit was granted")),
        CareState.NOT_GRANTED: _in_chinese(_("the benefit was not granted")),
        CareState.DECLINED: _in_chinese(_("declined")),
    }
    at = action.closed_at or now or timezone.now()
    return notify(
        key=f"care_result:{action.pk}",
        topic=Topic.CARE_RESULT,
        template="care_result",
        params={
            "elder": elder_label(elder),
            "what": what or action.subject,
            "outcome": outcomes.get(CareState(action.state), action.state),
            "date": local_date(at),
        },
        recipients=recipients,
        elder=elder,
        cause=("care_action", action.pk),
        now=now,
    )


def _alert_what(alert: Any) -> str:
    from tanfang.monitoring.models import AlertKind, DeviceKind

    if alert.kind == AlertKind.DEVICE:
        kind = (alert.evidence or {}).get("device_kind", "")
        return _labels([kind], DeviceKind.choices) if kind else _in_chinese(_("a device alarm"))
    return _labels([alert.kind], AlertKind.choices)


def _severity_wording(severity: str) -> str:
    wording = {
        "critical": _("Urgent"),
        "warning": _("Please pay attention"),
        "info": _("For your information"),
    }
    return wording.get(severity, wording["info"])


def family_tell_alert(*, alert: Any, now: dt.datetime | None = None) -> list[Told]:
    """Tell the first contact that a person alert or a device alarm was raised: critical ones
    urgent with a confirm link (escalated when unconfirmed), the others after quiet hours.
    Not for technical alerts, elders without a first contact, or the alarms that open an
    emergency case (SOS, fall: the case tells everyone)."""
    if alert.technical or alert.elder_id is None or alert.rule in EMERGENCY_RULES:
        return []
    elder = alert.elder
    recipients = _first_contact(elder)
    if not recipients:
        return []
    urgent = alert.severity == "critical"
    with translation.override("zh-hans"):
        level = str(_severity_wording(alert.severity))
    return notify(
        key=f"alert:{alert.pk}",
        topic=Topic.ALERT,
        template="alert_urgent" if urgent else "alert_raised",
        params={
            "elder": elder_label(elder),
            "level": level,
            "what": _alert_what(alert),
            "time": local_time(alert.detected_at or alert.started_at),
        },
        recipients=recipients,
        elder=elder,
        urgent=urgent,
        confirm=urgent,
        cause=("alert", alert.pk),
        now=now,
    )


# --------------------------------------------------------------------------- escalation


def _cause_link(cause_type: str, cause_id: int | None) -> str:
    from django.conf import settings

    base = (getattr(settings, "TANFANG_PUBLIC_URL", "") or "http://127.0.0.1:8000").rstrip("/")
    pages = {"alert": "alerts", "emergency": "emergencies", "referral": "referrals"}
    if cause_type in pages and cause_id:
        return f"{base}/{pages[cause_type]}/{cause_id}/"
    return f"{base}/inbox/"


def notification_escalate(
    notification: Notification, *, now: dt.datetime
) -> tuple[bool, list[Told]]:
    """Escalate one unconfirmed urgent notification, once: the community worker (inbox and
    SMS) and the community's WeCom group are told. ``(claimed, told)``."""
    with transaction.atomic():
        claimed = Notification.objects.filter(
            pk=notification.pk, escalated_at__isnull=True, confirmed_at__isnull=True
        ).update(escalated_at=now)
        if not claimed:
            return False, []
        recipients: list[Recipient] = []
        worker = on_duty(Role.COMMUNITY_WORKER, notification.community_id)
        staff = staff_recipient(worker, (Channel.INBOX, Channel.SMS))
        if staff is not None:
            recipients.append(staff)
        recipients += group_recipients([notification.community_id])
        if not recipients:
            return True, []
        elder = notification.elder
        rules = notification_rules(notification.district_id)
        community = ""
        if elder is not None:
            community = elder.community.name
        with translation.override("zh-hans"):
            what = str(Topic(notification.topic).label)
        told = notify(
            key=f"escalation:{notification.pk}",
            topic=Topic.ESCALATION,
            template="unconfirmed_escalation",
            params={
                "elder": elder_label(elder) if elder is not None else "",
                "community": community,
                "what": what,
                "time": local_time(notification.created_at),
                "minutes": rules.confirm_minutes,
                "link": _cause_link(notification.cause_type, notification.cause_id),
            },
            recipients=recipients,
            elder=elder,
            district_id=notification.district_id,
            urgent=True,
            delivery=Delivery.ALL,
            cause=(
                (notification.cause_type, notification.cause_id)
                if notification.cause_type and notification.cause_id
                else ("notification", notification.pk)
            ),
            now=now,
        )
    return True, told


def notifications_escalate(*, now: dt.datetime | None = None) -> int:
    """The job: every urgent notification to the family whose confirmation time passed
    without a confirmation is escalated once (not emergencies: their case climbs on its own
    timers). Returns how many were escalated."""
    now = now or timezone.now()
    due = (
        Notification.objects.filter(
            escalate_at__isnull=False,
            escalate_at__lte=now,
            escalated_at__isnull=True,
            confirmed_at__isnull=True,
            urgent=True,
            recipient_kind__in=[RecipientKind.FIRST_CONTACT, RecipientKind.FAMILY],
        )
        # An emergency case climbs on its own timers until someone confirms it.
        .exclude(topic=Topic.EMERGENCY)
        .select_related("elder__community")
        .order_by("escalate_at", "id")
    )
    count = 0
    for notification in due[:1000]:
        claimed, _told = notification_escalate(notification, now=now)
        count += int(claimed)
    return count
