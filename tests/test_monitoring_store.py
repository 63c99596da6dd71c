"""The reading store: Parquet files by UTC day, deduplication on read, compaction, hourly
aggregates (registers to usage through the detection core), retention, atomic writes."""

from __future__ import annotations

import datetime as dt
import itertools
import os
import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tanfang.monitoring import store

DAY = 86_400
D0 = int(dt.datetime(2024, 5, 1, tzinfo=dt.UTC).timestamp())  # a UTC midnight


@pytest.fixture(autouse=True)
def store_dir(settings: Any, tmp_path: Path) -> Path:
    settings.MONITORING_DIR = tmp_path / "monitoring"
    return Path(settings.MONITORING_DIR)


def frame(rows: list[tuple[str, int, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows, schema={"meter_id": pl.String, "ts": pl.Int64, "value": pl.Float64}, orient="row"
    )


def scanned(**kw: Any) -> list[tuple[str, int, float]]:
    got = store.readings_scan(**kw).sort("meter_id", "ts").collect()
    return [(m, t, v) for m, t, v, _b in got.iter_rows()]


def meters(*rows: tuple[str, str, str, int, float | None]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            "meter_id": pl.String,
            "utility": pl.String,
            "register": pl.String,
            "interval_minutes": pl.Int64,
            "rollover": pl.Float64,
        },
        orient="row",
    )


# --------------------------------------------------------------------------- append and scan


def test_append_files_readings_by_their_utc_day(store_dir: Path) -> None:
    paths = store.readings_append(
        frame([("a", D0 + DAY + 60, 1.0), ("a", D0 + 60, 2.0), ("b", D0 + DAY, 3.0)]),
        batch_id=7,
    )
    # D0 + DAY is exactly midnight: it belongs to the day it ends.
    assert paths == ["readings/day=2024-05-01/7-0.parquet", "readings/day=2024-05-02/7-0.parquet"]
    first = pl.read_parquet(store_dir / paths[0])
    assert first.schema == pl.Schema(store.READINGS_SCHEMA)
    assert first.rows() == [("a", D0 + 60, 2.0, 7)]
    # The same batch id again never overwrites: the next sequence number.
    again = store.readings_append(frame([("a", D0 + 120, 1.0)]), batch_id=7)
    assert again == ["readings/day=2024-05-01/7-1.parquet"]
    assert store.readings_append(frame([]), batch_id=8) == []


def test_scan_deduplicates_and_the_larger_value_wins() -> None:
    store.readings_append(frame([("a", D0 + 900, 5.0), ("a", D0 + 1800, 1.0)]), batch_id=1)
    store.readings_append(frame([("a", D0 + 900, 5.0), ("a", D0 + 1800, 4.0)]), batch_id=2)
    store.readings_append(frame([("a", D0 + 1800, 2.0), ("b", D0 + 900, 0.0)]), batch_id=3)
    assert scanned() == [("a", D0 + 900, 5.0), ("a", D0 + 1800, 4.0), ("b", D0 + 900, 0.0)]
    best = store.readings_scan().filter(pl.col("ts") == D0 + 1800).collect()
    assert best["batch"].to_list() == [2]  # the batch of the winning value


def test_scan_filters_by_time_and_meter() -> None:
    store.readings_append(
        frame([("a", D0 + i * 3600, float(i)) for i in range(48)] + [("b", D0 + 3600, 9.0)]),
        batch_id=1,
    )
    assert len(scanned(since=D0 + 10 * 3600, until=D0 + 12 * 3600, meter_ids=["a"])) == 3
    assert scanned(meter_ids=["b"]) == [("b", D0 + 3600, 9.0)]
    assert len(scanned(since=D0 + DAY)) == 24
    assert scanned(until=D0 - 1) == []


def test_scan_of_an_empty_store_has_the_columns() -> None:
    empty = store.readings_scan().collect()
    assert empty.is_empty()
    assert empty.schema == pl.Schema(store.READINGS_SCHEMA)


readings_st = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),
        st.integers(min_value=D0 - DAY, max_value=D0 + 2 * DAY),
        st.sampled_from([0.0, 1.0, 2.5, 10.0]),
    ),
    max_size=40,
)


@hsettings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(readings=readings_st, cuts=st.lists(st.integers(0, 40), max_size=4), data=st.data())
def test_any_order_and_any_batching_give_the_same_store(
    store_dir: Path, readings: list[tuple[str, int, float]], cuts: list[int], data: Any
) -> None:
    """The same readings, delivered in any order, split into any batches, some twice:
    the store reads the same (one reading per meter and time, the largest value)."""
    shutil.rmtree(store_dir, ignore_errors=True)
    shuffled = data.draw(st.permutations(readings))
    bounds = sorted({0, len(shuffled), *[min(c, len(shuffled)) for c in cuts]})
    for n, (a, b) in enumerate(itertools.pairwise(bounds)):
        store.readings_append(frame(shuffled[a:b]), batch_id=n + 1)
    if shuffled:
        store.readings_append(frame(shuffled[: len(shuffled) // 2]), batch_id=99)
    expected: dict[tuple[str, int], float] = {}
    for m, t, v in readings:
        expected[(m, t)] = max(v, expected.get((m, t), v))
    assert scanned() == sorted((m, t, v) for (m, t), v in expected.items())
    for day in store.stored_days():
        store.readings_compact(day)
    assert scanned() == sorted((m, t, v) for (m, t), v in expected.items())


# --------------------------------------------------------------------------- compaction


def test_compaction_merges_a_day_into_one_sorted_file(store_dir: Path) -> None:
    store.readings_append(frame([("b", D0 + 900, 1.0), ("a", D0 + 900, 2.0)]), batch_id=1)
    store.readings_append(frame([("a", D0 + 900, 3.0), ("a", D0 + 60, 1.0)]), batch_id=2)
    before = scanned()
    done = store.readings_compact(dt.date(2024, 5, 1))
    assert (done.files, done.rows_in, done.rows_out) == (2, 4, 3)
    files = store.day_files(dt.date(2024, 5, 1))
    assert [p.name for p in files] == ["compact.parquet"]
    on_disk = pl.read_parquet(files[0])
    assert on_disk.select("meter_id", "ts").rows() == [
        ("a", D0 + 60),
        ("a", D0 + 900),
        ("b", D0 + 900),
    ]
    assert scanned() == before
    # Again: nothing to do. Then a late reading arrives and is merged next time.
    assert store.readings_compact("2024-05-01").rows_in == 0
    store.readings_append(frame([("a", D0 + 900, 9.0)]), batch_id=3)
    assert ("a", D0 + 900, 9.0) in scanned()
    store.readings_compact("2024-05-01")
    assert ("a", D0 + 900, 9.0) in scanned()
    assert len(store.day_files(dt.date(2024, 5, 1))) == 1


def test_compacted_and_fresh_days_read_together() -> None:
    store.readings_append(frame([("a", D0 + 900, 1.0), ("a", D0 + DAY + 900, 2.0)]), batch_id=1)
    store.readings_compact("2024-05-01")
    store.readings_append(frame([("a", D0 + DAY + 900, 3.0)]), batch_id=2)
    assert scanned() == [("a", D0 + 900, 1.0), ("a", D0 + DAY + 900, 3.0)]
    assert store.readings_scan().collect().columns == list(store.READINGS_SCHEMA)


def test_a_compaction_interrupted_after_the_rename_loses_and_doubles_nothing(
    store_dir: Path,
) -> None:
    store.readings_append(frame([("a", D0 + 900, 2.0), ("a", D0 + 1800, 3.0)]), batch_id=1)
    part = store.day_files(dt.date(2024, 5, 1))[0]
    saved = part.read_bytes()
    store.readings_compact("2024-05-01")
    # As if the process died before deleting the merged part.
    part.write_bytes(saved)
    assert scanned() == [("a", D0 + 900, 2.0), ("a", D0 + 1800, 3.0)]
    store.readings_compact("2024-05-01")
    assert [p.name for p in store.day_files(dt.date(2024, 5, 1))] == ["compact.parquet"]
    assert scanned() == [("a", D0 + 900, 2.0), ("a", D0 + 1800, 3.0)]


def test_a_failed_write_leaves_no_file(store_dir: Path) -> None:
    target = store_dir / "readings" / "day=2024-05-01" / "1-0.parquet"
    bad = pl.DataFrame({"x": [object()]}, schema={"x": pl.Object})
    with pytest.raises(Exception):  # noqa: B017 - Polars cannot write Object columns
        store.write_atomic(bad, target)
    assert list(target.parent.iterdir()) == []


def test_temporary_leftovers_are_ignored_and_cleaned(store_dir: Path) -> None:
    store.readings_append(frame([("a", D0 + 900, 2.0)]), batch_id=1)
    folder = store.day_dir(dt.date(2024, 5, 1))
    leftover = folder / ".1-1.parquet.deadbeef.tmp"
    leftover.write_bytes(b"PAR1 half a file")
    assert scanned() == [("a", D0 + 900, 2.0)]
    old = (dt.datetime(2024, 5, 3, tzinfo=dt.UTC)).timestamp()
    os.utime(leftover, (old - 3 * DAY, old - 3 * DAY))
    done = store.retention_apply(dt.datetime(2024, 5, 3, tzinfo=dt.UTC), meters=meters())
    assert done.leftovers_removed == 1
    assert not leftover.exists()


# --------------------------------------------------------------------------- hourly


def hourly_rows(day: str) -> dict[tuple[str, int], tuple[float, int, int]]:
    got = pl.read_parquet(store.hourly_path(dt.date.fromisoformat(day)))
    return {(m, (h - D0) // 3600): (round(u, 6), n, c) for m, h, u, n, c in got.iter_rows()}


def test_hourly_usage_of_interval_meters() -> None:
    # Quarter-hourly electricity: 100 Wh per reading through the first two hours.
    store.readings_append(frame([("e", D0 + 900 * (i + 1), 100.0) for i in range(8)]), batch_id=1)
    built = store.hourly_build(
        "2024-05-01", meters=meters(("e", "electricity", "interval", 15, None))
    )
    assert (built.meters, built.hours) == (1, 2)
    assert hourly_rows("2024-05-01") == {("e", 0): (400.0, 4, 3600), ("e", 1): (400.0, 4, 3600)}


def test_hourly_turns_registers_into_usage_across_reset_and_rollover() -> None:
    # Hourly water register (L): the reading before midnight is on the day before.
    rows = [
        ("w", D0 - 3600, 9_950.0),
        ("w", D0 + 3600, 9_980.0),  # 30 L over two hours (half in the previous day)
        ("w", D0 + 2 * 3600, 20.0),  # rollover at 10,000: 40 L
        ("w", D0 + 3 * 3600, 2_020.0),  # 2000 L (a bath and the washing)
        ("w", D0 + 4 * 3600, 0.5),  # reset (meter replaced at zero): 0.5 L
        ("w", D0 + 5 * 3600, 10.5),  # 10 L
    ]
    store.readings_append(frame(rows[:3]), batch_id=1)
    store.readings_append(frame(rows[3:]), batch_id=2)
    store.hourly_build("2024-05-01", meters=meters(("w", "water", "cumulative", 60, 10_000.0)))
    got = hourly_rows("2024-05-01")
    assert got[("w", 0)] == (15.0, 1, 3600)  # half of the 30 L over (23:00, 01:00]
    assert got[("w", 1)] == (40.0, 1, 3600)
    assert got[("w", 2)] == (2000.0, 1, 3600)
    assert got[("w", 3)] == (0.5, 1, 3600)
    assert got[("w", 4)] == (10.0, 1, 3600)
    assert ("w", 5) not in got  # nothing known after the last reading: missing, not zero


def test_hourly_is_rebuilt_when_late_readings_arrive() -> None:
    m = meters(("e", "electricity", "interval", 60, None))
    store.readings_append(frame([("e", D0 + 3600, 50.0)]), batch_id=1)
    store.hourly_build("2024-05-01", meters=m)
    store.readings_append(frame([("e", D0 + 7200, 70.0), ("e", D0 + 3600, 60.0)]), batch_id=2)
    store.hourly_build("2024-05-01", meters=m)
    assert hourly_rows("2024-05-01") == {("e", 0): (60.0, 1, 3600), ("e", 1): (70.0, 1, 3600)}
    assert store.hourly_scan(meter_ids=["e"]).collect().height == 2


def test_a_partly_known_hour_says_how_much_was_covered() -> None:
    store.readings_append(frame([("e", D0 + 1800, 10.0)]), batch_id=1)
    store.hourly_build("2024-05-01", meters=meters(("e", "electricity", "interval", 15, None)))
    assert hourly_rows("2024-05-01") == {("e", 0): (10.0, 1, 900)}


# --------------------------------------------------------------------------- retention


def test_retention_keeps_hourly_aggregates_of_the_raw_days_it_deletes(
    settings: Any, store_dir: Path
) -> None:
    settings.RAW_READING_DAYS = 120
    settings.HOURLY_READING_DAYS = 400
    m = meters(("e", "electricity", "interval", 60, None))
    now = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)
    old_day = D0 - 130 * DAY
    store.readings_append(frame([("e", old_day + 3600, 5.0)]), batch_id=1)
    store.readings_append(frame([("e", D0 - 10 * DAY + 3600, 6.0)]), batch_id=2)
    ancient = store.hourly_path(dt.date(2023, 1, 1))
    store.write_atomic(pl.DataFrame(schema=store.HOURLY_SCHEMA), ancient)
    q = store.quarantine_path("p", 5)
    store.write_atomic(pl.DataFrame(schema=store.QUARANTINE_SCHEMA), q)
    os.utime(q, (old_day, old_day))

    done = store.retention_apply(now, meters=m)
    assert done.raw_days_deleted == [store.day_of(old_day)]
    assert done.hourly_built == [store.day_of(old_day)]  # built before deleting
    assert done.hourly_days_deleted == [dt.date(2023, 1, 1)]
    assert done.quarantine_files_deleted == 1
    assert not ancient.exists() and not ancient.parent.exists()
    assert store.stored_days() == [dt.date(2024, 4, 21)]
    kept = store.hourly_scan().collect()
    assert kept.rows() == [("e", old_day, 5.0, 1, 3600)]
    # Nothing more to do the next time.
    again = store.retention_apply(now, meters=m)
    assert again.raw_days_deleted == [] and again.hourly_days_deleted == []


def test_retention_rebuilds_an_hourly_file_older_than_late_raw_files(settings: Any) -> None:
    settings.RAW_READING_DAYS = 120
    m = meters(("e", "electricity", "interval", 60, None))
    old_day = D0 - 130 * DAY
    store.readings_append(frame([("e", old_day + 3600, 5.0)]), batch_id=1)
    store.hourly_build(store.day_of(old_day), meters=m)
    hourly = store.hourly_path(store.day_of(old_day))
    os.utime(hourly, (old_day, old_day))
    store.readings_append(frame([("e", old_day + 7200, 7.0)]), batch_id=2)
    done = store.retention_apply(dt.datetime(2024, 5, 1, tzinfo=dt.UTC), meters=m)
    assert done.hourly_built == [store.day_of(old_day)]
    assert store.hourly_scan().collect()["usage"].to_list() == [5.0, 7.0]
