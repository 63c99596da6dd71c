"""The outbox dispatcher: claims, retries with backoff, falling back to the next channel, rate
limits, messages in doubt after a crash, and two workers never sending one message twice.

Against the real database (SQLite and PostgreSQL) and the local SMS, SMTP and inbox channels;
time moves by passing ``now`` to one pass of ``outbox_run``.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from tanfang.core.crypto import encrypt
from tanfang.notifications import ratelimit
from tanfang.notifications.channels.base import Outgoing
from tanfang.notifications.channels.registry import channel_for, channels_reset
from tanfang.notifications.models import (
    Channel,
    Delivery,
    Message,
    MessageAttempt,
    MessageState,
    Notification,
    RecipientKind,
    Topic,
)
from tanfang.notifications.outbox import URGENT, outbox_run
from tanfang.notifications.outbox_claim import claim
from tanfang.notifications.receipts import sms_receipts_check
from tanfang.notifications.services import Address, Recipient, notify
from tanfang.notifications.sinks.sms_server import DEMO_ACCESS_KEY_ID, DEMO_SECRET, SmsSink
from tanfang.notifications.sinks.smtp_server import SmtpSink

PARAMS = {"elder": "王奶奶", "what": "SOS", "time": "10:00", "phone": "110", "link": "http://x/"}


@pytest.fixture
def sms(settings: Any) -> Iterator[SmsSink]:
    sink = SmsSink.start()
    settings.SMS_ENDPOINT = sink.endpoint
    settings.SMS_PROTOCOL = "http"
    settings.SMS_ACCESS_KEY_ID = DEMO_ACCESS_KEY_ID
    settings.SMS_ACCESS_KEY_SECRET = DEMO_SECRET
    settings.SMS_RATE = 0
    settings.REDIS_URL = ""
    channels_reset()
    yield sink
    sink.stop()
    channels_reset()


@pytest.fixture
def smtp(settings: Any) -> Iterator[SmtpSink]:
    sink = SmtpSink.start()
    settings.SMTP_HOST = "127.0.0.1"
    settings.SMTP_PORT = sink.port
    channels_reset()
    yield sink
    sink.stop()
    channels_reset()


def phone(i: int) -> str:
    return f"139{i:08d}"


def tell(
    i: int,
    *,
    channels: tuple[str, ...] = ("sms",),
    urgent: bool = True,
    delivery: str = Delivery.FALLBACK,
    user_id: int | None = None,
    to: str | None = None,
) -> Notification:
    addresses = []
    for name in channels:
        if name == Channel.SMS:
            addresses.append(Address(name, encrypt(to or phone(i)), "139****"))
        elif name == Channel.EMAIL:
            addresses.append(Address(name, encrypt(f"family{i}@example.cn"), "f***@example.cn"))
        else:
            addresses.append(Address(name))
    kind = RecipientKind.USER if user_id else RecipientKind.FIRST_CONTACT
    told = notify(
        key=f"t{uuid.uuid4().hex[:8]}-{i}",
        topic=Topic.EMERGENCY,
        template="emergency_family",
        params=PARAMS,
        recipients=[Recipient(kind, f"r:{i}", "儿子", tuple(addresses), user_id=user_id)],
        urgent=urgent,
        delivery=delivery,
    )
    return told[0].notification


def once(worker: str = "w1", *, later: float = 0.0, **kw: Any) -> int:
    """One pass of the outbox, ``later`` seconds from now."""
    at = timezone.now() + dt.timedelta(seconds=later)
    return outbox_run(worker=worker, max_seconds=0, in_flight=1, now=at, **kw)


def states() -> Counter[str]:
    return Counter(Message.objects.values_list("state", flat=True))


def outcomes(message: Message) -> list[str]:
    return list(message.tries.values_list("outcome", flat=True))


# --------------------------------------------------------------------------- sending


@pytest.mark.django_db
def test_sms_go_out_in_batches_once(sms: SmsSink) -> None:
    for i in range(150):
        tell(i)
    assert once() == 150
    assert states() == {MessageState.SENT: 150}
    recorded = sms.messages()
    assert len(recorded) == 150 == len({r["phone"] for r in recorded})
    assert len({r["out_id"] for r in recorded}) == 2  # 100 + 50 in two SendBatchSms
    first = Message.objects.get(address_masked="139****", key__endswith="-0:r:0:sms")
    assert first.provider_id and first.sent_at and first.attempts == 1
    assert first.lease_until is None
    assert recorded[0]["out_id"] in set(Message.objects.values_list("batch_key", flat=True))
    assert MessageAttempt.objects.filter(outcome="sent").count() == 150
    assert once() == 0 and len(sms.messages()) == 150


@pytest.mark.django_db
def test_urgent_before_calm_and_not_before_due(sms: SmsSink) -> None:
    calm = tell(1, urgent=False)
    urgent = tell(2)
    Message.objects.filter(notification=calm).update(
        next_attempt_at=timezone.now() + dt.timedelta(hours=1)
    )
    once()
    assert [r["phone"] for r in sms.messages()] == [phone(2)]
    assert Message.objects.get(notification=urgent).state == MessageState.SENT
    assert Message.objects.get(notification=calm).state == MessageState.PENDING
    once(later=3601)
    assert [r["phone"] for r in sms.messages()] == [phone(2), phone(1)]


@pytest.mark.django_db
def test_inbox_messages_are_delivered(sms: SmsSink) -> None:
    from tests.factories import make_tree, make_user

    tree = make_tree()
    worker = make_user("visitor", tree.communities[0])
    tell(1, channels=("inbox",), user_id=worker.pk)
    once()
    message = Message.objects.get()
    assert message.state == MessageState.DELIVERED and message.delivered_at is not None


# --------------------------------------------------------------------------- retries


@pytest.mark.django_db
def test_a_transient_error_is_retried_with_backoff(sms: SmsSink) -> None:
    tell(1)
    sms.add_fault(fail_next=1, code="isp.SYSTEM_ERROR", action="SendBatchSms")
    before = timezone.now()
    once()
    message = Message.objects.get()
    assert (message.state, message.attempts) == (MessageState.PENDING, 1)
    wait = (message.next_attempt_at - before).total_seconds()
    assert URGENT.first * 0.8 <= wait <= URGENT.first * 1.2 + 5
    assert once() == 0  # not due yet
    once(later=URGENT.first * 1.2 + 5)
    message.refresh_from_db()
    assert (message.state, message.attempts) == (MessageState.SENT, 2)
    assert outcomes(message) == ["retry", "sent"]
    assert len(sms.messages()) == 1


@pytest.mark.django_db
def test_backoff_doubles_and_gives_up_then_falls_back(sms: SmsSink, smtp: SmtpSink) -> None:
    notification = tell(1, channels=("sms", "email"))
    sms.add_fault(fail_next=10, code="isp.SYSTEM_ERROR", action="SendBatchSms")
    waits = []
    later = 0.0
    for _ in range(URGENT.tries):
        start = timezone.now() + dt.timedelta(seconds=later)
        once(later=later)
        message = Message.objects.get(channel="sms")
        if message.state == MessageState.PENDING:
            waits.append((message.next_attempt_at - start).total_seconds())
            later += waits[-1] + 1
    assert message.state == MessageState.FAILED and "gave up after 3 tries" in message.last_error
    assert len(waits) == 2 and waits[1] > waits[0]
    email = Message.objects.get(channel="email")
    assert (email.notification_id, email.channel_index) == (notification.pk, 1)
    once(later=later)
    email.refresh_from_db()
    assert email.state == MessageState.SENT
    assert [m["to"] for m in smtp.messages()] == ["family1@example.cn"]
    assert sms.messages() == []


@pytest.mark.django_db
def test_a_permanent_refusal_falls_back_at_once(sms: SmsSink) -> None:
    from tests.factories import make_tree, make_user

    worker = make_user("visitor", make_tree().communities[0])
    tell(1, channels=("sms", "inbox"), user_id=worker.pk)
    sms.add_fault(fail_next=1, code="isv.MOBILE_NUMBER_ILLEGAL", action="SendBatchSms")
    once()  # the fallback is due at once: the same pass delivers it
    assert dict(Message.objects.values_list("channel", "state")) == {
        "sms": MessageState.FAILED,
        "inbox": MessageState.DELIVERED,
    }
    inbox = Message.objects.get(channel="inbox")
    assert (inbox.channel_index, inbox.address_cipher) == (1, "")


@pytest.mark.django_db
def test_a_refused_mail_falls_back_to_sms_with_the_template(sms: SmsSink, smtp: SmtpSink) -> None:
    tell(1, channels=("email", "sms"))
    smtp.reject("family1@example.cn", 550)
    once()
    assert sorted(Message.objects.values_list("channel", "state")) == [
        ("email", MessageState.FAILED),
        ("sms", MessageState.SENT),
    ]
    (text,) = sms.messages()
    assert (text["phone"], text["template_code"]) == (phone(1), "SMS_TF_EMERGENCY_FAMILY")
    assert text["params"]["elder"] == "王奶奶"


@pytest.mark.django_db
def test_every_channel_at_once_does_not_fall_back(sms: SmsSink, smtp: SmtpSink) -> None:
    tell(1, channels=("sms", "email"), delivery=Delivery.ALL)
    sms.add_fault(fail_next=1, code="isv.MOBILE_NUMBER_ILLEGAL", action="SendBatchSms")
    once()
    assert sorted(Message.objects.values_list("channel", "state")) == [
        ("email", MessageState.SENT),
        ("sms", MessageState.FAILED),
    ]


@pytest.mark.django_db
def test_a_channel_not_configured_falls_back(settings: Any, smtp: SmtpSink) -> None:
    settings.SMS_ENDPOINT = ""
    channels_reset()
    tell(1, channels=("sms", "email"))
    once()
    sms = Message.objects.get(channel="sms")
    assert (sms.state, sms.last_error) == (MessageState.FAILED, "channel not configured")
    once()
    assert Message.objects.get(channel="email").state == MessageState.SENT
    assert len(smtp.messages()) == 1


@pytest.mark.django_db
def test_rate_limited_is_not_counted(sms: SmsSink) -> None:
    tell(1)
    sms.add_fault(fail_next=5, code="isv.BUSINESS_LIMIT_CONTROL", action="SendBatchSms")
    later = 0.0
    for _ in range(5):
        once(later=later)
        message = Message.objects.get()
        assert (message.state, message.attempts) == (MessageState.PENDING, 0)
        later = (message.next_attempt_at - timezone.now()).total_seconds() + 0.1
    once(later=later)
    message = Message.objects.get()
    assert (message.state, message.attempts) == (MessageState.SENT, 1)
    assert outcomes(message) == ["rate_limited"] * 5 + ["sent"]


@pytest.mark.django_db
def test_non_urgent_messages_to_one_recipient_wait_beyond_the_hourly_limit(
    sms: SmsSink, settings: Any
) -> None:
    settings.OUTBOX_RECIPIENT_PER_HOUR = 3
    for i in range(5):
        tell(i, urgent=False, to="13900000042")
    tell(9, urgent=True, to="13900000042")
    Message.objects.update(next_attempt_at=timezone.now())  # past the quiet hours
    once()
    assert states() == {MessageState.SENT: 4, MessageState.PENDING: 2}
    held = Message.objects.filter(state=MessageState.PENDING)
    assert all(m.attempts == 0 and m.next_attempt_at.minute == 0 for m in held)
    assert len(sms.messages(phone="13900000042")) == 4


# --------------------------------------------------------------------------- in doubt


def _claim_all(worker: str = "dead") -> Any:
    batch = claim(
        channel="sms",
        urgent=True,
        limit=100,
        worker=worker,
        now=timezone.now(),
        lease_until=timezone.now() + dt.timedelta(seconds=30),
        same_template=True,
    )
    assert batch is not None
    return batch


@pytest.mark.django_db
def test_in_doubt_found_at_the_provider_is_not_sent_again(sms: SmsSink) -> None:
    for i in range(3):
        tell(i)
    batch = _claim_all()
    backend = channel_for("sms")
    assert backend is not None
    # The dead worker's request reached the provider; it died before writing the outcome.
    outgoing = [
        Outgoing(r["id"], r["key"], phone(i), r["body"], True, "", r["sms_template_code"], {})
        for i, r in enumerate(sorted(batch.rows, key=lambda r: r["id"]))
    ]
    backend.send(outgoing, batch_key=batch.batch_key)
    assert len(sms.messages()) == 3
    assert once() == 0  # the lease has not run out: nobody touches it
    assert once(later=31) == 3
    assert states() == {MessageState.SENT: 3}
    assert len(sms.messages()) == 3
    assert set(MessageAttempt.objects.values_list("outcome", flat=True)) == {"in_doubt_found"}


@pytest.mark.django_db
def test_in_doubt_not_at_the_provider_is_sent_once(sms: SmsSink) -> None:
    for i in range(3):
        tell(i)
    old = _claim_all().batch_key
    once(later=31)
    assert states() == {MessageState.SENT: 3}
    recorded = sms.messages()
    assert sorted(r["phone"] for r in recorded) == [phone(i) for i in range(3)]
    assert {r["out_id"] for r in recorded} != {old}
    once(later=62)
    assert len(sms.messages()) == 3


@pytest.mark.django_db
def test_a_restarted_worker_settles_its_own_batches_at_once(sms: SmsSink) -> None:
    tell(1)
    _claim_all(worker="w1")
    assert once("w2") == 0
    assert once("w1", reclaim_own=True) == 1
    assert states() == {MessageState.SENT: 1} and len(sms.messages()) == 1


@pytest.mark.django_db
def test_in_doubt_on_a_channel_that_cannot_look_up_is_resent(smtp: SmtpSink) -> None:
    tell(1, channels=("email",))
    batch = claim(
        channel="email",
        urgent=True,
        limit=50,
        worker="dead",
        now=timezone.now(),
        lease_until=timezone.now() + dt.timedelta(seconds=30),
        same_template=False,
    )
    assert batch is not None
    once(later=31)
    message = Message.objects.get()
    assert message.state == MessageState.SENT
    assert outcomes(message) == ["in_doubt_resent"]
    assert len(smtp.messages()) == 1


@pytest.mark.django_db
def test_an_ambiguous_answer_stays_in_doubt_until_looked_up(sms: SmsSink) -> None:
    tell(1)
    # The provider records the message but the answer is lost, and so is the lookup.
    sms.add_fault(fail_next=1, drop=True, record=True, action="SendBatchSms")
    sms.add_fault(fail_next=2, drop=True, action="QuerySendDetails")
    once()
    message = Message.objects.get()
    assert message.state == MessageState.SENDING and "in doubt" in message.last_error
    once(later=URGENT.cap * 1.2 + 1)  # the provider cannot be asked yet: wait, never guess
    message.refresh_from_db()
    assert message.state == MessageState.SENDING and message.attempts == 1
    once(later=URGENT.cap * 2.5)
    message.refresh_from_db()
    assert message.state == MessageState.SENT
    assert len(sms.messages()) == 1
    assert outcomes(message) == ["in_doubt", "in_doubt_found"]


# --------------------------------------------------------------------------- concurrency


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="the test database of SQLite is in memory: threads would share one connection lock",
)
@pytest.mark.django_db(transaction=True)
def test_two_workers_never_send_one_message_twice(sms: SmsSink) -> None:
    total = 1200
    for i in range(total):
        tell(i, urgent=i % 3 == 0)
    Message.objects.update(next_attempt_at=timezone.now())
    counts = []

    def work(name: str) -> None:
        try:
            counts.append(outbox_run(worker=name, max_seconds=0, in_flight=3))
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(f"w{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    recorded = sms.messages()
    assert len(recorded) == total == len({r["phone"] for r in recorded})
    assert states() == {MessageState.SENT: total}
    assert sum(counts) == total
    assert set(Message.objects.values_list("lease_owner", flat=True)) == {"w0", "w1"}


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="the in-memory SQLite test database locks tables between threads at once",
)
@pytest.mark.django_db(transaction=True)
def test_a_waiting_run_wakes_on_a_new_message_and_stops(sms: SmsSink) -> None:
    stop = threading.Event()
    handled: list[int] = []

    def wait() -> None:
        try:
            handled.append(outbox_run(worker="waiter", max_seconds=60, stop=stop, in_flight=1))
        finally:
            connection.close()

    runner = threading.Thread(target=wait)
    runner.start()
    try:
        tell(1)
        deadline = timezone.now() + dt.timedelta(seconds=30)
        while not sms.messages() and timezone.now() < deadline:
            threading.Event().wait(0.05)
    finally:
        stop.set()
        runner.join(30)
    assert not runner.is_alive()
    assert handled == [1] and len(sms.messages()) == 1


# --------------------------------------------------------------------------- rate limits


def test_token_bucket_allows_its_rate() -> None:
    bucket = ratelimit.TokenBucket(rate=0.1, burst=2)
    assert [bucket.wait_time() for _ in range(2)] == [0.0, 0.0]
    assert bucket.wait_time() > 0


def test_redis_limiter_is_shared_between_workers(settings: Any) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:6379/0"
    key = f"tftest-{uuid.uuid4().hex}:rate"
    client = ratelimit.redis_client(settings.REDIS_URL)
    try:
        one = ratelimit.RedisGCRA(client, key, rate=0.1, burst=2)
        two = ratelimit.RedisGCRA(client, key, rate=0.1, burst=2)
        assert one.wait_time() == 0.0 and two.wait_time() == 0.0
        assert one.wait_time() > 0 and two.wait_time() > 0
    finally:
        client.delete(key)


@pytest.mark.django_db
def test_the_outbox_paces_sms_through_redis(sms: SmsSink, settings: Any) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:6379/0"
    settings.OUTBOX_REDIS_PREFIX = f"tftest-{uuid.uuid4().hex}"
    settings.SMS_RATE = 1000
    channels_reset()
    client = ratelimit.redis_client(settings.REDIS_URL)
    try:
        for i in range(250):
            tell(i, urgent=i % 2 == 0)
        Message.objects.update(next_attempt_at=timezone.now())
        assert once() == 250
        assert states() == {MessageState.SENT: 250} and len(sms.messages()) == 250
        assert isinstance(ratelimit.channel_limiter("sms", 1000), ratelimit.RedisGCRA)
    finally:
        for name in client.scan_iter(f"{settings.OUTBOX_REDIS_PREFIX}:*"):
            client.delete(name)


def test_redis_recipient_guard_counts_across_workers(settings: Any) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:6379/0"
    settings.OUTBOX_REDIS_PREFIX = f"tftest-{uuid.uuid4().hex}"
    client = ratelimit.redis_client(settings.REDIS_URL)
    try:
        at = timezone.now().timestamp()
        one, two = ratelimit.RecipientGuard(2), ratelimit.RecipientGuard(2)
        assert one.allow("sms", ["a", "b"], at=at) == [True, True]
        assert two.allow("sms", ["a", "a", "b"], at=at) == [True, False, True]
        assert one.allow("sms", ["a"], at=at + 3600) == [True]
    finally:
        for name in client.scan_iter(f"{settings.OUTBOX_REDIS_PREFIX}:*"):
            client.delete(name)


# --------------------------------------------------------------------------- delivery reports
# (``notifications.receipts``): a sent SMS becomes delivered, or failed with the carrier's
# code and then falls back; nothing is asked about before it settled or after 48 hours.


def _sent(n: int) -> None:
    once()
    assert Message.objects.filter(channel="sms", state=MessageState.SENT).count() == n


@pytest.mark.django_db
def test_a_delivered_report_marks_the_message_delivered(sms: SmsSink) -> None:
    tell(1)
    tell(2)
    _sent(2)
    assert sms_receipts_check() == 0  # the provider lists a message only after it settled
    later = timezone.now() + dt.timedelta(minutes=1)
    assert sms_receipts_check(now=later) == 2
    assert set(Message.objects.values_list("state", flat=True)) == {MessageState.DELIVERED}
    assert all(m.delivered_at == later for m in Message.objects.all())
    assert sms_receipts_check(now=later + dt.timedelta(minutes=10)) == 0  # nothing left


@pytest.mark.django_db
def test_an_undelivered_sms_fails_and_falls_back(sms: SmsSink, smtp: SmtpSink) -> None:
    notification = tell(1, channels=("sms", "email"))
    tell(2)
    _sent(2)
    sms.undeliverable.add(phone(1))
    later = timezone.now() + dt.timedelta(minutes=1)
    assert sms_receipts_check(now=later) == 2
    failed = Message.objects.get(notification=notification, channel="sms")
    assert failed.state == MessageState.FAILED
    assert failed.last_error == "carrier: MOBILE_NOT_ON_SERVICE"
    assert list(failed.tries.values_list("outcome", flat=True)) == ["sent", "undelivered"]
    email = Message.objects.get(notification=notification, channel="email")
    assert email.state == MessageState.PENDING and email.channel_index == 1
    once(later=61)
    email.refresh_from_db()
    assert email.state == MessageState.SENT
    assert [m["to"] for m in smtp.messages()] == ["family1@example.cn"]
    other = Message.objects.exclude(notification=notification).get()
    assert other.state == MessageState.DELIVERED
    assert sms_receipts_check(now=later + dt.timedelta(minutes=10)) == 0
    assert MessageAttempt.objects.filter(outcome="undelivered").count() == 1


@pytest.mark.django_db
def test_old_messages_are_not_asked_about(sms: SmsSink) -> None:
    tell(1)
    _sent(1)
    assert sms_receipts_check(now=timezone.now() + dt.timedelta(hours=49)) == 0
    assert Message.objects.get().state == MessageState.SENT


@pytest.mark.django_db
def test_without_sms_configured_nothing_is_asked(settings: Any) -> None:
    from tanfang.notifications.channels.registry import channels_reset

    settings.SMS_ENDPOINT = ""
    channels_reset()
    assert sms_receipts_check() == 0
