"""The worker: threads that run periodic jobs, the outbox and the queue, and a clean stop.

One ``Worker`` runs, in threads of one process:

1. the scheduler: every ``tick`` it renews the leases of the jobs it runs, keeps this worker
   known as alive (Redis), hands back the queued jobs of dead workers, and claims each
   periodic job that is due; a claimed job runs in a thread of its own (a long nightly job
   does not hold up the 15-second emergency timers), records a ``JobRun`` and, when done,
   sets the job's next due time and releases it in one step;
2. the outbox loop: ``outbox_run`` again and again (each call drains what is due, then waits
   for a wake-up or polls); with Redis a relay thread turns the wake-ups published by other
   processes into this process's ``outbox_wake``;
3. the queue loop: take a queued job, run it, acknowledge it.

Stopping (``request_stop``; SIGTERM or SIGINT under ``run_until_signalled``): no new work
is taken, every running job's stop event is set (the outbox honours it; other jobs finish),
leases and queued jobs in hand are released, then the threads end. A second signal exits
at once.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType

from django.db import close_old_connections, connection
from django.utils import timezone

from tanfang.workers.backends import Backend, Claim, Delivery
from tanfang.workers.jobs import Job, JobContext, summary_of
from tanfang.workers.models import JobRun
from tanfang.workers.queue import discover_tasks, task_function

log = logging.getLogger("tanfang.workers")


def default_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class _Running:
    job: Job
    claim: Claim
    stop: threading.Event
    thread: threading.Thread | None = None
    renewed: float = field(default_factory=time.monotonic)


def run_job(
    backend: Backend,
    job: Job,
    claim: Claim,
    *,
    worker: str,
    stop: threading.Event,
) -> JobRun:
    """Run one claimed periodic job: record it, run it, set the next due time, release."""
    started = timezone.now()
    record = JobRun.objects.create(name=job.name, worker=worker[:80], started_at=started)
    try:
        result = job.run(JobContext(worker=worker, stop=stop, now=started))
    except Exception as exc:
        record.ok, record.error = False, traceback.format_exc()[-4000:]
        record.summary = f"{type(exc).__name__}: {exc}"[:300]
        log.exception("job %s failed", job.name)
    else:
        record.ok, record.summary = True, summary_of(result)
        log.info("job %s done: %s", job.name, record.summary or "ok")
    finally:
        record.finished_at = timezone.now()
        next_run_at = None
        if job.schedule is not None and not claim.forced:
            next_run_at = job.schedule.next_after(started)
        try:
            record.save(update_fields=["ok", "error", "summary", "finished_at"])
        finally:
            if not backend.finish(claim, job, next_run_at=next_run_at):
                log.warning("job %s: the lease was lost before the job finished", job.name)
    return record


class Worker:
    def __init__(
        self,
        *,
        backend: Backend,
        jobs: list[Job],
        name: str = "",
        tick: float = 1.0,
        max_running: int = 4,
        heartbeat_seconds: float | None = None,
    ) -> None:
        self.backend = backend
        self.name = name or default_name()
        # Unique per process: a restarted worker is not mistaken for its dead predecessor.
        self.identity = f"{self.name[:60]}#{secrets.token_hex(3)}"
        self.tick = tick
        self.max_running = max_running
        self.heartbeat_seconds = heartbeat_seconds or backend.heartbeat_seconds
        self.periodic = [job for job in jobs if not job.continuous and self._usable(job)]
        self.loops = [job for job in jobs if job.continuous and self._usable(job)]
        self.stopping = threading.Event()
        self.running: dict[str, _Running] = {}
        self._lock = threading.Lock()
        self._retry_at: dict[str, dt.datetime] = {}
        self._threads: list[threading.Thread] = []
        self._beat = 0.0
        self.crashed = False

    @staticmethod
    def _usable(job: Job) -> bool:
        if job.available():
            return True
        log.info("job %s skipped: %s is not installed", job.name, job.requires)
        return False

    # ----------------------------------------------------------------- life cycle

    def start(self) -> None:
        log.info(
            "worker %s starting on %s: %s",
            self.identity,
            self.backend.kind,
            ", ".join(job.name for job in self.loops + self.periodic) or "no jobs",
        )
        discover_tasks()
        now = timezone.now()
        self.backend.prepare(self.periodic, now=now)
        self.backend.heartbeat(self.identity, now=now)
        close_old_connections()
        targets: dict[str, Callable[[], None]] = {"scheduler": self._scheduler}
        for job in self.loops:
            targets[job.name] = self._outbox_loop if job.name == "outbox" else self._queue_loop
            if job.name == "outbox" and self.backend.kind == "redis":
                self.backend.wait_wake(0)  # subscribed before the outbox first looks
                targets["wake-relay"] = self._wake_relay
        for label, target in targets.items():
            thread = threading.Thread(target=self._guarded(target), name=f"worker-{label}")
            thread.daemon = True
            thread.start()
            self._threads.append(thread)

    def request_stop(self) -> None:
        if self.stopping.is_set():
            return
        with self._lock:
            running = list(self.running)
            for item in self.running.values():
                item.stop.set()
        log.info(
            "worker %s stopping: no new jobs; waiting for %s",
            self.identity,
            ", ".join(running) or "nothing",
        )
        self.stopping.set()
        self.backend.interrupt()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the threads; True when all have ended."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            thread.join(left)
        return not any(thread.is_alive() for thread in self._threads)

    def alive(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def run_until_signalled(self) -> int:
        """Run until SIGTERM or SIGINT (main thread only); 0 after a clean stop, 1 when a
        thread of the worker crashed (it then stopped the others)."""
        signals = 0

        def on_signal(signum: int, frame: FrameType | None) -> None:
            nonlocal signals
            signals += 1
            if signals > 1:
                log.warning("second %s: exiting at once", signal.Signals(signum).name)
                os._exit(128 + signum)
            log.info("%s received", signal.Signals(signum).name)
            self.request_stop()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.start()
            while self.alive():
                self.join(0.5)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        log.info("worker %s stopped", self.identity)
        return 1 if self.crashed else 0

    def _guarded(self, target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except Exception:
                log.exception("worker thread %s crashed", threading.current_thread().name)
                self.crashed = True
                self.request_stop()
            finally:
                connection.close()

        return run

    # ----------------------------------------------------------------- the scheduler

    def _busy(self) -> bool:
        """Jobs still running, or loop threads still finishing their current work."""
        me = threading.current_thread()
        return bool(self.running) or any(
            thread.is_alive() for thread in self._threads if thread is not me
        )

    def _scheduler(self) -> None:
        while not self.stopping.is_set() or self._busy():
            now = timezone.now()
            try:
                self._keep_alive(now)
                if not self.stopping.is_set():
                    self._claim_due(now)
            except Exception:
                log.exception("scheduler: the backend failed; trying again")
                close_old_connections()
                self.stopping.wait(5)
            if self.stopping.is_set():
                time.sleep(0.1)
            else:
                self.stopping.wait(self.tick)
        self.backend.leave(self.identity)
        log.info("worker %s: every job finished, leases released", self.identity)

    def _keep_alive(self, now: dt.datetime) -> None:
        clock = time.monotonic()
        with self._lock:
            running = list(self.running.values())
        for item in running:
            if clock - item.renewed >= item.job.lease.total_seconds() / 3:
                item.renewed = clock
                if not self.backend.renew(item.claim, item.job, now=now):
                    log.warning("job %s: lease lost; asking it to stop", item.job.name)
                    item.stop.set()
        if clock - self._beat >= self.heartbeat_seconds:
            self._beat = clock
            self.backend.heartbeat(self.identity, now=now)
            if not self.stopping.is_set():
                self.backend.reap(now=now)

    def _claim_due(self, now: dt.datetime) -> None:
        for job in self.periodic:
            if self.stopping.is_set() or len(self.running) >= self.max_running:
                return
            if job.name in self.running or self._retry_at.get(job.name, now) > now:
                continue
            result = self.backend.claim(job, worker=self.identity, now=now)
            if isinstance(result, Claim):
                self._retry_at.pop(job.name, None)
                self._launch(job, result)
            else:
                self._retry_at[job.name] = result

    def _launch(self, job: Job, claim: Claim) -> None:
        item = _Running(job, claim, threading.Event())
        with self._lock:
            self.running[job.name] = item
        if self.stopping.is_set():
            item.stop.set()

        def run() -> None:
            try:
                run_job(self.backend, job, claim, worker=self.identity, stop=item.stop)
            except Exception:
                log.exception("job %s: could not be recorded or released", job.name)
            finally:
                connection.close()
                with self._lock:
                    self.running.pop(job.name, None)

        item.thread = threading.Thread(target=run, name=f"job-{job.name}", daemon=True)
        item.thread.start()

    # ----------------------------------------------------------------- the loops

    def _outbox_loop(self) -> None:
        """``outbox_run`` again and again: each call drains what is due and then waits for
        a wake-up (in this process) or polls, for ``OUTBOX_SLICE_SECONDS``."""
        job = next(job for job in self.loops if job.name == "outbox")
        while not self.stopping.is_set():
            try:
                handled = job.run(
                    JobContext(worker=self.identity, stop=self.stopping, now=timezone.now())
                )
                if handled:
                    log.info("outbox: %s messages handled", handled)
            except Exception:
                log.exception("outbox run failed")
                self.stopping.wait(5)
            finally:
                close_old_connections()
        log.info("outbox loop ended")

    def _wake_relay(self) -> None:
        """Redis: a wake-up published by any process (a message committed anywhere) wakes
        the outbox of this one."""
        from tanfang.workers.redis_backend import relay_outbox_wake

        while not self.stopping.is_set():
            try:
                if self.backend.wait_wake(1.0):
                    relay_outbox_wake()
            except Exception:
                log.exception("outbox wake-ups: Redis failed; trying again")
                self.stopping.wait(5)

    def _queue_loop(self) -> None:
        while not self.stopping.is_set():
            delivery = self.backend.dequeue(self.identity, timeout=1.0)
            if delivery is None:
                close_old_connections()
                continue
            self.run_delivery(delivery)
        log.info("queue loop ended")

    def run_delivery(self, delivery: Delivery) -> JobRun:
        started = timezone.now()
        record = JobRun(
            name=f"queue:{delivery.name}"[:60], worker=self.identity, started_at=started
        )
        try:
            result = task_function(delivery.name)(**delivery.kwargs)
        except Exception as exc:
            record.ok, record.error = False, traceback.format_exc()[-4000:]
            record.summary = f"{type(exc).__name__}: {exc}"[:300]
            log.exception("queued job %s (%s) failed", delivery.name, delivery.id)
        else:
            record.ok, record.summary = True, summary_of(result)
            log.info("queued job %s (%s) done", delivery.name, delivery.id)
        record.finished_at = timezone.now()
        record.save()
        self.backend.ack(self.identity, delivery)
        close_old_connections()
        return record


def log_to_stderr() -> None:
    """Show what the worker does (INFO, with times) even where the site logs only warnings."""
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(handler)
        log.propagate = False
    if log.getEffectiveLevel() > logging.INFO:
        log.setLevel(logging.INFO)


def serve_beside(argv: list[str]) -> int:
    """``tanfang serve`` with the worker in-process: gunicorn (``argv``) as a child process,
    the worker as threads of this one. SIGTERM or SIGINT is passed to gunicorn and stops the
    worker; returns gunicorn's exit status once both have ended. A worker that cannot start
    (say, the database is not migrated yet) is logged and the site is served without it."""
    import subprocess

    from tanfang.workers.backends import backend_for_settings
    from tanfang.workers.jobs import REGISTRY

    log_to_stderr()
    backend = backend_for_settings()
    beside = Worker(backend=backend, jobs=list(REGISTRY.values()), name=f"serve:{default_name()}")
    worker: Worker | None = beside
    try:
        beside.start()
    except Exception:
        log.exception("the in-process worker could not start; serving without it")
        worker = None
    server = subprocess.Popen(argv)

    def forward(signum: int, frame: FrameType | None) -> None:
        if server.poll() is None:
            server.send_signal(signum)
        if worker is not None:
            worker.request_stop()

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        code = server.wait()
        if worker is not None:
            worker.request_stop()
            if not worker.join(60):
                log.warning("the worker did not finish within 60 s; its leases will run out")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        backend.close()
    return code
