"""Where workers coordinate: the database (embedded default) or Redis (production).

Both backends answer the same questions (``Backend``):

- periodic jobs: ``claim`` a job that is due and free (one holder at a time, across every
  worker process on every machine), ``renew`` the claim while it runs, ``finish`` it (set the
  next due time and release in one step, only if the claim is still ours);
- queued jobs: ``enqueue``, ``dequeue`` into this worker's hands, ``ack`` when done, and hand
  back the jobs of a worker that died (``reap``; the database does it by lease expiry);
- the outbox wake-up across processes (Redis only): ``wait_wake`` returns True when a
  message was committed somewhere.

``DatabaseBackend`` uses ``JobLease`` and ``QueuedJob`` rows claimed with conditional UPDATEs
(the worker's clock decides leases: keep the machines' clocks in sync with NTP).
``RedisBackend`` (``redis_backend.py``) uses locks with expiry, Lua compare-and-set scripts
and a reliable list queue.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from tanfang.workers.jobs import Job
from tanfang.workers.models import JobLease, QueuedJob

# A queued job whose worker vanished is handed out again after this long without renewal.
QUEUE_LEASE = dt.timedelta(seconds=60)


@dataclass(frozen=True)
class Claim:
    """A periodic job held by one worker; ``token`` is unique to this claim."""

    job: str
    token: str
    forced: bool = False


@dataclass(frozen=True)
class JobState:
    name: str
    next_run_at: dt.datetime | None
    holder: str
    lease_until: dt.datetime | None


@dataclass(frozen=True)
class Delivery:
    """A queued job in a worker's hands."""

    id: str
    name: str
    kwargs: dict[str, Any]
    raw: str = ""  # the Redis list item, for the acknowledgement


def claim_token(worker: str) -> str:
    return f"{worker[:60]}/{secrets.token_hex(4)}"


class Backend(Protocol):
    kind: str
    heartbeat_seconds: float  # how often a worker says it is alive (and renews its queue)

    def prepare(self, jobs: list[Job], *, now: dt.datetime) -> None: ...

    def claim(
        self, job: Job, *, worker: str, now: dt.datetime, force: bool = False
    ) -> Claim | dt.datetime: ...

    def renew(self, claim: Claim, job: Job, *, now: dt.datetime) -> bool: ...

    def finish(self, claim: Claim, job: Job, *, next_run_at: dt.datetime | None) -> bool: ...

    def states(self, jobs: list[Job]) -> dict[str, JobState]: ...

    def enqueue(self, name: str, kwargs: dict[str, Any]) -> str: ...

    def dequeue(self, worker: str, *, timeout: float) -> Delivery | None: ...

    def ack(self, worker: str, delivery: Delivery) -> None: ...

    def heartbeat(self, worker: str, *, now: dt.datetime) -> None: ...

    def reap(self, *, now: dt.datetime) -> int: ...

    def leave(self, worker: str) -> None: ...

    def wait_wake(self, timeout: float) -> bool: ...

    def interrupt(self) -> None: ...

    def close(self) -> None: ...


def _retry_at(next_run_at: dt.datetime | None, now: dt.datetime) -> dt.datetime:
    """When a worker that failed to claim looks again: at the next due time, or soon when
    the job is merely held (the holder may finish early)."""
    if next_run_at is not None and next_run_at > now:
        return next_run_at
    return now + dt.timedelta(seconds=5)


class DatabaseBackend:
    """The embedded backend: ``JobLease`` and ``QueuedJob`` rows, claimed with conditional
    UPDATEs whose row count says who won."""

    kind = "database"
    heartbeat_seconds = 5.0

    def __init__(self, *, poll_seconds: float = 1.0) -> None:
        self.poll_seconds = poll_seconds
        self._interrupted = threading.Event()

    # ----------------------------------------------------------------- periodic jobs

    def prepare(self, jobs: list[Job], *, now: dt.datetime) -> None:
        """A lease row per periodic job, first due at the start of its next period."""
        JobLease.objects.bulk_create(
            [
                JobLease(name=job.name, next_run_at=job.schedule.next_after(now))
                for job in jobs
                if job.schedule is not None
            ],
            ignore_conflicts=True,
        )

    def claim(
        self, job: Job, *, worker: str, now: dt.datetime, force: bool = False
    ) -> Claim | dt.datetime:
        token = claim_token(worker)
        rows = JobLease.objects.filter(
            Q(lease_until__isnull=True) | Q(lease_until__lt=now), name=job.name
        )
        if not force:
            rows = rows.filter(Q(next_run_at__isnull=True) | Q(next_run_at__lte=now))
        if rows.update(holder=token, lease_until=now + job.lease):
            return Claim(job.name, token, forced=force)
        lease = JobLease.objects.filter(name=job.name).first()
        if lease is None:
            self.prepare([job], now=now)
            return now
        return _retry_at(lease.next_run_at, now)

    def renew(self, claim: Claim, job: Job, *, now: dt.datetime) -> bool:
        rows = JobLease.objects.filter(name=claim.job, holder=claim.token)
        return bool(rows.update(lease_until=now + job.lease))

    def finish(self, claim: Claim, job: Job, *, next_run_at: dt.datetime | None) -> bool:
        changes: dict[str, Any] = {"holder": "", "lease_until": None}
        if next_run_at is not None:
            changes["next_run_at"] = next_run_at
        return bool(JobLease.objects.filter(name=claim.job, holder=claim.token).update(**changes))

    def states(self, jobs: list[Job]) -> dict[str, JobState]:
        now = timezone.now()
        return {
            lease.name: JobState(
                lease.name,
                lease.next_run_at,
                lease.holder if lease.lease_until and lease.lease_until > now else "",
                lease.lease_until,
            )
            for lease in JobLease.objects.filter(name__in=[job.name for job in jobs])
        }

    # ----------------------------------------------------------------- queued jobs

    def enqueue(self, name: str, kwargs: dict[str, Any]) -> str:
        row = QueuedJob.objects.create(name=name, kwargs=kwargs, enqueued_at=timezone.now())
        return str(row.pk)

    def dequeue(self, worker: str, *, timeout: float) -> Delivery | None:
        deadline = time.monotonic() + timeout
        while True:
            now = timezone.now()
            free = Q(holder="") | Q(lease_until__lt=now)
            for row in QueuedJob.objects.filter(free).order_by("id")[:5]:
                claimed = QueuedJob.objects.filter(free, pk=row.pk).update(
                    holder=worker[:80], lease_until=now + QUEUE_LEASE, attempts=F("attempts") + 1
                )
                if claimed:
                    return Delivery(str(row.pk), row.name, dict(row.kwargs))
            left = deadline - time.monotonic()
            if left <= 0 or self._interrupted.is_set():
                return None
            self._interrupted.wait(min(self.poll_seconds, left))

    def ack(self, worker: str, delivery: Delivery) -> None:
        QueuedJob.objects.filter(pk=int(delivery.id), holder=worker[:80]).delete()

    def heartbeat(self, worker: str, *, now: dt.datetime) -> None:
        QueuedJob.objects.filter(holder=worker[:80]).update(lease_until=now + QUEUE_LEASE)

    def reap(self, *, now: dt.datetime) -> int:
        return 0  # a dead worker's queued job is free again once its lease ran out

    def leave(self, worker: str) -> None:
        QueuedJob.objects.filter(holder=worker[:80]).update(holder="", lease_until=None)

    # ----------------------------------------------------------------- outbox wake-up

    def wait_wake(self, timeout: float) -> bool:
        # In-process wake-ups reach ``outbox_run`` directly; other processes' are not seen
        # (the outbox polls every second).
        self._interrupted.wait(timeout)
        return False

    def interrupt(self) -> None:
        self._interrupted.set()

    def close(self) -> None:
        pass


def backend_for_settings(*, poll_seconds: float = 1.0) -> Backend:
    """Redis when ``TANFANG_REDIS_URL`` is set, else the database."""
    if settings.REDIS_URL:
        from tanfang.workers.redis_backend import RedisBackend

        return RedisBackend(settings.REDIS_URL, prefix=settings.WORKER_KEY_PREFIX)
    return DatabaseBackend(poll_seconds=poll_seconds)


def payload(name: str, kwargs: dict[str, Any]) -> str:
    """A queued job as JSON; fails loudly at enqueue time on arguments JSON cannot carry."""
    return json.dumps(
        {"id": secrets.token_hex(8), "name": name, "kwargs": kwargs}, separators=(",", ":")
    )
