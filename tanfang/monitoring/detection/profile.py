"""The home's own routine, learned from its own past days, one profile per local day.

For local day ``d`` a profile is learned from days ``d-1-L .. d-2`` (L = ``learning.days``;
the day before is left out because, with data arriving late, it is not complete when day
``d`` begins). Nothing in it depends on day ``d`` or later, so a replay learns exactly as a
live system would, one day at a time.

What is learned, per meter and day:

1. The activity threshold: base (a low quantile of the home's slots) plus the larger of a
   minimum and the quiet excess (a high quantile above base of the slots in the home's
   quietest hours: fridge cycles, standby, a dripping cistern). Relearned each local Monday
   from the window before it.
2. For the routine rules, per hour of the day and day type (weekday/weekend, or weekday for
   ``hour_of_week``): quantiles of the longest proven inactivity seen in that hour, and of
   the cumulative usage of the day by the end of that hour. Only usable days count: days
   with at least 90% of their slots known and a total of at least ``away_fraction`` of the
   home's median day (an absence or a holiday away is not the home's routine).
   Fewer than ``min_days`` usable days of the type: no threshold (NaN), the rules stay quiet.
3. For ``basis: days`` (the default): per day and hour, the longest quiet spell that began
   then, and the day it ended; ``day_thresholds`` turns them into the rule's thresholds.

A profile can also be given (``Profile.given``): the thresholds a live system stored from its
nightly learning, as used by the benchmark.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tanfang.monitoring.detection.grid import Calendar, Grid


def nanquantile(a: np.ndarray, q: float, axis: int = -1) -> np.ndarray:
    """Linear-interpolated quantile ignoring NaN (NaN where nothing is known); sorts once."""
    s = np.sort(a, axis=axis)
    n = np.sum(~np.isnan(s), axis=axis)
    pos = q * np.maximum(n - 1, 0)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, np.maximum(n - 1, 0))
    frac = pos - lo
    take_lo = np.take_along_axis(s, np.expand_dims(lo, axis), axis).squeeze(axis)
    take_hi = np.take_along_axis(s, np.expand_dims(hi, axis), axis).squeeze(axis)
    out = take_lo + (take_hi - take_lo) * frac
    return np.where(n > 0, out, np.nan)


def day_matrix(x: np.ndarray, cal: Calendar, zone_idx: np.ndarray, grid: Grid) -> np.ndarray:
    """(meters, days, slots_per_day): each slot at its local day and slot of day."""
    out = np.full((x.shape[0], cal.days, grid.per_day), np.nan, dtype=x.dtype)
    for z in np.unique(zone_idx):
        rows = np.flatnonzero(zone_idx == z)
        days = cal.day[z] - cal.day0
        sod = np.minimum(cal.slot_of_day[z], grid.per_day - 1)
        block = np.full((len(rows), cal.days, grid.per_day), np.nan, dtype=x.dtype)
        block[:, days, sod] = x[rows]
        out[rows] = block
    return out


@dataclass
class Profile:
    """Per meter and local day (index from ``day0``): thresholds the rules read."""

    day0: int
    act_thr: np.ndarray  # (meters, days)
    weekday_of_day: np.ndarray  # (days,) Monday = 0
    act_thr_learned: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # NaN: fallback
    _hourly_inact: np.ndarray | None = None  # (meters, days, 24) longest inactivity per hour
    _cum_by_hour: np.ndarray | None = None  # (meters, days, 24) day's usage by hour end
    _usable: np.ndarray | None = None  # (meters, days)
    _spells: np.ndarray | None = None  # (meters, days, 24, k) quiet spells by starting hour
    _spell_end: np.ndarray | None = None  # (meters, days, 24, k) day each spell ended
    _day_longest: np.ndarray | None = None  # (meters, days, 24) longest spell begun that hour
    _day_longest_end: np.ndarray | None = None  # (meters, days, 24) the day it ended
    learning: Mapping[str, Any] = field(default_factory=dict)
    _given: dict[str, np.ndarray] = field(default_factory=dict)
    _cache: dict[tuple[Any, ...], np.ndarray] = field(default_factory=dict)

    @property
    def days(self) -> int:
        return self.act_thr.shape[1]

    def day_index(self, local_day: np.ndarray) -> np.ndarray:
        if self.days == 1:
            return np.zeros(np.shape(local_day), dtype=np.int64)
        return np.clip(local_day - self.day0, 0, self.days - 1)

    # -- learning ---------------------------------------------------------------------------
    @classmethod
    def learn(
        cls,
        usage: np.ndarray,
        grid: Grid,
        cal: Calendar,
        zone_idx: np.ndarray,
        learning: Mapping[str, Any],
        activity: Mapping[str, np.ndarray],
    ) -> Profile:
        """Learn from the usage grid. ``activity`` holds per-meter arrays: base_quantile,
        quiet_hours, quiet_quantile, min_above (per slot, normalised units).
        """
        du = day_matrix(usage, cal, zone_idx, grid)
        n_m, n_d, spd = du.shape
        per_hour = spd // 24
        window = int(learning["days"])
        known_frac = np.mean(~np.isnan(du), axis=2)
        totals = np.where(
            known_frac >= 0.9, np.nansum(du, axis=2) / np.maximum(known_frac, 1e-9), np.nan
        )
        act_thr = np.full((n_m, n_d), np.nan)
        usable = np.zeros((n_m, n_d), dtype=bool)
        hourly = du.reshape(n_m, n_d, 24, per_hour)
        anchor: int | None = None
        weekly = np.full(n_m, np.nan)
        for d in range(n_d):
            # The activity threshold is relearned once a week (on local Mondays), from the
            # window before that Monday: cheaper, and still only from the past.
            monday = d - int((cal.day0 + d + 3) % 7)
            if monday != anchor:
                anchor = monday
                lo, hi = max(0, monday - 1 - window), max(0, monday - 1)
                if hi > lo:
                    weekly = _activity_threshold(du[:, lo:hi], hourly[:, lo:hi], activity)
                else:
                    weekly = np.full(n_m, np.nan)
            act_thr[:, d] = weekly
            lo, hi = max(0, d - 1 - window), max(0, d - 1)
            if hi <= lo:
                continue
            med = nanmedian_rows(totals[:, lo:hi])
            usable[:, d] = (known_frac[:, d] >= 0.9) & (
                totals[:, d] >= float(learning["away_fraction"]) * np.nan_to_num(med, nan=0.0)
            )
        fallback = activity["min_above"][:, None] + np.zeros((1, n_d))
        learned_days = np.zeros((n_m, n_d), dtype=np.int64)
        enough = known_frac >= 0.5
        csum = np.cumsum(enough, axis=1)
        for d in range(n_d):
            lo, hi = max(0, d - 1 - window), max(0, d - 1)
            learned_days[:, d] = (csum[:, hi - 1] if hi > 0 else 0) - (
                csum[:, lo - 1] if lo > 0 else 0
            )
        weak = (learned_days < int(learning["min_days"])) | np.isnan(act_thr)
        learned = np.where(weak, np.nan, act_thr)
        act_thr = np.where(weak, fallback, act_thr)
        day_numbers = cal.day0 + np.arange(n_d)
        profile = cls(
            day0=cal.day0,
            act_thr=act_thr,
            weekday_of_day=(day_numbers + 3) % 7,
            learning=learning,
        )
        profile._usable = usable
        profile.act_thr_learned = learned
        profile._cum_by_hour = np.cumsum(du, axis=2)[:, :, per_hour - 1 :: per_hour]
        return profile

    def set_inactivity(
        self, inact_hours: np.ndarray, cal: Calendar, zone_idx: np.ndarray, grid: Grid
    ) -> None:
        """Feed the proven inactivity per slot (hours, NaN where unknown) for routine learning."""
        dd = day_matrix(inact_hours, cal, zone_idx, grid)
        n_m, n_d, spd = dd.shape
        hourly = dd.reshape(n_m, n_d, 24, spd // 24)
        with np.errstate(invalid="ignore"):
            mx = np.max(hourly, axis=3)  # NaN when any slot of the hour is unknown
        self._hourly_inact = mx

    def set_gaps(
        self,
        spells: tuple[np.ndarray, np.ndarray, np.ndarray],
        cal: Calendar,
        zone_idx: np.ndarray,
        grid: Grid,
    ) -> None:
        """Feed the quiet spells (features.gaps) for learning by the hour they began."""
        meter, first, length = spells
        n_m, n_d = self.act_thr.shape
        zone = zone_idx[meter]
        day = cal.day[zone, first] - self.day0
        hour = np.minimum(cal.slot_of_day[zone, first] // grid.per_hour, 23)
        last = np.minimum(first + length - 1, cal.day.shape[1] - 1)
        end_day = cal.day[zone, last] - self.day0
        ok = (day >= 0) & (day < n_d)
        meter, day, hour = meter[ok], day[ok], hour[ok]
        hours, end_day = length[ok] * grid.step / 3600.0, end_day[ok]
        cell = (meter * n_d + day) * 24 + hour
        order = np.argsort(cell, kind="stable")
        cell, hours, end_day = cell[order], hours[order], end_day[order]
        new = np.concatenate(([True], cell[1:] != cell[:-1])) if len(cell) else np.zeros(0, bool)
        group_start = np.maximum.accumulate(np.where(new, np.arange(len(cell)), 0))
        rank = np.arange(len(cell)) - group_start
        k = int(rank.max()) + 1 if len(rank) else 1
        spells_at = np.full(n_m * n_d * 24 * k, np.nan)
        spells_at[cell * k + rank] = hours
        ended = np.full(n_m * n_d * 24 * k, n_d, dtype=np.int64)
        ended[cell * k + rank] = end_day
        self._spells = spells_at.reshape(n_m, n_d, 24, k)
        self._spell_end = ended.reshape(n_m, n_d, 24, k)

    def set_day_spells(
        self,
        spells: tuple[np.ndarray, np.ndarray, np.ndarray],
        cal: Calendar,
        zone_idx: np.ndarray,
        grid: Grid,
    ) -> None:
        """Feed the quiet spells for the ``days`` basis: per meter, local day and local hour,
        the longest spell that began then (0: none) and the day it ended."""
        meter, first, length = spells
        n_m, n_d = self.act_thr.shape
        zone = zone_idx[meter]
        day = cal.day[zone, first] - self.day0
        hour = np.minimum(cal.slot_of_day[zone, first] // grid.per_hour, 23)
        last = np.minimum(first + length - 1, cal.day.shape[1] - 1)
        end_day = cal.day[zone, last] - self.day0
        ok = (day >= 0) & (day < n_d)
        hours = length[ok] * grid.step / 3600.0
        cell = (meter[ok] * n_d + day[ok]) * 24 + hour[ok]
        longest = np.zeros(n_m * n_d * 24)
        np.maximum.at(longest, cell, hours)
        # The day the longest spell of each cell ended (ties: the latest, the cautious choice).
        ended = np.full(n_m * n_d * 24, -1, dtype=np.int64)
        is_longest = hours >= longest[cell]
        np.maximum.at(ended, cell[is_longest], end_day[ok][is_longest])
        self._day_longest = longest.reshape(n_m, n_d, 24)
        self._day_longest_end = ended.reshape(n_m, n_d, 24)

    def day_thresholds(self, p: Mapping[str, Any]) -> np.ndarray:
        """(meters, days, 24): the ``days`` basis threshold (hours of quiet) for a quiet spell
        that began at each local hour, NaN where the rule stays quiet. Steps, for day ``d``:

        1. per past day of the same type within ``window_days`` (0: ``learning.days``), usable
           and after a usable day, the longest quiet spell that began within ``around_hours``
           of the hour; a spell not over before day ``d-1`` was unknown then and leaves its
           day out;
        2. ``usual`` = the ``quantile`` of those daily values (1.0: the longest), the threshold
           ``usual * multiplier + margin_hours``, at least ``min_hours``;
        3. above ``max_hours``: ``max_hours`` when at most ``cap_rate`` of the days had a spell
           this long (an occasional long spell); otherwise NaN (the home is routinely quiet this
           long then: this rule stays silent there, the fixed backstop remains);
        4. fewer than ``min_days`` days known: ``fallback_hours`` (0: stay quiet);
        5. a spell that began in the night (``night_from``..``night_to``) waits at least
           ``night_min_hours`` (late rising is the commonest false alarm).
        """
        if "spell" in self._given:
            return self._given["spell"]
        keys = (
            "quantile", "multiplier", "margin_hours", "min_hours", "max_hours", "cap_rate",
            "around_hours", "min_days", "fallback_hours", "night_from", "night_to",
            "night_min_hours", "window_days",
        )  # fmt: skip
        key = ("days", *(float(p[k]) for k in keys))
        if key in self._cache:
            return self._cache[key]
        longest, ended = self._day_longest, self._day_longest_end
        assert longest is not None and ended is not None and self._usable is not None
        n_m, n_d, _ = longest.shape
        around = int(p["around_hours"])
        pooled, pooled_end = longest, ended
        for s in range(1, around + 1):
            for shift in (s, -s):
                pooled = np.maximum(pooled, np.roll(longest, shift, axis=2))
                pooled_end = np.maximum(pooled_end, np.roll(ended, shift, axis=2))
        ok = self._usable & np.concatenate((np.zeros((n_m, 1), bool), self._usable[:, :-1]), 1)
        pooled = np.where(ok[:, :, None], pooled, np.nan)
        hours = np.arange(24)
        lo_n, hi_n = int(p["night_from"]) % 24, int(p["night_to"]) % 24
        night = (
            (hours >= lo_n) | (hours < hi_n) if lo_n > hi_n else (hours >= lo_n) & (hours < hi_n)
        )
        max_h = float(p["max_hours"])
        window = int(p["window_days"]) or int(self.learning["days"])
        by_week = self.learning["daytypes"] == "hour_of_week"
        wd = self.weekday_of_day
        kind = wd if by_week else (wd >= 5).astype(np.int64)
        out = np.full((n_m, n_d, 24), np.nan)
        q = float(p["quantile"])
        for d in range(n_d):
            lo, hi = max(0, d - 1 - window), max(0, d - 1)
            same = np.flatnonzero(kind[lo:hi] == kind[d]) + lo
            if not len(same):
                continue
            block = np.where(pooled_end[:, same] < d - 1, pooled[:, same], np.nan)
            block = block.transpose(0, 2, 1)  # (meters, 24, days)
            count = np.sum(~np.isnan(block), axis=2)
            usual = nanquantile(block, q, axis=2)
            thr = np.maximum(
                usual * float(p["multiplier"]) + float(p["margin_hours"]), float(p["min_hours"])
            )
            routine_long = np.sum(block > max_h, axis=2) > float(p["cap_rate"]) * count
            thr = np.where(thr > max_h, np.where(routine_long, np.nan, max_h), thr)
            thr = np.where(count >= int(p["min_days"]), thr, float(p["fallback_hours"]) or np.nan)
            out[:, d, :] = np.where(night, np.maximum(thr, float(p["night_min_hours"])), thr)
        self._cache[key] = out
        return out

    def spell_quantile(self, q: float, around: int, min_spells: int) -> np.ndarray:
        """(meters, days, 24): quantile q of the quiet spells that began within ``around``
        hours of each hour, on usable past days of the same day type (NaN: too few)."""
        if "spell" in self._given:
            return self._given["spell"]
        key = ("spell", q + 1000 * around + 1e6 * min_spells)
        if key in self._cache:
            return self._cache[key]
        assert self._spells is not None and self._usable is not None
        n_m, n_d, _, _k = self._spells.shape
        ok = self._usable & np.concatenate(
            (np.zeros((n_m, 1), dtype=bool), self._usable[:, :-1]), axis=1
        )
        spells = np.where(ok[:, :, None, None], self._spells, np.nan)
        # Pool neighbouring hours: (meters, days, 24, (2*around+1)*k).
        shifts = range(-around, around + 1)
        pooled = np.concatenate([np.roll(spells, s, axis=2) for s in shifts], axis=3)
        assert self._spell_end is not None
        pooled_end = np.concatenate([np.roll(self._spell_end, s, axis=2) for s in shifts], axis=3)
        window = int(self.learning["days"])
        by_week = self.learning["daytypes"] == "hour_of_week"
        wd = self.weekday_of_day
        kind = wd if by_week else (wd >= 5).astype(np.int64)
        out = np.full((n_m, n_d, 24), np.nan)
        for d in range(n_d):
            lo, hi = max(0, d - 1 - window), max(0, d - 1)
            same = np.flatnonzero(kind[lo:hi] == kind[d]) + lo
            if not len(same):
                continue
            # Only spells over before day d-1 began: longer ones were not known yet.
            block = np.where(pooled_end[:, same] < d - 1, pooled[:, same], np.nan)
            block = block.transpose(0, 2, 1, 3).reshape(n_m, 24, -1)
            count = np.sum(~np.isnan(block), axis=2)
            out[:, d, :] = np.where(count >= min_spells, nanquantile(block, q, axis=2), np.nan)
        self._cache[key] = out
        return out

    # -- thresholds ---------------------------------------------------------------------------
    @classmethod
    def given(
        cls,
        *,
        day0: int,
        act_thr: np.ndarray,
        inactivity_hours: np.ndarray,
        low_cum: np.ndarray,
        spell_hours: np.ndarray,
    ) -> Profile:
        """A stored profile for one day: act_thr (meters,); inactivity_hours, low_cum and
        spell_hours (meters, 24), the quantiles the rules would otherwise learn."""
        p = cls(day0=day0, act_thr=act_thr[:, None], weekday_of_day=np.array([(day0 + 3) % 7]))
        p.act_thr_learned = p.act_thr
        p._given = {
            "inact": inactivity_hours[:, None, :],
            "cum": low_cum[:, None, :],
            "spell": spell_hours[:, None, :],
        }
        return p

    def take(self, rows: np.ndarray) -> Profile:
        """The profile of some of its meters (``rows``: positions), e.g. a batch of a stored
        profile; cached thresholds are not carried over."""
        if len(rows) == self.act_thr.shape[0] and np.array_equal(rows, np.arange(len(rows))):
            return self

        def sub(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None or a.ndim == 0 or a.shape[0] == 0 else a[rows]

        learned = sub(self.act_thr_learned)
        return Profile(
            day0=self.day0,
            act_thr=self.act_thr[rows],
            weekday_of_day=self.weekday_of_day,
            act_thr_learned=learned if learned is not None else self.act_thr_learned,
            _hourly_inact=sub(self._hourly_inact),
            _cum_by_hour=sub(self._cum_by_hour),
            _usable=sub(self._usable),
            _spells=sub(self._spells),
            _spell_end=sub(self._spell_end),
            _day_longest=sub(self._day_longest),
            _day_longest_end=sub(self._day_longest_end),
            learning=self.learning,
            _given={k: v[rows] for k, v in self._given.items()},
        )

    def inactivity_quantile(self, q: float) -> np.ndarray:
        """(meters, days, 24): quantile q of the longest inactivity at each hour."""
        if "inact" in self._given:
            return self._given["inact"]
        assert self._hourly_inact is not None, "set_inactivity first"
        return self._windowed(("inact", q), self._hourly_inact, q)

    def cumulative_quantile(self, q: float) -> np.ndarray:
        """(meters, days, 24): quantile q of the day's usage by the end of each hour."""
        if "cum" in self._given:
            return self._given["cum"]
        assert self._cum_by_hour is not None
        return self._windowed(("cum", q), self._cum_by_hour, q)

    def _windowed(self, key: tuple[str, float], values: np.ndarray, q: float) -> np.ndarray:
        if key in self._cache:
            return self._cache[key]
        assert self._usable is not None
        n_m, n_d, _ = values.shape
        window = int(self.learning["days"])
        min_days = int(self.learning["min_days"])
        by_week = self.learning["daytypes"] == "hour_of_week"
        wd = self.weekday_of_day
        kind = wd if by_week else (wd >= 5).astype(np.int64)
        out = np.full((n_m, n_d, 24), np.nan)
        ok = self._usable
        if key[0] == "inact":
            # The morning after an absence carries the absence's inactivity: not routine.
            ok = ok & np.concatenate((np.zeros((n_m, 1), dtype=bool), ok[:, :-1]), axis=1)
        usable = np.where(ok[:, :, None], values, np.nan)
        for d in range(n_d):
            lo, hi = max(0, d - 1 - window), max(0, d - 1)
            if hi <= lo:
                continue
            same = np.flatnonzero(kind[lo:hi] == kind[d]) + lo
            if len(same) < min_days:
                continue
            block = usable[:, same, :]
            qv = nanquantile(block, q, axis=1)
            count = np.sum(~np.isnan(block), axis=1)
            out[:, d, :] = np.where(count >= min_days, qv, np.nan)
        self._cache[key] = out
        return out


def nanmedian_rows(x: np.ndarray) -> np.ndarray:
    return nanquantile(x, 0.5, axis=1)


def _activity_threshold(
    du: np.ndarray, hourly: np.ndarray, activity: Mapping[str, np.ndarray]
) -> np.ndarray:
    """Per meter: base + max(min_above, quiet excess) from the window's slots."""
    n_m = du.shape[0]
    flat = du.reshape(n_m, -1)
    base = _per_meter_quantile(flat, activity["base_quantile"])
    hour_med = nanquantile(hourly.transpose(0, 2, 1, 3).reshape(n_m, 24, -1), 0.5, axis=2)
    order = np.argsort(np.where(np.isnan(hour_med), np.inf, hour_med), axis=1)
    rank = np.argsort(order, axis=1)
    quiet = rank < activity["quiet_hours"][:, None]  # (meters, 24)
    quiet_vals = np.where(quiet[:, None, :, None], hourly, np.nan).reshape(n_m, -1)
    excess = _per_meter_quantile(quiet_vals - base[:, None], activity["quiet_quantile"])
    excess = np.nan_to_num(excess, nan=0.0)
    return base + np.maximum(activity["min_above"], excess)


def _per_meter_quantile(x: np.ndarray, q: np.ndarray) -> np.ndarray:
    qs = np.unique(q)
    if len(qs) == 1:
        return nanquantile(x, float(qs[0]), axis=1)
    out = np.full(x.shape[0], np.nan)
    for value in qs:
        rows = q == value
        out[rows] = nanquantile(x[rows], float(value), axis=1)
    return out
