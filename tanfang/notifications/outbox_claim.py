"""The outbox's statements: claim due messages, reclaim those in doubt, write the outcome.

Every claim is ONE conditional UPDATE (``state='pending' AND id IN (due rows)``), committed
before any network I/O; on PostgreSQL the due rows are picked ``FOR UPDATE SKIP LOCKED``,
so two workers never claim the same row and never wait for each other. On SQLite a single
UPDATE takes the database's one write lock, which serialises claims just as well.

Every transaction here begins with a write: on SQLite a transaction that reads first and
writes later fails at once ("database is locked") when another process wrote in between,
while one that writes first waits for the lock (``timeout``).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction
from django.db.models import F

from tanfang.notifications.models import Message, MessageAttempt, MessageState, Notification

ROW_FIELDS = (
    "id",
    "key",
    "channel",
    "channel_index",
    "address_cipher",
    "body",
    "sms_template_code",
    "sms_params",
    "urgent",
    "attempts",
    "notification_id",
    "notification__user_id",
)


@dataclass
class Claimed:
    """A batch of messages one worker holds under ``batch_key`` until ``lease_until``."""

    channel: str
    batch_key: str
    lease_until: dt.datetime
    rows: list[dict[str, Any]]
    # Set when the batch was reclaimed from a dead worker: the key it was sent under.
    doubt_key: str = ""


@dataclass
class Change:
    """What to write for some messages of a batch."""

    state: str
    attempt_outcome: str  # the MessageAttempt row's outcome ("" writes none)
    provider_id: str = ""
    error: str = ""
    next_attempt_at: dt.datetime | None = None
    uncount: bool = False  # the try does not count against the limit
    lease_until: dt.datetime | None = None  # state SENDING: stays in doubt until then
    ids: list[int] = field(default_factory=list)


def new_batch_key(worker: str) -> str:
    return f"{worker[:40]}-{uuid.uuid4().hex[:20]}"


def _dt(value: dt.datetime) -> Any:
    return connection.ops.adapt_datetimefield_value(value)


def claim(
    *,
    channel: str,
    urgent: bool,
    limit: int,
    worker: str,
    now: dt.datetime,
    lease_until: dt.datetime,
    same_template: bool,
) -> Claimed | None:
    """Claim up to ``limit`` due pending messages of ``channel`` (oldest due first); with
    ``same_template`` only those sharing the head's SMS template. None when nothing is due."""
    table = Message._meta.db_table
    lock = " FOR UPDATE SKIP LOCKED" if connection.vendor == "postgresql" else ""
    due = "state = 'pending' AND channel = %s AND urgent = %s AND next_attempt_at <= %s"
    due_params: list[Any] = [channel, urgent, _dt(now)]
    template = ""
    template_params: list[Any] = []
    if same_template:
        template = (
            f" AND sms_template_code = (SELECT sms_template_code FROM {table} WHERE {due} "
            "ORDER BY next_attempt_at LIMIT 1)"
        )
        template_params = due_params
    batch_key = new_batch_key(worker)
    # The rows are picked in a CTE: PostgreSQL evaluates it once. (As a plain ``IN
    # (subquery LIMIT n)`` the planner may run the subquery more than once and take more.)
    sql = (
        f"WITH picked AS (SELECT id FROM {table} WHERE {due}{template} "
        f"ORDER BY next_attempt_at LIMIT %s{lock}) "
        f"UPDATE {table} SET state = 'sending', lease_owner = %s, lease_until = %s, "
        "attempts = attempts + 1, batch_key = %s "
        "WHERE state = 'pending' AND id IN (SELECT id FROM picked) "
        f"RETURNING {', '.join(RETURNED)}"
    )
    params = [*due_params, *template_params, limit, worker[:64], _dt(lease_until), batch_key]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = [_row(values) for values in cursor.fetchall()]
    if not rows:
        return None
    if channel == "inbox":
        users = dict(
            Notification.objects.filter(pk__in={r["notification_id"] for r in rows}).values_list(
                "id", "user_id"
            )
        )
        for row in rows:
            row["notification__user_id"] = users.get(row["notification_id"])
    return Claimed(channel, batch_key, lease_until, rows)


# The columns a claim returns (as ``ROW_FIELDS``, without the join to the notification).
RETURNED = [f for f in ROW_FIELDS if "__" not in f]


def _row(values: tuple[Any, ...]) -> dict[str, Any]:
    row = dict(zip(RETURNED, values, strict=True))
    row["urgent"] = bool(row["urgent"])
    params = row["sms_params"]
    row["sms_params"] = json.loads(params) if isinstance(params, str | bytes) else params or {}
    row["notification__user_id"] = None
    return row


def reclaim_in_doubt(
    *,
    worker: str,
    now: dt.datetime,
    lease_until: dt.datetime,
    limit: int,
    own: bool = False,
) -> list[Claimed]:
    """Take over messages left ``sending`` by a dead worker (lease ran out; with ``own``
    also those of an earlier run of this same worker name), one batch per batch key they
    were sent under. Each is taken with a conditional UPDATE on its old batch key."""
    stale = Message.objects.filter(state=MessageState.SENDING, lease_until__lt=now)
    if own:
        stale = stale | Message.objects.filter(state=MessageState.SENDING, lease_owner=worker[:64])
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for pk, channel, key in stale.order_by("lease_until").values_list("id", "channel", "batch_key")[
        :limit
    ]:
        groups[(channel, key)].append(pk)
    taken = []
    for (channel, old_key), ids in groups.items():
        batch_key = new_batch_key(worker)
        mine = Message.objects.filter(pk__in=ids, state=MessageState.SENDING, batch_key=old_key)
        if not own:
            mine = mine.filter(lease_until__lt=now)
        changed = mine.update(
            lease_owner=worker[:64],
            lease_until=lease_until,
            batch_key=batch_key,
            attempts=F("attempts") + 1,
        )
        if changed:
            rows = list(Message.objects.filter(batch_key=batch_key).values(*ROW_FIELDS))
            taken.append(Claimed(channel, batch_key, lease_until, rows, doubt_key=old_key))
    return taken


def restore_doubt(batch: Claimed, *, until: dt.datetime) -> None:
    """The lookup failed: leave the messages in doubt under their old key until ``until``."""
    Message.objects.filter(batch_key=batch.batch_key, state=MessageState.SENDING).update(
        batch_key=batch.doubt_key, lease_until=until, attempts=F("attempts") - 1
    )


def write_changes(
    batch: Claimed,
    changes: list[Change],
    *,
    worker: str,
    now: dt.datetime,
    duration_ms: int,
    on_failed: Callable[[list[int]], object] | None = None,
) -> dict[str, list[int]]:
    """Write the outcome of a batch in one transaction: each change only to messages still
    held under the batch's key (a worker that outlived its lease writes nothing), one
    attempt row per message, and (``on_failed``, same transaction) what follows a failure.
    Returns, per state, the ids actually changed."""
    done: dict[str, list[int]] = defaultdict(list)
    attempts: list[list[Any]] = []
    at = _dt(now)
    with transaction.atomic():
        for change in changes:
            if not change.ids:
                continue
            values: dict[str, Any] = {"state": change.state, "last_error": change.error[:300]}
            if change.state in (MessageState.SENT, MessageState.DELIVERED):
                values.update(sent_at=now, provider_id=change.provider_id[:80], lease_until=None)
                if change.state == MessageState.DELIVERED:
                    values["delivered_at"] = now
            elif change.state == MessageState.SENDING:
                values["lease_until"] = change.lease_until
            else:
                values["lease_until"] = None
            if change.next_attempt_at is not None:
                values["next_attempt_at"] = change.next_attempt_at
            if change.uncount:
                values["attempts"] = F("attempts") - 1
            held = Message.objects.filter(
                pk__in=change.ids, batch_key=batch.batch_key, state=MessageState.SENDING
            )
            if held.update(**values) == len(change.ids):
                done[change.state] += change.ids
            else:
                done[change.state] += list(
                    Message.objects.filter(
                        pk__in=change.ids, batch_key=batch.batch_key, state=change.state
                    ).values_list("id", flat=True)
                )
            if change.attempt_outcome:
                fixed = [
                    at,
                    change.attempt_outcome,
                    worker[:64],
                    change.provider_id[:80],
                    change.error[:300],
                    duration_ms,
                ]
                attempts += [[pk, *fixed] for pk in change.ids]
        _insert_attempts(attempts)
        if on_failed is not None and done.get(MessageState.FAILED):
            on_failed(done[MessageState.FAILED])
    return done


ATTEMPT_COLUMNS = ("message_id", "at", "outcome", "worker", "provider_id", "error", "duration_ms")


def _insert_attempts(rows: list[list[Any]]) -> None:
    """One multi-row INSERT of attempt rows (``bulk_create`` spends more time building the
    statement than the database spends running it)."""
    table = MessageAttempt._meta.db_table
    for start in range(0, len(rows), 500):
        chunk = rows[start : start + 500]
        marks = ", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(chunk))
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} ({', '.join(ATTEMPT_COLUMNS)}) VALUES {marks}",
                [value for row in chunk for value in row],
            )
