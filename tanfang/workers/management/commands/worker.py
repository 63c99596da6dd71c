"""``tanfang worker [--list] [--once JOB] [--only JOB,...] [--name NAME]``.

Runs the periodic jobs, the outbox and the queue (docs/workers.md) until SIGTERM or SIGINT:
on the database when ``TANFANG_REDIS_URL`` is empty, on Redis otherwise (then any number of
workers may run on any number of machines).

- ``--list``: every job, its schedule, when it is next due, who runs it now, its last run.
- ``--once JOB``: run one job now (through its lock, so never beside another run of it;
  the schedule is left as it is) and exit: status 0 when it succeeded, 1 when it failed or
  another worker is running it.
- ``--only JOB,...``: run only these jobs (``outbox`` and ``queue`` are the continuous ones).
- ``--name NAME``: this worker's name in logs and job runs (default host:pid).
"""

from __future__ import annotations

import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from tanfang.workers.backends import Backend, Claim, backend_for_settings
from tanfang.workers.jobs import REGISTRY, Job, JobContext, job_named, summary_of
from tanfang.workers.models import JobRun
from tanfang.workers.queue import discover_tasks
from tanfang.workers.runner import Worker, default_name, log_to_stderr, run_job


def _when(moment: Any) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


class Command(BaseCommand):
    help = "Run the periodic jobs, the outbox and the queue (until SIGTERM)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--list", action="store_true", help="list the jobs and their runs")
        parser.add_argument("--once", metavar="JOB", default="", help="run one job now and exit")
        parser.add_argument("--only", metavar="JOB,...", default="", help="run only these jobs")
        parser.add_argument("--name", default="", help="this worker's name (default host:pid)")

    def handle(self, *args: Any, **options: Any) -> None:
        log_to_stderr()
        jobs = self._jobs(options["only"])
        backend = backend_for_settings()
        name = options["name"] or default_name()
        try:
            if options["list"]:
                self._list(backend, jobs)
            elif options["once"]:
                self._once(backend, options["once"], name)
            else:
                code = Worker(backend=backend, jobs=jobs, name=name).run_until_signalled()
                if code:
                    raise CommandError("the worker stopped with errors", returncode=code)
        finally:
            backend.close()

    def _jobs(self, only: str) -> list[Job]:
        if not only:
            return list(REGISTRY.values())
        try:
            return [job_named(name.strip()) for name in only.split(",") if name.strip()]
        except KeyError as exc:
            raise CommandError(f"--only: {exc.args[0]}", returncode=2) from None

    def _list(self, backend: Backend, jobs: list[Job]) -> None:
        periodic = [job for job in jobs if not job.continuous]
        states = backend.states(periodic)
        for job in jobs:
            schedule = job.schedule.describe() if job.schedule else "continuous"
            line = f"{job.name:24} {schedule:28}"
            if not job.available():
                line += f" (not installed: {job.requires})"
            state = states.get(job.name)
            if state is not None:
                line += f" next {_when(state.next_run_at)}"
                if state.holder:
                    line += f", running on {state.holder}"
            last = JobRun.objects.filter(name=job.name).first()
            if last is not None:
                outcome = {True: "ok", False: "FAILED", None: "running"}[last.ok]
                line += f"; last {_when(last.started_at)} {outcome} {last.summary}".rstrip()
            self.stdout.write(line)

    def _once(self, backend: Backend, name: str, worker: str) -> None:
        try:
            job = job_named(name)
        except KeyError as exc:
            raise CommandError(f"--once: {exc.args[0]}", returncode=2) from None
        if not job.available():
            raise CommandError(f"{job.name}: {job.requires} is not installed")
        if job.name == "queue":
            self.stdout.write(f"queue: {self._drain(backend, worker)} queued jobs run")
            return
        if job.continuous:
            ctx = JobContext(worker=worker, stop=threading.Event(), now=timezone.now(), once=True)
            result = job.run(ctx)
            self.stdout.write(f"{job.name}: {summary_of(result) or 'done'}")
            return
        now = timezone.now()
        backend.prepare([job], now=now)
        claim = backend.claim(job, worker=worker, now=now, force=True)
        if not isinstance(claim, Claim):
            raise CommandError(f"{job.name} is running on another worker now; try again later")
        record = run_job(backend, job, claim, worker=worker, stop=threading.Event())
        self.stdout.write(f"{job.name}: {'ok' if record.ok else 'FAILED'} {record.summary}")
        if not record.ok:
            raise CommandError(f"{job.name} failed", returncode=1)

    def _drain(self, backend: Backend, name: str) -> int:
        discover_tasks()
        worker = Worker(backend=backend, jobs=[], name=name)
        done = 0
        backend.heartbeat(worker.identity, now=timezone.now())
        try:
            while (delivery := backend.dequeue(worker.identity, timeout=0)) is not None:
                worker.run_delivery(delivery)
                done += 1
        finally:
            backend.leave(worker.identity)
        return done
