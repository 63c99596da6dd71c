"""Readings -> usage: resets, rollovers, duplicates, order, gaps, bad readings."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from tanfang.monitoring.detection.grid import Grid, spread
from tanfang.monitoring.detection.normalise import normalise
from tanfang.monitoring.detection.tables import MeterTable, Readings, parse_ts

T0 = 1_700_000_000 // 900 * 900
H = 3600


def meters(register: str = "cumulative", unit: str = "L", **extra: object) -> MeterTable:
    row = {"meter_id": "M", "elder_id": "E", "utility": "water", "register": register, "unit": unit}
    row.update(extra)
    return MeterTable.build([row])


def run(table: MeterTable, ts: list[int], values: list[float], cutoff: int | None = None):
    readings = Readings(
        np.zeros(len(ts), np.int32), np.array(ts, np.int64), np.array(values, np.float64)
    )
    return normalise(
        readings,
        table,
        max_per_hour=np.array([3000.0]),
        max_gap_s=np.array([6 * H]),
        future_cutoff=cutoff,
    )


def usage_by_end(norm) -> dict[int, float]:
    return dict(zip(norm.iv_end.tolist(), norm.iv_usage.tolist(), strict=True))


def test_cumulative_register_becomes_usage_per_interval() -> None:
    norm = run(meters(), [T0, T0 + H, T0 + 2 * H], [100, 130, 130])
    assert usage_by_end(norm) == {T0 + H: 30, T0 + 2 * H: 0}
    assert norm.iv_start.tolist() == [T0, T0 + H]


def test_units_are_normalised_to_litres() -> None:
    norm = run(meters(unit="m3"), [T0, T0 + H], [1.5, 1.52])
    assert round(norm.iv_usage[0], 6) == 20.0


def test_reset_to_zero_counts_the_new_value_not_negative_usage() -> None:
    norm = run(meters(), [T0, T0 + H, T0 + 2 * H, T0 + 3 * H], [5000, 5010, 3, 8])
    assert usage_by_end(norm) == {T0 + H: 10, T0 + 2 * H: 3, T0 + 3 * H: 5}
    assert norm.info == {"reset": 1}
    assert (norm.iv_usage >= 0).all()


def test_rollover_at_the_register_capacity() -> None:
    norm = run(meters(rollover=100000), [T0, T0 + H, T0 + 2 * H], [99990, 99998, 7])
    assert usage_by_end(norm) == {T0 + H: 8, T0 + 2 * H: 9}
    assert norm.info == {"rollover": 1}


def test_duplicates_collapse_and_out_of_order_input_is_sorted() -> None:
    ts = [T0 + 2 * H, T0, T0 + H, T0 + H, T0]
    values = [140, 100, 120, 120, 100]
    norm = run(meters(), ts, values)
    assert usage_by_end(norm) == {T0 + H: 20, T0 + 2 * H: 20}
    assert len(norm.quarantine["duplicate"][0]) == 2


def test_conflicting_duplicates_keep_the_largest_whatever_the_order() -> None:
    a = run(meters(), [T0, T0 + H, T0 + H], [100, 110, 115])
    b = run(meters(), [T0 + H, T0, T0 + H], [115, 100, 110])
    assert usage_by_end(a) == usage_by_end(b) == {T0 + H: 15}
    assert len(a.quarantine["conflicting_duplicate"][0]) == 1


def test_register_jitter_is_set_aside_and_totals_telescope() -> None:
    norm = run(meters(), [T0, T0 + H, T0 + 2 * H, T0 + 3 * H], [61497, 61532, 61510, 61616])
    assert "register_decrease" in norm.quarantine
    assert norm.iv_usage.sum() == 61616 - 61497


def test_absurd_spikes_are_quarantined_without_taking_good_readings_down() -> None:
    ts = [T0 + i * H for i in range(6)]
    values = [207774, 456017, 207814, 456273, 207851, 207886]
    norm = run(meters(), ts, values)
    assert len(norm.quarantine["absurd_value"][0]) == 2
    assert norm.iv_usage.sum() == 207886 - 207774
    assert norm.acc_ts.tolist() == [ts[0], ts[2], ts[4], ts[5]]


def test_future_timestamps_are_quarantined() -> None:
    norm = run(meters(), [T0, T0 + H, T0 + 10 * H], [1, 2, 3], cutoff=T0 + 2 * H)
    assert norm.quarantine["future_timestamp"][1].tolist() == [T0 + 10 * H]
    assert norm.iv_end.max() == T0 + H


def test_negative_interval_usage_is_quarantined() -> None:
    table = meters(register="interval", interval_minutes=60)
    norm = run(table, [T0 + H, T0 + 2 * H, T0 + 3 * H], [5, -2, 4])
    assert norm.quarantine["negative_usage"][2].tolist() == [-2]
    assert usage_by_end(norm) == {T0 + H: 5, T0 + 3 * H: 4}


def test_gaps_stay_missing_never_zero() -> None:
    table = meters(register="interval", interval_minutes=15)
    ts = [T0 + 900 * i for i in (1, 2, 3, 8, 9)]
    norm = run(table, ts, [1, 0, 2, 0, 0])
    usage, _ = spread(norm, Grid(T0, 900, 10), 1)
    assert np.isnan(usage[0, 3:7]).all()
    assert usage[0, [0, 1, 2, 7, 8]].tolist() == [1, 0, 2, 0, 0]


def test_long_cumulative_interval_with_usage_is_a_gap_but_a_still_register_is_zero() -> None:
    ts = [T0, T0 + H, T0 + 9 * H, T0 + 18 * H]
    norm = run(meters(), ts, [10, 12, 12, 40])
    usage, _peak = spread(norm, Grid(T0, 900, 72), 1)
    assert (usage[0, 4:36] == 0).all()  # 8 h without the register moving: known zero
    assert np.isnan(usage[0, 36:71]).all()  # 9 h with 28 L somewhere in them: unknown
    assert usage[0, 71] == 28


def test_hourly_readings_spread_over_quarter_hours() -> None:
    norm = run(meters(), [T0 + 600, T0 + 600 + H], [0, 40])
    usage, _ = spread(norm, Grid(T0, 900, 6), 1)
    assert np.isnan(usage[0, 0]) and np.isnan(usage[0, 4])
    assert usage[0, 1:4].tolist() == [10, 10, 10]


@pytest.mark.parametrize("first_naive", [True, False])
def test_a_time_without_an_offset_is_unusable_wherever_it_stands(first_naive: bool) -> None:
    """``ts`` is ISO 8601 with an offset or epoch seconds: a time without an offset is set
    aside, never read as UTC (Polars would do so for a whole column whose first value has
    none), and a bare date is not a time."""
    good = ["2024-01-01T08:00:00+08:00", "2024-01-01T00:00:00Z", "2024-01-01 08:00:00+0800"]
    good += ["1704067200", "2024-01-01T08:00:00.5+08:00"]
    naive = ["2024-01-01T00:00:00", "2024-01-01"]
    texts = naive + good if first_naive else good + naive
    got = dict(zip(texts, parse_ts(pl.Series(texts)).to_list(), strict=True))
    assert all(got[t] == 1704067200 for t in good), got
    assert all(got[t] is None for t in naive), got
