"""``tanfang detect``: alerts from meter files as JSON lines, without the database.

``--now T`` prints the alerts open at T; ``--replay FROM TO [--tick 15m]`` prints, in time
order, every alert as it would have been raised (``"event": "raised"``) and resolved
(``"event": "resolved"``) between FROM and TO. Readings before FROM (or before the look-back
of ``--now``) are history to learn from. ``--lag`` is how late data arrive (default 60m): at
tick t only readings stamped no later than t - lag are used. Counts of readings set aside are
written to standard error. Exit status 2 when a file or an option is unusable.
``--engine spark`` runs the same per-meter function on Apache Spark (``spark_engine.py``;
master from ``TANFANG_SPARK_MASTER``, default ``local[2]``) and prints the same lines.
docs/detection.md has the formats and the rules.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
import zoneinfo
from collections.abc import Callable
from types import ModuleType
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tanfang.monitoring.detection import engine
from tanfang.monitoring.detection.config import RuleBook, RuleBookError
from tanfang.monitoring.detection.episodes import Alert
from tanfang.monitoring.detection.tables import MeterTable, TableError, read_meters, read_readings

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    match = _DURATION.match(text.strip())
    if not match or (int(match.group(1)) <= 0 and match.group(2) != "m"):
        raise CommandError(f"not a duration: {text!r} (e.g. 15m, 1h, 7d)", returncode=2)
    return int(match.group(1)) * _UNIT_S[match.group(2)]


def parse_moment(text: str) -> int:
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise CommandError(f"not an ISO 8601 moment: {text!r}", returncode=2) from exc
    if moment.tzinfo is None:
        raise CommandError(
            f"{text!r} has no UTC offset (e.g. 2024-05-01T09:00+08:00)", returncode=2
        )
    return int(moment.timestamp())


def iso_in(ts: int | None, tz: str) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, zoneinfo.ZoneInfo(tz)).isoformat()


def alert_line(alert: Alert, meters: MeterTable, **extra: Any) -> dict[str, Any]:
    tz = meters.tz[alert.meter]
    line: dict[str, Any] = {
        "meter_id": meters.meter_id[alert.meter],
        "elder_id": meters.elder_id[alert.meter],
        "utility": meters.utility[alert.meter],
        "kind": alert.kind,
        "rule": alert.rule,
        "severity": alert.severity,
        "started_at": iso_in(alert.started_at, tz),
        "detected_at": iso_in(alert.detected_at, tz),
    }
    line.update(extra)
    line["evidence"] = alert.evidence
    return line


class Command(BaseCommand):
    help = (
        "Detect monitoring alerts (inactivity, missed routine, low usage, continuous use, "
        "device events, data silence) from meter files; JSON lines out. No database."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--meters", required=True, metavar="METERS.csv")
        parser.add_argument("--readings", required=True, metavar="FILE_OR_DIR")
        parser.add_argument("--now", metavar="ISO8601", help="print the alerts open at this moment")
        parser.add_argument("--rules", metavar="RULES.json", help="rule book (overrides defaults)")
        parser.add_argument("--engine", choices=("local", "spark"), default="local")
        parser.add_argument("--replay", nargs=2, metavar=("FROM", "TO"))
        parser.add_argument("--tick", default="15m", help="replay tick (default 15m)")
        parser.add_argument("--lag", default="60m", help="arrival lag of readings (default 60m)")
        parser.add_argument(
            "--lookback", default="7d", help="with --now: how far back episodes are replayed"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if bool(options["now"]) == bool(options["replay"]):
            raise CommandError("give either --now or --replay FROM TO", returncode=2)
        tick_s = parse_duration(options["tick"])
        lag_s = parse_duration(options["lag"]) if options["lag"] not in ("0", "0m") else 0
        spark = options["engine"] == "spark"
        try:
            book = RuleBook.load(options["rules"])
            meters = read_meters(options["meters"])
            readings = None if spark else read_readings(options["readings"], meters)
        except (RuleBookError, TableError) as exc:
            raise CommandError(str(exc), returncode=2) from exc
        stdout = options.get("stdout") or sys.stdout
        write = stdout.write
        if options["now"]:
            now = parse_moment(options["now"])
            lookback_s = parse_duration(options["lookback"])
            if spark:
                result = _on_spark(
                    options["readings"],
                    meters,
                    lambda mod, session, frame: mod.open_at(
                        session,
                        meters,
                        frame,
                        book,
                        now,
                        lag_s=lag_s,
                        tick_s=tick_s,
                        lookback_s=lookback_s,
                    ),
                )
            else:
                assert readings is not None
                result = engine.open_at(
                    meters,
                    readings,
                    book,
                    now,
                    lag_s=lag_s,
                    tick_s=tick_s,
                    lookback_s=lookback_s,
                )
            for alert in result.alerts:
                write(json.dumps(alert_line(alert, meters), ensure_ascii=False) + "\n")
        else:
            start, end = (parse_moment(t) for t in options["replay"])
            if end < start:
                raise CommandError("--replay: TO is before FROM", returncode=2)
            ticks = engine.ticks_between(start, end, tick_s)
            if spark:
                result = _on_spark(
                    options["readings"],
                    meters,
                    lambda mod, session, frame: mod.run(
                        session, meters, frame, book, ticks, lag_s=lag_s, future_cutoff=end + 300
                    ),
                )
            else:
                assert readings is not None
                result = engine.run(
                    meters, readings, book, ticks, lag_s=lag_s, future_cutoff=end + 300
                )
            for at, event, alert in _events(result.alerts, end):
                tz = meters.tz[alert.meter]
                extra: dict[str, Any] = {"event": event, "at": iso_in(at, tz)}
                if event == "resolved":
                    extra["resolved_at"] = iso_in(alert.resolved_at, tz)
                write(json.dumps(alert_line(alert, meters, **extra), ensure_ascii=False) + "\n")
        if result.quarantined or result.info:
            self.stderr.write(
                json.dumps({"set_aside": result.quarantined, "register_events": result.info})
            )


def _on_spark(
    path: str, meters: MeterTable, job: Callable[[ModuleType, Any, Any], engine.Result]
) -> engine.Result:
    """``job(spark_engine, session, readings)`` on the active Spark session, or on a new one
    stopped afterwards; ``TANFANG_SPARK_MASTER`` chooses the master (docs/detection.md,
    "Spark engine"). pyspark is an optional dependency, imported only here."""
    try:
        from pyspark.errors import PySparkException

        from tanfang.monitoring.detection import spark_engine
    except ImportError as exc:
        raise CommandError(
            f"the Spark engine needs pyspark and pandas (pip install 'tanfang[spark]'): {exc}",
            returncode=2,
        ) from exc
    try:
        found = spark_engine.sources(path)  # unusable files fail here, before Spark starts
    except TableError as exc:
        raise CommandError(str(exc), returncode=2) from exc
    with spark_engine.active_session() as session:
        try:
            frame = spark_engine.read_readings(session, found, meters)
            return job(spark_engine, session, frame)
        except TableError as exc:
            raise CommandError(str(exc), returncode=2) from exc
        except PySparkException as exc:
            raise CommandError(f"Spark: {exc}", returncode=2) from exc


def _events(alerts: list[Alert], end: int) -> list[tuple[int, str, Alert]]:
    events = [(a.detected_at, "raised", a) for a in alerts]
    events += [
        (a.resolved_at, "resolved", a)
        for a in alerts
        if a.resolved_at is not None and a.resolved_at <= end
    ]
    events.sort(key=lambda e: (e[0], e[1] == "raised", e[2].meter, e[2].rule))
    return events
