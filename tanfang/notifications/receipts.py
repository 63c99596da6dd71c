"""Delivery reports of SMS: "sent" means the provider accepted a message; the carrier's
report, read back with Alibaba's ``QuerySendDetails``, makes it ``delivered`` or ``failed``.
A message the carrier could not deliver (a phone switched off or out of service) fails like
one the provider refused: the notification falls back to its next channel at once.

Steps of ``sms_receipts_check`` (the worker's ``sms-receipts`` job, every minute):

1. take up to ``limit`` SMS still ``sent``, accepted between 30 s (the provider lists a
   message a few seconds after accepting it) and 48 h ago, those asked about longest ago first
   (``receipt_checked_at``), so that no message waits behind the others;
2. ask the provider about them, one query per number and day (no database transaction open);
3. in one transaction: mark the delivered, mark the failed with the carrier's code and a
   ``MessageAttempt`` (``undelivered``), write their fallback messages, and note the time
   every one was asked about; wake the outbox after commit when a fallback was written.

A message with no report after 48 h stays ``sent``: the provider accepted it and the carrier
never said otherwise.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from tanfang.core.crypto import decrypt
from tanfang.notifications.channels.registry import channel_for
from tanfang.notifications.models import Channel, Message, MessageAttempt, MessageState

SHANGHAI = ZoneInfo("Asia/Shanghai")
WINDOW = dt.timedelta(hours=48)
SETTLE = dt.timedelta(seconds=30)
ASK_AGAIN = dt.timedelta(minutes=5)


def sms_receipts_check(*, now: dt.datetime | None = None, limit: int = 500) -> int:
    """Read the carriers' reports of sent SMS; returns how many were settled (delivered or
    failed)."""
    now = now or timezone.now()
    backend = channel_for(Channel.SMS)
    receipts = getattr(backend, "receipts", None)
    if receipts is None:
        return 0
    rows = list(
        Message.objects.filter(
            Q(receipt_checked_at__isnull=True) | Q(receipt_checked_at__lte=now - ASK_AGAIN),
            channel=Channel.SMS,
            state=MessageState.SENT,
            sent_at__gte=now - WINDOW,
            sent_at__lte=now - SETTLE,
        )
        .order_by(F("receipt_checked_at").asc(nulls_first=True), "sent_at", "id")
        .values("pk", "key", "address_cipher", "batch_key", "sent_at")[:limit]
    )
    if not rows:
        return 0
    answers = receipts(
        [(r["key"], decrypt(r["address_cipher"]), r["batch_key"], _day(r["sent_at"])) for r in rows]
    )
    delivered = [r["pk"] for r in rows if answers.get(r["key"]) == "delivered"]
    failed = {
        r["pk"]: str(answers[r["key"]])
        for r in rows
        if str(answers.get(r["key"]) or "").startswith("failed")
    }
    with transaction.atomic():
        Message.objects.filter(pk__in=[r["pk"] for r in rows]).update(receipt_checked_at=now)
        Message.objects.filter(pk__in=delivered, state=MessageState.SENT).update(
            state=MessageState.DELIVERED, delivered_at=now
        )
        gone = []
        for pk, answer in failed.items():
            code = answer.partition(":")[2] or "undelivered"
            if Message.objects.filter(pk=pk, state=MessageState.SENT).update(
                state=MessageState.FAILED, last_error=f"carrier: {code}"[:300]
            ):
                gone.append(pk)
        MessageAttempt.objects.bulk_create(
            [
                MessageAttempt(message_id=pk, at=now, outcome="undelivered", error=failed[pk])
                for pk in gone
            ]
        )
        from tanfang.notifications.outbox_fallback import fall_back

        if gone and fall_back(gone, now=now):
            from tanfang.notifications.wake import outbox_wake

            transaction.on_commit(outbox_wake)
    return len(delivered) + len(failed)


def _day(at: dt.datetime | None) -> dt.date:
    return (at or timezone.now()).astimezone(SHANGHAI).date()
