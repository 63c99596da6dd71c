"""The slot grid: usage per meter per slot (default a quarter-hour), and local calendars.

Slot ``j`` covers the half-open period (g0 + j*step, g0 + (j+1)*step]; ``g0`` is a multiple
of ``step`` in epoch seconds, fixed by the ticks and never by the data, so a meter's slots do
not depend on which other meters or readings are in the batch.

An interval (a, b] of usage spreads over the slots it overlaps in proportion to the overlap
(hourly water readings at :19 fill four quarter-hours). A slot is known only when intervals
cover all of it; otherwise it is missing (NaN), never zero. A gap interval (long, register
moved) puts its usage in its last slot only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from tanfang.monitoring.detection.normalise import Normalised

COARSE_S = 3600


@dataclass(frozen=True)
class Grid:
    g0: int
    step: int
    slots: int

    @property
    def per_day(self) -> int:
        return 86400 // self.step

    @property
    def per_hour(self) -> int:
        return max(1, 3600 // self.step)

    def ends(self) -> np.ndarray:
        return self.g0 + (np.arange(self.slots, dtype=np.int64) + 1) * self.step

    def complete(self, known_until: np.ndarray) -> np.ndarray:
        """How many slots are complete when data are known up to ``known_until`` (epoch s)."""
        k = np.floor_divide(known_until - self.g0, self.step)
        return np.clip(k, 0, self.slots)


def spread(norm: Normalised, grid: Grid, n_meters: int) -> tuple[np.ndarray, np.ndarray]:
    """(usage, peak), each (n_meters, slots) float64; usage is NaN where a slot is not fully
    covered. ``peak`` is also the whole usage of any coarse interval (over an hour) overlapping
    the slot: such an interval with usage proves activity somewhere in it, however thin its
    share of each slot is.
    """
    cells = n_meters * grid.slots
    aligned = _aligned(norm, grid, cells)
    if aligned is not None:
        out = aligned.reshape(n_meters, grid.slots)
        return out, out
    usage = np.zeros(cells)
    cover = np.zeros(cells)
    peak = usage
    if len(norm.iv_meter):
        peak = _add(norm, grid, usage, cover)
    missing = cover < grid.step - 0.5
    usage[missing] = np.nan
    if peak is not usage:
        peak[missing] = np.nan
    return usage.reshape(n_meters, grid.slots), peak.reshape(n_meters, grid.slots)


def _aligned(norm: Normalised, grid: Grid, cells: int) -> np.ndarray | None:
    """The common case at low cost: every interval (inside the grid) covers whole slots, no
    two share a slot, and none is over an hour unless it is a gap. Then each slot's usage is
    its interval's share (the general path's sums reduce to ``0.0 + share``), every other
    slot is missing, and the peak is the usage. None when the case does not hold."""
    if not len(norm.iv_meter):
        return None
    step = grid.step
    a = norm.iv_start - grid.g0
    b = norm.iv_end - grid.g0
    length = b - a
    if not (bool(np.all(a % step == 0)) and bool(np.all(length % step == 0))):
        return None
    if not bool(np.all(length > 0)):
        return None
    m, u, gap = norm.iv_meter, norm.iv_usage, norm.iv_gap
    if bool(np.any((length > COARSE_S) & ~gap)):
        return None  # a coarse interval lends its whole usage to the peak: general path
    inside = (b > 0) & (a < grid.slots * step)
    if not bool(inside.all()):
        a, b, m, u, gap, length = (x[inside] for x in (a, b, m, u, gap, length))
    last = b // step - 1
    first = np.where(gap, last, np.maximum(a // step, 0))
    last = np.minimum(last, grid.slots - 1)
    n = last - first + 1
    if not bool(np.all(n > 0)):
        keep = n > 0
        first, last, n, m, u, gap, length = (x[keep] for x in (first, last, n, m, u, gap, length))
    base = m.astype(np.int64) * grid.slots
    lo, hi = base + first, base + last
    if len(lo) > 1 and not bool(np.all(lo[1:] > hi[:-1])):
        return None
    share = u * float(step) / length.astype(np.float64)
    if gap.any():
        share = np.where(gap, u, share)
    out = np.full(cells, np.nan)
    if bool(np.all(n == 1)):
        out[lo] = share + 0.0
    else:
        flat = np.repeat(lo - np.cumsum(n) + n, n) + np.arange(int(n.sum()))
        out[flat] = np.repeat(share, n) + 0.0
    return out


def _add(norm: Normalised, grid: Grid, usage: np.ndarray, cover: np.ndarray) -> np.ndarray:
    a = norm.iv_start - grid.g0
    b = norm.iv_end - grid.g0
    inside = (b > 0) & (a < grid.slots * grid.step) & (b > a)
    a, b = a[inside], b[inside]
    m = norm.iv_meter[inside].astype(np.int64)
    u = norm.iv_usage[inside]
    gap = norm.iv_gap[inside]
    first = np.floor_divide(a, grid.step)
    last = np.floor_divide(b - 1, grid.step)
    first = np.where(gap, last, np.maximum(first, 0))
    last = np.minimum(last, grid.slots - 1)
    n = last - first + 1
    length = (b - a).astype(np.float64)
    if (n == 1).all():
        slot = first
        lo = np.maximum(a, slot * grid.step)
        hi = np.minimum(b, (slot + 1) * grid.step)
        part = (hi - lo).astype(np.float64)
        weight = np.where(gap, u, u * part / length)
        flat = m * grid.slots + slot
        usage += np.bincount(flat, weights=weight, minlength=len(usage))
        cover += np.bincount(flat, weights=part, minlength=len(cover))
        if (part >= grid.step).all():
            return usage  # one interval per slot: the peak is the usage
        coarse = length > COARSE_S
        peak = usage.copy()
        np.maximum.at(peak, flat[coarse], u[coarse])
        return peak
    n = np.maximum(n, 0)
    rep = np.repeat(np.arange(len(n)), n)
    offset = np.arange(len(rep)) - np.repeat(np.cumsum(n) - n, n)
    slot = first[rep] + offset
    lo = np.maximum(a[rep], slot * grid.step)
    hi = np.minimum(b[rep], (slot + 1) * grid.step)
    part = (hi - lo).astype(np.float64)
    weight = np.where(gap[rep], u[rep], u[rep] * part / length[rep])
    flat = m[rep] * grid.slots + slot
    usage += np.bincount(flat, weights=weight, minlength=len(usage))
    cover += np.bincount(flat, weights=part, minlength=len(cover))
    # Only coarse intervals (over an hour) lend their whole usage to each slot's peak.
    coarse = (length > COARSE_S)[rep]
    peak = usage.copy()
    np.maximum.at(peak, flat[coarse], u[rep][coarse])
    return peak


@dataclass(frozen=True)
class Calendar:
    """Local time of each slot's start, per time zone: day number, slot of day, weekday."""

    zones: tuple[str, ...]
    day: np.ndarray  # (zones, slots) int64 local days since 1970-01-01
    slot_of_day: np.ndarray  # (zones, slots) int64
    weekday: np.ndarray  # (zones, slots) int64, Monday = 0
    day0: int  # smallest local day of any zone
    days: int  # number of local days spanned

    def zone_index(self, tz: list[str]) -> np.ndarray:
        lookup = {z: i for i, z in enumerate(self.zones)}
        return np.array([lookup[t] for t in tz], dtype=np.int64)


def calendar(grid: Grid, zones: list[str]) -> Calendar:
    starts = grid.g0 + np.arange(grid.slots, dtype=np.int64) * grid.step
    uniq = tuple(sorted(set(zones))) or ("UTC",)
    local = []
    for zone in uniq:
        series = pl.Series(starts * 1_000_000).cast(pl.Datetime("us", "UTC"))
        wall = series.dt.convert_time_zone(zone).dt.replace_time_zone(None)
        local.append(wall.dt.epoch("s").to_numpy())
    loc = np.vstack(local).astype(np.int64) if grid.slots else np.zeros((len(uniq), 0), np.int64)
    day = np.floor_divide(loc, 86400)
    sod = np.floor_divide(loc - day * 86400, grid.step)
    weekday = (day + 3) % 7
    day0 = int(day.min()) if day.size else 0
    days = int(day.max() - day0 + 1) if day.size else 0
    return Calendar(uniq, day, sod, weekday, day0, days)
