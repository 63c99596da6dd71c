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

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from tanfang.monitoring.detection import features as feats
from tanfang.monitoring.detection.config import PERSON_KINDS, Rule, RuleBook, RuleSet
from tanfang.monitoring.detection.devices import device_alerts
from tanfang.monitoring.detection.episodes import Alert, alerts, merged_alerts
from tanfang.monitoring.detection.grid import Calendar, Grid, calendar, spread
from tanfang.monitoring.detection.normalise import MIN_SPAN_S, _median_spacing, normalise
from tanfang.monitoring.detection.profile import Profile
from tanfang.monitoring.detection.rules import Context, evaluate
from tanfang.monitoring.detection.tables import (
    MeterTable,
    Readings,
    ordered_map,
)

DEFAULT_STEP_S = 900
DEFAULT_LAG_S = 3600
DEFAULT_LOOKBACK_S = 7 * 86400
SUPPRESSING = ("away", "hospital", "deceased")
UNITS = {"water": "L", "gas": "L", "electricity": "Wh"}
_EPS = 1e-9  # relative margin of the aggregate's plausibility test (borderline: full engine)


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


# Meters per batch. Small batches keep each (meters x slots) array in the processor's cache:
# on this machine 1,000 meters ran 3x faster than 50,000 (docs/detection.md).
BATCH_METERS = 1_000
BATCH_CELLS = 2_000_000  # meters x slots per batch, at most (a longer grid: fewer meters)
BATCH_MIN_METERS = 50
# Batches run at the same time (numpy releases the GIL in array work).
THREADS = max(1, min(8, os.cpu_count() or 1))


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
            size = len(mine) if self.utility(g) == "device" else self.batch_size(g)
            out.extend((g, mine[lo : lo + size]) for lo in range(0, len(mine), size))
        return out

    def batch_size(self, g: int) -> int:
        """Meters per batch: ``BATCH_METERS``, fewer when the grid is long (learning from
        months of readings), so that a batch's (meters x slots) arrays stay small."""
        lo, hi = self.window(g)
        slots = max(1, (hi - (lo + 86400)) // self.step_s)
        return int(min(BATCH_METERS, max(BATCH_MIN_METERS, BATCH_CELLS // slots)))

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
        min_d: np.ndarray,
        max_d: np.ndarray,
        vmin: np.ndarray,
        vmax: np.ndarray,
        vabs: np.ndarray,
    ) -> np.ndarray:
        """Per meter (``row``), from aggregates of its readings in file units (over pairs of
        consecutive readings: the least time between them, the least and the largest rise):
        True when ``normalise`` surely accepts every reading and sets nothing aside: in order,
        no repeated time, a value (interval register) or rise (cumulative register) neither
        negative nor above what the utility's ``max_per_hour`` allows in a quarter-hour (the
        least any pair is allowed), with a margin for rounding. False only means "run the
        full engine" (a long interval with much usage is plausible but not shown here)."""
        meters = self.meters
        factor = meters.factor[row]
        mph = self.mph[row]
        ordered = min_dt > 0
        err = 8 * np.finfo(np.float64).eps * vabs * factor  # rounding of v * factor
        least = mph * MIN_SPAN_S / 3600.0  # the limit of a pair 15 minutes apart or less
        cum_ok = (min_d >= 0) & (max_d * factor <= least * (1 - _EPS) - err)
        interval = meters.interval_s[row]
        interval = np.where(np.isnan(interval), MIN_SPAN_S, interval)
        limit = mph * np.maximum(interval, MIN_SPAN_S) / 3600.0
        int_ok = (vmin >= 0) & (vmax * factor <= limit * (1 - _EPS))
        return ordered & np.where(meters.flags("cumulative")[row], cum_ok, int_ok)


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
    profile, feat = learned(
        usage, peak, grid, cal, zone_idx, rules, utility, active_rules, step_s=step_s, given=given
    )
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


def learned(
    usage: np.ndarray,
    peak: np.ndarray,
    grid: Grid,
    cal: Calendar,
    zone_idx: np.ndarray,
    rules: RuleSet,
    utility: str,
    active_rules: list[Rule],
    *,
    step_s: int,
    given: Profile | None = None,
) -> tuple[Profile, feats.Features]:
    """The home's profile (learned from ``usage``, or ``given``) and the per-slot features
    the rules read; the learning a tick does, and the nightly learning job stores."""
    n = usage.shape[0]
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
    return profile, feat


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
