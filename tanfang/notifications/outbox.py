"""The outbox dispatcher: every message sent exactly once, none lost (docs/notifications.md,
"Outbox: exactly once, nothing lost").

``notify`` writes ``Message`` rows in the same transaction as their cause; workers send them
here. One round, per channel:

1. Claim up to the channel's ``max_batch`` due messages (urgent ones first; an SMS batch
   shares one template) with one conditional UPDATE: state pending -> sending, a lease, a
   fresh ``batch_key``, ``attempts + 1`` (``outbox_claim.claim``). Committed before any
   network I/O.
2. Decrypt the addresses, hold back non-urgent messages over the per-recipient limit, wait
   for the channel's rate limit (``ratelimit``), then ``channel.send(batch, batch_key=...)``.
3. Write every outcome in one transaction per batch (``outbox_claim.write_changes``): sent or
   delivered; a retry later with exponential backoff and jitter; rate-limited (again soon,
   not counted); failed (and, for ``Delivery.FALLBACK``, the message of the notification's
   next channel). A ``MessageAttempt`` row per message per try.

A message still ``sending`` after its lease ran out belongs to a worker that died, or its
send ended in doubt (an exception, or the channel's "in doubt" retry). It is reclaimed and
first looked up at the provider under the batch key it went out with: there -> sent, not
sent again; not there -> sent again; the channel cannot say (WeCom, e-mail) -> sent again
and recorded ``in_doubt_resent``: at least once for those channels, exactly once for SMS
and the inbox.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from cryptography.fernet import InvalidToken
from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from tanfang.core.crypto import decrypt
from tanfang.notifications import ratelimit
from tanfang.notifications.channels.base import ChannelBackend, Outcome, Outgoing, SendResult
from tanfang.notifications.models import (
    Channel,
    MessageState,
)
from tanfang.notifications.outbox_claim import (
    Change,
    Claimed,
    claim,
    reclaim_in_doubt,
    restore_doubt,
    write_changes,
)
from tanfang.notifications.outbox_fallback import fall_back

log = logging.getLogger(__name__)

CHANNELS = [c.value for c in Channel]
# Channels whose provider can be asked whether a message arrived (base.ChannelBackend.lookup).
LOOKUP_CHANNELS = {Channel.SMS.value, Channel.INBOX.value}
LEASE_SECONDS = 30.0
# A batch is not sent when less than this (at most half the lease) is left of its lease: a
# send takes at most the channel's timeouts (~8 s for SMS), and nobody may take a batch over
# while it is on the wire. A lease shorter than twice the channel's timeouts is a risk.
SEND_MARGIN_SECONDS = 10.0
RATE_LIMITED_DELAY = 2.0
IDLE_POLL_SECONDS = 1.0


@dataclass(frozen=True)
class Backoff:
    first: float
    cap: float
    tries: int

    def delay(self, attempts: int) -> float:
        """Seconds before try ``attempts + 1``: doubling from ``first``, capped, +-20 %."""
        base = min(self.cap, self.first * 2 ** max(0, attempts - 1))
        return base * random.uniform(0.8, 1.2)


URGENT = Backoff(first=5.0, cap=60.0, tries=3)
NOT_URGENT = Backoff(first=60.0, cap=3600.0, tries=6)


def backoff_for(urgent: bool) -> Backoff:
    return URGENT if urgent else NOT_URGENT


def _channel_for(name: str) -> ChannelBackend | None:
    from tanfang.notifications.channels.registry import channel_for

    return channel_for(name)


@dataclass
class Run:
    """One ``outbox_run``'s settings and shared state (its threads share it)."""

    worker: str
    lease: float
    deadline: float  # time.monotonic()
    stop: threading.Event
    wake: threading.Event
    now: dt.datetime | None = None  # fixed "now" (tests); None: the clock
    guard: ratelimit.RecipientGuard = field(default_factory=ratelimit.recipient_guard)
    handled: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    recovered_at: float = field(default_factory=time.monotonic)
    errors: list[BaseException] = field(default_factory=list)

    def clock(self) -> dt.datetime:
        return self.now or timezone.now()

    def over(self) -> bool:
        return self.stop.is_set() or time.monotonic() >= self.deadline

    def count(self, n: int) -> None:
        with self.lock:
            self.handled += n

    def recovery_due(self) -> bool:
        """True for one caller every half lease (the others keep sending)."""
        with self.lock:
            if time.monotonic() - self.recovered_at < self.lease / 2:
                return False
            self.recovered_at = time.monotonic()
            return True


# --------------------------------------------------------------------------- sending


def _outgoing(row: dict[str, Any]) -> Outgoing:
    if row["channel"] == Channel.INBOX:
        address = str(row["notification__user_id"] or "")
    else:
        address = decrypt(row["address_cipher"])
    return Outgoing(
        message_id=row["id"],
        key=row["key"],
        address=address,
        body=row["body"],
        urgent=row["urgent"],
        sms_template_code=row["sms_template_code"],
        sms_params=row["sms_params"] or {},
    )


def _prepare(
    run: Run, batch: Claimed, backend: ChannelBackend | None, changes: list[Change]
) -> list[Outgoing]:
    """The batch as the channel takes it; what cannot go out is put in ``changes``."""
    now = run.clock()
    if backend is None:
        ids = [r["id"] for r in batch.rows]
        changes.append(
            Change(MessageState.FAILED, "failed", error="channel not configured", ids=ids)
        )
        return []
    ready: list[Outgoing] = []
    broken: list[int] = []
    for row in batch.rows:
        try:
            ready.append(_outgoing(row))
        except (InvalidToken, ValueError):
            broken.append(row["id"])
    if broken:
        changes.append(
            Change(MessageState.FAILED, "failed", error="address unreadable", ids=broken)
        )
    calm = [m for m in ready if not m.urgent]
    if calm and not batch.doubt_key:
        allowed = run.guard.allow(batch.channel, [m.address for m in calm], at=now.timestamp())
        held = {m.message_id for m, ok in zip(calm, allowed, strict=True) if not ok}
        if held:
            later = dt.datetime.fromtimestamp(ratelimit.next_hour(now.timestamp()), tz=dt.UTC)
            changes.append(
                Change(
                    MessageState.PENDING,
                    "held",
                    error="recipient hourly limit",
                    next_attempt_at=later,
                    uncount=True,
                    ids=sorted(held),
                )
            )
            ready = [m for m in ready if m.message_id not in held]
    return ready


def _release(ids: list[int], reason: str) -> Change:
    """Back to pending at once, the try not counted (claimed but never sent)."""
    return Change(MessageState.PENDING, "", error=reason, uncount=True, ids=ids)


def _after_results(
    run: Run,
    batch: Claimed,
    ready: list[Outgoing],
    results: list[SendResult],
    changes: list[Change],
    *,
    resent: bool,
) -> None:
    """Turn the channel's answers into changes of state (grouped, for few statements)."""
    now = run.clock()
    by_key = {r.key: r for r in results}
    attempts = {r["id"]: r["attempts"] for r in batch.rows}
    grouped: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    for message in ready:
        result = by_key.get(message.key) or SendResult(
            message.key, Outcome.RETRY, error="no answer from the channel"
        )
        outcome = result.outcome
        tries = attempts[message.message_id]
        policy = backoff_for(message.urgent)
        if outcome in (Outcome.SENT, Outcome.DELIVERED):
            label = "in_doubt_resent" if resent else str(outcome)
            grouped[(str(outcome), label, result.provider_id, result.error, 0)].append(
                message.message_id
            )
        elif outcome == Outcome.RATE_LIMITED:
            grouped[("rate_limited", "rate_limited", "", result.error, 0)].append(
                message.message_id
            )
        elif outcome == Outcome.RETRY and result.error.startswith("in doubt"):
            grouped[("doubt", "in_doubt", "", result.error, tries)].append(message.message_id)
        elif outcome == Outcome.RETRY and tries < policy.tries:
            grouped[("retry", "retry", "", result.error, tries)].append(message.message_id)
        else:
            error = result.error or "failed"
            if outcome == Outcome.RETRY:
                error = f"gave up after {tries} tries: {error}"
            grouped[("failed", "failed", "", error, 0)].append(message.message_id)
    urgent = {m.message_id: m.urgent for m in ready}
    for (kind, label, provider_id, error, tries), ids in grouped.items():
        if kind in (Outcome.SENT, Outcome.DELIVERED):
            changes.append(Change(kind, label, provider_id=provider_id, error="", ids=ids))
        elif kind == "rate_limited":
            later = now + dt.timedelta(seconds=RATE_LIMITED_DELAY * random.uniform(1, 2))
            changes.append(
                Change(
                    MessageState.PENDING,
                    label,
                    error=error,
                    next_attempt_at=later,
                    uncount=True,
                    ids=ids,
                )
            )
        elif kind in ("retry", "doubt"):
            # Split by urgency: the backoff differs.
            for flag in (True, False):
                part = [i for i in ids if urgent[i] is flag]
                if not part:
                    continue
                later = now + dt.timedelta(seconds=backoff_for(flag).delay(tries))
                state = MessageState.PENDING if kind == "retry" else MessageState.SENDING
                changes.append(
                    Change(
                        state,
                        label,
                        error=error,
                        next_attempt_at=later if kind == "retry" else None,
                        lease_until=later if kind == "doubt" else None,
                        ids=part,
                    )
                )
        else:
            changes.append(Change(MessageState.FAILED, label, error=error, ids=ids))


def _send(run: Run, batch: Claimed, backend: ChannelBackend | None, *, resent: bool = False) -> int:
    """Send one claimed batch and write what came of it; the number of messages handled."""
    changes: list[Change] = []
    ready = _prepare(run, batch, backend, changes)
    duration_ms = 0
    if ready and backend is not None:
        margin = batch.lease_until - dt.timedelta(seconds=min(SEND_MARGIN_SECONDS, run.lease / 2))
        limiter = ratelimit.channel_limiter(batch.channel, float(backend.rate_per_second or 0))
        left = (margin - timezone.now()).total_seconds()
        if left <= 0 or not ratelimit.acquire(limiter, deadline=time.monotonic() + left):
            changes.append(_release([m.message_id for m in ready], "lease too short to send"))
        else:
            began = time.monotonic()
            try:
                results = backend.send(ready, batch_key=batch.batch_key)
            except Exception as exc:  # a channel's bug or transport: the send is in doubt
                log.warning("outbox: %s batch %s raised: %r", batch.channel, batch.batch_key, exc)
                results = [
                    SendResult(m.key, Outcome.RETRY, error=f"in doubt: {exc!r}"[:300])
                    for m in ready
                ]
            duration_ms = int((time.monotonic() - began) * 1000)
            _after_results(run, batch, ready, results, changes, resent=resent)
    write_changes(
        batch,
        changes,
        worker=run.worker,
        now=run.clock(),
        duration_ms=duration_ms,
        on_failed=lambda ids: _fall_back(run, ids),
    )
    return len(batch.rows)


def _fall_back(run: Run, ids: list[int]) -> None:
    if fall_back(ids, now=run.clock()):
        # New messages are due now: ask every channel again (after this commit).
        run.wake.set()


def _can_look_up(backend: ChannelBackend) -> bool:
    """Whether ``backend.lookup`` can answer at all: its None then means "could not ask
    now" (wait and ask again), not "cannot know" (send again)."""
    return bool(getattr(backend, "can_lookup", backend.name in LOOKUP_CHANNELS))


def _settle_doubt(run: Run, batch: Claimed) -> int:
    """A batch reclaimed from a dead worker: look it up under its old key before resending."""
    backend = _channel_for(batch.channel)
    if backend is None:
        return _send(run, batch, None)
    try:
        outgoing = [_outgoing(r) for r in batch.rows]
    except (InvalidToken, ValueError):
        return _send(run, batch, backend)
    try:
        found = backend.lookup(outgoing, batch_key=batch.doubt_key)
    except Exception as exc:
        log.warning("outbox: lookup of %s batch %s failed: %r", batch.channel, batch.doubt_key, exc)
        restore_doubt(batch, until=run.clock() + dt.timedelta(seconds=URGENT.first))
        return 0
    unknown = {m.key for m in outgoing if found.get(m.key) is None}
    if unknown and _can_look_up(backend):
        # The provider could not be asked this time: ask again later, never guess.
        restore_doubt(batch, until=run.clock() + dt.timedelta(seconds=URGENT.cap))
        return 0
    there = [r for r, m in zip(batch.rows, outgoing, strict=True) if found.get(m.key) is True]
    changes = []
    if there:
        ids = [r["id"] for r in there]
        changes.append(Change(MessageState.SENT, "in_doubt_found", error="", ids=ids))
    rest = [r for r in batch.rows if r not in there]
    if changes:
        write_changes(batch, changes, worker=run.worker, now=run.clock(), duration_ms=0)
    if not rest:
        return len(batch.rows)
    # Not at the provider (False): send again, counted as a plain send; unknown (None):
    # send again, recorded as ``in_doubt_resent``.
    unsure = [r for r in rest if r["key"] in unknown]
    missing = [r for r in rest if r["key"] not in unknown]
    for rows, resent in ((missing, False), (unsure, True)):
        if rows:
            part = Claimed(batch.channel, batch.batch_key, batch.lease_until, rows, batch.doubt_key)
            _send(run, part, backend, resent=resent)
    return len(batch.rows)


# --------------------------------------------------------------------------- the loop


def _claim_next(run: Run, skip: dict[tuple[str, bool], float]) -> Claimed | None:
    """The next batch to send: urgent ones of every channel first."""
    now = run.clock()
    lease_until = timezone.now() + dt.timedelta(seconds=run.lease)
    tick = time.monotonic()
    for urgent in (True, False):
        for name in CHANNELS:
            if skip.get((name, urgent), 0) > tick:
                continue
            backend = _channel_for(name)
            found = claim(
                channel=name,
                urgent=urgent,
                limit=int(backend.max_batch) if backend is not None else 100,
                worker=run.worker,
                now=now,
                lease_until=lease_until,
                same_template=name == Channel.SMS,
            )
            if found is not None:
                return found
            # Nothing due here: do not ask again for a moment (a wake-up asks at once).
            skip[(name, urgent)] = tick + 0.5
    return None


def _drain(run: Run, *, own_thread: bool = False) -> None:
    """Claim and send batches until nothing is due or the run is over (one thread)."""
    skip: dict[tuple[str, bool], float] = {}
    try:
        while not run.over():
            if run.wake.is_set():
                run.wake.clear()
                skip.clear()
            if run.recovery_due():
                _recover(run, own=False)
            batch = _claim_next(run, skip)
            if batch is None:
                return
            run.count(_send(run, batch, _channel_for(batch.channel)))
    except BaseException as exc:
        if not own_thread:
            raise
        log.exception("outbox: worker %s thread failed", run.worker)
        with run.lock:
            run.errors.append(exc)
    finally:
        if own_thread:
            connection.close()


def _recover(run: Run, *, own: bool) -> None:
    lease_until = timezone.now() + dt.timedelta(seconds=run.lease)
    for batch in reclaim_in_doubt(
        worker=run.worker, now=run.clock(), lease_until=lease_until, limit=1000, own=own
    ):
        run.count(_settle_doubt(run, batch))


def _setting(name: str, default: float) -> float:
    value: Any = getattr(settings, name, None)
    return float(value) if value else default


def _in_flight_default() -> int:
    configured = _setting("OUTBOX_IN_FLIGHT", 0)
    if configured:
        return int(configured)
    # SQLite has one writer: threads would only queue for its lock.
    return 4 if connection.vendor == "postgresql" else 1


def outbox_pass(run: Run, *, in_flight: int = 1, own: bool = False) -> None:
    """Recover messages in doubt, then drain what is due with ``in_flight`` threads."""
    _recover(run, own=own)
    with run.lock:
        run.recovered_at = time.monotonic()
    run.wake.clear()
    if in_flight <= 1:
        _drain(run)
        return
    threads = [
        threading.Thread(
            target=_drain,
            args=(run,),
            kwargs={"own_thread": True},
            name=f"outbox-{run.worker}-{i}",
            daemon=True,
        )
        for i in range(in_flight)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if run.errors:
        raise run.errors[0]


def outbox_run(
    *,
    worker: str,
    max_seconds: float,
    stop: threading.Event | None = None,
    in_flight: int | None = None,
    lease_seconds: float | None = None,
    reclaim_own: bool = False,
    now: dt.datetime | None = None,
) -> int:
    """Send what is due for about ``max_seconds``; returns the number of messages handled
    (sent, failed, retried later or found in doubt).

    Contract for the workers: the call recovers messages in doubt, drains everything due
    (claims stop once ``max_seconds`` passed or ``stop`` is set; batches already claimed are
    finished and written), then, while time is left, waits on the outbox wake-up
    (``wake.outbox_wake`` after a ``notify`` commits, in this process) or polls every
    second and drains again. ``max_seconds <= 0`` makes exactly one pass that drains all
    that is due, however long it takes. Call it again and again; it returns within about
    the channels' timeouts after ``stop`` is set.

    ``worker`` names this worker in leases and attempts and must be unique among running
    workers. ``reclaim_own``: messages this worker name left ``sending`` (a previous run
    killed mid-send) are in doubt at once, not only when their lease runs out. ``in_flight``:
    batches sent at once (threads; default 4 on PostgreSQL, 1 on SQLite). ``now``: a fixed
    clock for tests (one pass).
    """
    from tanfang.notifications.wake import forget_outbox_wake, on_outbox_wake

    run = Run(
        worker=worker,
        lease=lease_seconds or _setting("OUTBOX_LEASE_SECONDS", LEASE_SECONDS),
        deadline=time.monotonic() + max_seconds if max_seconds > 0 else float("inf"),
        stop=stop or threading.Event(),
        wake=threading.Event(),
        now=now,
    )
    flight = in_flight or _in_flight_default()
    on_outbox_wake(run.wake.set)
    try:
        outbox_pass(run, in_flight=flight, own=reclaim_own)
        while max_seconds > 0 and now is None and not run.over():
            left = run.deadline - time.monotonic()
            run.wake.wait(min(IDLE_POLL_SECONDS, max(0.0, left)))
            if run.stop.is_set():
                break
            close_old_connections()
            outbox_pass(run, in_flight=flight)
    finally:
        forget_outbox_wake(run.wake.set)
    return run.handled
