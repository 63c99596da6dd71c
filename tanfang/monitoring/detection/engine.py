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
from dataclasses import dataclass, field

import numpy as np

from tanfang.monitoring.detection import features as feats
from tanfang.monitoring.detection.config import PERSON_KINDS, RuleBook, RuleSet
from tanfang.monitoring.detection.devices import device_alerts
from tanfang.monitoring.detection.episodes import Alert, alerts, merged_alerts
from tanfang.monitoring.detection.grid import Grid, calendar, spread
from tanfang.monitoring.detection.normalise import _median_spacing, normalise
from tanfang.monitoring.detection.profile import Profile
from tanfang.monitoring.detection.rules import Context, evaluate
from tanfang.monitoring.detection.tables import MeterTable, Readings

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
    """Alerts over ``ticks`` (sorted epoch seconds) for every meter of the table."""
    ticks = np.asarray(ticks, dtype=np.int64)
    result = Result([])
    for k, v in readings.rejected.items():
        result.quarantined[k] = result.quarantined.get(k, 0) + v
    if future_cutoff is not None:
        late = readings.ts > future_cutoff
        if late.any():
            result.quarantined["future_timestamp"] = int(late.sum())
            readings = _subset_readings(readings, ~late)
    # Meters are grouped by (rule set, utility): each group is one vectorised batch.
    districts, district_of = np.unique(
        np.array(meters.district, dtype=object).astype(str), return_inverse=True
    )
    sets: list[RuleSet] = []
    set_of_district = np.zeros(len(districts), dtype=np.int64)
    for i, district in enumerate(districts.tolist()):
        rules = book.for_district(district)
        key = next((k for k, s in enumerate(sets) if s is rules), -1)
        if key < 0:
            sets.append(rules)
            key = len(sets) - 1
        set_of_district[i] = key
    utilities, utility_of = np.unique(np.array(meters.utility, dtype=str), return_inverse=True)
    group_of = set_of_district[district_of] * len(utilities) + utility_of
    group_of_reading = group_of[readings.meter] if len(readings) else np.zeros(0, np.int64)
    for g in np.unique(group_of).tolist():
        key, utility = divmod(g, len(utilities))
        utility_name = str(utilities[utility])
        rows_arr = np.flatnonzero(group_of == g)
        sub_meters = meters.take(rows_arr) if len(rows_arr) < len(meters) else meters
        remap = np.full(len(meters), -1, dtype=np.int32)
        remap[rows_arr] = np.arange(len(rows_arr), dtype=np.int32)
        if len(rows_arr) < len(meters):
            pick = np.flatnonzero(group_of_reading == g)
            sub = Readings(remap[readings.meter[pick]], readings.ts[pick], readings.value[pick])
        else:
            sub = readings
        profile = (profiles or {}).get(utility_name)
        if utility_name == "device":
            found = device_alerts(sub_meters, sub, sets[key], ticks)
        else:
            found = _run_group(
                sub_meters, sub, sets[key], utility_name, ticks, lag_s, step_s, profile, result
            )
        for alert in found:
            alert.meter = int(rows_arr[alert.meter])
        result.alerts.extend(found)
    result.alerts.sort(key=lambda a: (a.detected_at, a.meter, a.rule))
    return result


def _subset_readings(readings: Readings, mask: np.ndarray) -> Readings:
    return Readings(
        readings.meter[mask], readings.ts[mask], readings.value[mask], readings.rejected
    )


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
    suppressed = np.array([s in SUPPRESSING for s in meters.status], dtype=bool)
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
    first_tick = np.searchsorted(ticks - lag_s, acc_ts, side="left")
    counts = np.bincount(
        acc_meter.astype(np.int64) * (t + 1) + first_tick, minlength=n * (t + 1)
    ).reshape(n, t + 1)
    seen = np.cumsum(counts, axis=1)[:, :t]
    start = np.searchsorted(acc_meter, np.arange(n), side="left")
    idx = start[:, None] + seen - 1
    known_until = np.where(
        seen > 0, acc_ts[np.clip(idx, 0, max(len(acc_ts) - 1, 0))] if len(acc_ts) else 0, 0
    )
    return seen, known_until.astype(np.int64)


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
