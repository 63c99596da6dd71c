"""Each rule as a condition over (meter, tick), from what was visible at that tick.

A rule yields ``cond`` (the anomaly holds), ``clear`` (what resolves an open episode),
``started`` (epoch seconds the anomaly began, -1 unknown) and an evidence function; the
episode machine (episodes.py) turns these into one alert per episode. At tick ``k`` a meter's
data are known up to ``known_until[m, k]`` (its last accepted reading stamped no later than
the tick minus the arrival lag); ``last[m, k]`` is the last slot complete by then.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tanfang.monitoring.detection.config import PERSON_KINDS, Rule
from tanfang.monitoring.detection.features import Features, running_last
from tanfang.monitoring.detection.grid import Calendar, Grid
from tanfang.monitoring.detection.profile import Profile

Evidence = Callable[[int, int], dict[str, Any]]


@dataclass
class Context:
    """Everything the rules of one batch read (one utility, one rule set)."""

    grid: Grid
    cal: Calendar
    zone_idx: np.ndarray  # (M,)
    feat: Features  # None (with cal and profile) when only the silence rule runs
    profile: Profile
    ticks: np.ndarray  # (T,) epoch s
    lag: int
    known_until: np.ndarray  # (M, T) epoch s; meaningful where seen > 0
    seen: np.ndarray  # (M, T) accepted readings visible
    interval_s: np.ndarray  # (M,) reading interval
    suppressed: np.ndarray  # (M,) bool: away, in hospital or deceased
    unit: str

    def __post_init__(self) -> None:
        m, t = self.known_until.shape
        self.rows = np.broadcast_to(np.arange(m)[:, None], (m, t))
        self._flat: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        if self.feat is None:  # only the silence rule runs: no slot features needed
            return
        zones = np.unique(self.zone_idx)
        self.zone0 = int(zones[0]) if len(zones) == 1 else -1  # one time zone: 1-d lookups
        last = self.grid.complete(np.where(self.seen > 0, self.known_until, self.grid.g0)) - 1
        self.last = last  # (M, T), -1: nothing complete
        safe = np.maximum(last, 0)
        self.local_day = self.cal_at(self.cal.day, safe)
        self.slot_of_day = self.cal_at(self.cal.slot_of_day, safe)
        self.day_idx = self.profile.day_index(self.local_day)
        la = self.at(self.feat.last_active, last)
        self.last_active = np.where(last >= 0, la, -1)
        prev = np.concatenate((np.full((m, 1), -2), self.last_active[:, :-1]), axis=1)
        self.new_activity = self.last_active > prev
        self.j1 = last + 1  # the slot after the last complete one (cumulative sums end there)

    def cal_at(self, table: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """``table[zone of each meter, cols]`` for a (zones, slots) calendar table."""
        if self.zone0 >= 0:
            return table[self.zone0].take(cols)
        return table[self.zone_idx[:, None], cols]

    def at(self, a: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """``a[m, cols[m, k]]`` for an (M, width) array, cols clipped to the width; the flat
        index of the context's own ``last`` and ``j1`` is computed once per width."""
        return a.reshape(-1).take(self.flat(cols, a.shape[1]))

    def flat(self, cols: np.ndarray, width: int) -> np.ndarray:
        """The flat index of ``cols`` (clipped) into an (M, width) array."""
        keep = cols is self.__dict__.get("last") or cols is self.__dict__.get("j1")
        hit = self._flat.get((id(cols), width)) if keep else None
        if hit is not None and hit[0] is cols:
            return hit[1]
        flat = np.clip(cols, 0, width - 1).astype(np.int64, copy=False)
        flat += (np.arange(cols.shape[0], dtype=np.int64) * width)[:, None]
        if keep:
            self._flat[(id(cols), width)] = (cols, flat)
        return flat

    def slot_end(self, j: np.ndarray | int) -> Any:
        if isinstance(j, int | np.integer):  # one slot (evidence): plain integers
            return self.grid.g0 + (int(j) + 1) * self.grid.step
        return self.grid.g0 + (np.asarray(j, dtype=np.int64) + 1) * self.grid.step

    def iso(self, t: Any) -> str:
        import datetime as dt

        return dt.datetime.fromtimestamp(int(t), dt.UTC).isoformat().replace("+00:00", "Z")


@dataclass
class RuleOutput:
    rule: Rule
    cond: np.ndarray
    clear: np.ndarray
    started: np.ndarray
    evidence: Evidence


def evaluate(rule: Rule, ctx: Context) -> RuleOutput:
    out = _EVALUATORS[rule.kind](rule, ctx)
    if rule.kind in PERSON_KINDS:
        out.cond &= ~ctx.suppressed[:, None]
    return out


def _inactivity_started(ctx: Context, fallback: np.ndarray) -> np.ndarray:
    return np.where(ctx.last_active >= 0, ctx.slot_end(ctx.last_active), fallback)


def _fixed(rule: Rule, ctx: Context) -> RuleOutput:
    p, f, g = rule.params, ctx.feat, ctx.grid
    w = max(1, round(float(p["window_hours"]) * 3600 / g.step))
    j1 = ctx.j1
    lo = j1 - w
    ok = lo >= 0
    at_lo = ctx.flat(lo, f.cum_known.shape[1])  # cum_known and cum_usage: both S + 1 wide
    complete = ok & ((ctx.at(f.cum_known, j1) - f.cum_known.reshape(-1).take(at_lo)) == w)
    total = ctx.at(f.cum_usage, j1) - f.cum_usage.reshape(-1).take(at_lo)
    del at_lo
    if p["mode"] == "sum":
        cond = complete & (total <= float(p["max_total"]))
    elif float(p["floor_per_hour"]) > 0:
        # Every slot of the window at or below a fixed floor ("electricity below a floor").
        floor = float(p["floor_per_hour"]) * g.step / 3600.0
        above = f.usage > floor  # NaN (missing) is not above
        cum_above = np.zeros((above.shape[0], above.shape[1] + 1), dtype=np.int32)
        np.cumsum(above, axis=1, out=cum_above[:, 1:])
        none_above = (ctx.at(cum_above, j1) - ctx.at(cum_above, lo)) == 0
        cond = complete & none_above
    else:
        # Every slot of the window within the home's own base load (no activity): the proven
        # inactivity covers the whole window.
        cond = complete & (ctx.at(f.inactive_slots, ctx.last) >= w)
    window_start = ctx.slot_end(lo - 1)
    started = _inactivity_started(ctx, window_start)

    def evidence(m: int, k: int) -> dict[str, Any]:
        return {
            "window_hours": float(p["window_hours"]),
            "window_total": round(float(total[m, k]), 3),
            "unit": ctx.unit,
            "max_total": float(p["max_total"]) if p["mode"] == "sum" else None,
            "mode": p["mode"],
            "data_until": ctx.iso(ctx.slot_end(ctx.last[m, k])),
        }

    return RuleOutput(rule, cond, ctx.new_activity & ~cond, started, evidence)


def _hours_done(ctx: Context) -> np.ndarray:
    """The last full local hour completed at the last complete slot (-1: none yet)."""
    per_hour = ctx.grid.per_hour
    return (ctx.slot_of_day + 1) // per_hour - 1


def _routine(rule: Rule, ctx: Context) -> RuleOutput:
    """Quiet for longer than this home is at this point of its day.

    ``basis: "days"`` (the default): per past day, the longest quiet spell that began around
    the hour the current one began (leaving for work at 08:00 starts a long one; a quiet spell
    from 10:30 on a day at home is short), steps in ``Profile.day_thresholds``. ``basis:
    "spell"``: a quantile of all those spells; ``basis: "hour"``: the longest quiet seen at
    the current hour.
    """
    p = rule.params
    hours_per_slot = ctx.grid.step / 3600.0
    inactive = ctx.at(ctx.feat.inactive_slots, ctx.last) * hours_per_slot
    inactive = np.where(ctx.last >= 0, inactive, 0.0)
    if p["basis"] in ("spell", "days"):
        began = np.minimum(ctx.last_active + 1, ctx.grid.slots - 1)
        began_day = ctx.profile.day_index(ctx.cal_at(ctx.cal.day, began))
        hour = np.minimum(ctx.cal_at(ctx.cal.slot_of_day, began) // ctx.grid.per_hour, 23)
    else:
        began_day = ctx.day_idx
        hour = np.minimum(ctx.slot_of_day // ctx.grid.per_hour, 23)
    if p["basis"] == "days":
        # The thresholds come whole from the profile (steps in Profile.day_thresholds).
        table = ctx.profile.day_thresholds(p)
        thr = np.where(ctx.last_active >= 0, _by_day_hour(table, began_day, hour), np.nan)
        usual = np.broadcast_to(np.nan, thr.shape)  # not used by this basis (evidence: null)
    else:
        if p["basis"] == "spell":
            table = ctx.profile.spell_quantile(
                float(p["quantile"]), int(p["around_hours"]), int(p["min_spells"])
            )
            usual = np.where(ctx.last_active >= 0, _by_day_hour(table, began_day, hour), np.nan)
        else:
            table = ctx.profile.inactivity_quantile(float(p["quantile"]))
            usual = _by_day_hour(table, ctx.day_idx, hour)
        thr = np.clip(
            usual * float(p["multiplier"]) + float(p["margin_hours"]),
            float(p["min_hours"]),
            float(p["max_hours"]),
        )
        # Nothing learned for this situation: the rule's fallback (NaN = stay quiet).
        thr = np.where(np.isnan(thr), float(p["fallback_hours"]) or np.nan, thr)
    learned_thr = ctx.profile.act_thr_learned
    if learned_thr.shape[1] == 1:
        learned = ~np.isnan(learned_thr)  # (M, 1): one day, every tick reads it
    else:
        learned = ~np.isnan(learned_thr[ctx.rows, ctx.day_idx])
    with np.errstate(invalid="ignore"):
        cond = learned & (inactive > thr)
    started = _inactivity_started(ctx, ctx.slot_end(ctx.last) - (inactive * 3600).astype(np.int64))

    def evidence(m: int, k: int) -> dict[str, Any]:
        return {
            "basis": p["basis"],
            "inactive_hours": round(float(inactive[m, k]), 2),
            "threshold_hours": round(float(thr[m, k]), 2),
            "usual_hours": None if np.isnan(usual[m, k]) else round(float(usual[m, k]), 2),
            "local_hour": int(hour[m, k]),
            "data_until": ctx.iso(ctx.slot_end(ctx.last[m, k])),
        }

    return RuleOutput(rule, cond, ctx.new_activity & ~cond, started, evidence)


def _by_day_hour(table: np.ndarray, day: np.ndarray, hour: np.ndarray) -> np.ndarray:
    """``table[m, day[m, k], hour[m, k]]`` for a (M, days, 24) table (one day: no day index)."""
    m, n_days, hours = table.shape
    rows = (np.arange(m, dtype=np.int64) * n_days)[:, None]
    idx = rows + day if n_days > 1 else np.broadcast_to(rows, hour.shape)
    return table.reshape(-1).take(idx * hours + hour)


def _low_usage(rule: Rule, ctx: Context) -> RuleOutput:
    p = rule.params
    base = ctx.profile.cumulative_quantile(float(p["quantile"]))  # (M, days, 24)
    done = _hours_done(ctx)
    usual = _by_day_hour(base, ctx.day_idx, np.maximum(done, 0))
    f, j1 = ctx.feat, ctx.j1
    j0 = ctx.last - ctx.slot_of_day  # first slot of the local day
    today = ctx.at(f.cum_usage, j1) - ctx.at(f.cum_usage, j0)
    whole = (j0 >= 0) & ((ctx.at(f.cum_known, j1) - ctx.at(f.cum_known, j0)) == j1 - j0)
    with np.errstate(invalid="ignore"):
        cond = (
            (ctx.last >= 0)
            & whole
            & (done + 1 >= int(p["from_hour"]))
            & (usual > float(p["min_baseline"]))
            & (today < float(p["factor"]) * usual)
        )
    slot_start = ctx.slot_end(ctx.last) - ctx.grid.step
    started = slot_start - ctx.slot_of_day * ctx.grid.step  # local midnight

    def evidence(m: int, k: int) -> dict[str, Any]:
        return {
            "today_total": round(float(today[m, k]), 3),
            "usual_low": round(float(usual[m, k]), 3),
            "factor": float(p["factor"]),
            "unit": ctx.unit,
            "by_local_hour": int(done[m, k]) + 1,
        }

    return RuleOutput(rule, cond, ctx.new_activity & ~cond, started, evidence)


def _continuous(rule: Rule, ctx: Context) -> RuleOutput:
    p, f, g = rule.params, ctx.feat, ctx.grid
    flow = f.usage > float(p["min_flow"])  # min_flow >= 0: missing (NaN) is no flow
    last_break = running_last(~flow)
    run = np.where(ctx.last >= 0, ctx.last - ctx.at(last_break, ctx.last), 0)
    hours = run * (g.step / 3600.0)
    fine = ctx.interval_s <= float(p["max_interval_minutes"]) * 60 + 1
    cond = (hours > float(p["hours"])) & fine[:, None]
    started = ctx.slot_end(ctx.last - run)

    def evidence(m: int, k: int) -> dict[str, Any]:
        return {
            "flowing_hours": round(float(hours[m, k]), 2),
            "threshold_hours": float(p["hours"]),
            "data_until": ctx.iso(ctx.slot_end(ctx.last[m, k])),
        }

    return RuleOutput(rule, cond, ~cond, started, evidence)


def _silence(rule: Rule, ctx: Context) -> RuleOutput:
    horizon = ctx.ticks[None, :] - ctx.lag
    silent_s = horizon - ctx.known_until
    never = ctx.seen == 0
    cond = never | (silent_s > float(rule.params["hours"]) * 3600)
    started = np.where(never, -1, ctx.known_until)

    def evidence(m: int, k: int) -> dict[str, Any]:
        if never[m, k]:
            return {"last_reading": None, "silent_hours": None}
        return {
            "last_reading": ctx.iso(int(ctx.known_until[m, k])),
            "silent_hours": round(float(silent_s[m, k]) / 3600, 2),
            "allowed_hours": float(rule.params["hours"]),
            "lag_minutes": ctx.lag / 60,
        }

    return RuleOutput(rule, cond, ~cond, started, evidence)


_EVALUATORS: dict[str, Callable[[Rule, Context], RuleOutput]] = {
    "inactivity": _fixed,
    "missed_routine": _routine,
    "low_usage": _low_usage,
    "continuous_use": _continuous,
    "data_silence": _silence,
}
