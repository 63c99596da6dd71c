"""Readings -> usage per interval, in normalised units, with bad readings set aside.

Steps, per meter, every decision using only the meter's earlier readings (so a replay and a
live system decide the same way):

1. Sort by (meter, ts) (skipped when the input is already sorted) and collapse duplicates of
   the same meter and ts to one reading (the largest value when they disagree, so the result
   does not depend on input order); readings stamped after the cut-off are
   ``future_timestamp``.
2. Units: the meter's unit times its factor (m³ -> L, kWh -> Wh, ft³ -> L).
3. Interval registers: the value is the usage over (ts - interval, ts]; negative usage and
   usage above the utility's physical limit are quarantined.
4. Cumulative registers: usage is the rise since the last *accepted* reading. A fall to near
   zero is a reset (usage = the new value), a fall from near the register's capacity a
   rollover (usage = capacity - previous + new), a small fall (up to a quarter-hour of the
   utility's limit) is register jitter (``register_decrease``, skipped, so totals still
   telescope) and an impossible jump is ``absurd_value``. Two consecutive readings agreeing
   on a new level after such a jump or fall re-base the register (a replaced meter): the
   usage across the change is unknown.
   Meters whose register only rises plausibly take a vectorised path; the others a per-meter
   loop with the same semantics.
5. An interval longer than the utility's ``max_gap_hours`` whose register did not move is
   known zero usage (the register proves it); one whose register moved is a gap: its usage is
   put in its last slot and the rest of it stays missing. Missing data is never zero usage.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from tanfang.monitoring.detection.tables import MeterTable, Readings

MIN_SPAN_S = 900  # physical limits are applied to at least a quarter-hour
DEFAULT_INTERVAL_S = 900.0


@dataclass
class Normalised:
    """Usage intervals and the accepted reading times, both sorted by (meter, ts)."""

    iv_meter: np.ndarray  # int32
    iv_start: np.ndarray  # int64 epoch s, exclusive
    iv_end: np.ndarray  # int64 epoch s, inclusive (the reading's ts)
    iv_usage: np.ndarray  # float64, normalised units
    iv_gap: np.ndarray  # bool: longer than max_gap with usage: only the last slot is known
    acc_meter: np.ndarray  # int32: accepted readings (they carry data)
    acc_ts: np.ndarray  # int64
    quarantine: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)
    info: dict[str, int] = field(default_factory=dict)  # resets, rollovers, re-basings

    def quarantined(self) -> dict[str, int]:
        return {k: len(v[0]) for k, v in self.quarantine.items()}


class _Sink:
    def __init__(self) -> None:
        self.quarantine: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
        self.info: dict[str, int] = {}

    def flag(self, reason: str, m: np.ndarray, ts: np.ndarray, v: np.ndarray) -> None:
        if len(m):
            self.quarantine.setdefault(reason, []).append((m, ts, v))

    def count(self, what: str, n: int = 1) -> None:
        if n:
            self.info[what] = self.info.get(what, 0) + n

    def done(self) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        return {
            reason: tuple(np.concatenate([p[i] for p in parts]) for i in range(3))  # type: ignore[misc]
            for reason, parts in self.quarantine.items()
        }


def sort_dedupe(readings: Readings, sink: _Sink) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    m, ts, v = readings.meter, readings.ts, readings.value
    if len(m) > 1 and not _sorted_unique(m, ts):
        order = _order_ties(m, ts, v)
        if order is None:
            order = np.lexsort((v, ts, m))
        m, ts, v = m[order], ts[order], v[order]
        same = (m[1:] == m[:-1]) & (ts[1:] == ts[:-1])
        if same.any():
            drop = np.flatnonzero(same)  # keep the last (largest value) of each group
            equal = v[drop] == v[drop + 1]
            sink.flag("duplicate", m[drop[equal]], ts[drop[equal]], v[drop[equal]])
            d2 = drop[~equal]
            sink.flag("conflicting_duplicate", m[d2], ts[d2], v[d2])
            keep = np.ones(len(m), dtype=bool)
            keep[drop] = False
            m, ts, v = m[keep], ts[keep], v[keep]
    return m, ts, v


def _sorted_unique(m: np.ndarray, ts: np.ndarray) -> bool:
    """Sorted by (meter, ts) without repeated (meter, ts)."""
    m1, m0 = m[1:], m[:-1]
    if not bool(np.all(m1 >= m0)):
        return False
    return bool(np.all((m1 != m0) | (ts[1:] > ts[:-1])))


def _order_ties(m: np.ndarray, ts: np.ndarray, v: np.ndarray) -> np.ndarray | None:
    """``np.lexsort((v, ts, m))`` for readings already sorted by (meter, ts) but with repeated
    (meter, ts) (readings delivered twice): only the repeats are sorted, by value (stable, as
    lexsort). None when the readings are out of order."""
    m1, m0 = m[1:], m[:-1]
    if not bool(np.all(m1 >= m0)) or not bool(np.all((m1 != m0) | (ts[1:] >= ts[:-1]))):
        return None
    tie = (m1 == m0) & (ts[1:] == ts[:-1])  # reading i+1 repeats reading i
    pos = np.flatnonzero(tie)
    order = np.arange(len(m))
    if not len(pos):
        return order
    member = np.zeros(len(m), dtype=bool)
    member[pos] = True
    member[pos + 1] = True
    idx = np.flatnonzero(member)  # every reading of a repeated (meter, ts), in order
    group = np.cumsum(np.concatenate(([True], ~tie[idx[1:] - 1] | (idx[1:] != idx[:-1] + 1))))
    order[idx] = idx[np.lexsort((v[idx], group))]
    return order


def _constant(a: np.ndarray) -> bool:
    return len(a) > 0 and bool(np.all(a == a[0]))


def normalise(
    readings: Readings,
    meters: MeterTable,
    *,
    max_per_hour: np.ndarray,
    max_gap_s: np.ndarray,
    future_cutoff: int | None,
) -> Normalised:
    """``max_per_hour`` and ``max_gap_s`` are per meter (from the meter's rule set)."""
    sink = _Sink()
    m, ts, v = sort_dedupe(readings, sink)
    if future_cutoff is not None:
        future = ts > future_cutoff
        if future.any():
            sink.flag("future_timestamp", m[future], ts[future], v[future])
            m, ts, v = m[~future], ts[~future], v[~future]
    r = v if bool(np.all(meters.factor == 1.0)) else v * meters.factor[m]
    accepted = np.zeros(len(m), dtype=bool)
    cumulative = meters.flags("cumulative")
    # Each interval is named by the reading that ends it (an index into the sorted readings):
    # ordering intervals by that index orders them by (meter, end).
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    if len(m):
        if not cumulative.any():
            cum_rows: np.ndarray | None = np.zeros(0, np.int64)
            int_rows: np.ndarray | None = None
        elif cumulative.all():
            cum_rows, int_rows = None, np.zeros(0, np.int64)
        else:
            is_cum = cumulative[m]
            cum_rows, int_rows = np.flatnonzero(is_cum), np.flatnonzero(~is_cum)
        if int_rows is None or len(int_rows):
            parts.append(
                _interval_registers(int_rows, m, ts, r, meters, max_per_hour, sink, accepted)
            )
        if cum_rows is None or len(cum_rows):
            parts.extend(
                _cumulative_registers(cum_rows, m, ts, r, meters, max_per_hour, sink, accepted)
            )
    if parts:
        ends = parts[0][0] if len(parts) == 1 else np.concatenate([p[0] for p in parts])
        iv_s = parts[0][1] if len(parts) == 1 else np.concatenate([p[1] for p in parts])
        iv_u = parts[0][2] if len(parts) == 1 else np.concatenate([p[2] for p in parts])
        if len(ends) > 1 and not bool(np.all(ends[1:] > ends[:-1])):
            # Rank of each end among all ends (they are distinct): a scatter, not a sort.
            mark = np.zeros(len(m), dtype=bool)
            mark[ends] = True
            rank = np.cumsum(mark) - 1
            dest = rank[ends]
            order = np.empty_like(ends)
            order[dest] = np.arange(len(ends))
            ends, iv_s, iv_u = ends[order], iv_s[order], iv_u[order]
        iv_m, iv_e = m[ends], ts[ends]
    else:
        iv_m, iv_s, iv_e = (np.zeros(0, np.int64) for _ in range(3))
        iv_u = np.zeros(0)
    if _constant(max_gap_s):
        iv_gap = ((iv_e - iv_s) > max_gap_s[0]) & (iv_u > 0)
    else:
        iv_gap = ((iv_e - iv_s) > max_gap_s[iv_m]) & (iv_u > 0)
    all_accepted = bool(accepted.all())
    return Normalised(
        iv_meter=iv_m.astype(np.int32, copy=False),
        iv_start=iv_s,
        iv_end=iv_e,
        iv_usage=iv_u,
        iv_gap=iv_gap,
        acc_meter=m if all_accepted else m[accepted],
        acc_ts=ts if all_accepted else ts[accepted],
        quarantine=sink.done(),
        info=sink.info,
    )


def _per_reading(per_meter: np.ndarray, mm: np.ndarray) -> np.ndarray:
    """A per-meter parameter at each reading: one value when it is the same for all meters."""
    if _constant(per_meter):
        return per_meter[:1]
    return per_meter[mm]


def _interval_registers(
    rows: np.ndarray | None,
    m: np.ndarray,
    ts: np.ndarray,
    r: np.ndarray,
    meters: MeterTable,
    max_per_hour: np.ndarray,
    sink: _Sink,
    accepted: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``rows``: the readings of interval registers (None: all). Returns (end reading index,
    start, usage) per interval."""
    if rows is None:
        mm, tt, uu = m, ts, r
        rows = np.arange(len(m))
    else:
        mm, tt, uu = m[rows], ts[rows], r[rows]
    if _constant(meters.interval_s) and not np.isnan(meters.interval_s[0]):
        interval = meters.interval_s[:1]
    else:
        interval = meters.interval_s[mm]
        if np.isnan(interval).any():
            spacing = _median_spacing(mm, tt, len(meters))[mm]
            interval = np.where(np.isnan(interval), spacing, interval)
    limit = _per_reading(max_per_hour, mm) * np.maximum(interval, MIN_SPAN_S) / 3600.0
    negative = uu < 0
    absurd = uu > limit
    bad = negative | absurd
    if bad.any():
        for reason, mask in (("negative_usage", negative), ("absurd_value", absurd)):
            sink.flag(reason, mm[mask], tt[mask], uu[mask] / meters.factor[mm[mask]])
        good = ~bad
        accepted[rows[good]] = True
        rows, mm, tt, uu = rows[good], mm[good], tt[good], uu[good]
        if len(interval) > 1:
            interval = interval[good]
    else:
        accepted[rows] = True
    start = tt - interval.astype(np.int64)
    if len(mm) > 1:
        # Readings closer than the interval must not count the same time twice.
        np.maximum(start[1:], tt[:-1], out=start[1:], where=mm[1:] == mm[:-1])
    return rows, start, uu


def _median_spacing(m: np.ndarray, ts: np.ndarray, n_meters: int) -> np.ndarray:
    """Per meter, the median spacing of its readings (a property of the meter, not a reading)."""
    out = np.full(n_meters, DEFAULT_INTERVAL_S)
    if len(m) < 2:
        return out
    same = m[1:] == m[:-1]
    gaps, who = np.diff(ts)[same], m[1:][same]
    if len(gaps):
        order = np.lexsort((gaps, who))
        gaps, who = gaps[order], who[order]
        starts = np.flatnonzero(np.concatenate(([True], who[1:] != who[:-1])))
        counts = np.diff(np.concatenate((starts, [len(who)])))
        out[who[starts]] = gaps[starts + counts // 2]
    return out


def _cumulative_registers(
    rows: np.ndarray | None,
    m: np.ndarray,
    ts: np.ndarray,
    r: np.ndarray,
    meters: MeterTable,
    max_per_hour: np.ndarray,
    sink: _Sink,
    accepted: np.ndarray,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``rows``: the readings of cumulative registers (None: all). Returns (end reading
    index, start, usage) per interval, in parts."""
    if rows is None:
        mm, tt, rr = m, ts, r
        rows = np.arange(len(m))
    else:
        mm, tt, rr = m[rows], ts[rows], r[rows]
    same = mm[1:] == mm[:-1]
    d = np.diff(rr)
    dt = np.diff(tt)
    limit = _per_reading(max_per_hour, mm[1:]) * np.maximum(dt, MIN_SPAN_S) / 3600.0
    odd = same & ((d < 0) | (d > limit))
    if not odd.any():
        accepted[rows] = True
        return [(rows[1:][same], tt[:-1][same], d[same])]
    bad_meters = np.unique(mm[1:][odd])
    slow = np.isin(mm, bad_meters)
    fast_pair = same & ~slow[1:]
    accepted[rows[~slow]] = True
    out: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = [
        (rows[1:][fast_pair], tt[:-1][fast_pair], d[fast_pair])
    ]
    starts = np.searchsorted(mm, bad_meters, side="left")
    ends = np.searchsorted(mm, bad_meters, side="right")
    for meter, a, b in zip(bad_meters, starts, ends, strict=True):
        out.append(
            _cumulative_slow(
                int(meter),
                tt[a:b],
                rr[a:b],
                rows[a:b],
                float(max_per_hour[meter]),
                float(meters.rollover[meter]),
                float(meters.factor[meter]),
                sink,
                accepted,
            )
        )
    return out


def _cumulative_slow(
    meter: int,
    ts: np.ndarray,
    reg: np.ndarray,
    rows: np.ndarray,
    max_per_hour: float,
    capacity: float,
    factor: float,
    sink: _Sink,
    accepted: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One meter's register, reading by reading (the vectorised path's semantics, plus repair).
    Returns (end reading index, start, usage) per interval."""
    starts: list[int] = []
    ends: list[int] = []
    usage: list[float] = []
    flags: dict[str, list[int]] = {}
    ref_v = ref_t = None
    cand: tuple[float, int] | None = None
    for i in range(len(ts)):
        t, v = int(ts[i]), float(reg[i])
        if ref_v is None or ref_t is None:
            ref_v, ref_t = v, t
            accepted[rows[i]] = True
            continue
        d = v - ref_v
        limit = max_per_hour * max(t - ref_t, MIN_SPAN_S) / 3600.0
        cap = capacity if not math.isnan(capacity) else _capacity_guess(ref_v)
        use: float | None = None
        if 0 <= d <= limit:
            use = d
        elif d < 0 and ref_v >= 0.9 * cap and 0 <= cap - ref_v + v <= limit:
            use = cap - ref_v + v
            sink.count("rollover")
        elif d < 0 and -d <= max_per_hour * 0.25:
            flags.setdefault("register_decrease", []).append(i)
            continue
        elif d < 0 and 0 <= v <= limit:
            use = v
            sink.count("reset")
        elif (
            cand is not None
            and 0 <= v - cand[0] <= max_per_hour * max(t - cand[1], MIN_SPAN_S) / 3600
        ):
            # Two readings in a row agree on a new level: re-base; the usage across is unknown.
            sink.count("rebaseline")
            ref_v, ref_t, cand = v, t, None
            accepted[rows[i]] = True
            continue
        else:
            flags.setdefault("absurd_value" if d > 0 else "register_decrease", []).append(i)
            cand = (v, t)
            continue
        starts.append(ref_t)
        ends.append(int(rows[i]))
        usage.append(use)
        ref_v, ref_t, cand = v, t, None
        accepted[rows[i]] = True
    for reason, idx in flags.items():
        sel = np.array(idx)
        sink.flag(reason, np.full(len(sel), meter, np.int32), ts[sel], reg[sel] / factor)
    return (
        np.array(ends, dtype=np.int64),
        np.array(starts, dtype=np.int64),
        np.array(usage, dtype=np.float64),
    )


def _capacity_guess(value: float) -> float:
    """A register that rolls over at the next power of ten above its reading."""
    return float(10 ** math.ceil(math.log10(max(value, 1.0) + 1.0)))
