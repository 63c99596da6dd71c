"""The jobs ``tanfang worker`` runs: what each calls, how often, how long a claim lasts.

A periodic job has a ``Schedule``: every N seconds (slots aligned on the epoch, so "every
minute" means once in each minute, whichever worker runs it) or daily at HH:MM Asia/Shanghai.
A continuous job (the outbox, the queue) is a loop every worker runs all the time.

Each job calls the service function of its app (the same function the matching management
command calls), imported when the job runs: a job whose module is not installed yet is
skipped with a log line (``Job.available``), so the worker runs with whatever apps exist.
"""

from __future__ import annotations

import datetime as dt
import importlib
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")
# How long one call of the outbox runs before the loop looks around (stop, wake-ups).
OUTBOX_SLICE_SECONDS = 30.0


class JobUnavailable(Exception):
    """The job's module or function is not there (an app not installed yet)."""


@dataclass(frozen=True)
class Schedule:
    """Every ``every`` (aligned on the epoch), or daily at ``daily_at`` Asia/Shanghai."""

    every: dt.timedelta | None = None
    daily_at: dt.time | None = None

    def __post_init__(self) -> None:
        if (self.every is None) == (self.daily_at is None):
            raise ValueError("a schedule is either every N seconds or daily at HH:MM")
        if self.every is not None and self.every.total_seconds() <= 0:
            raise ValueError("every must be positive")

    def next_after(self, moment: dt.datetime) -> dt.datetime:
        """The start of the next period strictly after ``moment`` (UTC)."""
        if self.every is not None:
            step = self.every.total_seconds()
            slot = math.floor(moment.timestamp() / step) + 1
            return dt.datetime.fromtimestamp(slot * step, tz=dt.UTC)
        assert self.daily_at is not None
        local = moment.astimezone(SHANGHAI)
        due = dt.datetime.combine(local.date(), self.daily_at, tzinfo=SHANGHAI)
        if due <= local:
            due += dt.timedelta(days=1)  # Asia/Shanghai has no daylight saving time
        return due.astimezone(dt.UTC)

    def describe(self) -> str:
        if self.every is not None:
            seconds = int(self.every.total_seconds())
            if seconds % 60:
                return f"every {seconds} s"
            return f"every {seconds // 60} min"
        assert self.daily_at is not None
        return f"daily {self.daily_at:%H:%M} Asia/Shanghai"


@dataclass(frozen=True)
class JobContext:
    """What a running job gets: the worker's name, a stop event (set when the worker is
    shutting down or lost the job's lease: a long job should finish early), the start time."""

    worker: str
    stop: threading.Event
    now: dt.datetime
    once: bool = False  # ``tanfang worker --once``: one pass, no waiting


@dataclass(frozen=True)
class Job:
    name: str
    run: Callable[[JobContext], object]
    schedule: Schedule | None  # None: a continuous loop in every worker
    lease: dt.timedelta = dt.timedelta(minutes=2)
    requires: str = ""  # "module:function" that must exist for the job to run
    description: str = ""

    @property
    def continuous(self) -> bool:
        return self.schedule is None

    def available(self) -> bool:
        if not self.requires:
            return True
        try:
            load(self.requires)
        except JobUnavailable:
            return False
        return True


def load(target: str) -> Callable[..., Any]:
    """``"package.module:function"`` → the function; ``JobUnavailable`` when the module or the
    function does not exist (other import errors are real errors and propagate)."""
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            raise JobUnavailable(f"{module_name} is not installed") from exc
        raise
    function = getattr(module, attr, None)
    if not callable(function):
        raise JobUnavailable(f"{module_name} has no {attr}()")
    return function


def summary_of(result: object) -> str:
    """A job's return value as one short line for ``JobRun.summary``."""
    if result is None:
        return ""
    describe = getattr(result, "summary", None)
    text = str(describe()) if callable(describe) else str(result)
    return text[:300]


REGISTRY: dict[str, Job] = {}


def register(job: Job) -> Job:
    REGISTRY[job.name] = job
    return job


def job_named(name: str) -> Job:
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise KeyError(f"no job {name!r} (jobs: {known})") from None


@dataclass
class _Call:
    """A job that calls one service function, with the arguments built from the context."""

    target: str
    arguments: Callable[[JobContext], dict[str, Any]] = field(default=lambda ctx: {})
    result: Callable[[Any], str] | None = None

    def __call__(self, ctx: JobContext) -> object:
        value = load(self.target)(**self.arguments(ctx))
        return self.result(value) if self.result else value


def _counted(what: str) -> Callable[[Any], str]:
    return lambda n: f"{n} {what}"


def _every(seconds: int) -> Schedule:
    return Schedule(every=dt.timedelta(seconds=seconds))


def _daily(hour: int, minute: int = 0) -> Schedule:
    return Schedule(daily_at=dt.time(hour, minute))


def _outbox(ctx: JobContext) -> object:
    run = load("tanfang.notifications.outbox:outbox_run")
    seconds = 0.0 if ctx.once else OUTBOX_SLICE_SECONDS
    return run(worker=ctx.worker, max_seconds=seconds, stop=ctx.stop)


def _remote_visits(ctx: JobContext) -> object:
    day = ctx.now.astimezone(SHANGHAI).date() - dt.timedelta(days=1)
    return load("tanfang.monitoring.remote_visits:remote_visits_record")(day=day)


def _readings(ctx: JobContext) -> str:
    """What ``tanfang readings compact``, ``hourly --day yesterday`` and ``retain`` do."""
    from tanfang.monitoring import store

    today = ctx.now.astimezone(dt.UTC).date()
    compacted = 0
    for day in store.stored_days():
        if day < today:
            store.readings_compact(day)
            compacted += 1
    yesterday = today - dt.timedelta(days=1)
    built = store.hourly_build(yesterday, meters=store.meters_from_db())
    retained = store.retention_apply(ctx.now)
    return (
        f"{compacted} days compacted; hourly {yesterday}: {built.meters} meters; "
        f"raw days deleted {len(retained.raw_days_deleted)}"
    )


def _obligations(ctx: JobContext) -> str:
    # One process: forking beside the worker's threads is unsafe (``tanfang obligations
    # --workers 2`` from cron is the alternative for a very large city).
    from tanfang.visits.status_bulk import status_refresh_all

    report = status_refresh_all(on=ctx.now.astimezone(SHANGHAI).date(), workers=1)
    return f"{report.elders} elders refreshed, {report.changed} changed"


def _prune_runs(ctx: JobContext) -> str:
    from tanfang.workers.models import JobRun

    deleted, _ = JobRun.objects.filter(started_at__lt=ctx.now - dt.timedelta(days=30)).delete()
    return f"{deleted} job runs older than 30 days deleted"


def _queue(ctx: JobContext) -> object:  # the runner's queue loop does the work
    return None


for _job in (
    Job(
        "outbox",
        _outbox,
        None,
        requires="tanfang.notifications.outbox:outbox_run",
        description="send the messages of the outbox (continuous)",
    ),
    Job("queue", _queue, None, description="run queued jobs (continuous)"),
    Job(
        "emergencies-escalate",
        _Call("tanfang.emergencies.services:emergencies_escalate", result=_counted("escalated")),
        _every(15),
        lease=dt.timedelta(minutes=1),
        requires="tanfang.emergencies.services:emergencies_escalate",
        description="climb emergency cases nobody confirmed in time",
    ),
    Job(
        "alerts-escalate",
        _Call("tanfang.monitoring.alerts:alerts_escalate", result=_counted("alerts escalated")),
        _every(60),
        requires="tanfang.monitoring.alerts:alerts_escalate",
        description="climb alerts nobody acknowledged in time (tanfang monitor escalate)",
    ),
    Job(
        "notifications-escalate",
        _Call("tanfang.notifications.family:notifications_escalate", result=_counted("escalated")),
        _every(60),
        requires="tanfang.notifications.family:notifications_escalate",
        description="pass unconfirmed urgent messages on to staff",
    ),
    Job(
        "sms-receipts",
        _Call("tanfang.notifications.receipts:sms_receipts_check", result=_counted("reported")),
        _every(60),
        lease=dt.timedelta(minutes=2),
        requires="tanfang.notifications.receipts:sms_receipts_check",
        description="read the carriers' delivery reports of sent SMS; fall back when one failed",
    ),
    Job(
        "referrals-escalate",
        _Call("tanfang.referrals.services:referrals_escalate", result=_counted("escalated")),
        _every(300),
        lease=dt.timedelta(minutes=5),
        requires="tanfang.referrals.services:referrals_escalate",
        description="escalate overdue referrals",
    ),
    Job(
        "monitor-tick",
        _Call("tanfang.monitoring.tick:monitor_tick"),
        _every(15 * 60),
        lease=dt.timedelta(minutes=10),
        requires="tanfang.monitoring.tick:monitor_tick",
        description="live detection into alerts (tanfang monitor tick)",
    ),
    Job(
        "obligations",
        _obligations,
        _daily(0, 30),
        lease=dt.timedelta(minutes=10),
        requires="tanfang.visits.status_bulk:status_refresh_all",
        description="recompute every elder's visit status (tanfang obligations)",
    ),
    Job(
        "remote-visits",
        _remote_visits,
        _daily(1),
        lease=dt.timedelta(minutes=10),
        requires="tanfang.monitoring.remote_visits:remote_visits_record",
        description="yesterday's quiet days as remote visits (tanfang monitor remote-visits)",
    ),
    Job(
        "readings",
        _readings,
        _daily(2),
        lease=dt.timedelta(minutes=10),
        requires="tanfang.monitoring.store:retention_apply",
        description="compact, hourly aggregates, keeping times (tanfang readings ...)",
    ),
    Job(
        "monitor-learn",
        _Call("tanfang.monitoring.profiles:monitor_learn"),
        _daily(3),
        lease=dt.timedelta(minutes=10),
        requires="tanfang.monitoring.profiles:monitor_learn",
        description="learn every meter's routine profile (tanfang monitor learn)",
    ),
    Job(
        "job-runs-prune",
        _prune_runs,
        _daily(4),
        description="forget job runs older than 30 days",
    ),
    Job(
        "care-escalate",
        _Call("tanfang.care.services:care_actions_escalate", result=_counted("escalated")),
        _daily(8),
        requires="tanfang.care.services:care_actions_escalate",
        description="hand overdue care actions to a community worker (tanfang care_escalate)",
    ),
):
    register(_job)
