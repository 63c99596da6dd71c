"""The Spark engine gives the local engine's alerts (issue 4, "One detection core, two engines").

Both engines run on the same files in Spark local mode (one session for the module) and must
agree on every field of every alert, in the ``--now`` and ``--replay`` modes, through the API
and through ``tanfang detect``. The data are real (``../shared/data``, its README): six DAIAD
households (water, cumulative registers, hourly), the Liu house (electricity, half-hourly by
circuit) and the AMPds furnace (gas, one-minute register), the last two shifted by whole weeks
into the DAIAD spring of 2016, plus two devices. Incidents are injected as evaluation.py does
(and a burner left on, a meter that stops, a household in a district without routine rules),
so that alerts of every kind exist and the comparison cannot pass on empty sets. The readings
are a partner's CSV (ISO 8601 with offsets, a few unusable rows) next to the reading store's
``readings/day=YYYY-MM-DD/*.parquet`` (epoch seconds).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import shutil
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from django.core.management import call_command

from tanfang.monitoring.detection import datasets, engine, evaluation
from tanfang.monitoring.detection.config import RuleBook
from tanfang.monitoring.detection.tables import MeterTable, read_meters, read_readings

pytest.importorskip("pyspark")
pytest.importorskip("pandas")

from tanfang.monitoring.detection import spark_engine

pytestmark = [
    pytest.mark.spark,
    pytest.mark.skipif(shutil.which("java") is None, reason="the Spark engine needs Java"),
    pytest.mark.skipif(not datasets.default_data_dir().is_dir(), reason="needs ../shared/data"),
]

MADRID = zoneinfo.ZoneInfo("Europe/Madrid")
NOW = int(dt.datetime(2016, 5, 10, 12, 0, tzinfo=MADRID).timestamp())
START = int(dt.datetime(2016, 3, 1, tzinfo=MADRID).timestamp())
REPLAY_FROM = NOW - 10 * 86400
DAY, HOUR = 86400, 3600
FT3 = 28.316846592  # the AMPds gas counter moves in steps of one cubic foot
NO_ROUTINE_DISTRICT = "110105"  # routine rules switched off: the 24-hour backstop speaks
DISTRICT = "110101001001"
# DAIAD households (rows of datasets.load_daiad) without reporting gaps over 5.3 h in spring.
HOMES = {6: "a", 11: "b", 41: "c", 44: "d", 65: "e", 79: "f"}
ALL_KINDS = {"missed_routine", "inactivity", "data_silence", "continuous_use", "device"}


@dataclass
class Files:
    meters: Path
    readings: Path
    rules: Path


def _iso(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, MADRID).isoformat()


def _active_onset(ts: np.ndarray, reg: np.ndarray, after: int) -> int:
    """The first daytime reading after ``after`` that shows use (evaluation.py's condition)."""
    for i in range(1, len(ts)):
        hour = dt.datetime.fromtimestamp(int(ts[i]), MADRID).hour
        if ts[i] >= after and 9 <= hour < 18 and reg[i] - reg[i - 1] >= 2:
            return int(ts[i])
    raise AssertionError("no active moment")


def _flat_from(ts: np.ndarray, reg: np.ndarray, onset: int) -> np.ndarray:
    """The home goes silent at ``onset`` and stays so: the register stops, readings go on."""
    out = reg.copy()
    i = int(np.searchsorted(ts, onset, side="right"))
    out[i:] = reg[i - 1]
    return out


def _meter(meter_id: str, elder_id: str, utility: str, **extra: str) -> dict[str, str]:
    row = {
        "meter_id": meter_id,
        "elder_id": elder_id,
        "utility": utility,
        "register": "cumulative",
        "unit": "L",
        "interval_minutes": "",
        "tz": "Europe/Madrid",
        "district": DISTRICT,
        "status": "",
        "device_kind": "",
    }
    row.update(extra)
    return row


def build(root: Path) -> Files:
    data_dir = datasets.default_data_dir()
    meters: list[dict[str, str]] = []
    csv_rows: list[tuple[str, str, str]] = []
    store: list[tuple[str, np.ndarray, np.ndarray]] = []

    water = datasets.load_daiad(data_dir)
    for row, tag in HOMES.items():
        sel = water.readings.meter == row
        sel &= (water.readings.ts >= START) & (water.readings.ts <= NOW + DAY)
        ts, reg = water.readings.ts[sel], water.readings.value[sel]
        meter = _meter(f"W-{tag}", f"E-{tag}", "water")
        if tag == "a":  # an incident a week ago, 24 h (evaluation.inject_water)
            reg = evaluation.inject_water(ts, reg, _active_onset(ts, reg, NOW - 7 * DAY))
        elif tag == "b":  # silent since yesterday afternoon
            reg = _flat_from(ts, reg, _active_onset(ts, reg, NOW - 20 * HOUR))
        elif tag == "c":  # silent for two days, in a district without routine rules
            meter["district"] = NO_ROUTINE_DISTRICT + "002003"
            reg = _flat_from(ts, reg, _active_onset(ts, reg, NOW - 44 * HOUR))
        elif tag == "d":  # the meter stops reporting
            keep = ts <= NOW - 12 * HOUR
            ts, reg = ts[keep], reg[keep]
        elif tag == "e":  # reported in cubic metres; an incident four days ago
            reg = evaluation.inject_water(ts, reg, _active_onset(ts, reg, NOW - 4 * DAY))
            meter["unit"], reg = "m3", reg / 1000.0
        elif tag == "f":  # away: an incident, but no person alert
            meter["status"] = "away"
            reg = evaluation.inject_water(ts, reg, _active_onset(ts, reg, NOW - 3 * DAY))
        meters.append(meter)
        text = [repr(float(v)) if meter["unit"] == "m3" else f"{v:.0f}" for v in reg]
        csv_rows += [(meter["meter_id"], _iso(int(t)), v) for t, v in zip(ts, text, strict=True)]
    meters.append(_meter("W-none", "E-g", "water"))  # installed, never reported

    liu = datasets.load_liu(data_dir)
    shift = 105 * 7 * DAY  # 2014 -> 2016, whole weeks
    shifted = liu.ts + shift
    others = liu.total - liu.circuits[evaluation.FRIDGE]
    base = sum(np.quantile(c, 0.05) for k, c in liu.circuits.items() if k != evaluation.FRIDGE)
    hour = (shifted // HOUR) % 24
    onset_i = next(
        i
        for i in np.flatnonzero((shifted >= NOW - 5 * DAY) & (hour >= 9)).tolist()
        if others[i] - base > 0.03
    )
    total = evaluation.inject_electricity(liu, int(liu.ts[onset_i]))
    keep = (shifted >= START) & (shifted <= NOW + DAY)
    meters.append(
        _meter("E-liu", "E-h", "electricity", register="interval", unit="kWh", tz="UTC")
        | {"interval_minutes": "30"}
    )
    store.append(("E-liu", shifted[keep], total[keep]))

    gas_ts, counter = datasets.load_ampds(data_dir, "NaturalGas_FRG")
    gas_ts = gas_ts + 178 * 7 * DAY  # 2012 -> 2016, whole weeks
    keep = (gas_ts >= NOW - 40 * DAY) & (gas_ts <= NOW + DAY)
    gas_ts, counter = gas_ts[keep], counter[keep].astype(np.float64)
    for begin, end in ((NOW - 3 * DAY, NOW - 3 * DAY + 5 * HOUR), (NOW - 5 * HOUR, NOW + DAY)):
        # A burner left on: one more cubic foot every ten minutes.
        on = (gas_ts > begin) & (gas_ts <= end) & (((gas_ts - begin) // 60) % 10 == 0)
        counter = counter + np.cumsum(on) * FT3
    meters.append(
        _meter("G-ampds", "E-a", "gas", tz="America/Vancouver") | {"interval_minutes": "1"}
    )
    store.append(("G-ampds", gas_ts, counter))

    device = {"register": "", "unit": ""}
    meters.append(_meter("D-sos", "E-b", "device", device_kind="sos", **device))
    meters.append(_meter("D-fall", "E-c", "device", device_kind="fall", **device))
    store.append(("D-sos", np.array([NOW - 2 * HOUR]), np.array([1.0])))
    store.append(("D-fall", np.array([NOW - 4 * DAY, NOW - 4 * DAY + 1800]), np.array([1.0, 0.0])))

    folder = root / "readings"
    folder.mkdir(parents=True)
    unusable = [
        ("W-zz", _iso(NOW - DAY), "5"),  # unknown meter
        ("W-a", "yesterday", "5"),  # bad timestamp
        ("W-a", _iso(NOW - 50 * HOUR), "n/a"),  # bad value
        ("W-b", _iso(NOW - 30 * HOUR)[:19], "1"),  # no offset: unusable
        ("W-e", _iso(NOW + DAY), "99.0"),  # from the future
    ]
    rows = csv_rows[:5] + unusable + csv_rows[5:]
    pl.DataFrame(rows, schema=["meter_id", "ts", "value"], orient="row").write_csv(
        folder / "partner-water.csv"
    )
    frame = pl.concat(
        [
            pl.DataFrame(
                {"meter_id": m, "ts": np.asarray(t, np.int64), "value": np.asarray(v, np.float64)}
            )
            for m, t, v in store
        ]
    ).with_columns(
        pl.lit(1, pl.Int64).alias("batch"),
        pl.from_epoch("ts", "s").dt.strftime("%Y-%m-%d").alias("day"),
    )
    for (day,), part in frame.group_by("day"):
        target = folder / "store" / "readings" / f"day={day}"
        target.mkdir(parents=True)
        part.drop("day").sort("meter_id", "ts").write_parquet(target / "1-0.parquet")
    pl.DataFrame(meters).write_csv(root / "meters.csv")
    rules = {"districts": {NO_ROUTINE_DISTRICT: {"rules": {"routine_missed": {"enabled": False}}}}}
    (root / "rules.json").write_text(json.dumps(rules))
    return Files(root / "meters.csv", folder, root / "rules.json")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    return build(tmp_path_factory.mktemp("spark-engine"))


@pytest.fixture(scope="module")
def spark() -> Iterator[object]:
    session = spark_engine.session("local[2]")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def inputs(files: Files) -> tuple[MeterTable, RuleBook]:
    return read_meters(files.meters), RuleBook.load(files.rules)


def test_both_engines_raise_identical_alerts(spark, files: Files, inputs) -> None:
    meters, book = inputs
    local_readings = read_readings(files.readings, meters)
    spark_readings = spark_engine.read_readings(spark, files.readings, meters)

    local_now = engine.open_at(meters, local_readings, book, NOW)
    spark_now = spark_engine.open_at(spark, meters, spark_readings, book, NOW)
    ticks = engine.ticks_between(REPLAY_FROM, NOW, 900)
    local_run = engine.run(meters, local_readings, book, ticks, future_cutoff=NOW + 300)
    spark_run = spark_engine.run(
        spark, meters, spark_readings, book, ticks, future_cutoff=NOW + 300
    )

    # Not vacuous: every kind of alert is there, open at NOW and over the replay.
    kinds_now = {a.kind for a in local_now.alerts}
    kinds_run = {a.kind for a in local_run.alerts}
    assert kinds_now == ALL_KINDS, kinds_now
    assert kinds_run == ALL_KINDS, kinds_run
    assert any(a.resolved_at is not None for a in local_run.alerts)
    ids = {meters.meter_id[a.meter] for a in local_run.alerts}
    assert {"W-a", "W-b", "W-c", "W-d", "W-e", "W-none", "E-liu", "G-ampds", "D-sos"} <= ids
    assert "W-f" not in ids  # away
    assert local_now.quarantined == {
        "unknown_meter": 1,
        "bad_timestamp": 2,
        "bad_value": 1,
        "future_timestamp": local_now.quarantined["future_timestamp"],
    }

    # Identical: every field of every alert, in the same order, and the same counts.
    assert spark_now.alerts == local_now.alerts
    assert spark_run.alerts == local_run.alerts
    for spark_result, local_result in ((spark_now, local_now), (spark_run, local_run)):
        assert spark_result.quarantined == local_result.quarantined
        assert spark_result.info == local_result.info


def _detect(files: Files, *args: str) -> tuple[list[str], dict]:
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "detect",
        "--meters",
        str(files.meters),
        "--readings",
        str(files.readings),
        "--rules",
        str(files.rules),
        *args,
        stdout=out,
        stderr=err,
    )
    return out.getvalue().splitlines(), json.loads(err.getvalue())


@pytest.mark.parametrize(
    "mode", [["--now", _iso(NOW)], ["--replay", _iso(REPLAY_FROM), _iso(NOW), "--tick", "30m"]]
)
def test_detect_command_prints_the_same_lines_on_both_engines(
    spark, files: Files, mode: list[str]
) -> None:
    local_lines, local_err = _detect(files, *mode, "--engine", "local")
    spark_lines, spark_err = _detect(files, *mode, "--engine", "spark")
    assert {json.loads(line)["kind"] for line in local_lines} == ALL_KINDS
    assert spark_lines == local_lines
    assert spark_err == local_err
    # The command used the module's session and left it running.
    assert spark.sparkContext._jsc is not None  # type: ignore[attr-defined]


def test_parquet_types_and_integer_ids_are_read_as_the_local_engine_reads_them(
    spark, tmp_path: Path
) -> None:
    # The real excerpts of tests/data/detection, rewritten with other column types: integer
    # meter ids matching digit-only ids ("0042" is 42), text or fractional timestamps, text
    # or integer values, an unknown meter, a missing time, a meter that never reported.
    excerpts = Path(__file__).parent / "data" / "detection" / "readings"
    water = pl.read_csv(excerpts / "water-w1.csv", schema_overrides={"value": pl.String})
    gas = pl.read_csv(excerpts / "gas-g1.csv")
    pl.concat(
        [
            water.select(pl.lit(42, pl.Int64).alias("meter_id"), "ts", "value"),
            pl.DataFrame({"meter_id": [5, 42], "ts": [water["ts"][0], None], "value": ["1", "2"]}),
        ]
    ).write_parquet(tmp_path / "water.parquet")
    gas.select(
        pl.lit(7, pl.Int64).alias("meter_id"),
        (pl.col("ts") + 0.5).alias("ts"),
        pl.col("value").round(0).cast(pl.Int32).alias("value"),
    ).write_parquet(tmp_path / "gas.parquet")
    meters = MeterTable.build(
        [
            {"meter_id": "0042", "elder_id": "E1", "utility": "water", "register": "cumulative",
             "unit": "L", "tz": "Europe/Madrid"},
            {"meter_id": "7", "elder_id": "E1", "utility": "gas", "register": "cumulative",
             "unit": "L", "tz": "America/Vancouver", "interval_minutes": 1},
            {"meter_id": "9", "elder_id": "E2", "utility": "electricity", "register": "interval",
             "unit": "Wh", "tz": "Asia/Shanghai", "interval_minutes": 15},
        ]
    )  # fmt: skip
    book = RuleBook()
    now = int(dt.datetime(2016, 5, 5, 12, tzinfo=MADRID).timestamp())
    local = engine.open_at(meters, read_readings(tmp_path, meters), book, now, lag_s=0)
    on_spark = spark_engine.open_at(
        spark, meters, spark_engine.read_readings(spark, tmp_path, meters), book, now, lag_s=0
    )
    assert {(meters.meter_id[a.meter], a.kind) for a in local.alerts} >= {
        ("0042", "data_silence"),
        ("7", "data_silence"),
        ("9", "data_silence"),
    }
    assert local.quarantined["unknown_meter"] == 1
    assert local.quarantined["bad_timestamp"] == 1
    assert on_spark.alerts == local.alerts
    assert on_spark.quarantined == local.quarantined
    assert on_spark.info == local.info
