"""Per-slot features every rule reads, each a causal running quantity along a meter's slots.

Nothing here looks ahead: the value at slot ``j`` uses slots ``<= j`` only, so reading it at
the last slot complete at a tick is exactly what a live system would have computed then.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tanfang.monitoring.detection.grid import Calendar, Grid


@dataclass
class Features:
    usage: np.ndarray  # (M, S) float64, NaN = missing
    known: np.ndarray  # (M, S) bool
    active: np.ndarray  # (M, S) bool
    last_active: np.ndarray  # (M, S) int32 (int64 if S >= 2**31): last active slot <= j, -1 none
    inactive_slots: np.ndarray  # (M, S) int32 (as last_active): proven inactive slots ending at j
    cum_known: np.ndarray  # (M, S+1) int32: known slots before j
    cum_usage: np.ndarray  # (M, S+1) float64: usage before j (missing as 0, see cum_known)

    @property
    def slots(self) -> int:
        return self.usage.shape[1]


def running_last(mask: np.ndarray) -> np.ndarray:
    """Per row, the index of the last True at or before each column, -1 if none (int32 while
    the columns fit: half the memory traffic of int64)."""
    dtype = np.int32 if mask.shape[1] < 2**31 - 1 else np.int64
    idx = np.where(mask, np.arange(mask.shape[1], dtype=dtype)[None, :], dtype(-1))
    np.maximum.accumulate(idx, axis=1, out=idx)
    return idx


def build(usage: np.ndarray, peak: np.ndarray, act_thr_slots: np.ndarray) -> Features:
    """``act_thr_slots``: the activity threshold in force for each slot (its day's profile),
    (M, S) or (M, 1) when it is the same for all slots.

    A slot is active when its usage, or the usage of a longer reading interval covering it
    (``peak``), is above the threshold.
    """
    known = ~np.isnan(usage)
    with np.errstate(invalid="ignore"):
        active = usage > act_thr_slots
        if peak is not usage:
            active |= peak > act_thr_slots
    last_active = running_last(active)
    # Inactivity is proven only over known slots: a missing slot ends the proof as surely as
    # activity does (missing data is never inactivity).
    event = ~known
    event |= active
    last_event = running_last(event)
    del event
    inactive = np.subtract(np.arange(usage.shape[1], dtype=last_event.dtype)[None, :], last_event)
    del last_event
    m = usage.shape[0]
    cum_known = np.zeros((m, usage.shape[1] + 1), dtype=np.int32)
    np.cumsum(known, axis=1, out=cum_known[:, 1:])
    cum_usage = np.zeros((m, usage.shape[1] + 1))
    np.cumsum(np.where(known, usage, 0.0), axis=1, out=cum_usage[:, 1:])
    return Features(usage, known, active, last_active, inactive, cum_known, cum_usage)


def slot_thresholds(
    act_thr: np.ndarray, day0: int, cal: Calendar, zone_idx: np.ndarray
) -> np.ndarray:
    """(M, S): each meter's activity threshold for the local day of each slot."""
    n_days = act_thr.shape[1]
    out = np.empty((act_thr.shape[0], cal.day.shape[1]))
    for z in np.unique(zone_idx):
        rows = np.flatnonzero(zone_idx == z)
        day = np.clip(cal.day[z] - day0, 0, n_days - 1)
        out[rows] = act_thr[rows][:, day]
    return out


def inactive_hours(feat: Features, grid: Grid) -> np.ndarray:
    """Proven inactivity (hours) at each slot; NaN where the slot is missing (for learning)."""
    hours = feat.inactive_slots * (grid.step / 3600.0)
    return np.where(feat.known, hours, np.nan)


def take(a: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """a[rows, cols] for (M, T) index arrays (rows: each row's own index), cols clipped."""
    width = a.shape[1]
    flat = np.clip(cols, 0, width - 1)
    flat += (np.arange(a.shape[0], dtype=flat.dtype) * width)[:, None]
    return a.reshape(-1).take(flat)


def gaps(feat: Features) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every complete quiet spell: (meter, first quiet slot, length in slots).

    A spell is a run of known inactive slots that follows an active slot and ends at an
    active slot; spells cut by missing data are left out (their length is unknown).
    """
    quiet = feat.known & ~feat.active
    _m_count, _s_count = quiet.shape
    # The spell's first slot, for every quiet slot.
    start = running_last(~quiet) + 1
    ends = np.zeros_like(quiet)
    ends[:, :-1] = quiet[:, :-1] & feat.active[:, 1:]
    rows, cols = np.nonzero(ends)
    first = start[rows, cols]
    opened = (first > 0) & feat.active[rows, np.maximum(first - 1, 0)]
    rows, cols, first = rows[opened], cols[opened], first[opened]
    return rows, first, cols - first + 1
