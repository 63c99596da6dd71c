"""``tanfang worker`` on the database (the embedded default): schedules, the job registry,
``JobLease`` claims (two claimers, one wins; a dead holder's lease runs out), the database
queue, the command, a real worker process stopped by SIGTERM mid-job, and ``tanfang serve``
running the worker beside gunicorn.

The Redis backend is tested in ``test_workers_redis.py`` (it reuses the helpers here).
"""

from __future__ import annotations

import datetime as dt
import math
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import OperationalError, connection

from tanfang.workers.backends import Claim, DatabaseBackend
from tanfang.workers.jobs import (
    REGISTRY,
    SHANGHAI,
    Job,
    JobContext,
    JobUnavailable,
    Schedule,
    load,
)
from tanfang.workers.models import JobLease, JobRun, QueuedJob
from tanfang.workers.queue import task
from tanfang.workers.runner import Worker, run_job

ROOT = Path(__file__).resolve().parents[1]
UTC = dt.UTC


def wait_for(condition: Callable[[], object], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not _holds(condition):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _holds(condition: Callable[[], object]) -> bool:
    try:
        return bool(condition())
    except OperationalError:
        # SQLite's shared in-memory test database locks a table while a worker thread's
        # transaction writes it (the worker retries its own; the check just asks again).
        return False


class Recorder:
    """A job that records its runs and notices when two run at once."""

    def __init__(self, seconds: float = 0.2) -> None:
        self.seconds = seconds
        self.runs: list[tuple[float, float, str]] = []
        self.active = 0
        self.overlapped = False
        self._lock = threading.Lock()

    def __call__(self, ctx: JobContext) -> str:
        with self._lock:
            self.active += 1
            self.overlapped |= self.active > 1
        began = ctx.now.timestamp()
        time.sleep(self.seconds)
        with self._lock:
            self.active -= 1
            self.runs.append((began, time.time(), ctx.worker))
        return f"run {len(self.runs)}"


# --------------------------------------------------------------------------- pure parts


def test_interval_schedules_are_slots_aligned_on_the_epoch() -> None:
    minute = Schedule(every=dt.timedelta(minutes=1))
    at = dt.datetime(2026, 3, 9, 1, 2, 3, tzinfo=UTC)
    assert minute.next_after(at) == dt.datetime(2026, 3, 9, 1, 3, tzinfo=UTC)
    assert minute.next_after(dt.datetime(2026, 3, 9, 1, 3, tzinfo=UTC)) == dt.datetime(
        2026, 3, 9, 1, 4, tzinfo=UTC
    )
    assert Schedule(every=dt.timedelta(seconds=15)).describe() == "every 15 s"
    assert minute.describe() == "every 1 min"
    with pytest.raises(ValueError):
        Schedule()
    with pytest.raises(ValueError):
        Schedule(every=dt.timedelta(0))


def test_daily_schedules_are_shanghai_time() -> None:
    nightly = Schedule(daily_at=dt.time(3, 0))
    # 18:30 UTC is 02:30 in Shanghai: due at 03:00 the same Shanghai day, 19:00 UTC.
    assert nightly.next_after(dt.datetime(2026, 3, 9, 18, 30, tzinfo=UTC)) == dt.datetime(
        2026, 3, 9, 19, 0, tzinfo=UTC
    )
    # Exactly at 03:00 Shanghai: the next is tomorrow's.
    at = dt.datetime(2026, 3, 10, 3, 0, tzinfo=SHANGHAI)
    assert nightly.next_after(at) == dt.datetime(2026, 3, 11, 3, 0, tzinfo=SHANGHAI)
    assert nightly.describe() == "daily 03:00 Asia/Shanghai"


def test_the_registry_calls_the_real_service_functions() -> None:
    expected = {
        "outbox",
        "queue",
        "alerts-escalate",
        "notifications-escalate",
        "referrals-escalate",
        "emergencies-escalate",
        "monitor-tick",
        "monitor-learn",
        "remote-visits",
        "readings",
        "obligations",
        "care-escalate",
        "job-runs-prune",
    }
    assert expected <= set(REGISTRY)
    for job in REGISTRY.values():
        if job.requires.startswith(("tanfang.monitoring", "tanfang.visits", "tanfang.care")):
            assert job.available(), job.name
            assert callable(load(job.requires))
    assert REGISTRY["outbox"].continuous and not REGISTRY["alerts-escalate"].continuous


def test_a_missing_module_makes_a_job_unavailable_not_an_error() -> None:
    with pytest.raises(JobUnavailable):
        load("tanfang.nowhere.services:run")
    with pytest.raises(JobUnavailable):
        load("tanfang.monitoring.alerts:no_such_function")
    ghost = Job("ghost", lambda ctx: None, Schedule(every=dt.timedelta(seconds=1)))
    assert ghost.available()
    missing = Job("missing", lambda ctx: None, None, requires="tanfang.nowhere:run")
    assert not missing.available()
    worker = Worker(backend=DatabaseBackend(), jobs=[missing, ghost])
    assert worker.periodic == [ghost] and worker.loops == []


# --------------------------------------------------------------------------- the lease


def _job(name: str = "test-job", every: float = 60, lease: float = 30, run: Any = None) -> Job:
    return Job(
        name,
        run or (lambda ctx: "done"),
        Schedule(every=dt.timedelta(seconds=every)),
        lease=dt.timedelta(seconds=lease),
    )


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="the test database of SQLite is in memory: threads would share one connection lock "
    "(processes on a SQLite file are covered by the SIGTERM and serve tests)",
)
@pytest.mark.django_db(transaction=True)
def test_two_claimers_one_wins() -> None:
    backend = DatabaseBackend()
    job = _job()
    now = dt.datetime.now(UTC)
    backend.prepare([job], now=now)
    JobLease.objects.filter(name=job.name).update(next_run_at=now)  # due now
    start = threading.Barrier(4)
    results: list[object] = []

    def claimer(n: int) -> None:
        try:
            start.wait()
            results.append(backend.claim(job, worker=f"w{n}", now=now))
        finally:
            connection.close()

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    claims = [r for r in results if isinstance(r, Claim)]
    assert len(results) == 4 and len(claims) == 1
    lease = JobLease.objects.get(name=job.name)
    assert lease.holder == claims[0].token and lease.lease_until == now + job.lease


@pytest.mark.django_db(transaction=True)
def test_a_job_runs_once_per_period_and_a_dead_holders_lease_runs_out() -> None:
    backend = DatabaseBackend()
    job = _job(every=60, lease=30)
    t0 = dt.datetime(2026, 3, 9, 1, 0, 10, tzinfo=UTC)
    backend.prepare([job], now=t0)
    lease = JobLease.objects.get(name=job.name)
    assert lease.next_run_at == dt.datetime(2026, 3, 9, 1, 1, tzinfo=UTC)  # next period
    assert backend.claim(job, worker="a", now=t0) == lease.next_run_at  # not due: when to look

    t1 = dt.datetime(2026, 3, 9, 1, 1, 2, tzinfo=UTC)
    first = backend.claim(job, worker="a", now=t1)
    assert isinstance(first, Claim)
    assert not isinstance(backend.claim(job, worker="b", now=t1), Claim)  # held
    assert backend.finish(first, job, next_run_at=job.schedule.next_after(t1))  # type: ignore[union-attr]
    # Done for this minute: nobody runs it again before the next one.
    assert backend.claim(job, worker="b", now=t1 + dt.timedelta(seconds=30)) == dt.datetime(
        2026, 3, 9, 1, 2, tzinfo=UTC
    )

    # "a" claims the next period and dies: "b" takes over once the lease ran out.
    t2 = dt.datetime(2026, 3, 9, 1, 2, 1, tzinfo=UTC)
    dead = backend.claim(job, worker="a", now=t2)
    assert isinstance(dead, Claim)
    assert not isinstance(backend.claim(job, worker="b", now=t2 + dt.timedelta(seconds=29)), Claim)
    later = t2 + dt.timedelta(seconds=31)
    taken = backend.claim(job, worker="b", now=later)
    assert isinstance(taken, Claim)
    assert not backend.renew(dead, job, now=later)  # the dead one's claim is gone
    assert not backend.finish(dead, job, next_run_at=later)
    assert backend.renew(taken, job, now=later)
    assert backend.finish(taken, job, next_run_at=dt.datetime(2026, 3, 9, 1, 3, tzinfo=UTC))
    lease = JobLease.objects.get(name=job.name)
    assert (lease.holder, lease.lease_until) == ("", None)

    # --once: forced through the lock even when not due, the schedule left alone.
    forced = backend.claim(job, worker="c", now=later, force=True)
    assert isinstance(forced, Claim) and forced.forced
    record = run_job(backend, job, forced, worker="c", stop=threading.Event())
    assert record.ok and record.summary == "done"
    assert JobLease.objects.get(name=job.name).next_run_at == dt.datetime(
        2026, 3, 9, 1, 3, tzinfo=UTC
    )


@pytest.mark.django_db(transaction=True)
def test_a_failing_job_is_recorded_and_released() -> None:
    def broken(ctx: JobContext) -> None:
        raise RuntimeError("the printer is on fire")

    backend = DatabaseBackend()
    job = _job(run=broken)
    now = dt.datetime.now(UTC)
    backend.prepare([job], now=now)
    claim = backend.claim(job, worker="w", now=now, force=True)
    assert isinstance(claim, Claim)
    record = run_job(backend, job, claim, worker="w", stop=threading.Event())
    assert record.ok is False and "the printer is on fire" in record.summary
    assert "RuntimeError" in record.error and record.finished_at is not None
    assert JobLease.objects.get(name=job.name).holder == ""


# --------------------------------------------------------------------------- workers in threads


@pytest.mark.django_db(transaction=True)
def test_two_database_workers_never_overlap_and_run_once_per_period() -> None:
    recorder = Recorder(seconds=0.3)
    job = _job("db-recorder", every=1, lease=10, run=recorder)
    workers = [
        Worker(backend=DatabaseBackend(), jobs=[job], name=f"w{n}", tick=0.05) for n in (1, 2)
    ]
    for worker in workers:
        worker.start()
    try:
        wait_for(lambda: len(recorder.runs) >= 4, 60, "four runs")
    finally:
        for worker in workers:
            worker.request_stop()
        for worker in workers:
            assert worker.join(30)
    assert not recorder.overlapped
    slots = [math.floor(began) for began, _, _ in recorder.runs]
    assert slots == sorted(set(slots))  # one run per one-second period, in order
    runs = list(JobRun.objects.filter(name=job.name).order_by("started_at"))
    assert len(runs) == len(recorder.runs) and all(run.ok for run in runs)
    assert JobLease.objects.get(name=job.name).holder == ""


@task("tests.add")
def _add(*, a: int, b: int, into: str) -> int:
    Path(into).write_text(str(a + b))
    return a + b


@pytest.mark.django_db(transaction=True)
def test_the_database_queue_runs_a_job_once_and_hands_back_a_dead_workers(
    tmp_path: Path,
) -> None:
    backend = DatabaseBackend(poll_seconds=0.05)
    out = tmp_path / "sum"
    backend.enqueue("tests.add", {"a": 2, "b": 3, "into": str(out)})
    # A worker takes it and dies without finishing: the row is held until its lease ends.
    held = backend.dequeue("dead#1", timeout=0)
    assert held is not None and backend.dequeue("live#1", timeout=0) is None
    QueuedJob.objects.update(lease_until=dt.datetime.now(UTC) - dt.timedelta(seconds=1))
    worker = Worker(backend=backend, jobs=[REGISTRY["queue"]], name="live", tick=0.05)
    worker.start()
    try:
        wait_for(lambda: out.exists() and not QueuedJob.objects.exists(), 30, "the queued job")
    finally:
        worker.request_stop()
        assert worker.join(30)
    assert out.read_text() == "5"
    run = JobRun.objects.get(name="queue:tests.add")
    assert run.ok and run.summary == "5"


# --------------------------------------------------------------------------- the command


@pytest.mark.django_db(transaction=True)
def test_worker_once_and_list() -> None:
    out = StringIO()
    call_command("worker", "--once", "alerts-escalate", stdout=out)
    assert out.getvalue().startswith("alerts-escalate: ok 0 alerts escalated")
    run = JobRun.objects.get(name="alerts-escalate")
    assert run.ok and run.summary == "0 alerts escalated"
    assert JobLease.objects.get(name="alerts-escalate").holder == ""

    out = StringIO()
    call_command("worker", "--list", "--only", "alerts-escalate,obligations,outbox", stdout=out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("alerts-escalate") and "every 1 min" in lines[0]
    assert "last " in lines[0] and "ok 0 alerts escalated" in lines[0]
    assert "daily 00:30 Asia/Shanghai" in lines[1] and "continuous" in lines[2]

    with pytest.raises(CommandError, match="no job 'nope'"):
        call_command("worker", "--once", "nope")
    with pytest.raises(CommandError, match="--only"):
        call_command("worker", "--only", "alerts-escalate,nope", "--list")


@pytest.mark.django_db(transaction=True)
def test_worker_once_refuses_a_job_another_worker_runs() -> None:
    backend = DatabaseBackend()
    job = REGISTRY["care-escalate"]
    now = dt.datetime.now(UTC)
    backend.prepare([job], now=now)
    assert isinstance(backend.claim(job, worker="elsewhere", now=now, force=True), Claim)
    with pytest.raises(CommandError, match="running on another worker"):
        call_command("worker", "--once", "care-escalate", stdout=StringIO())


# --------------------------------------------------------------------------- real processes

# ``tanfang worker`` with one more job and task: "slow" writes ``started``, waits for ``go``
# (it ignores its stop event, like a job that must finish), writes ``finished``.
WORKER_MAIN = """
import datetime as dt, os, pathlib, sys, time
import django
django.setup()
from tanfang.workers import redis_backend
from tanfang.workers.jobs import Job, Schedule, register
from tanfang.workers.queue import task
folder = pathlib.Path(os.environ["TEST_JOB_DIR"])
if os.environ.get("TEST_WORKER_LEASE"):
    redis_backend.WORKER_LEASE = dt.timedelta(seconds=float(os.environ["TEST_WORKER_LEASE"]))
def slow(ctx):
    (folder / "started").write_text(ctx.worker)
    while not (folder / "go").exists():
        time.sleep(0.05)
    (folder / "finished").write_text(ctx.worker)
    return "slow done"
register(Job("slow", slow, Schedule(every=dt.timedelta(seconds=1)), lease=dt.timedelta(seconds=20)))
@task("tests.slow-task")
def slow_task(*, tag):
    (folder / f"task-started-{os.getpid()}").write_text(tag)
    while not (folder / "go").exists():
        time.sleep(0.05)
    (folder / f"task-done-{os.getpid()}").write_text(tag)
    return tag
from tanfang.cli import main
main(["tanfang", "worker", *sys.argv[1:]])
"""


def subprocess_database(tmp_path: Path) -> str:
    """A DATABASE_URL for a child process that sees this test's committed rows: the
    PostgreSQL test database itself, or a file copy of the in-memory SQLite one."""
    connection.ensure_connection()
    if connection.vendor == "postgresql":
        base = os.environ["DATABASE_URL"].rsplit("/", 1)[0]
        return f"{base}/{connection.settings_dict['NAME']}"
    path = tmp_path / "worker.sqlite3"
    target = sqlite3.connect(path)
    connection.connection.backup(target)
    target.close()
    return f"sqlite:///{path}"


def query(database_url: str, sql: str) -> list[tuple[Any, ...]]:
    """Rows the child process wrote (``%s``-free SQL)."""
    if database_url.startswith("sqlite:///"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as db:
            return list(db.execute(sql))
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return list(cursor.fetchall())


def child_env(tmp_path: Path, database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.pop("TANFANG_REDIS_URL", None)
    env.update(
        DJANGO_SETTINGS_MODULE="tanfang.settings",
        DATABASE_URL=database_url,
        TANFANG_DATA_DIR=str(tmp_path / "var"),
        TEST_JOB_DIR=str(tmp_path),
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


class WorkerProcess:
    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self.stream = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WORKER_MAIN, *args],
            cwd=ROOT,
            env=env,
            stdout=self.stream,
            stderr=subprocess.STDOUT,
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def end(self, sig: int = signal.SIGKILL) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(60)
        self.stream.close()
        return code


def sigterm_mid_job(tmp_path: Path, env: dict[str, str]) -> WorkerProcess:
    """Start a worker running only "slow", SIGTERM it mid-job, let the job finish: the
    process exits 0 after the job finished. Returns the ended process (for more checks)."""
    log = tmp_path / "worker.log"
    worker = WorkerProcess(["--only", "slow", "--name", "sigterm"], env, log)
    try:
        wait_for(lambda: (tmp_path / "started").exists(), 120, f"the job to start\n{log}")
        worker.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: "stopping: no new jobs; waiting for slow" in worker.text(), 30, "stop")
        assert worker.proc.poll() is None  # still finishing the job
        (tmp_path / "go").write_text("")
        assert worker.proc.wait(60) == 0, worker.text()
    finally:
        worker.end()
    assert (tmp_path / "finished").exists()
    assert "job slow done: slow done" in worker.text()
    assert "leases released" in worker.text()
    return worker


@pytest.mark.django_db(transaction=True)
def test_sigterm_lets_the_running_job_finish_then_exits_0(tmp_path: Path) -> None:
    database = subprocess_database(tmp_path)
    sigterm_mid_job(tmp_path, child_env(tmp_path, database))
    lease = query(database, "SELECT holder, lease_until FROM workers_joblease WHERE name = 'slow'")
    assert lease == [("", None)]
    runs = query(database, "SELECT ok, summary FROM workers_jobrun WHERE name = 'slow'")
    assert [(bool(ok), summary) for ok, summary in runs] == [(True, "slow done")]


@pytest.mark.django_db(transaction=True)
def test_a_second_sigterm_exits_at_once(tmp_path: Path) -> None:
    database = subprocess_database(tmp_path)
    log = tmp_path / "worker.log"
    worker = WorkerProcess(["--only", "slow"], child_env(tmp_path, database), log)
    try:
        wait_for(lambda: (tmp_path / "started").exists(), 120, "the job to start")
        worker.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: "stopping: no new jobs" in worker.text(), 30, "the first signal")
        worker.proc.send_signal(signal.SIGTERM)
        assert worker.proc.wait(60) == 128 + signal.SIGTERM
    finally:
        worker.end()
    assert "second SIGTERM: exiting at once" in worker.text()
    assert not (tmp_path / "finished").exists()
    # Its lease is left to run out.
    assert query(database, "SELECT holder FROM workers_joblease WHERE name = 'slow'")[0][0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.django_db(transaction=True)
def test_serve_runs_the_worker_beside_gunicorn(tmp_path: Path) -> None:
    database = subprocess_database(tmp_path)
    port = _free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as stream:
        server = subprocess.Popen(
            [sys.executable, "-m", "tanfang.cli", "serve", "--port", str(port), "--workers", "1"],
            cwd=ROOT,
            env=child_env(tmp_path, database),
            stdout=stream,
            stderr=subprocess.STDOUT,
        )
        try:

            def answers() -> bool:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/login/", timeout=2) as r:
                        return bool(r.status == 200)
                except OSError:
                    return False

            wait_for(answers, 120, "the web server")
            # The 15-second emergency timer (or, before that app exists, the minute's alert
            # timer) runs on its own.
            wait_for(
                lambda: query(database, "SELECT count(*) FROM workers_jobrun WHERE ok")[0][0] > 0,
                120,
                "a job run by the in-process worker",
            )
            server.send_signal(signal.SIGTERM)
            assert server.wait(60) == 0, log.read_text(errors="replace")
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
    text = log.read_text(errors="replace")
    assert "starting on database" in text and "leases released" in text
    assert query(database, "SELECT count(*) FROM workers_joblease WHERE holder != ''") == [(0,)]
