"""The engine's fast paths give the full engine's alerts: the silence aggregate, streaming a
file in batches of meters, batches and threads, reading Parquet row group by row group."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tanfang.monitoring.detection import engine, source, tables
from tanfang.monitoring.detection.config import RuleBook
from tanfang.monitoring.detection.profile import Profile
from tanfang.monitoring.detection.tables import (
    MeterTable,
    _read_frame,
    read_readings,
    readings_from_frame,
)

DAY0 = 1_717_171_200  # 2024-06-01T00:00+08:00
STEP = 900
NOW = DAY0 + 86400
SILENCE = RuleBook(
    {"rules": {name: {"enabled": name == "silence"} for name in RuleBook().raw["rules"]}}
)
TICKS = engine.ticks_between(DAY0 + STEP, NOW, STEP)


def meter_table(n: int) -> MeterTable:
    rows = []
    for i in range(n):
        kind = i % 5
        row: dict[str, object] = {
            "meter_id": str(1000 + i),
            "elder_id": f"E{i // 2}",
            "utility": ("electricity", "electricity", "water", "water", "gas")[kind],
            "register": "interval" if kind < 2 else "cumulative",
            "unit": ("Wh", "kWh", "L", "m3", "L")[kind],
            "interval_minutes": None if i % 7 == 3 else 15,
            "status": "hospital" if i % 11 == 5 else "",
            "district": "110105" if i % 3 == 0 else "",
        }
        rows.append(row)
    return MeterTable.build(rows)


BOOK = RuleBook({"districts": {"110105": {"rules": {"silence": {"params": {"hours": 4.0}}}}}})


def readings_frame(meters: MeterTable, seed: int = 1) -> pl.DataFrame:
    """A day and an hour of quarter-hour readings with what real files have: lost readings,
    silent meters, duplicates (equal and conflicting), resets, spikes, negative and missing
    values, readings of unknown meters, a meter with no readings at all."""
    rng = np.random.default_rng(seed)
    ids, tss, values = [], [], []
    slots = np.arange(-3, 97)
    for i in range(len(meters)):
        if i == 4:
            continue  # never read
        ts = DAY0 + slots * STEP
        use = (rng.random(len(ts)) < 0.3) * rng.gamma(2.0, 8.0, len(ts))
        if meters.register[i] == "interval":
            v = 30 + 40 * rng.random(len(ts)) + use * 20
            if meters.utility[i] == "electricity" and meters.factor[i] == 1000:
                v = v / 1000
            if i % 13 == 6:
                v[rng.integers(0, len(v))] = -4.0
        else:
            v = 5000 + np.cumsum(use) / meters.factor[i]
            if i % 9 == 2:
                at = int(rng.integers(20, 90))
                v[at:] = v[at:] - v[at] + 0.5  # reset
            if i % 10 == 7:
                v[int(rng.integers(0, len(v)))] += 1e6  # spike
        if i % 17 == 8:
            v[int(rng.integers(0, len(v)))] = np.nan
        keep = rng.random(len(ts)) > 0.03
        if i % 12 == 1:
            keep &= slots < 40  # falls silent
        ts, v = ts[keep], v[keep]
        if i % 8 == 3 and len(ts) > 5:
            j = int(rng.integers(0, len(ts)))
            ts, v = np.insert(ts, j, ts[j]), np.insert(v, j, v[j] + (i % 16 == 3))
        ids.append(np.full(len(ts), 1000 + i, dtype=np.int64))
        tss.append(ts)
        values.append(v)
    ids.append(np.array([42, 42], dtype=np.int64))  # not in the table
    tss.append(np.array([DAY0, DAY0 + STEP]))
    values.append(np.array([1.0, 2.0]))
    return pl.DataFrame(
        {
            "meter_id": np.concatenate(ids),
            "ts": np.concatenate(tss).astype(np.int64),
            "value": np.concatenate(values),
        }
    )


def profiles(meters: MeterTable) -> dict[str, Profile]:
    out = {}
    for utility, act in (("electricity", 120.0), ("water", 1.0), ("gas", 5.0)):
        n = sum(1 for u in meters.utility if u == utility)
        hours = np.tile(np.concatenate([np.full(7, 9.0), np.full(17, 2.0)]), (n, 1))
        out[utility] = Profile.given(
            day0=(DAY0 + 8 * 3600) // 86400,
            act_thr=np.full(n, act),
            inactivity_hours=hours,
            low_cum=np.tile(np.linspace(5, 200, 24), (n, 1)),
            spell_hours=hours,
        )
    return out


def digest(result: engine.Result, kinds: tuple[str, ...] | None = None) -> tuple:
    alerts = [
        (a.meter, a.rule, a.started_at, a.detected_at, a.resolved_at, json.dumps(a.evidence))
        for a in result.alerts
        if kinds is None or a.kind in kinds
    ]
    return alerts, dict(sorted(result.quarantined.items())), dict(sorted(result.info.items()))


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[MeterTable, dict[str, Path]]:
    folder = tmp_path_factory.mktemp("readings")
    meters = meter_table(90)
    frame = readings_frame(meters)
    files = {}
    frame.write_parquet(folder / "sorted.parquet", row_group_size=700)
    files["sorted"] = folder / "sorted.parquet"
    frame.with_columns(pl.col("meter_id").cast(pl.String)).write_parquet(
        folder / "text-ids.parquet", row_group_size=500
    )
    files["text ids"] = folder / "text-ids.parquet"
    frame.sample(fraction=1.0, shuffle=True, seed=2).write_parquet(
        folder / "shuffled.parquet", row_group_size=900
    )
    files["shuffled"] = folder / "shuffled.parquet"
    days = folder / "days"
    days.mkdir()
    half = DAY0 + 43200
    frame.filter(pl.col("ts") <= half).write_parquet(days / "a.parquet", row_group_size=600)
    frame.filter(pl.col("ts") > half).write_parquet(days / "b.parquet", row_group_size=600)
    files["two files"] = days
    return meters, files


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tables, "BATCH_ROWS", 700)  # a meter's readings span slices
    monkeypatch.setattr(engine, "BATCH_METERS", 7)
    monkeypatch.setattr(source, "STREAM_METERS", 11)


def test_slices_read_as_the_whole_frame(data, small_batches) -> None:
    meters, files = data
    for path in files.values():
        fast = read_readings(path, meters)
        files_list = sorted(Path(path).rglob("*.parquet")) if Path(path).is_dir() else [path]
        slow = readings_from_frame(_read_frame(files_list), meters)
        assert fast.rejected == slow.rejected and fast.rejected["unknown_meter"] == 2
        assert np.array_equal(fast.meter, slow.meter)
        assert np.array_equal(fast.ts, slow.ts)
        assert np.array_equal(fast.value, slow.value)


@pytest.mark.parametrize("ticks", [[NOW], [NOW - 7 * 3600, NOW - 3600, NOW]])
@pytest.mark.parametrize("cutoff", [None, NOW - 4 * 3600])
def test_silence_aggregate_gives_the_full_engines_alerts(data, small_batches, ticks, cutoff):
    meters, files = data
    ticks = np.array(ticks, dtype=np.int64)
    given = profiles(meters)
    for name, path in files.items():
        readings = read_readings(path, meters)
        full = engine.run(
            meters, readings, BOOK, ticks, lag_s=3600, future_cutoff=cutoff, profiles=given
        )
        book = RuleBook(merge_silence_only(BOOK))
        plan = engine._Plan(meters, book, ticks, 3600, STEP, given)
        assert source._silence_only(plan)
        scanned = source._silence_scan(plan, tables.reading_files(path), cutoff)
        assert scanned is not None
        scanned.alerts.sort(key=lambda a: (a.detected_at, a.meter, a.rule))
        assert digest(scanned)[0] == digest(full, ("data_silence",))[0], name
        alone = engine.run(
            meters, readings, book, ticks, lag_s=3600, future_cutoff=cutoff, profiles=given
        )
        assert digest(scanned) == digest(alone), name
        streamed = source.run_source(
            meters, path, book, ticks, lag_s=3600, future_cutoff=cutoff, profiles=given
        )
        assert digest(streamed) == digest(alone), name
        silent = {a.meter for a in alone.alerts}
        assert 4 in silent and 1 in silent  # never read; fell silent


def merge_silence_only(book: RuleBook) -> dict:
    raw = dict(book.raw)
    raw["rules"] = {
        name: {**spec, "enabled": name == "silence"} for name, spec in raw["rules"].items()
    }
    return raw


@pytest.mark.parametrize("with_profiles", [True, False])
def test_streamed_file_gives_the_in_memory_alerts(data, small_batches, with_profiles) -> None:
    meters, files = data
    given = profiles(meters) if with_profiles else None
    for name, path in files.items():
        expected = engine.run(
            meters, read_readings(path, meters), BOOK, TICKS, lag_s=3600, profiles=given
        )
        got = source.run_source(meters, path, BOOK, TICKS, lag_s=3600, profiles=given)
        assert digest(got) == digest(expected), name
        assert expected.alerts and expected.quarantined["duplicate"]


def test_batches_and_threads_change_nothing(data, monkeypatch: pytest.MonkeyPatch) -> None:
    meters, files = data
    readings = read_readings(files["sorted"], meters)
    given = profiles(meters)
    whole = engine.run(meters, readings, BOOK, TICKS, lag_s=3600, profiles=given)
    for batch, threads in ((5, 1), (5, 2), (32, 2)):
        monkeypatch.setattr(engine, "BATCH_METERS", batch)
        monkeypatch.setattr(engine, "THREADS", threads)
        split = engine.run(meters, readings, BOOK, TICKS, lag_s=3600, profiles=given)
        assert split.alerts and digest(split) == digest(whole)


def test_a_meter_read_again_later_is_not_streamed_as_two_meters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    meters = meter_table(3)
    ts = DAY0 + np.arange(1, 97) * STEP
    ids = [1000] * 60 + [1001] * 10 + [1000] * 36 + [1002] * 96
    frame = pl.DataFrame(
        {
            "meter_id": np.array(ids, dtype=np.int64),
            "ts": np.concatenate([ts[:60], ts[:10], ts[60:], ts]),
            "value": np.concatenate([np.full(70, 40.0), np.full(132, 60.0)]),
        }
    )
    path = tmp_path / "readings.parquet"
    frame.write_parquet(path)
    # The second slice starts with the first meter's readings, then another meter's, then
    # the first meter's again.
    monkeypatch.setattr(tables, "BATCH_ROWS", 50)
    given = profiles(meters)
    expected = engine.run(
        meters, read_readings(path, meters), BOOK, TICKS, lag_s=3600, profiles=given
    )
    got = source.run_source(meters, path, BOOK, TICKS, lag_s=3600, profiles=given)
    assert digest(got) == digest(expected)
