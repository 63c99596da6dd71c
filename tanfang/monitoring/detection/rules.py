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
from tanfang.monitoring.detection.features import Features, take
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
        if self.feat is None:  # only the silence rule runs: no slot features needed
            return
        last = self.grid.complete(np.where(self.seen > 0, self.known_until, self.grid.g0)) - 1
        self.last = last  # (M, T), -1: nothing complete
        zone = np.broadcast_to(self.zone_idx[:, None], (m, t))
        safe = np.maximum(last, 0)
        self.local_day = self.cal.day[zone, safe]
        self.slot_of_day = self.cal.slot_of_day[zone, safe]
        self.day_idx = self.profile.day_index(self.local_day)
        la = take(self.feat.last_active, self.rows, last)
        self.last_active = np.where(last >= 0, la, -1)
        prev = np.concatenate((np.full((m, 1), -2), self.last_active[:, :-1]), axis=1)
        self.new_activity = self.last_active > prev

    def slot_end(self, j: np.ndarray | int) -> np.ndarray:
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
    j1 = ctx.last + 1
    lo = j1 - w
    ok = lo >= 0
    complete = ok & ((take(f.cum_known, ctx.rows, j1) - take(f.cum_known, ctx.rows, lo)) == w)
    total = take(f.cum_usage, ctx.rows, j1) - take(f.cum_usage, ctx.rows, lo)
    if p["mode"] == "sum":
        cond = complete & (total <= float(p["max_total"]))
    elif float(p["floor_per_hour"]) > 0:
        # Every slot of the window at or below a fixed floor ("electricity below a floor").
        floor = float(p["floor_per_hour"]) * g.step / 3600.0
        above = f.known & (np.nan_to_num(f.usage) > floor)
        cum_above = np.zeros((above.shape[0], above.shape[1] + 1), dtype=np.int32)
        np.cumsum(above, axis=1, out=cum_above[:, 1:])
        none_above = (take(cum_above, ctx.rows, j1) - take(cum_above, ctx.rows, lo)) == 0
        cond = complete & none_above
    else:
        # Every slot of the window within the home's own base load (no activity): the proven
        # inactivity covers the whole window.
        cond = complete & (take(f.inactive_slots, ctx.rows, ctx.last) >= w)
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
    inactive = take(ctx.feat.inactive_slots, ctx.rows, ctx.last) * hours_per_slot
    inactive = np.where(ctx.last >= 0, inactive, 0.0)
    if p["basis"] in ("spell", "days"):
        began = np.minimum(ctx.last_active + 1, ctx.grid.slots - 1)
        zone = ctx.zone_idx[:, None]
        began_day = ctx.profile.day_index(ctx.cal.day[zone, began])
        hour = np.minimum(ctx.cal.slot_of_day[zone, began] // ctx.grid.per_hour, 23)
    else:
        hour = np.minimum(ctx.slot_of_day // ctx.grid.per_hour, 23)
    if p["basis"] == "days":
        # The thresholds come whole from the profile (steps in Profile.day_thresholds).
        table = ctx.profile.day_thresholds(p)
        thr = np.where(ctx.last_active >= 0, table[ctx.rows, began_day, hour], np.nan)
        usual = np.full(thr.shape, np.nan)
    else:
        if p["basis"] == "spell":
            table = ctx.profile.spell_quantile(
                float(p["quantile"]), int(p["around_hours"]), int(p["min_spells"])
            )
            usual = np.where(ctx.last_active >= 0, table[ctx.rows, began_day, hour], np.nan)
        else:
            table = ctx.profile.inactivity_quantile(float(p["quantile"]))
            usual = table[ctx.rows, ctx.day_idx, hour]
        thr = np.clip(
            usual * float(p["multiplier"]) + float(p["margin_hours"]),
            float(p["min_hours"]),
            float(p["max_hours"]),
        )
        # Nothing learned for this situation: the rule's fallback (NaN = stay quiet).
        thr = np.where(np.isnan(thr), float(p["fallback_hours"]) or np.nan, thr)
    learned = ~np.isnan(ctx.profile.act_thr_learned[ctx.rows, ctx.day_idx])
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


def _low_usage(rule: Rule, ctx: Context) -> RuleOutput:
    p = rule.params
    base = ctx.profile.cumulative_quantile(float(p["quantile"]))  # (M, days, 24)
    done = _hours_done(ctx)
    usual = base[ctx.rows, ctx.day_idx, np.maximum(done, 0)]
    f, j1 = ctx.feat, ctx.last + 1
    j0 = ctx.last - ctx.slot_of_day  # first slot of the local day
    today = take(f.cum_usage, ctx.rows, j1) - take(f.cum_usage, ctx.rows, j0)
    whole = (j0 >= 0) & (
        (take(f.cum_known, ctx.rows, j1) - take(f.cum_known, ctx.rows, j0)) == j1 - j0
    )
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
    flow = f.known & (np.nan_to_num(f.usage) > float(p["min_flow"]))
    from tanfang.monitoring.detection.features import running_last

    last_break = running_last(~flow)
    run = np.where(ctx.last >= 0, ctx.last - take(last_break, ctx.rows, ctx.last), 0)
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
