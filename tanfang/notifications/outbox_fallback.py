"""Falling back: a message that failed on its channel is followed by the message of the
notification's next channel (``Delivery.FALLBACK``), written in the same transaction as the
failure (docs/notifications.md, "Outbox: exactly once, nothing lost")."""

from __future__ import annotations

import datetime as dt

from tanfang.notifications.models import (
    Channel,
    Delivery,
    Message,
    Notification,
    RecipientKind,
)


def fall_back(ids: list[int], *, now: dt.datetime) -> int:
    """Messages that failed on their channel: for ``Delivery.FALLBACK`` notifications, write
    the message of the next channel in the notification's list (inside the caller's
    transaction; idempotent). Returns how many were written."""
    from tanfang.notifications.rules import notification_rules, quiet_until
    from tanfang.notifications.services import Address, message_for

    failed = list(
        Message.objects.filter(pk__in=ids, notification__delivery=Delivery.FALLBACK).values(
            "notification_id", "channel_index"
        )
    )
    if not failed:
        return 0
    notifications = Notification.objects.in_bulk([f["notification_id"] for f in failed])
    taken = set(
        Message.objects.filter(notification_id__in=notifications).values_list(
            "notification_id", "channel_index"
        )
    )
    fresh = []
    for row in failed:
        notification = notifications[row["notification_id"]]
        index = row["channel_index"] + 1
        addresses = notification.addresses or []
        if index >= len(addresses) or (notification.pk, index) in taken:
            continue
        address = Address(
            channel=addresses[index]["channel"],
            cipher=addresses[index].get("cipher", ""),
            masked=addresses[index].get("masked", ""),
        )
        at = now
        if not notification.urgent and notification.recipient_kind != RecipientKind.USER:
            at = quiet_until(now, notification_rules(notification.district_id)) or now
        message = message_for(notification, address, index=index, sms_code="", at=at, now=now)
        if address.channel == Channel.SMS:
            message.sms_template_code = _sms_code(notification)
        if Message.objects.filter(key=message.key).exists():
            message.key = f"{notification.key}:{index}:{address.channel}"[:200]
        fresh.append(message)
    Message.objects.bulk_create(fresh)
    return len(fresh)


def _sms_code(notification: Notification) -> str:
    """The SMS template code of the notification's template in its district (as ``notify``
    chose it for the first SMS)."""
    from tanfang.notifications.templates import TemplateError, render

    try:
        return render(
            notification.template, notification.params, district_id=notification.district_id
        )[1]
    except TemplateError:
        return ""
