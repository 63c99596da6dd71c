"""Live detection: the reading store and the database's meters -> alerts, every few minutes.

``monitor_tick(now=...)`` (``tanfang monitor tick``, run every 15 minutes) does what
``tanfang detect --now`` does, with the database instead of files, and acts on the result:

1. the meter table from the database (``meter_table_from_db``): every active meter of an
   active partner; a meter linked to an elder gets the elder's district (its rules) and a
   status from the elder's life status and recorded absences (away, in hospital, deceased:
   no person alerts); an unlinked meter is watched for data silence only;
2. the rule book from ``DistrictRules`` (``rule_book_from_db``): the city's row merged onto
   the defaults, each district's row merged onto that for the district's meters;
3. the readings of the learning history and the look-back from the store
   (``store.readings_scan``), and the local engine replayed over the look-back (7 days of
   15-minute ticks; longer, at most 14 days, when an older person alert is still open and
   unresolved) with the arrival lag, exactly as ``detect --now``; with fresh stored profiles
   (``monitor learn``, ``profiles.py``) only the look-back and the rules' windows are read
   for the meters that have one, and the engine takes their thresholds from the file;
4. each episode open at ``now`` that has no alert yet is raised (``alerts.alert_raise``, key
   ``meter_id:rule:started_at``) with the engine's evidence and the chart series of the last
   48 hours against the home's usual hours (``chart.py``); technical alerts (data silence)
   go to the partner;
5. each unresolved alert whose episode has ended is resolved (``alerts.alert_resolve``) at
   the tick the engine saw it end, saying why (activity resumed, the meter reports again).

Matching an alert to the engine's episodes: the same meter and *family* (the person rules
of a meter share one episode; every other rule is its own family) and the same start; an
open episode whose start moved (late readings showed later activity) is still the same
episode. Two ticks at the same ``now`` change nothing the second time.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from tanfang.monitoring import chart, profiles, store
from tanfang.monitoring.alerts import PERSON_KINDS, Raise, alert_raise, alert_resolve
from tanfang.monitoring.detection import engine
from tanfang.monitoring.detection.config import RuleBook, RuleBookError, merge
from tanfang.monitoring.detection.engine import UNITS as CANONICAL_UNITS
from tanfang.monitoring.detection.episodes import Alert as Episode
from tanfang.monitoring.detection.profile import Profile
from tanfang.monitoring.detection.tables import (
    UNIT_FACTORS,
    MeterTable,
    Readings,
    readings_from_frame,
)
from tanfang.monitoring.models import (
    Absence,
    AbsenceReason,
    Alert,
    AlertKind,
    AlertState,
    DistrictRules,
    Meter,
)
from tanfang.registry.models import LifeStatus

log = logging.getLogger(__name__)

# The readings of some meter rows (for their chart series up to an hour's end).
ChartReadings = Callable[[list[int], int], Readings]

TICK_S = engine.DEFAULT_STEP_S
LAG_S = engine.DEFAULT_LAG_S
LOOKBACK_S = engine.DEFAULT_LOOKBACK_S
MAX_LOOKBACK_S = 14 * 86400
FUTURE_S = 300
# The elder's life status as the engine's meter status (no person alerts).
LIFE_STATUS: dict[str, str] = {
    LifeStatus.IN_HOSPITAL: "hospital",
    LifeStatus.DECEASED: "deceased",
    LifeStatus.MOVED_AWAY: "away",
    LifeStatus.IN_INSTITUTION: "away",
}


# --------------------------------------------------------------------------- rules


def rule_book_from_rows(rows: Iterable[DistrictRules]) -> RuleBook:
    """The rule book of ``rows``: the city's fragment (area None) onto the defaults, each
    district's under ``districts.{code}``. Raises RuleBookError naming what is wrong."""
    base: dict[str, Any] = {}
    districts: dict[str, Any] = {}
    for row in rows:
        fragment = row.rules or {}
        if not isinstance(fragment, dict):
            raise RuleBookError("the rules must be a JSON object")
        if "districts" in fragment:
            raise RuleBookError("districts: set a district's rules on the district's own row")
        if row.area is None:
            base = fragment
        else:
            districts[row.area.code] = fragment
    return RuleBook(merge(base, {"districts": districts}))


def rule_book_from_db() -> RuleBook:
    """The rule book in force (city default + per-district fragments, validated)."""
    return rule_book_from_rows(DistrictRules.objects.select_related("area"))


def rules_validate(candidate: DistrictRules) -> None:
    """Check ``candidate`` together with every other row, as the tick would merge them;
    RuleBookError says what is wrong. The admin refuses a row that fails."""
    others = DistrictRules.objects.select_related("area")
    if candidate.pk is not None:
        others = others.exclude(pk=candidate.pk)
    if candidate.area_id is None:
        others = others.exclude(area__isnull=True)
    else:
        others = others.exclude(area_id=candidate.area_id)
    rule_book_from_rows([*others, candidate])


# --------------------------------------------------------------------------- meters


@dataclass
class LiveMeters:
    """The engine's meter table and, row by row, the database's meters."""

    table: MeterTable
    meters: list[Meter]

    def __len__(self) -> int:
        return len(self.meters)


def statuses_on(on: dt.date, elder_ids: Sequence[int] | None = None) -> dict[int, str]:
    """Elders known not to be at home on ``on``: elder id -> away, hospital or deceased."""
    absences = Absence.objects.filter(
        Q(ends_on__isnull=True) | Q(ends_on__gte=on), starts_on__lte=on
    )
    if elder_ids is not None:
        absences = absences.filter(elder_id__in=elder_ids)
    status: dict[int, str] = {}
    for elder_id, reason in absences.values_list("elder_id", "reason"):
        if status.get(elder_id) != "hospital":
            status[elder_id] = "hospital" if reason == AbsenceReason.HOSPITAL else "away"
    return status


def meter_rows(meters: Sequence[Meter], absent: dict[int, str]) -> list[dict[str, object]]:
    """The meters as rows of the engine's meter table, in the store's canonical units."""
    rows: list[dict[str, object]] = []
    for meter in meters:
        elder = meter.elder
        if elder is None:
            # Nobody to alert about: watched for data silence only.
            status, district, elder_id = "away", "", ""
        else:
            status = LIFE_STATUS.get(elder.life_status, "") or absent.get(elder.pk, "")
            district, elder_id = elder.district.code, str(elder.pk)
        factor = UNIT_FACTORS.get(meter.unit, 1.0)
        rows.append(
            {
                "meter_id": meter.meter_id,
                "elder_id": elder_id,
                "utility": meter.utility,
                "register": meter.register,
                "unit": CANONICAL_UNITS[meter.utility],
                "interval_minutes": float(meter.interval_minutes),
                "tz": meter.tz,
                "district": district,
                "status": status,
                "rollover": None if meter.rollover is None else float(meter.rollover) * factor,
            }
        )
    return rows


def meter_table_from_db(*, on: dt.date) -> LiveMeters:
    """Every active meter of an active partner, with its elder's district and status on
    ``on`` (the module's docstring, step 1)."""
    meters = list(
        Meter.objects.filter(active=True, partner__active=True)
        .select_related("elder__district", "partner")
        .order_by("meter_id")
    )
    absent = statuses_on(on)
    if not meters:
        return LiveMeters(_empty_table(), [])
    return LiveMeters(MeterTable.build(meter_rows(meters, absent)), meters)


def _empty_table() -> MeterTable:
    columns = ("meter_id", "elder_id", "utility", "register", "unit")
    return MeterTable.from_frame(pl.DataFrame({c: pl.Series([], dtype=pl.String) for c in columns}))


# --------------------------------------------------------------------------- the store


def read_store(*, since: int, until: int, meter_ids: Sequence[str] | None = None) -> pl.DataFrame:
    """Readings (meter_id, ts, value) stamped in [since, until], deduplicated, from the
    reading store."""
    frame = store.readings_scan(since=since, until=until, meter_ids=meter_ids)
    return frame.select("meter_id", "ts", "value").collect()


# --------------------------------------------------------------------------- the tick


@dataclass
class TickReport:
    """What one tick did."""

    now: dt.datetime
    meters: int = 0
    readings: int = 0
    episodes_open: int = 0
    raised: list[int] = field(default_factory=list)
    not_raised: int = 0  # person episodes of elders not at home
    resolved: list[int] = field(default_factory=list)
    set_aside: dict[str, int] = field(default_factory=dict)
    lookback_hours: float = 0.0
    seconds: float = 0.0

    def summary(self) -> str:
        return (
            f"{self.now.isoformat()}: {self.meters} meters, {self.readings} readings, "
            f"{self.episodes_open} episodes open, {len(self.raised)} alerts raised, "
            f"{len(self.resolved)} resolved, {self.not_raised} not raised (not at home), "
            f"look-back {self.lookback_hours:.0f} h, {self.seconds:.1f} s"
        )


def family(kind: str, rule: str) -> str:
    """Episodes of one family on one meter are one alert at a time (the person rules share)."""
    return "person" if kind in PERSON_KINDS else rule


def _iso(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat()


def _moment(ts: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


def episode_key(meter_id: str, episode: Episode) -> str:
    """``meter_id:rule:started_at`` (UTC); an episode of unknown start (a meter never heard
    from in the history) is keyed by the moment it was first seen."""
    return f"{meter_id}:{episode.rule}:{_iso(episode.started_at or episode.detected_at)}"


def monitor_tick(
    *,
    now: dt.datetime | None = None,
    lag_s: int = LAG_S,
    tick_s: int = TICK_S,
    lookback_s: int = LOOKBACK_S,
) -> TickReport:
    """One tick of live detection at ``now`` (the module's docstring has the steps)."""
    started = time.perf_counter()
    now = now or timezone.now()
    report = TickReport(now=now)
    now_s = int(now.timestamp())
    live = meter_table_from_db(on=timezone.localdate(now))
    report.meters = len(live)
    watched = {m.pk for m in live.meters}
    unresolved = [
        alert
        for alert in Alert.objects.filter(resolved_at__isnull=True, meter__isnull=False).exclude(
            kind=AlertKind.DEVICE
        )
        if alert.meter_id in watched
    ]
    lookback_s = _lookback(unresolved, now, lookback_s, tick_s)
    report.lookback_hours = lookback_s / 3600
    if not live.meters:
        report.seconds = time.perf_counter() - started
        return report
    book = rule_book_from_db()
    ticks = _ticks(now_s, lookback_s, tick_s)
    stored = profiles.profiles_load(book, now=now_s)
    if stored is not None:
        episodes, chart_readings = _detect_stored(live, book, ticks, now_s, lag_s, stored, report)
    else:
        readings = readings_for(live.table, book, now_s, lookback_s, tick_s)
        report.readings = len(readings)
        result = engine.run(
            live.table, readings, book, ticks, lag_s=lag_s, future_cutoff=now_s + FUTURE_S
        )
        report.set_aside = {**readings.rejected, **result.quarantined}
        episodes = result.alerts

        def chart_readings(rows: list[int], end: int) -> Readings:
            return readings

    _act(live, chart_readings, book, episodes, unresolved, ticks, now, report)
    report.seconds = time.perf_counter() - started
    log.info("monitor tick %s", report.summary())
    return report


def _ticks(now_s: int, lookback_s: int, tick_s: int) -> np.ndarray:
    return np.arange(now_s - lookback_s // tick_s * tick_s, now_s + 1, tick_s, dtype=np.int64)


def readings_for(
    table: MeterTable, book: RuleBook, now_s: int, lookback_s: int, tick_s: int = TICK_S
) -> Readings:
    """The readings a tick at ``now_s`` learning the profiles itself needs: the learning
    history and the look-back (also what ``monitor learn`` learns from)."""
    ticks = _ticks(now_s, lookback_s, tick_s)
    history = max(engine.history_seconds(book.for_district(d)) for d in {*table.district, ""})
    since = int(ticks[0]) - history - 86400
    readings = readings_from_frame(read_store(since=since, until=now_s + FUTURE_S), table)
    readings.rejected.pop("unknown_meter", None)  # readings of meters not watched here
    return readings


def _detect_stored(
    live: LiveMeters,
    book: RuleBook,
    ticks: np.ndarray,
    now_s: int,
    lag_s: int,
    stored: profiles.Stored,
    report: TickReport,
) -> tuple[list[Episode], ChartReadings]:
    """The engine with the stored profiles: the meters that have one read only the
    look-back and the rules' windows; the others (new meters) learn as without them."""
    table = live.table
    sets = [book.for_district(d) for d in table.district]
    fingerprints: dict[int, str] = {}
    short: dict[int, int] = {}
    for rules in sets:
        if id(rules) not in fingerprints:
            fingerprints[id(rules)] = profiles.rules_fingerprint(rules)
            short[id(rules)] = engine.history_seconds(rules, learning=False)
    first_day = (int(ticks[0]) - max(short.values()) - 86400) // 86400 - 1
    last_day = now_s // 86400 + 1
    by_set: dict[int, list[int]] = {}
    fallback: list[int] = []
    covered = stored.covers(first_day, last_day)
    for row, rules in enumerate(sets):
        group = stored.groups.get((fingerprints[id(rules)], table.utility[row]))
        known = group is not None and table.meter_id[row] in _ids(group)
        if covered and known:
            by_set.setdefault(id(rules), []).append(row)
        else:
            fallback.append(row)
    episodes: list[Episode] = []
    set_aside: dict[str, int] = {}

    def detect(rows: list[int], frame: pl.DataFrame, given: bool) -> None:
        sub = table.take(rows)
        readings = readings_from_frame(frame, sub)
        readings.rejected.pop("unknown_meter", None)
        report.readings += len(readings)
        given_profiles: dict[str, Profile] = {}
        if given:
            rules = sets[rows[0]]
            for utility in sorted(set(sub.utility)):
                group = stored.groups[(fingerprints[id(rules)], utility)]
                ids = [m for m, u in zip(sub.meter_id, sub.utility, strict=True) if u == utility]
                pos = profiles.positions(group.meter_ids, ids)
                given_profiles[utility] = group.profile(pos, rules.learning)
        result = engine.run(
            sub,
            readings,
            book,
            ticks,
            lag_s=lag_s,
            future_cutoff=now_s + FUTURE_S,
            profiles=given_profiles or None,
        )
        for k, v in {**readings.rejected, **result.quarantined}.items():
            set_aside[k] = set_aside.get(k, 0) + v
        for ep in result.alerts:
            ep.meter = rows[ep.meter]
        episodes.extend(result.alerts)

    until = now_s + FUTURE_S
    if by_set:
        since = int(ticks[0]) - max(short[k] for k in by_set) - 86400
        mine = (
            None if not fallback else [table.meter_id[r] for rows in by_set.values() for r in rows]
        )
        frame = read_store(since=since, until=until, meter_ids=mine)
        for rows in by_set.values():
            detect(rows, frame, True)
    if fallback:
        rules_of = {d: book.for_district(d) for d in {*table.district, ""}}
        history = max(engine.history_seconds(r) for r in rules_of.values())
        since = int(ticks[0]) - history - 86400
        ids = [table.meter_id[r] for r in fallback]
        detect(fallback, read_store(since=since, until=until, meter_ids=ids), False)
    report.set_aside = set_aside
    episodes.sort(key=lambda a: (a.detected_at, a.meter, a.rule))

    def chart_readings(rows: list[int], end: int) -> Readings:
        ids = [table.meter_id[r] for r in rows]
        frame = read_store(since=chart.window_start(end), until=end, meter_ids=ids)
        return readings_from_frame(frame, table)

    return episodes, chart_readings


def _ids(group: profiles.GroupProfile) -> set[str]:
    cached = getattr(group, "_id_set", None)
    if cached is None:
        cached = set(group.meter_ids.tolist())
        group._id_set = cached  # type: ignore[attr-defined]
    return cached


def _lookback(unresolved: list[Alert], now: dt.datetime, lookback_s: int, tick_s: int) -> int:
    """The look-back, longer when a person alert nobody closed is older (so that the replay
    sees its episode begin and end), at most ``MAX_LOOKBACK_S``. Other episodes (a silent
    meter, a flow) are seen whole from any tick: their condition does not come and go."""
    waiting = [
        a.detected_at for a in unresolved if a.kind in PERSON_KINDS and a.state != AlertState.CLOSED
    ]
    if not waiting:
        return lookback_s
    span = int((now - min(waiting)).total_seconds()) + tick_s
    return min(max(lookback_s, span), max(lookback_s, MAX_LOOKBACK_S))


def _act(
    live: LiveMeters,
    chart_readings: ChartReadings,
    book: RuleBook,
    episodes: list[Episode],
    unresolved: list[Alert],
    ticks: np.ndarray,
    now: dt.datetime,
    report: TickReport,
) -> None:
    """Raise the new episodes, resolve the ended ones (matching in the module's docstring)."""
    table = live.table
    by_family: dict[tuple[int, str], list[Episode]] = {}
    for ep in episodes:
        if table.elder_id[ep.meter] == "" and ep.kind != AlertKind.DATA_SILENCE:
            continue  # an unlinked meter: silence only
        by_family.setdefault((ep.meter, family(ep.kind, ep.rule)), []).append(ep)
    ids = {m.pk: m.meter_id for m in live.meters}
    stored: dict[tuple[int, str], list[Alert]] = {}
    for alert in unresolved:
        row = table.index.get(ids.get(alert.meter_id or -1, ""))
        if row is not None:
            stored.setdefault((row, family(alert.kind, alert.rule)), []).append(alert)
    to_raise: list[Episode] = []
    for key in set(by_family) | set(stored):
        found = by_family.get(key, [])
        open_now = [ep for ep in found if ep.resolved_at is None]
        report.episodes_open += len(open_now)
        claimed: set[int] = set()
        for alert in stored.get(key, []):
            start = int(alert.started_at.timestamp())
            exact = next((ep for ep in found if ep.started_at == start), None)
            if exact is not None and exact.resolved_at is not None:
                _resolve(alert, exact.resolved_at, report)
            elif exact is not None:
                claimed.add(id(exact))
            elif open_now and id(open_now[-1]) not in claimed:
                claimed.add(id(open_now[-1]))  # the same quiet spell, its start moved
            elif _seen_whole(alert, key, table, ticks):
                _resolve(alert, int(now.timestamp()), report, late=True)
        to_raise.extend(ep for ep in open_now if id(ep) not in claimed)
    if not to_raise:
        return
    end = chart.hour_end(int(now.timestamp()))
    rows = sorted({ep.meter for ep in to_raise})
    series = chart.series_for(table, chart_readings(rows, end), book, rows, end=end)
    for ep in sorted(to_raise, key=lambda e: (e.detected_at, e.meter, e.rule)):
        meter = live.meters[ep.meter]
        evidence = {
            **ep.evidence,
            "utility": meter.utility,
            "tz": meter.tz,
            "series": series.get(ep.meter),
        }
        stored_alert, created = alert_raise(
            Raise(
                key=episode_key(meter.meter_id, ep),
                kind=ep.kind,
                rule=ep.rule,
                severity=ep.severity,
                started_at=_moment(ep.started_at or ep.detected_at),
                detected_at=_moment(ep.detected_at),
                evidence=evidence,
                meter=meter,
                elder=meter.elder,
            ),
            now=now,
        )
        if stored_alert is None:
            report.not_raised += 1
        elif created:
            report.raised.append(stored_alert.pk)


def _seen_whole(alert: Alert, key: tuple[int, str], table: MeterTable, ticks: np.ndarray) -> bool:
    """Whether the replay covered the alert's whole episode, so that its absence means the
    episode is over (late readings showed activity), not that the engine could not see it:
    the alert was detected inside the look-back, and a person alert's elder is at home
    (while she is away or in hospital the engine raises nothing to compare with)."""
    if alert.detected_at.timestamp() < int(ticks[0]):
        return False
    return not (key[1] == "person" and table.status[key[0]] in engine.SUPPRESSING)


def _resolve(alert: Alert, at: int, report: TickReport, *, late: bool = False) -> None:
    if late:
        note = _("No longer detected: later readings show the home was in use.")
    elif alert.kind in PERSON_KINDS:
        note = _("Activity resumed: the home is in use again.")
    elif alert.kind == AlertKind.DATA_SILENCE:
        note = _("The meter reports again.")
    elif alert.kind == AlertKind.CONTINUOUS_USE:
        note = _("The flow stopped.")
    else:
        note = _("The condition ended.")
    if alert_resolve(alert, at=_moment(at), note=note):
        report.resolved.append(alert.pk)
