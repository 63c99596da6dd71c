"""Telling people about an emergency: the contact list (first contact, family contacts) on
every channel at once, the staff on duty (inbox, SMS, the area's WeCom group), and one
``notified`` timeline line per outbox message written. Runs inside the case's transaction;
``notifications.services.notify`` writes the outbox rows and wakes the workers on commit.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from tanfang.accounts.models import Role, User
from tanfang.emergencies.models import CaseLevel, EmergencyCase, EmergencyEvent, Trigger
from tanfang.notifications.models import Delivery, Message, Topic
from tanfang.notifications.recipients import (
    family_recipients,
    group_recipients,
    staff_recipient,
)
from tanfang.notifications.recipients import on_duty as staff_of
from tanfang.notifications.services import Told, notify
from tanfang.registry.models import Elder, Gender

NOTIFIED = "notified"


def elder_label(elder: Elder) -> str:
    """The elder as messages name her: surname and honorific only."""
    surname = elder.name[:1]
    with translation.override("zh-hans"):
        if elder.gender == Gender.FEMALE:
            return _("Grandma %(surname)s") % {"surname": surname}
        return _("Grandpa %(surname)s") % {"surname": surname}


def trigger_label(trigger: str) -> str:
    try:
        return str(Trigger(trigger).label)
    except ValueError:
        return trigger


def case_url(case: EmergencyCase) -> str:
    base = getattr(settings, "TANFANG_PUBLIC_URL", "") or "http://127.0.0.1:8000"
    return base.rstrip("/") + reverse("emergency-detail", args=[case.pk])


def _record_told(case: EmergencyCase, told: list[Told], now: dt.datetime) -> None:
    """One ``notified`` line per message written (who, which channel); the page shows each
    message's later state (sent, delivered, failed) from the outbox row itself."""
    created = {t.notification.pk: t.notification for t in told if t.created}
    if not created:
        return
    messages = Message.objects.filter(notification_id__in=list(created)).order_by("id")
    EmergencyEvent.objects.bulk_create(
        [
            EmergencyEvent(
                case=case,
                at=now,
                kind=NOTIFIED,
                to_user_id=created[m.notification_id].user_id,
                level=case.level,
                message=m,
                text=created[m.notification_id].recipient_name[:300],
            )
            for m in messages
        ]
    )


def _params(case: EmergencyCase, now: dt.datetime) -> dict[str, Any]:
    elder = case.elder
    responder = case.assigned_to or staff_of(Role.COMMUNITY_WORKER, elder.community_id)
    with translation.override("zh-hans"):
        what = trigger_label(case.trigger)
    return {
        "elder": elder_label(elder),
        "what": what,
        "time": timezone.localtime(now).strftime("%H:%M"),
        "community": elder.community.name,
        "phone": (responder.phone if responder is not None and responder.phone else "")
        or elder.community.name,
    }


def tell_on_open(case: EmergencyCase, now: dt.datetime) -> None:
    elder = case.elder
    params = _params(case, now)
    told = notify(
        key=f"emergency:{case.pk}:family",
        topic=Topic.EMERGENCY,
        template="emergency_family",
        params=params,
        recipients=family_recipients(elder),
        elder=elder,
        urgent=True,
        delivery=Delivery.ALL,
        confirm=True,
        cause=("emergency", case.pk),
        now=now,
    )
    staff: list[User] = []
    for person in (case.assigned_to, staff_of(Role.COMMUNITY_WORKER, elder.community_id)):
        if person is not None and person.pk not in {s.pk for s in staff}:
            staff.append(person)
    told += notify(
        key=f"emergency:{case.pk}:staff",
        topic=Topic.EMERGENCY,
        template="emergency_staff",
        params={**params, "link": case_url(case)},
        recipients=[
            *(r for r in map(staff_recipient, staff) if r is not None),
            *group_recipients([elder.community_id]),
        ],
        elder=elder,
        urgent=True,
        delivery=Delivery.ALL,
        cause=("emergency", case.pk),
        now=now,
    )
    _record_told(case, told, now)


def tell_level(case: EmergencyCase, now: dt.datetime) -> None:
    """The case climbed: tell the person now on duty and the level's WeCom group."""
    area_id = {
        CaseLevel.COMMUNITY: case.community_id,
        CaseLevel.SUBDISTRICT: case.subdistrict_id,
        CaseLevel.DISTRICT: case.district_id,
    }.get(CaseLevel(case.level))
    recipients = [
        *([r] if (r := staff_recipient(case.assigned_to)) is not None else []),
        *group_recipients([area_id]),
    ]
    told = notify(
        key=f"emergency:{case.pk}:level:{case.level}",
        topic=Topic.EMERGENCY,
        template="emergency_staff",
        params={**_params(case, now), "link": case_url(case)},
        recipients=recipients,
        elder=case.elder,
        urgent=True,
        delivery=Delivery.ALL,
        cause=("emergency", case.pk),
        now=now,
    )
    _record_told(case, told, now)
