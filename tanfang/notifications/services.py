"""Telling people: write notifications and their outbox messages with the event that causes
them (``notify``), confirm them by link, read the inbox.

``notify`` must run inside the caller's transaction (it opens a savepoint of its own): the
messages exist exactly when their cause does, and a worker sends them after commit.
Idempotent on ``key``: notifying the same key twice writes nothing the second time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from tanfang.notifications.models import (
    Channel,
    Delivery,
    Message,
    MessageState,
    Notification,
    RecipientKind,
)
from tanfang.notifications.rules import notification_rules, quiet_until
from tanfang.notifications.templates import render


@dataclass(frozen=True)
class Address:
    """A channel and where to reach the recipient on it. ``cipher`` is the encrypted phone or
    e-mail (copied from the contact's row, never decrypted here); ``masked`` is shown."""

    channel: str
    cipher: str = ""
    masked: str = ""


@dataclass(frozen=True)
class Recipient:
    kind: str
    ref: str  # unique within the cause: "first_contact:3", "family:8", "user:12", "group:2"
    name: str
    addresses: tuple[Address, ...]
    first_contact_id: int | None = None
    family_contact_id: int | None = None
    user_id: int | None = None
    group_id: int | None = None


@dataclass(frozen=True)
class Told:
    notification: Notification
    created: bool
    # The confirmation token, only when just created and a confirmation was asked for.
    token: str | None = None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def confirm_url(token: str) -> str:
    """The link a family member opens to confirm or reply (``TANFANG_PUBLIC_URL``)."""
    base = getattr(settings, "TANFANG_PUBLIC_URL", "") or "http://127.0.0.1:8000"
    return f"{base.rstrip('/')}/n/{token}/"


def notify(
    *,
    key: str,
    topic: str,
    template: str,
    params: dict[str, Any],
    recipients: Sequence[Recipient],
    elder: Any = None,
    district_id: int | None = None,
    urgent: bool = False,
    delivery: str = Delivery.FALLBACK,
    confirm: bool = False,
    cause: tuple[str, int] | None = None,
    now: dt.datetime | None = None,
) -> list[Told]:
    """Write one notification per recipient and its outbox messages; returns what was told.

    Steps: for each recipient with at least one address, skip it if ``{key}:{ref}`` exists;
    make a confirmation token when asked (its link becomes the ``link`` parameter); render the
    district's template with the least personal data (``params`` are all the message says);
    hold non-urgent messages to outside recipients until the quiet hours end; write the
    messages: every channel at once (``Delivery.ALL``) or the first one only (``FALLBACK``,
    the outbox moves to the next when one fails). Wakes the workers after commit.
    """
    now = now or timezone.now()
    if elder is not None and district_id is None:
        district_id = elder.district_id
    rules = notification_rules(district_id)
    told: list[Told] = []
    with transaction.atomic():
        for recipient in recipients:
            if not recipient.addresses:
                continue
            full_key = f"{key}:{recipient.ref}"[:160]
            existing = Notification.objects.filter(key=full_key).first()
            if existing is not None:
                told.append(Told(existing, False))
                continue
            token = secrets.token_urlsafe(24) if confirm else None
            values = dict(params)
            if token:
                values["link"] = confirm_url(token)
            text, sms_code = render(template, values, district_id=district_id)
            notification = Notification.objects.create(
                key=full_key,
                topic=topic,
                template=template,
                params=values,
                text=text,
                elder=elder,
                district_id=district_id,
                community_id=getattr(elder, "community_id", None),
                recipient_kind=recipient.kind,
                recipient_name=recipient.name[:80],
                first_contact_id=recipient.first_contact_id,
                family_contact_id=recipient.family_contact_id,
                user_id=recipient.user_id,
                group_id=recipient.group_id,
                delivery=delivery,
                channels=[a.channel for a in recipient.addresses],
                addresses=[
                    {"channel": a.channel, "cipher": a.cipher, "masked": a.masked}
                    for a in recipient.addresses
                ],
                urgent=urgent,
                cause_type=cause[0] if cause else "",
                cause_id=cause[1] if cause else None,
                confirm_token_hash=token_hash(token) if token else "",
                escalate_at=(
                    now + dt.timedelta(minutes=rules.confirm_minutes)
                    if confirm and urgent
                    else None
                ),
                created_at=now,
            )
            outside = recipient.kind != RecipientKind.USER
            start = now if urgent or not outside else (quiet_until(now, rules) or now)
            chosen = (
                list(enumerate(recipient.addresses))
                if delivery == Delivery.ALL
                else [(0, recipient.addresses[0])]
            )
            Message.objects.bulk_create(
                [
                    message_for(
                        notification,
                        address,
                        index=index,
                        sms_code=sms_code,
                        at=start,
                        now=now,
                    )
                    for index, address in chosen
                ]
            )
            told.append(Told(notification, True, token))
        if any(t.created for t in told):
            from tanfang.notifications.wake import outbox_wake

            transaction.on_commit(outbox_wake)
    return told


def message_for(
    notification: Notification,
    address: Address,
    *,
    index: int,
    sms_code: str,
    at: dt.datetime,
    now: dt.datetime,
) -> Message:
    """The outbox row of ``notification`` on ``address``'s channel (not saved)."""
    return Message(
        notification=notification,
        key=f"{notification.key}:{address.channel}"[:200],
        channel=address.channel,
        channel_index=index,
        address_cipher=address.cipher,
        address_masked=address.masked,
        body=notification.text,
        sms_template_code=sms_code if address.channel == Channel.SMS else "",
        sms_params=notification.params if address.channel == Channel.SMS else {},
        urgent=notification.urgent,
        state=MessageState.PENDING,
        next_attempt_at=at,
        created_at=now,
    )


def notification_confirm(*, token: str, reply: str = "", now: dt.datetime | None = None) -> bool:
    """The recipient opened the link and confirmed (optionally with a reply). Stops the
    escalation. False for an unknown token. Confirming twice keeps the first time."""
    now = now or timezone.now()
    with transaction.atomic():
        found = (
            Notification.objects.select_for_update()
            .filter(confirm_token_hash=token_hash(token))
            .first()
        )
        if found is None:
            return False
        fields = []
        if found.confirmed_at is None:
            found.confirmed_at = now
            found.escalate_at = None
            fields += ["confirmed_at", "escalate_at"]
        if reply.strip():
            found.reply = reply.strip()[:500]
            found.replied_at = now
            fields += ["reply", "replied_at"]
        if fields:
            found.save(update_fields=fields)
    return True


def inbox_mark_read(
    *, user: Any, message_ids: Iterable[int], now: dt.datetime | None = None
) -> int:
    """Mark the user's own inbox messages read; returns how many changed."""
    return Message.objects.filter(
        pk__in=list(message_ids),
        channel=Channel.INBOX,
        notification__user=user,
        read_at__isnull=True,
    ).update(read_at=now or timezone.now())
