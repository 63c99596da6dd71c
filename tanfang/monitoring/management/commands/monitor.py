"""``tanfang monitor tick|learn|escalate|remote-visits``: the periodic jobs of live monitoring.

- ``tanfang monitor tick [--now ISO]``: live detection from the reading store into alerts
  (``monitoring/tick.py``); run every 15 minutes.
- ``tanfang monitor learn [--now ISO]``: learn every active meter's profile from the reading
  store and save it under ``MONITORING_DIR/profiles/`` (``monitoring/profiles.py``), so that
  the tick reads only its look-back; run once a night (03:00).
- ``tanfang monitor escalate [--now ISO]``: climb the alerts nobody acknowledged in time
  (``alerts.alerts_escalate``); run every minute or five.
- ``tanfang monitor remote-visits [--day YYYY-MM-DD]``: record yesterday's (or ``--day``'s)
  quiet normal days as remote-monitoring visits where the district says so
  (``monitoring/remote_visits.py``); run once a night.

docs/monitoring.md has the schedule. Exit status 2 for an unusable option.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from tanfang.monitoring.alerts import alerts_escalate
from tanfang.monitoring.detection.config import RuleBookError
from tanfang.monitoring.profiles import monitor_learn
from tanfang.monitoring.remote_visits import remote_visits_record
from tanfang.monitoring.tick import monitor_tick


def moment_argument(raw: str) -> dt.datetime:
    """``--now 2026-03-09T09:00:00+08:00``: a moment with its UTC offset."""
    try:
        moment = dt.datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        raise CommandError(f"--now: {raw!r} is not an ISO 8601 moment", returncode=2) from None
    if moment.tzinfo is None:
        raise CommandError(
            f"--now: {raw!r} has no UTC offset (e.g. 2026-03-09T09:00:00+08:00)", returncode=2
        )
    return moment


def day_argument(raw: str) -> dt.date:
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise CommandError(f"--day: {raw!r} is not a date YYYY-MM-DD", returncode=2) from None


class Command(BaseCommand):
    help = "Live monitoring jobs: detection tick, alert escalation, remote-monitoring visits."

    def add_arguments(self, parser: CommandParser) -> None:
        jobs = parser.add_subparsers(dest="job", required=True, metavar="JOB")
        tick = jobs.add_parser("tick", help="detect from the reading store and raise alerts")
        tick.add_argument("--now", type=moment_argument, default=None, help="default: now")
        learn = jobs.add_parser("learn", help="learn every meter's profile (nightly)")
        learn.add_argument("--now", type=moment_argument, default=None, help="default: now")
        escalate = jobs.add_parser("escalate", help="climb unacknowledged alerts")
        escalate.add_argument("--now", type=moment_argument, default=None, help="default: now")
        remote = jobs.add_parser(
            "remote-visits", help="record quiet normal days as remote-monitoring visits"
        )
        remote.add_argument(
            "--day", type=day_argument, default=None, help="YYYY-MM-DD; default: yesterday"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        job = options["job"]
        if job == "tick":
            try:
                report = monitor_tick(now=options["now"])
            except RuleBookError as exc:
                raise CommandError(f"monitoring rules: {exc}", returncode=2) from exc
            self.stdout.write(report.summary())
            if report.set_aside:
                self.stderr.write(f"set aside: {report.set_aside}")
        elif job == "learn":
            try:
                learned = monitor_learn(now=options["now"])
            except RuleBookError as exc:
                raise CommandError(f"monitoring rules: {exc}", returncode=2) from exc
            self.stdout.write(learned.summary())
        elif job == "escalate":
            count = alerts_escalate(now=options["now"])
            self.stdout.write(f"{count} alerts escalated")
        else:
            day = options["day"] or timezone.localdate() - dt.timedelta(days=1)
            if day >= timezone.localdate():
                raise CommandError(f"--day: {day} is not over yet; give a past day", returncode=2)
            result = remote_visits_record(day=day)
            self.stdout.write(result.summary())
            if result.recorded and not result.counts:
                self.stderr.write(
                    "note: remote_monitoring is not a counting mode on this day; the visits "
                    "are recorded but do not count (add the mode to the counting rule)"
                )
