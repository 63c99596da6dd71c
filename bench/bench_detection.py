"""A Beijing-scale day through the detection rules, against a raw DuckDB aggregate.

Generates N meters (default 1,000,000: 40% electricity interval registers in Wh, 40% water and
20% gas cumulative registers in litres) with 96 quarter-hour readings each (plus the previous
hour's four), shaped like the
real data (quiet nights, bursts of use, a few silent meters, resets and duplicates), written to
one Parquet file sorted by meter and time. Then times, in one run:

1. DuckDB: ``SELECT meter_id, max(ts), count(*) ... GROUP BY meter_id`` over the file (the raw
   aggregate the silence rule is compared with);
2. the plain silence rule through the engine (read, map meters, normalise, rule) at one tick;
   the ratio 2/1 is printed (the issue asks for at most 5);
3. every rule, the whole day replayed at 15-minute ticks (96 ticks), with stored profiles
   (a live system learns nightly; learning is timed separately on a sample).

Usage: ``.venv/bin/python bench/bench_detection.py [-n 1000000] [--dir /tmp/tanfang-bench]``
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import duckdb
import polars as pl

from tanfang.monitoring.detection import engine
from tanfang.monitoring.detection.config import RuleBook
from tanfang.monitoring.detection.profile import Profile
from tanfang.monitoring.detection.tables import MeterTable, read_readings

DAY0 = 1_717_171_200  # 2024-05-31T16:00Z = 2024-06-01T00:00+08:00
STEP = 900
SLOTS = 100


def generate(n: int, folder: Path, seed: int) -> tuple[Path, MeterTable]:
    rng = np.random.default_rng(seed)
    utility = np.where(np.arange(n) % 5 < 2, 0, np.where(np.arange(n) % 5 < 4, 1, 2))
    hour = (np.arange(SLOTS) // 4 + 0) % 24
    awake = ((hour >= 6) & (hour < 23)).astype(np.float32)
    out = folder / f"readings-{n}.parquet"
    meters_csv = folder / f"meters-{n}.csv"
    chunk = 100_000
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        m = hi - lo
        u = utility[lo:hi]
        use = rng.random((m, SLOTS), dtype=np.float32) < (0.05 + 0.3 * awake)[None, :]
        amount = rng.gamma(2.0, 8.0, (m, SLOTS)).astype(np.float32)
        elec = 30 + 40 * rng.random((m, SLOTS), dtype=np.float32) + use * amount * 20
        water = use * amount
        gas = use * amount * 3 * (rng.random((m, 1)) < 0.5)
        per_slot = np.where(u[:, None] == 0, elec, np.where(u[:, None] == 1, water, gas))
        start_reg = rng.integers(0, 500_000, m).astype(np.float64)[:, None]
        cumulative = start_reg + np.cumsum(per_slot, axis=1)
        value = np.where(u[:, None] == 0, per_slot, cumulative)
        # The day's 96 readings plus the previous day's last hour (history the live system had).
        ts = DAY0 + (np.arange(SLOTS, dtype=np.int64) - 3) * STEP
        keep = np.ones((m, SLOTS), dtype=bool)
        keep[rng.random(m) < 0.002, 40:] = False  # silent meters
        keep &= rng.random((m, SLOTS)) > 0.001  # lost readings
        ids = np.repeat(np.arange(lo, hi, dtype=np.int64) + 10_000_000, SLOTS).reshape(m, SLOTS)
        table = pa.table(
            {
                "meter_id": ids[keep],
                "ts": np.broadcast_to(ts, (m, SLOTS))[keep],
                "value": value[keep],
            }
        )
        if writer is None:
            writer = pq.ParquetWriter(out, table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()
    names = np.array(["electricity", "water", "gas"])[utility]
    pl.DataFrame(
        {
            "meter_id": (np.arange(n) + 10_000_000).astype(str),
            "elder_id": (np.arange(n) // 2).astype(str),
            "utility": names,
            "register": np.where(utility == 0, "interval", "cumulative"),
            "unit": np.where(utility == 0, "Wh", "L"),
            "interval_minutes": np.full(n, 15),
        }
    ).write_csv(meters_csv)
    from tanfang.monitoring.detection.tables import read_meters

    return out, read_meters(meters_csv)


def stored_profiles(meters: MeterTable) -> dict[str, Profile]:
    """What a nightly job would have stored: per meter thresholds for the day."""
    day0 = (DAY0 + 8 * 3600) // 86400
    out = {}
    for utility, act in (("electricity", 120.0), ("water", 1.0), ("gas", 5.0)):
        n = sum(1 for u in meters.utility if u == utility)
        hours = np.tile(np.concatenate([np.full(7, 9.0), np.full(17, 3.0)]), (n, 1))
        out[utility] = Profile.given(
            day0=day0,
            act_thr=np.full(n, act),
            inactivity_hours=hours,
            low_cum=np.tile(np.linspace(5, 200, 24), (n, 1)),
            spell_hours=hours,
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/tanfang-bench"))
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    path, meters = generate(args.n, args.dir, args.seed)
    rows = pl.scan_parquet(path).select(pl.len()).collect().item()
    print(f"generated {args.n:,} meters, {rows:,} readings in {time.perf_counter() - t:.1f} s")
    now = DAY0 + 86400

    con = duckdb.connect()
    t = time.perf_counter()
    agg = con.execute(
        f"SELECT meter_id, max(ts), count(*) FROM read_parquet('{path}') GROUP BY meter_id"
    ).fetchall()
    duck = time.perf_counter() - t
    print(f"DuckDB raw aggregate (max ts per meter): {duck:.2f} s ({len(agg):,} meters)")
    del agg
    gc.collect()

    silence_only = RuleBook(
        {"rules": {name: {"enabled": name == "silence"} for name in RuleBook().raw["rules"]}}
    )
    t = time.perf_counter()
    readings = read_readings(path, meters)
    read_s = time.perf_counter() - t
    res = engine.run(
        meters,
        readings,
        silence_only,
        np.array([now]),
        lag_s=3600,
        profiles=stored_profiles(meters),
    )
    silence = time.perf_counter() - t
    print(
        f"silence rule through the engine: {silence:.2f} s (reading {read_s:.2f} s), "
        f"{len(res.alerts):,} silent meters; ratio to DuckDB {silence / duck:.2f} (target <= 5)"
    )
    gc.collect()

    t = time.perf_counter()
    ticks = engine.ticks_between(DAY0 + STEP, now, STEP)
    res = engine.run(
        meters, readings, RuleBook(), ticks, lag_s=3600, profiles=stored_profiles(meters)
    )
    day = time.perf_counter() - t
    kinds: dict[str, int] = {}
    for a in res.alerts:
        kinds[a.kind] = kinds.get(a.kind, 0) + 1
    print(
        f"all rules, one day at 15-minute ticks ({len(ticks)} ticks): {day:.2f} s "
        f"(+ reading {read_s:.2f} s = {day + read_s:.2f} s; target < 60 s); alerts {kinds}"
    )
    print(f"set aside: {res.quarantined}")


if __name__ == "__main__":
    main()
