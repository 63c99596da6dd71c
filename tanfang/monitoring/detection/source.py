"""The local engine over reading files, read as it goes (``run_source``).

``engine.run`` takes readings already in memory. For a city's day of readings the file is
large; ``run_source`` gives the same alerts while reading it: the silence rule alone as one
aggregate pass (``_silence_scan``), or batches of meters run as soon as all their readings
are read from a file sorted by meter (``_stream``); otherwise it reads everything and calls
``run``. docs/detection.md, "Engine choice and benchmark", has the figures.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from tanfang.monitoring.detection import engine
from tanfang.monitoring.detection.config import RuleBook
from tanfang.monitoring.detection.engine import (
    DEFAULT_LAG_S,
    DEFAULT_STEP_S,
    UNITS,
    Result,
    _ByMeter,
    _merge,
    _Plan,
    _subset_readings,
    run,
)
from tanfang.monitoring.detection.episodes import alerts
from tanfang.monitoring.detection.grid import Grid
from tanfang.monitoring.detection.profile import Profile
from tanfang.monitoring.detection.rules import Context, evaluate
from tanfang.monitoring.detection.tables import (
    MeterTable,
    Readings,
    batchable,
    read_readings,
    reading_batches,
    reading_files,
)


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
    meter's readings inside the window. Pair statistics cover consecutive readings of a run:
    ``dt`` (seconds) and ``d`` (the rise of the value)."""

    FIELDS = (
        "row", "n", "first_ts", "last_ts", "first_v", "last_v", "min_dt", "min_d", "max_d",
        "vmin", "vmax", "vabs", "known", "kept",
    )  # fmt: skip

    def __init__(self, part: Readings, lo: int, hi: int, horizons: np.ndarray, plan: _Plan):
        self.rejected = part.rejected
        rows, ts, v = part.meter, part.ts, part.value
        self.future = 0
        keep = (ts > lo) & (ts <= hi)
        n = len(rows)
        self.size = int(np.count_nonzero(keep)) if n else 0
        if not self.size:
            return
        change = rows[1:] != rows[:-1]
        if self.size < n:
            # Readings outside the window form runs of their own, dropped below; a meter's
            # runs on either side are joined as runs of two slices are.
            change |= keep[1:] != keep[:-1]
        starts = np.flatnonzero(np.concatenate(([True], change)))
        del change
        ends = np.append(starts[1:], n)
        dt = np.empty(n, dtype=np.int64)
        np.subtract(ts[1:], ts[:-1], out=dt[:-1])
        dt[ends - 1] = _BIG  # a run's last reading starts no pair of the run
        min_dt = np.minimum.reduceat(dt, starts)
        del dt
        d = np.empty(n)
        np.subtract(v[1:], v[:-1], out=d[:-1])
        d[ends - 1] = np.inf
        min_d = np.minimum.reduceat(d, starts)
        d[ends - 1] = -np.inf
        max_d = np.maximum.reduceat(d, starts)
        del d
        vmin = np.minimum.reduceat(v, starts)
        vmax = np.maximum.reduceat(v, starts)
        masked = [
            None if h >= hi else np.maximum.reduceat(np.where(ts <= h, ts, _NONE), starts)
            for h in horizons.tolist()
        ]
        mine = np.flatnonzero(keep[starts])
        starts, ends = starts[mine], ends[mine]
        self.row = rows[starts]
        self.n = ends - starts
        self.first_ts, self.last_ts = ts[starts], ts[ends - 1]
        self.first_v, self.last_v = v[starts], v[ends - 1]
        self.min_dt, self.min_d, self.max_d = min_dt[mine], min_d[mine], max_d[mine]
        self.vmin, self.vmax = vmin[mine], vmax[mine]
        self.vabs = np.maximum(np.abs(self.vmin), np.abs(self.vmax))
        # All visible at a horizon past the window: the last reading (in order, or the
        # meter is doubtful and goes through the full engine).
        self.known = np.stack(
            [self.last_ts if k is None else k[mine] for k in masked], axis=1
        ).astype(np.int64, copy=False)
        # Keep the readings of runs that may need the full engine, and of the first and last
        # run (a meter's readings may go on in the neighbouring slice).
        suspect = ~plan.plausible(
            self.row, self.min_dt, self.min_d, self.max_d, self.vmin, self.vmax, self.vabs
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
    lo, hi = windows.pop() if windows else (0, -1)  # no rule: an empty window
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
        cross_lo = np.full(len(row), np.inf)
        cross_hi = np.full(len(row), -np.inf)
        follow = np.flatnonzero(~new)
        if len(follow):
            cross_dt[follow] = c["first_ts"][follow] - c["last_ts"][follow - 1]
            cross_lo[follow] = cross_hi[follow] = c["first_v"][follow] - c["last_v"][follow - 1]
        m_row = row[mstart]
        ok = plan.plausible(
            m_row,
            np.minimum.reduceat(np.minimum(c["min_dt"], cross_dt), mstart),
            np.minimum.reduceat(np.minimum(c["min_d"], cross_lo), mstart),
            np.maximum.reduceat(np.maximum(c["max_d"], cross_hi), mstart),
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
    pool = ThreadPoolExecutor(max_workers=max(1, engine.THREADS))

    def batch(readings: Readings, rows: np.ndarray) -> list[Result]:
        by_meter = _ByMeter(readings)
        return [plan.execute(g, r, by_meter.readings_of(r)) for g, r in plan.tasks(rows)]

    def submit(readings: Readings, rows: np.ndarray) -> None:
        processed[rows] = True
        while len(inflight) >= max(1, engine.THREADS):
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
            if (
                done[fresh].any()
                or len(np.unique(fresh)) != len(fresh)
                or bool((fresh == tail).any())
            ):
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
