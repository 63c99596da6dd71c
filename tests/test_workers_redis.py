"""``tanfang worker`` on the real Redis (127.0.0.1:6379): two workers never run a job at once
and run it once per period; a dead holder's lock expires and another worker takes the job;
the reliable queue hands a killed worker's job to another; SIGTERM mid-job lets the job
finish, releases the lock and exits 0; a wake-up published anywhere reaches every worker.

Every test has its own key prefix, so parallel runs do not meet; the keys are deleted after.
"""

from __future__ import annotations

import datetime as dt
import math
import signal
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.test import override_settings

from tanfang.notifications.wake import forget_outbox_wake, on_outbox_wake, outbox_wake
from tanfang.workers import queue as queue_module
from tanfang.workers import redis_backend
from tanfang.workers.backends import Claim
from tanfang.workers.jobs import REGISTRY, Job, Schedule
from tanfang.workers.models import JobRun
from tanfang.workers.redis_backend import RedisBackend, publish_outbox_wake, relay_outbox_wake
from tanfang.workers.runner import Worker, run_job
from tests.test_workers import (
    Recorder,
    WorkerProcess,
    child_env,
    sigterm_mid_job,
    subprocess_database,
    wait_for,
)

URL = "redis://127.0.0.1:6379/0"
UTC = dt.UTC


@pytest.fixture
def prefix() -> Iterator[str]:
    name = f"tftest:{uuid.uuid4().hex[:10]}:"
    yield name
    client = redis.Redis.from_url(URL)
    keys = list(client.scan_iter(match=name + "*"))
    if keys:
        client.delete(*keys)
    client.close()


def _backend(prefix: str, **kwargs: object) -> RedisBackend:
    return RedisBackend(URL, prefix=prefix, **kwargs)  # type: ignore[arg-type]


def _job(name: str, every: float, lease: float, run: object) -> Job:
    return Job(
        name,
        run,  # type: ignore[arg-type]
        Schedule(every=dt.timedelta(seconds=every)),
        lease=dt.timedelta(seconds=lease),
    )


def test_claim_renew_finish_and_a_dead_holders_lock_expiring(prefix: str) -> None:
    a, b = _backend(prefix), _backend(prefix)
    job = _job("handover", every=3600, lease=0.5, run=lambda ctx: "ok")
    now = dt.datetime.now(UTC)
    first = a.claim(job, worker="a", now=now)
    assert isinstance(first, Claim)
    assert not isinstance(b.claim(job, worker="b", now=now), Claim)
    assert a.renew(first, job, now=now)
    # "a" dies holding the lock: once the lease ran out "b" gets it.
    taken: list[Claim] = []

    def b_claims() -> bool:
        result = b.claim(job, worker="b", now=dt.datetime.now(UTC))
        if isinstance(result, Claim):
            taken.append(result)
        return bool(taken)

    wait_for(b_claims, 30, "the lock to expire")
    assert not a.renew(first, job, now=now)  # compare-and-set: not ours any more
    assert not a.finish(first, job, next_run_at=now + dt.timedelta(hours=1))
    assert b.client.get(prefix + "lock:handover") == taken[0].token
    next_due = job.schedule.next_after(dt.datetime.now(UTC))  # type: ignore[union-attr]
    assert b.finish(taken[0], job, next_run_at=next_due)
    assert b.client.get(prefix + "lock:handover") is None
    # Not due again before the next period (the "due" key), except when forced (--once).
    retry = a.claim(job, worker="a", now=dt.datetime.now(UTC))
    assert isinstance(retry, dt.datetime) and retry > dt.datetime.now(UTC)
    state = a.states([job])["handover"]
    assert state.next_run_at == next_due and state.holder == ""
    forced = a.claim(job, worker="a", now=dt.datetime.now(UTC), force=True)
    assert isinstance(forced, Claim) and a.finish(forced, job, next_run_at=None)
    assert a.client.get(prefix + "due:handover") == next_due.isoformat()
    a.close()
    b.close()


@pytest.mark.django_db(transaction=True)
def test_two_redis_workers_never_overlap_and_run_once_per_period(prefix: str) -> None:
    recorder = Recorder(seconds=0.3)
    job = _job("recorder", every=1, lease=10, run=recorder)
    workers = [
        Worker(backend=_backend(prefix), jobs=[job], name=f"w{n}", tick=0.05) for n in (1, 2)
    ]
    for worker in workers:
        worker.start()
    try:
        wait_for(lambda: len(recorder.runs) >= 5, 60, "five runs")
    finally:
        for worker in workers:
            worker.request_stop()
        for worker in workers:
            assert worker.join(30)
            worker.backend.close()
    assert not recorder.overlapped
    slots = [math.floor(began) for began, _, _ in recorder.runs]
    assert slots == sorted(set(slots))  # one run per one-second period, in order
    assert JobRun.objects.filter(name="recorder", ok=True).count() == len(recorder.runs)
    client = redis.Redis.from_url(URL, decode_responses=True)
    assert client.get(prefix + "lock:recorder") is None
    assert not client.smembers(prefix + "workers")  # both left cleanly
    client.close()


@pytest.mark.django_db(transaction=True)
def test_the_queue_hands_a_killed_workers_job_to_another(prefix: str, tmp_path: Path) -> None:
    database = subprocess_database(tmp_path)
    env = child_env(
        tmp_path,
        database,
        TANFANG_REDIS_URL=URL,
        TANFANG_WORKER_KEY_PREFIX=prefix,
        TEST_WORKER_LEASE="1.5",
    )
    backend = _backend(prefix)
    backend.enqueue("tests.slow-task", {"tag": "report-7"})
    first = WorkerProcess(["--only", "queue", "--name", "doomed"], env, tmp_path / "first.log")
    second = None
    try:
        wait_for(lambda: list(tmp_path.glob("task-started-*")), 120, "the first worker's task")
        assert backend.client.llen(prefix + "queue") == 0
        first.end(signal.SIGKILL)  # dies mid-job: the job sits in its processing list
        (tmp_path / "go").write_text("")
        second = WorkerProcess(["--only", "queue", "--name", "heir"], env, tmp_path / "second.log")
        wait_for(lambda: list(tmp_path.glob("task-done-*")), 120, "the job run again")
        done = list(tmp_path.glob("task-done-*"))
        assert [p.name.split("-")[-1] for p in done] == [str(second.proc.pid)]
        assert done[0].read_text() == "report-7"
        wait_for(lambda: "re-queued" in second.text(), 30, "the reaper's log line")
        assert second.end(signal.SIGTERM) == 0, second.text()
    finally:
        first.end()
        if second is not None:
            second.end()
    assert backend.client.llen(prefix + "queue") == 0
    assert not list(backend.client.scan_iter(match=prefix + "processing:*"))
    backend.close()


@pytest.mark.django_db(transaction=True)
def test_sigterm_mid_job_on_redis_finishes_the_job_and_releases_the_lock(
    prefix: str, tmp_path: Path
) -> None:
    database = subprocess_database(tmp_path)
    env = child_env(tmp_path, database, TANFANG_REDIS_URL=URL, TANFANG_WORKER_KEY_PREFIX=prefix)
    worker = sigterm_mid_job(tmp_path, env)
    assert "starting on redis" in worker.text()
    client = redis.Redis.from_url(URL, decode_responses=True)
    assert client.get(prefix + "lock:slow") is None
    assert not client.smembers(prefix + "workers")
    client.close()


@pytest.mark.django_db(transaction=True)
def test_the_redis_queue_runs_what_code_enqueued(prefix: str, tmp_path: Path) -> None:
    from tests.test_workers import _add  # noqa: F401  (registers "tests.add")

    backend = _backend(prefix)
    out = tmp_path / "sum"
    with override_settings(REDIS_URL=URL, WORKER_KEY_PREFIX=prefix):
        queue_module._backend = None
        try:
            queue_module.enqueue("tests.add", a=20, b=22, into=str(out))
            assert backend.client.llen(prefix + "queue") == 1  # pushed once committed
        finally:
            if queue_module._backend is not None:
                queue_module._backend.close()
            queue_module._backend = None
    with pytest.raises(TypeError):
        queue_module.enqueue("tests.add", a=dt.datetime.now(UTC))
    with pytest.raises(LookupError):
        queue_module.enqueue("no-such-task")
    worker = Worker(backend=backend, jobs=[REGISTRY["queue"]], name="q", tick=0.05)
    worker.start()
    try:
        wait_for(out.exists, 30, "the queued job")
    finally:
        worker.request_stop()
        assert worker.join(30)
    assert out.read_text() == "42"
    assert backend.client.llen(prefix + "queue") == 0
    backend.close()


def test_an_outbox_wake_up_reaches_every_worker_once(prefix: str) -> None:
    listeners = [_backend(prefix), _backend(prefix)]
    for backend in listeners:
        backend.wait_wake(0)  # subscribed
    woken = threading.Event()
    on_outbox_wake(woken.set)
    with override_settings(REDIS_URL=URL, WORKER_KEY_PREFIX=prefix):
        redis_backend._publisher = None
        on_outbox_wake(publish_outbox_wake)
        try:
            outbox_wake()  # what a committed ``notify`` does
            for backend in listeners:
                assert backend.wait_wake(10)
            # A relayed wake-up wakes this process's outbox without publishing again.
            woken.clear()
            relay_outbox_wake()
            assert woken.is_set()
        finally:
            forget_outbox_wake(publish_outbox_wake)
            forget_outbox_wake(woken.set)
            if redis_backend._publisher is not None:
                redis_backend._publisher.close()
            redis_backend._publisher = None
    for backend in listeners:
        backend.close()


@pytest.mark.django_db(transaction=True)
def test_worker_once_through_the_redis_lock(prefix: str) -> None:
    backend = _backend(prefix)
    job = REGISTRY["alerts-escalate"]
    now = dt.datetime.now(UTC)
    claim = backend.claim(job, worker="w", now=now, force=True)
    assert isinstance(claim, Claim)
    record = run_job(backend, job, claim, worker="w", stop=threading.Event())
    assert record.ok and record.summary == "0 alerts escalated"
    assert backend.client.get(prefix + "lock:alerts-escalate") is None
    backend.close()


@pytest.mark.django_db(transaction=True)
def test_two_redis_workers_send_a_committed_message_once(prefix: str, settings: Any) -> None:
    """The outbox loops of two workers, woken through Redis by the commit: the SMS leaves
    once."""
    from tanfang.core.crypto import encrypt
    from tanfang.notifications.channels.registry import channels_reset
    from tanfang.notifications.models import Message, MessageState, RecipientKind, Topic
    from tanfang.notifications.services import Address, Recipient, notify
    from tanfang.notifications.sinks.sms_server import DEMO_ACCESS_KEY_ID, DEMO_SECRET, SmsSink

    sink = SmsSink.start()
    settings.SMS_ENDPOINT = sink.endpoint
    settings.SMS_PROTOCOL = "http"
    settings.SMS_ACCESS_KEY_ID = DEMO_ACCESS_KEY_ID
    settings.SMS_ACCESS_KEY_SECRET = DEMO_SECRET
    settings.SMS_RATE = 0
    settings.REDIS_URL = URL
    settings.WORKER_KEY_PREFIX = prefix
    channels_reset()
    redis_backend._publisher = None
    on_outbox_wake(publish_outbox_wake)
    workers = [
        Worker(backend=_backend(prefix), jobs=[REGISTRY["outbox"]], name=f"o{n}") for n in (1, 2)
    ]
    try:
        for worker in workers:
            worker.start()
        notify(
            key=f"workers-{uuid.uuid4().hex[:8]}",
            topic=Topic.EMERGENCY,
            template="emergency_family",
            params={"elder": "王奶奶", "what": "SOS", "time": "10:00", "phone": "110", "link": ""},
            recipients=[
                Recipient(
                    RecipientKind.FIRST_CONTACT,
                    "r:1",
                    "儿子",
                    (Address("sms", encrypt("13900000001"), "139****"),),
                )
            ],
            urgent=True,
        )
        wait_for(lambda: len(sink.messages()) >= 1, 60, "the SMS")
        wait_for(
            lambda: (
                Message.objects.filter(state=MessageState.SENT).exists()
                or Message.objects.filter(state=MessageState.DELIVERED).exists()
            ),
            60,
            "the message marked sent",
        )
    finally:
        for worker in workers:
            worker.request_stop()
        for worker in workers:
            assert worker.join(60)
            worker.backend.close()
        forget_outbox_wake(publish_outbox_wake)
        if redis_backend._publisher is not None:
            redis_backend._publisher.close()
        redis_backend._publisher = None
        sink.stop()
        channels_reset()
    assert [m["phone"] for m in sink.messages()] == ["13900000001"]
