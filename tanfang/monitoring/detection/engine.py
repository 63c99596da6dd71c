"""The local engine: readings + meters + rules + ticks -> alerts, as a live system would see.

Semantics (docs/detection.md, "Replay"): at tick ``t`` the engine sees the readings stamped
no later than ``t - lag`` (data arrive late; ``lag`` is a parameter, default 60 minutes) and
nothing else. Every quantity is causal, so the alerts raised up to ``t`` are the same whether
or not later readings exist. ``open_at`` (the ``--now`` mode) is the state at the last of the
ticks of a look-back period; ``replay`` lists raise and resolve events between two moments.

Per meter, the computation is a pure function of that meter's readings, its row in the meter
table and its district's rules: batches only vectorise it. ``detect_meter`` is that function
for one meter; the Spark engine runs it per meter (``groupBy(meter_id).applyInPandas``) and
must produce identical alerts.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tanfang.monitoring.detection import features as feats
from tanfang.monitoring.detection.config import PERSON_KINDS, RuleBook, RuleSet
from tanfang.monitoring.detection.devices import device_alerts
from tanfang.monitoring.detection.episodes import Alert, alerts, merged_alerts
from tanfang.monitoring.detection.grid import Grid, calendar, spread
from tanfang.monitoring.detection.normalise import MIN_SPAN_S, _median_spacing, normalise
from tanfang.monitoring.detection.profile import Profile
from tanfang.monitoring.detection.rules import Context, evaluate
from tanfang.monitoring.detection.tables import (
    MeterTable,
    Readings,
    batchable,
    ordered_map,
    read_readings,
    reading_batches,
    reading_files,
)

DEFAULT_STEP_S = 900
DEFAULT_LAG_S = 3600
DEFAULT_LOOKBACK_S = 7 * 86400
SUPPRESSING = ("away", "hospital", "deceased")
UNITS = {"water": "L", "gas": "L", "electricity": "Wh"}


@dataclass
class Result:
    alerts: list[Alert]  # meter = row in the full meter table
    quarantined: dict[str, int] = field(default_factory=dict)
    info: dict[str, int] = field(default_factory=dict)


def history_seconds(rules: RuleSet, *, learning: bool = True) -> int:
    """How far before the first tick readings matter: the learning window (unless the profile
    is given) plus the longest rule window."""
    longest = max(
        [float(r.params.get("window_hours", 0)) for r in rules.rules]
        + [float(r.params.get("hours", 0)) for r in rules.rules]
        + [24.0]
    )
    windows = [int(r.params.get("window_days", 0)) for r in rules.rules]
    days = max([int(rules.learning["days"]), *windows]) + 3 if learning else 0
    return int(days * 86400 + longest * 3600)


def run(
    meters: MeterTable,
    readings: Readings,
    book: RuleBook,
    ticks: np.ndarray,
    *,
    lag_s: int = DEFAULT_LAG_S,
    step_s: int = DEFAULT_STEP_S,
    future_cutoff: int | None = None,
    profiles: Mapping[str, Profile] | None = None,
) -> Result:
    """Alerts over ``ticks`` (sorted epoch seconds) for every meter of the table.

    Meters are grouped by (rule set, utility) and each group is run in batches of at most
    ``BATCH_METERS`` meters, ``THREADS`` batches at a time: a meter's alerts depend only on
    its own data, so batching bounds memory and changes nothing else. ``profiles`` (stored,
    per utility) have one row per meter of that utility's group, in table order.
    """
    ticks = np.asarray(ticks, dtype=np.int64)
    result = Result([])
    for k, v in readings.rejected.items():
        result.quarantined[k] = result.quarantined.get(k, 0) + v
    if future_cutoff is not None:
        late = readings.ts > future_cutoff
        if late.any():
            result.quarantined["future_timestamp"] = int(late.sum())
            readings = _subset_readings(readings, ~late)
    plan = _Plan(meters, book, ticks, lag_s, step_s, profiles)
    by_meter = _ByMeter(readings)
    tasks = plan.tasks(np.arange(len(meters)))

    def job(task: tuple[int, np.ndarray]) -> Result:
        return plan.execute(task[0], task[1], by_meter.readings_of(task[1]))

    for part in ordered_map(job, tasks, threads=THREADS, ahead=THREADS):
        _merge(result, part)
    result.alerts.sort(key=lambda a: (a.detected_at, a.meter, a.rule))
    return result


def run_source(
    meters: MeterTable,
    source: str | Path,
    book: RuleBook,
    ticks: np.ndarray,
    *,
    lag_s: int = DEFAULT_LAG_S,
    step_s: int = DEFAULT_STEP_S,
    future_cutoff: int | None = None,
    profiles: Mapping[str, Profile] | None = None,
) -> Result:
    """``run`` on a readings file or folder (``tables.reading_files``), reading it as it goes:
    the alerts of ``run(meters, read_readings(source, meters), ...)``, and the same set-aside
    counts (their order may differ). Three ways, the first that applies:

    1. only the silence rule, at up to ``SCAN_TICKS`` ticks: one pass computing, per meter,
       the last reading before each tick and whether every reading is plainly acceptable
       (``_silence_scan``, an aggregate like a database's ``max(ts) GROUP BY meter``); the
       full engine runs only for meters whose readings need normalising;
    2. Parquet files whose meters come one after another (a meter's readings in one run, as
       a file sorted by meter has them): batches of meters run as soon as all their readings
       are read, while the next row groups are read (``_stream``); memory stays bounded;
    3. otherwise: read everything, then ``run``.
    """
    ticks = np.asarray(ticks, dtype=np.int64)
    files = reading_files(source)
    if len(ticks) and batchable(files):
        plan = _Plan(meters, book, ticks, lag_s, step_s, profiles)
        found = None
        if len(ticks) <= SCAN_TICKS and _silence_only(plan):
            found = _silence_scan(plan, files, future_cutoff)
        if found is None:
            found = _stream(plan, files, future_cutoff)
        if found is not None:
            found.alerts.sort(key=lambda a: (a.detected_at, a.meter, a.rule))
            return found
    readings = read_readings(source, meters)
    return run(
        meters,
        readings,
        book,
        ticks,
        lag_s=lag_s,
        step_s=step_s,
        future_cutoff=future_cutoff,
        profiles=profiles,
    )


SCAN_TICKS = 8  # the silence aggregate keeps one column per tick
_NONE = np.iinfo(np.int64).min  # no reading
_BIG = np.iinfo(np.int64).max
_EPS = 1e-9  # relative margin of the aggregate's plausibility test (borderline: full engine)


def _silence_only(plan: _Plan) -> bool:
    """Only silence rules, and one reading window (lo, hi] for every group that has them."""
    windows = set()
    for g in np.unique(plan.group_of).tolist():
        utility, rules = plan.utility(g), plan.rules(g)
        if utility == "device":
            if rules.of_kind("device"):
                return False
            continue
        active = rules.for_utility(utility)
        if any(r.kind != "data_silence" for r in active):
            return False
        if active:
            windows.add(plan.window(g))
    return len(windows) <= 1


class _Scan:
    """Per-run aggregates of one slice of readings (file order): a run is a stretch of one
    meter's readings. Pair statistics cover consecutive readings of the run."""

    FIELDS = (
        "row", "n", "first_ts", "last_ts", "first_v", "last_v", "min_dt", "min_rate",
        "max_rate", "vmin", "vmax", "vabs", "known", "kept",
    )  # fmt: skip

    def __init__(self, part: Readings, lo: int, hi: int, horizons: np.ndarray, plan: _Plan):
        self.rejected = part.rejected
        rows, ts, v = part.meter, part.ts, part.value
        self.future = 0
        keep = (ts > lo) & (ts <= hi)
        if not keep.all():
            rows, ts, v = rows[keep], ts[keep], v[keep]
        n = len(rows)
        self.size = n
        if not n:
            return
        starts = np.flatnonzero(np.concatenate(([True], rows[1:] != rows[:-1])))
        ends = np.append(starts[1:], n)
        self.row = rows[starts]
        self.n = ends - starts
        self.first_ts, self.last_ts = ts[starts], ts[ends - 1]
        self.first_v, self.last_v = v[starts], v[ends - 1]
        dt = np.empty(n, dtype=np.int64)
        np.subtract(ts[1:], ts[:-1], out=dt[:-1])
        d = np.empty(n)
        np.subtract(v[1:], v[:-1], out=d[:-1])
        rate = d
        rate[-1] = 0.0
        rate /= np.maximum(dt, MIN_SPAN_S)
        dt[ends - 1] = _BIG  # a run's last reading starts no pair of the run
        self.min_dt = np.minimum.reduceat(dt, starts)
        rate[ends - 1] = np.inf
        self.min_rate = np.minimum.reduceat(rate, starts)
        rate[ends - 1] = -np.inf
        self.max_rate = np.maximum.reduceat(rate, starts)
        self.vmin = np.minimum.reduceat(v, starts)
        self.vmax = np.maximum.reduceat(v, starts)
        self.vabs = np.maximum(np.abs(self.vmin), np.abs(self.vmax))
        known = np.empty((len(starts), len(horizons)), dtype=np.int64)
        for k, h in enumerate(horizons.tolist()):
            if h >= hi:  # all visible: the last reading (in order, or the meter is doubtful)
                known[:, k] = self.last_ts
            else:
                known[:, k] = np.maximum.reduceat(np.where(ts <= h, ts, _NONE), starts)
        self.known = known
        # Keep the readings of runs that may need the full engine, and of the first and last
        # run (a meter's readings may go on in the neighbouring slice).
        suspect = ~plan.plausible(
            self.row, self.min_dt, self.min_rate, self.max_rate, self.vmin, self.vmax, self.vabs
        )
        suspect[0] = suspect[-1] = True
        self.kept = suspect
        pick = np.flatnonzero(suspect)
        idx = np.concatenate([np.arange(starts[r], ends[r]) for r in pick.tolist()])
        self.kept_readings = (rows[idx], ts[idx], v[idx])


def _silence_scan(plan: _Plan, files: list[Path], future_cutoff: int | None) -> Result | None:
    """The silence rule from per-meter aggregates (see ``run_source``); meters whose readings
    are not all plainly acceptable (duplicates, out of order, negative or implausible usage,
    register falls) go through the full engine, so the alerts are the engine's."""
    meters, ticks, lag = plan.meters, plan.ticks, plan.lag_s
    windows = {
        plan.window(g)
        for g in np.unique(plan.group_of).tolist()
        if plan.utility(g) != "device" and plan.rules(g).for_utility(plan.utility(g))
    }
    result = Result([])
    if not windows:
        for part in reading_batches(files, meters):
            _merge(result, Result([], dict(part.rejected)))
        return result
    lo, hi = windows.pop()
    cut = hi if future_cutoff is None else min(hi, future_cutoff)
    horizons = ticks - lag
    future = 0

    def scan(part: Readings) -> _Scan:
        found = _Scan(part, lo, cut, horizons, plan)
        if future_cutoff is not None:
            found.future = int(np.count_nonzero(part.ts > future_cutoff))
        return found

    scans = []
    rejected: dict[str, int] = {}
    for found in reading_batches(files, meters, transform=scan):
        for k, v in found.rejected.items():
            rejected[k] = rejected.get(k, 0) + v
        future += found.future
        if found.size:
            scans.append(found)
    result.quarantined.update(rejected)
    if future:
        result.quarantined["future_timestamp"] = future
    n_meters = len(meters)
    known = np.full((n_meters, len(ticks)), _NONE, dtype=np.int64)
    plain = np.ones(n_meters, dtype=bool)  # every reading plainly acceptable
    if scans:
        cat = {name: np.concatenate([getattr(x, name) for x in scans]) for name in _Scan.FIELDS}
        rows_cat = cat["row"]
        if bool(np.all(rows_cat[1:] >= rows_cat[:-1])):
            c = cat  # runs already in meter order (a file sorted by meter)
        else:
            order = np.argsort(rows_cat, kind="stable")
            c = {k: v[order] for k, v in cat.items()}
        row = c["row"]
        new = np.concatenate(([True], row[1:] != row[:-1]))
        mstart = np.flatnonzero(new)
        # The pair across two runs of one meter: the first's last reading, the next's first.
        cross_dt = np.full(len(row), _BIG, dtype=np.int64)
        cross_rate = np.zeros(len(row))
        follow = np.flatnonzero(~new)
        if len(follow):
            dt = c["first_ts"][follow] - c["last_ts"][follow - 1]
            cross_dt[follow] = dt
            cross_rate[follow] = (c["first_v"][follow] - c["last_v"][follow - 1]) / np.maximum(
                dt, MIN_SPAN_S
            )
        lo_rate = np.where(new, np.inf, cross_rate)
        hi_rate = np.where(new, -np.inf, cross_rate)
        m_row = row[mstart]
        ok = plan.plausible(
            m_row,
            np.minimum.reduceat(np.minimum(c["min_dt"], cross_dt), mstart),
            np.minimum.reduceat(np.minimum(c["min_rate"], lo_rate), mstart),
            np.maximum.reduceat(np.maximum(c["max_rate"], hi_rate), mstart),
            np.minimum.reduceat(c["vmin"], mstart),
            np.maximum.reduceat(c["vmax"], mstart),
            np.maximum.reduceat(c["vabs"], mstart),
        )
        known[m_row] = np.maximum.reduceat(c["known"], mstart, axis=0)
        plain[m_row] = ok
        all_kept = np.minimum.reduceat(c["kept"].astype(np.int8), mstart).astype(bool)
        doubtful = m_row[~ok]
        if len(doubtful):
            # Their readings: kept by the scan when every run of theirs was kept, else read
            # again.
            whole = np.zeros(n_meters, dtype=bool)
            whole[m_row[~ok & all_kept]] = True
            again = m_row[~ok & ~all_kept]
            pieces = []
            for x in scans:
                r, t, v = x.kept_readings
                sel = whole[r]
                pieces.append((r[sel], t[sel], v[sel]))
            if len(again):
                pieces.extend(_readings_of(meters, files, again, lo, cut))
            readings = Readings(
                np.concatenate([p[0] for p in pieces]),
                np.concatenate([p[1] for p in pieces]),
                np.concatenate([p[2] for p in pieces]),
            )
            by_meter = _ByMeter(readings)
            for g, rows in plan.tasks(doubtful):
                _merge(result, plan.execute(g, rows, by_meter.readings_of(rows)))
    # Meters whose readings are plain: the silence rule straight from the aggregate, a group
    # at a time (arrays of meters x ticks, a few ticks).
    plain_rows = np.flatnonzero(plain)
    plain_groups = plan.group_of[plain_rows]
    for g in np.unique(plain_groups).tolist():
        rows = plain_rows[plain_groups == g]
        utility = plan.utility(g)
        active = plan.rules(g).for_utility(utility) if utility != "device" else []
        if not active:
            continue
        k_until = known[rows]
        seen = (k_until != _NONE).astype(np.int64)
        bare = Context(
            grid=Grid(0, plan.step_s, 1),
            cal=None,  # type: ignore[arg-type]
            zone_idx=np.zeros(len(rows), np.int64),
            feat=None,  # type: ignore[arg-type]
            profile=None,  # type: ignore[arg-type]
            ticks=ticks,
            lag=lag,
            known_until=np.where(seen > 0, k_until, 0),
            seen=seen,
            interval_s=meters.interval_s[rows],
            suppressed=meters.flags("suppressed")[rows],
            unit=UNITS[utility],
        )
        for rule in active:
            for alert in alerts(evaluate(rule, bare), ticks):
                alert.meter = int(rows[alert.meter])
                result.alerts.append(alert)
    return result


def _readings_of(
    meters: MeterTable, files: list[Path], rows: np.ndarray, lo: int, hi: int
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The readings of some meters stamped in (lo, hi], read again."""
    want = np.zeros(len(meters), dtype=bool)
    want[rows] = True
    out: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for part in reading_batches(files, meters):
        sel = want[part.meter] & (part.ts > lo) & (part.ts <= hi)
        if sel.any():
            out.append((part.meter[sel], part.ts[sel], part.value[sel]))
    return out


def _stream(plan: _Plan, files: list[Path], future_cutoff: int | None) -> Result | None:
    """Batches of meters run while the next row groups are read (see ``run_source``). None
    when a meter's readings turn out not to be in one run (the caller then reads all)."""
    meters = plan.meters
    n_meters = len(meters)
    done = np.zeros(n_meters, dtype=bool)  # a run of this meter has ended
    processed = np.zeros(n_meters, dtype=bool)
    pending: list[Readings] = []
    pending_meters = 0
    tail = -1
    rejected: dict[str, int] = {}
    future = 0
    parts: list[Result] = []
    inflight: list[Future[list[Result]]] = []
    pool = ThreadPoolExecutor(max_workers=max(1, THREADS))

    def batch(readings: Readings, rows: np.ndarray) -> list[Result]:
        by_meter = _ByMeter(readings)
        return [plan.execute(g, r, by_meter.readings_of(r)) for g, r in plan.tasks(rows)]

    def submit(readings: Readings, rows: np.ndarray) -> None:
        processed[rows] = True
        while len(inflight) >= max(1, THREADS):
            parts.extend(inflight.pop(0).result())
        inflight.append(pool.submit(batch, readings, rows))

    def flush(final: bool) -> None:
        nonlocal pending, pending_meters
        if not pending:
            return
        readings = Readings(
            np.concatenate([p.meter for p in pending]),
            np.concatenate([p.ts for p in pending]),
            np.concatenate([p.value for p in pending]),
        )
        pending, pending_meters = [], 0
        m = readings.meter
        if not final:  # the last meter's readings may go on in the next slice
            other = m != tail
            cut = len(m) - int(np.argmax(other[::-1])) if bool(other.any()) else 0
            if cut < len(m):
                pending = [Readings(m[cut:], readings.ts[cut:], readings.value[cut:])]
                pending_meters = 1
            readings = Readings(m[:cut], readings.ts[:cut], readings.value[:cut])
            m = readings.meter
        if len(m):
            starts = np.flatnonzero(np.concatenate(([True], m[1:] != m[:-1])))
            submit(readings, m[starts])

    try:
        for part in reading_batches(files, meters):
            for k, v in part.rejected.items():
                rejected[k] = rejected.get(k, 0) + v
            if future_cutoff is not None:
                late = part.ts > future_cutoff
                if late.any():
                    future += int(late.sum())
                    part = _subset_readings(part, ~late)
            if not len(part):
                continue
            m = part.meter
            run_rows = m[np.flatnonzero(np.concatenate(([True], m[1:] != m[:-1])))]
            if run_rows[0] != tail and tail >= 0:
                done[tail] = True
            fresh = run_rows if run_rows[0] != tail else run_rows[1:]
            if done[fresh].any() or len(np.unique(fresh)) != len(fresh):
                return None  # not one run per meter
            done[run_rows[:-1]] = True
            tail = int(run_rows[-1])
            pending.append(part)
            pending_meters += len(fresh)
            if pending_meters > STREAM_METERS:
                flush(final=False)
        flush(final=True)
        never = np.flatnonzero(~processed)
        if len(never):
            empty = Readings(np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0))
            submit(empty, never)
        for job in inflight:
            parts.extend(job.result())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    result = Result([])
    result.quarantined.update(rejected)
    if future:
        result.quarantined["future_timestamp"] = future
    for part_result in parts:
        _merge(result, part_result)
    return result


STREAM_METERS = 150_000  # complete meters collected before they are run


# Meters per batch. Small batches keep each (meters x slots) array in the processor's cache:
# on this machine 1,000 meters ran 3x faster than 50,000 (docs/detection.md).
BATCH_METERS = 1_000
THREADS = 2  # batches run at the same time (numpy releases the GIL in array work)


def _merge(into: Result, part: Result) -> None:
    into.alerts.extend(part.alerts)
    for k, v in part.quarantined.items():
        into.quarantined[k] = into.quarantined.get(k, 0) + v
    for k, v in part.info.items():
        into.info[k] = into.info.get(k, 0) + v


class _Plan:
    """How a table's meters run: groups of (rule set, utility), in batches; each meter's
    position in its group (a stored profile has one row per meter of the group)."""

    def __init__(
        self,
        meters: MeterTable,
        book: RuleBook,
        ticks: np.ndarray,
        lag_s: int,
        step_s: int,
        profiles: Mapping[str, Profile] | None,
    ) -> None:
        self.meters, self.ticks, self.lag_s, self.step_s = meters, ticks, lag_s, step_s
        self.profiles = profiles or {}
        self.sets, self.utilities, self.group_of = _groups(meters, book)
        self.pos = np.zeros(len(meters), dtype=np.int64)
        self.mph = np.full(len(meters), np.inf)  # the utility's max_per_hour per meter
        for g in np.unique(self.group_of).tolist():
            rows = np.flatnonzero(self.group_of == g)
            self.pos[rows] = np.arange(len(rows))
            limits = self.rules(g).limits.get(self.utility(g))
            if limits is not None:
                self.mph[rows] = float(limits["max_per_hour"])

    def window(self, g: int) -> tuple[int, int]:
        """The readings a group's batches use: stamped in (lo, hi] (``_run_group``)."""
        rules = self.rules(g)
        given = self.profiles.get(self.utility(g))
        history = history_seconds(rules, learning=given is None)
        g0 = (int(self.ticks[0]) - history) // self.step_s * self.step_s
        return g0 - 86400, int(self.ticks[-1]) - self.lag_s

    def plausible(
        self,
        row: np.ndarray,
        min_dt: np.ndarray,
        min_rate: np.ndarray,
        max_rate: np.ndarray,
        vmin: np.ndarray,
        vmax: np.ndarray,
        vabs: np.ndarray,
    ) -> np.ndarray:
        """Per meter (``row``), from aggregates of its readings (file units; pairs of
        consecutive readings: ``min_dt``, and ``rate`` = rise / max(dt, 15 min)): True when
        ``normalise`` surely accepts every reading and sets nothing aside: in order, no
        duplicate, and a usage that is neither negative nor above the limit, with a margin
        for rounding. False means only "run the full engine"."""
        meters = self.meters
        factor = meters.factor[row]
        mph = self.mph[row]
        ordered = min_dt > 0
        err = 8 * np.finfo(np.float64).eps * vabs * factor  # rounding of v * factor
        cum_ok = (min_rate >= 0) & (
            max_rate * factor <= mph / 3600.0 * (1 - _EPS) - err / MIN_SPAN_S
        )
        interval = meters.interval_s[row]
        interval = np.where(np.isnan(interval), MIN_SPAN_S, interval)
        limit = mph * np.maximum(interval, MIN_SPAN_S) / 3600.0
        int_ok = (vmin >= 0) & (vmax * factor <= limit * (1 - _EPS))
        return ordered & np.where(meters.flags("cumulative")[row], cum_ok, int_ok)

    def utility(self, g: int) -> str:
        return str(self.utilities[g % len(self.utilities)])

    def rules(self, g: int) -> RuleSet:
        return self.sets[g // len(self.utilities)]

    def tasks(self, rows: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """(group, sorted rows of at most BATCH_METERS meters of that group), groups in order;
        a device group is one task."""
        rows = np.sort(rows)
        groups = self.group_of[rows]
        out: list[tuple[int, np.ndarray]] = []
        for g in np.unique(groups).tolist():
            mine = rows[groups == g]
            size = len(mine) if self.utility(g) == "device" else BATCH_METERS
            out.extend((g, mine[lo : lo + size]) for lo in range(0, len(mine), size))
        return out

    def execute(self, g: int, rows: np.ndarray, readings: Readings) -> Result:
        """One batch: ``readings`` of meters ``rows`` (renumbered 0..len(rows)-1) -> alerts
        (meters as table rows), set-aside counts, register events."""
        meters = self.meters
        sub_meters = meters if len(rows) == len(meters) else meters.take(rows)
        part = Result([])
        utility = self.utility(g)
        if utility == "device":
            found = device_alerts(sub_meters, readings, self.rules(g), self.ticks)
        else:
            profile = self.profiles.get(utility)
            found = _run_group(
                sub_meters,
                readings,
                self.rules(g),
                utility,
                self.ticks,
                self.lag_s,
                self.step_s,
                profile.take(self.pos[rows]) if profile is not None else None,
                part,
            )
        for alert in found:
            alert.meter = int(rows[alert.meter])
        part.alerts = found
        return part


def _groups(meters: MeterTable, book: RuleBook) -> tuple[list[RuleSet], np.ndarray, np.ndarray]:
    """Rule sets, utilities, and each meter's group: set index * len(utilities) + utility."""
    districts, district_of = meters.codes("district")
    sets: list[RuleSet] = []
    set_of_district = np.zeros(len(districts), dtype=np.int64)
    for i, district in enumerate(districts):
        rules = book.for_district(district)
        key = next((k for k, s in enumerate(sets) if s is rules), -1)
        if key < 0:
            sets.append(rules)
            key = len(sets) - 1
        set_of_district[i] = key
    utilities, utility_of = meters.codes("utility")
    group_of = set_of_district[district_of] * len(utilities) + utility_of
    return sets, np.array(utilities, dtype=str), group_of


def _subset_readings(readings: Readings, mask: np.ndarray) -> Readings:
    return Readings(
        readings.meter[mask], readings.ts[mask], readings.value[mask], readings.rejected
    )


class _ByMeter:
    """Readings ordered by meter (stable: each meter's readings keep their order), so any
    set of meters' readings is a slice or one gather."""

    def __init__(self, readings: Readings) -> None:
        m = readings.meter
        if len(m) > 1 and not bool(np.all(m[1:] >= m[:-1])):
            order = np.argsort(m, kind="stable")
            readings = Readings(m[order], readings.ts[order], readings.value[order])
        self.readings = readings

    def readings_of(self, rows: np.ndarray) -> Readings:
        """The readings of meters ``rows`` (sorted), meters renumbered 0..len(rows)-1."""
        r = self.readings
        rows_t = rows.astype(r.meter.dtype)  # same dtype: no copy of the readings' meters
        lo = np.searchsorted(r.meter, rows_t, side="left")
        hi = np.searchsorted(r.meter, rows_t, side="right")
        counts = hi - lo
        local = np.repeat(np.arange(len(rows), dtype=np.int32), counts)
        if not len(rows):
            return Readings(local, r.ts[:0], r.value[:0])
        a, b = int(lo[0]), int(hi[-1])
        if b - a == len(local):  # the meters' readings are one slice
            return Readings(local, r.ts[a:b], r.value[a:b])
        idx = np.arange(int(counts.sum()), dtype=np.int64)
        idx += np.repeat(lo - (np.cumsum(counts) - counts), counts)
        return Readings(local, r.ts[idx], r.value[idx])


def _run_group(
    meters: MeterTable,
    readings: Readings,
    rules: RuleSet,
    utility: str,
    ticks: np.ndarray,
    lag_s: int,
    step_s: int,
    given: Profile | None,
    result: Result,
) -> list[Alert]:
    active_rules = rules.for_utility(utility)
    if not active_rules or not len(ticks):
        return []
    n = len(meters)
    horizon_end = int(ticks[-1]) - lag_s
    g0 = (int(ticks[0]) - history_seconds(rules, learning=given is None)) // step_s * step_s
    slots = max(1, -(-(horizon_end - g0) // step_s))
    grid = Grid(g0, step_s, slots)
    # Readings stamped after the last tick's horizon cannot be seen by any tick.
    keep = (readings.ts <= horizon_end) & (readings.ts > g0 - 86400)
    if not keep.all():
        readings = _subset_readings(readings, keep)
    limits = rules.limits[utility]
    norm = normalise(
        readings,
        meters,
        max_per_hour=np.full(n, float(limits["max_per_hour"])),
        max_gap_s=np.full(n, float(limits["max_gap_hours"]) * 3600),
        future_cutoff=None,
    )
    for k, v in norm.quarantined().items():
        result.quarantined[k] = result.quarantined.get(k, 0) + v
    for k, v in norm.info.items():
        result.info[k] = result.info.get(k, 0) + v
    seen, known_until = visibility(norm.acc_meter, norm.acc_ts, n, ticks, lag_s)
    suppressed = meters.flags("suppressed")
    if all(r.kind == "data_silence" for r in active_rules):
        # The silence rule needs only the accepted readings' times.
        bare = Context(
            grid=grid,
            cal=None,  # type: ignore[arg-type]
            zone_idx=np.zeros(n, np.int64),
            feat=None,  # type: ignore[arg-type]
            profile=None,  # type: ignore[arg-type]
            ticks=ticks,
            lag=lag_s,
            known_until=known_until,
            seen=seen,
            interval_s=meters.interval_s,
            suppressed=suppressed,
            unit=UNITS[utility],
        )
        return [a for r in active_rules for a in alerts(evaluate(r, bare), ticks)]
    usage, peak = spread(norm, grid, n)
    cal = calendar(grid, meters.tz)
    zone_idx = cal.zone_index(meters.tz)
    act = rules.activity[utility]
    if given is not None:
        profile = given
    else:
        activity = {
            "base_quantile": np.full(n, float(act["base_quantile"])),
            "quiet_hours": np.full(n, int(act["quiet_hours"])),
            "quiet_quantile": np.full(n, float(act["quiet_quantile"])),
            "min_above": np.full(n, float(act["min_above_base_per_hour"]) * step_s / 3600),
        }
        profile = Profile.learn(usage, grid, cal, zone_idx, rules.learning, activity)
    if profile.act_thr.shape[1] == 1:
        thr_slots = profile.act_thr  # one day's profile: (M, 1) serves every slot
    else:
        thr_slots = feats.slot_thresholds(profile.act_thr, profile.day0, cal, zone_idx)
    feat = feats.build(usage, peak, thr_slots)
    del thr_slots
    routine = [r for r in active_rules if r.kind == "missed_routine"]
    if given is None and any(r.params["basis"] == "hour" for r in routine):
        profile.set_inactivity(feats.inactive_hours(feat, grid), cal, zone_idx, grid)
    bases = {r.params["basis"] for r in routine}
    if given is None and bases & {"spell", "days"}:
        spells = feats.gaps(feat)
        if "spell" in bases:
            profile.set_gaps(spells, cal, zone_idx, grid)
        if "days" in bases:
            profile.set_day_spells(spells, cal, zone_idx, grid)
    interval = meters.interval_s.copy()
    unknown = np.isnan(interval)
    if unknown.any():
        interval[unknown] = _median_spacing(norm.acc_meter, norm.acc_ts, n)[unknown]
    ctx = Context(
        grid=grid,
        cal=cal,
        zone_idx=zone_idx,
        feat=feat,
        profile=profile,
        ticks=ticks,
        lag=lag_s,
        known_until=known_until,
        seen=seen,
        interval_s=interval,
        suppressed=suppressed,
        unit=UNITS[utility],
    )
    found: list[Alert] = []
    person = []
    for rule in active_rules:
        out = evaluate(rule, ctx)
        if rule.kind in PERSON_KINDS:
            person.append(out)
        else:
            found.extend(alerts(out, ticks))
    found.extend(merged_alerts(person, ticks))
    return found


def visibility(
    acc_meter: np.ndarray, acc_ts: np.ndarray, n: int, ticks: np.ndarray, lag_s: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per (meter, tick): accepted readings visible, and the newest one's ts.

    ``acc_*`` are sorted by (meter, ts). A reading stamped ``ts`` is visible from the first
    tick with ``tick - lag >= ts``.
    """
    t = len(ticks)
    first_tick = _first_tick(ticks - lag_s, acc_ts)
    counts = np.bincount(
        acc_meter.astype(np.int64) * (t + 1) + first_tick, minlength=n * (t + 1)
    ).reshape(n, t + 1)
    seen = np.cumsum(counts, axis=1)[:, :t]
    start = np.searchsorted(acc_meter, np.arange(n, dtype=acc_meter.dtype), side="left")
    idx = start[:, None] + seen - 1
    known_until = np.where(
        seen > 0, acc_ts[np.clip(idx, 0, max(len(acc_ts) - 1, 0))] if len(acc_ts) else 0, 0
    )
    return seen, known_until.astype(np.int64)


def _first_tick(horizons: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """``np.searchsorted(horizons, ts, side="left")``, by arithmetic when the horizons are
    evenly spaced (the usual ticks)."""
    if len(horizons) > 2:
        step = int(horizons[1] - horizons[0])
        if step > 0 and bool(np.all(np.diff(horizons) == step)):
            k = -((int(horizons[0]) - ts) // step)  # ceil((ts - h0) / step)
            return np.clip(k, 0, len(horizons))
    return np.searchsorted(horizons, ts, side="left")


def ticks_between(start: int, end: int, tick_s: int) -> np.ndarray:
    if end < start:
        raise ValueError("the replay ends before it starts")
    return np.arange(start, end + 1, tick_s, dtype=np.int64)


def open_at(
    meters: MeterTable,
    readings: Readings,
    book: RuleBook,
    now: int,
    *,
    lag_s: int = DEFAULT_LAG_S,
    tick_s: int = DEFAULT_STEP_S,
    lookback_s: int = DEFAULT_LOOKBACK_S,
    step_s: int = DEFAULT_STEP_S,
) -> Result:
    """The alerts open at ``now``: episodes replayed over the look-back, still open at its end."""
    ticks = np.arange(now - lookback_s // tick_s * tick_s, now + 1, tick_s, dtype=np.int64)
    res = run(meters, readings, book, ticks, lag_s=lag_s, step_s=step_s, future_cutoff=now + 300)
    res.alerts = [a for a in res.alerts if a.resolved_at is None]
    return res


def detect_meter(
    meter: Mapping[str, object],
    ts: np.ndarray,
    values: np.ndarray,
    book: RuleBook,
    ticks: np.ndarray,
    *,
    lag_s: int = DEFAULT_LAG_S,
    step_s: int = DEFAULT_STEP_S,
) -> list[Alert]:
    """The per-meter function: one meter's row and readings -> its alerts over the ticks."""
    table = MeterTable.build([dict(meter)])
    readings = Readings(
        np.zeros(len(ts), np.int32), np.asarray(ts, np.int64), np.asarray(values, np.float64)
    )
    return run(table, readings, book, ticks, lag_s=lag_s, step_s=step_s).alerts
