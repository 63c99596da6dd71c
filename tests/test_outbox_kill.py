"""A worker killed in the middle of sending loses nothing and sends nothing twice.

The local Alibaba SMS sink runs as its own process and records every message it accepts in a
file. Two ``tanfang outbox`` worker processes send 3,000 SMS from the outbox; one is killed
(SIGKILL) once the sink has seen some but not all, then started again under the same name.
When every message is sent, the sink must hold each phone number exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from tanfang.core.crypto import encrypt
from tanfang.notifications.models import (
    Channel,
    Delivery,
    Message,
    MessageState,
    Notification,
    RecipientKind,
    Topic,
)
from tanfang.notifications.sinks.sms_server import DEMO_ACCESS_KEY_ID, DEMO_SECRET

ROOT = Path(__file__).resolve().parents[1]
TOTAL = 3000


def phone(i: int) -> str:
    return f"137{i:08d}"


def outbox_rows(count: int, *, run: str) -> None:
    """``count`` urgent SMS notifications with their outbox messages, written in bulk."""
    now = timezone.now()
    params = {"elder": "王奶奶", "what": "SOS", "time": "10:00", "phone": "110", "link": "x"}
    notifications = Notification.objects.bulk_create(
        Notification(
            key=f"{run}-{i}",
            topic=Topic.EMERGENCY,
            template="emergency_family",
            params=params,
            text="紧急",
            recipient_kind=RecipientKind.FIRST_CONTACT,
            delivery=Delivery.FALLBACK,
            channels=["sms"],
            urgent=True,
            created_at=now,
        )
        for i in range(count)
    )
    Message.objects.bulk_create(
        Message(
            notification=n,
            key=f"{n.key}:sms",
            channel=Channel.SMS,
            address_cipher=encrypt(phone(i)),
            address_masked="137****",
            body="紧急",
            sms_template_code="SMS_TF_EMERGENCY_FAMILY",
            sms_params=params,
            urgent=True,
            next_attempt_at=now,
            created_at=now,
        )
        for i, n in enumerate(notifications)
    )


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def subprocess_database(tmp_path: Path) -> tuple[str, Callable[[], Counter[str]]]:
    """A DATABASE_URL the workers share with this test (the PostgreSQL test database, or a
    file copy of the in-memory SQLite one) and a count of its messages by state."""
    connection.ensure_connection()
    if connection.vendor == "postgresql":
        base = os.environ["DATABASE_URL"].rsplit("/", 1)[0]

        def states() -> Counter[str]:
            return Counter(Message.objects.values_list("state", flat=True))

        return f"{base}/{connection.settings_dict['NAME']}", states
    path = tmp_path / "workers.sqlite3"
    target = sqlite3.connect(path)
    connection.connection.backup(target)  # type: ignore[union-attr]
    target.execute("PRAGMA journal_mode=WAL")
    target.close()

    def file_states() -> Counter[str]:
        with sqlite3.connect(path, timeout=20) as db:
            rows = db.execute(f"SELECT state FROM {Message._meta.db_table}").fetchall()
        return Counter(r[0] for r in rows)

    return f"sqlite:///{path}", file_states


class Proc:
    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.stream = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, env=env, stdout=self.stream, stderr=subprocess.STDOUT
        )

    def end(self, sig: int) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(60)
        self.stream.close()
        return code


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The SMS sink in its own process: (its endpoint, the file it records to)."""
    record = tmp_path / "sms.jsonl"
    record.touch()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tanfang.notifications.sinks.sms_server", "--record", str(record)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("TANFANG_SMS_ENDPOINT="), line
        yield line.split("=", 1)[1], record
    finally:
        proc.terminate()
        proc.wait(30)
        if proc.stdout is not None:
            proc.stdout.close()


def sent_by(record: Path, prefix: str) -> int:
    return sum(1 for r in recorded(record) if r["out_id"].startswith(prefix))


def recorded(record: Path) -> list[dict[str, Any]]:
    text = record.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.endswith("}")]


@pytest.mark.django_db(transaction=True)
def test_a_killed_worker_sends_every_message_exactly_once(
    sink: tuple[str, Path], tmp_path: Path
) -> None:
    endpoint, record = sink
    outbox_rows(TOTAL, run=f"kill{os.getpid()}")
    database_url, states = subprocess_database(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(
        DJANGO_SETTINGS_MODULE="tanfang.settings",
        DATABASE_URL=database_url,
        TANFANG_SMS_ENDPOINT=endpoint,
        TANFANG_SMS_PROTOCOL="http",
        TANFANG_SMS_ACCESS_KEY_ID=DEMO_ACCESS_KEY_ID,
        TANFANG_SMS_ACCESS_KEY_SECRET=DEMO_SECRET,
        # 4 requests (400 SMS) a second per worker: the kill lands mid-sending.
        TANFANG_SMS_RATE="4",
        TANFANG_REDIS_URL="",
    )
    log = tmp_path / "workers.log"

    def worker(name: str) -> Proc:
        args = ["-m", "tanfang.cli", "outbox", "--worker", name, "--seconds", "300"]
        return Proc([*args, "--lease", "20", "--in-flight", "2"], env, log)

    procs = [worker("w1"), worker("w2")]
    try:
        # Kill w1 once the sink has seen its sends (its batch keys are its OutIds).
        wait_for(lambda: sent_by(record, "w1-") >= TOTAL // 10, 120, "w1's first sends")
        procs[0].end(signal.SIGKILL)
        seen_at_kill = len(recorded(record))
        assert seen_at_kill < TOTAL, "the kill came too late: raise TOTAL"
        procs.append(worker("w1"))
        wait_for(lambda: log.read_text().count("started") == 3, 60, "the restart")
        wait_for(
            lambda: states() == {MessageState.SENT: TOTAL},
            180,
            "every message sent",
        )
        assert procs[1].end(signal.SIGTERM) == 0
        assert procs[2].end(signal.SIGTERM) == 0
    finally:
        for proc in procs:
            proc.end(signal.SIGKILL)
    rows = recorded(record)
    by_phone = Counter(r["phone"] for r in rows)
    assert len(by_phone) == TOTAL and set(by_phone.values()) == {1}, by_phone.most_common(3)
    assert len(rows) == TOTAL
    text = log.read_text(errors="replace")
    assert "Traceback" not in text, text[-3000:]
    # The restarted w1 took over what it held when killed (looked up, sent or found).
    assert text.count("outbox worker w1 started") == 2
