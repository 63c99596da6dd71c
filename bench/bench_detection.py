"""A Beijing-scale day through the detection rules, against a raw DuckDB aggregate.

Generates N meters (default 1,000,000: 40% electricity interval registers in Wh, 40% water and
20% gas cumulative registers in litres) with 96 quarter-hour readings each (plus the previous
hour's four), shaped like the real data (quiet nights, bursts of use, 0.2% of meters going
silent, lost readings, a few register resets and readings delivered twice), written to one
Parquet file sorted by meter and time. Then, in one run, on the same file:

1. the reference, DuckDB: ``SELECT meter_id, max(ts) FROM read_parquet(...) GROUP BY
   meter_id`` (the raw aggregate the silence rule is compared with; result fetched as Arrow),
   and 2. the plain silence rule through the engine at one tick (``source.run_source``: read,
   map meter ids, the rule, the full engine for meters whose readings need normalising),
   alternated ``--reps`` times; the best of each and their ratio are printed (the issue asks
   for at most 5);
3. every rule, the whole day replayed at 15-minute ticks (96 ticks), reading the file included
   (``source.run_source``), with stored profiles: a live system learns the profiles nightly,
   before the day; learning is not in this figure (the evaluation times it on real data).

Times are wall-clock on a shared machine: the load average is printed beside them. Nothing is
asserted. ``--in-memory`` also times ``read_readings`` + ``engine.run`` (the CLI's path).

Usage: ``.venv/bin/python bench/bench_detection.py [-n 1000000] [--dir /tmp/tanfang-bench]
[--reps 3] [--in-memory]``
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import duckdb
import polars as pl

from tanfang.monitoring.detection import engine, source
from tanfang.monitoring.detection.config import RuleBook
from tanfang.monitoring.detection.profile import Profile
from tanfang.monitoring.detection.tables import MeterTable, read_meters, read_readings

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
        # A few registers reset to zero during the day (a replaced or restarted meter).
        reset = (rng.random(m) < 0.0005) & (u != 0)
        at = rng.integers(10, SLOTS, m)
        after = np.arange(SLOTS)[None, :] >= at[:, None]
        cumulative = np.where(
            reset[:, None] & after,
            cumulative - np.take_along_axis(cumulative, at[:, None] - 1, axis=1),
            cumulative,
        )
        value = np.where(u[:, None] == 0, per_slot, cumulative)
        # The day's 96 readings plus the previous day's last hour (history the live system had).
        ts = DAY0 + (np.arange(SLOTS, dtype=np.int64) - 3) * STEP
        keep = np.ones((m, SLOTS), dtype=bool)
        keep[rng.random(m) < 0.002, 40:] = False  # silent meters
        keep &= rng.random((m, SLOTS)) > 0.001  # lost readings
        ids = np.repeat(np.arange(lo, hi, dtype=np.int64) + 10_000_000, SLOTS).reshape(m, SLOTS)
        # A few readings delivered twice (the store would collapse them; the engine must).
        times = np.where(keep & (rng.random((m, SLOTS)) < 0.00005), 2, keep.astype(np.int64))
        table = pa.table(
            {
                "meter_id": np.repeat(ids.ravel(), times.ravel()),
                "ts": np.repeat(np.broadcast_to(ts, (m, SLOTS)).ravel(), times.ravel()),
                "value": np.repeat(value.ravel(), times.ravel()),
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


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} cores)"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/tanfang-bench"))
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--reps", type=int, default=3, help="DuckDB / silence repetitions")
    parser.add_argument("--in-memory", action="store_true", help="also read_readings + run")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    batch = f"{engine.THREADS} threads, {engine.BATCH_METERS:,} meters a batch"
    print(f"start: {load()}; engine: {batch}")
    t = time.perf_counter()
    path, meters = generate(args.n, args.dir, args.seed)
    rows = pl.scan_parquet(path).select(pl.len()).collect().item()
    print(f"generated {args.n:,} meters, {rows:,} readings in {time.perf_counter() - t:.1f} s")
    now = DAY0 + 86400
    profiles = stored_profiles(meters)

    con = duckdb.connect()
    query = f"SELECT meter_id, max(ts) FROM read_parquet('{path}') GROUP BY meter_id"
    silence_only = RuleBook(
        {"rules": {name: {"enabled": name == "silence"} for name in RuleBook().raw["rules"]}}
    )
    duck: list[float] = []
    silence: list[float] = []
    for _ in range(max(1, args.reps)):
        t = time.perf_counter()
        agg = con.sql(query).to_arrow_table()
        duck.append(time.perf_counter() - t)
        assert agg.num_rows > 0
        del agg
        gc.collect()
        t = time.perf_counter()
        res = source.run_source(
            meters, path, silence_only, np.array([now]), lag_s=3600, profiles=profiles
        )
        silence.append(time.perf_counter() - t)
        gc.collect()
    runs = ", ".join(f"{d:.2f}" for d in duck)
    print(f"DuckDB raw aggregate (max ts per meter): best {min(duck):.2f} s (runs {runs})")
    runs = ", ".join(f"{s:.2f}" for s in silence)
    print(
        f"silence rule through the engine, one tick: best {min(silence):.2f} s (runs {runs}); "
        f"{len(res.alerts):,} silent meters, set aside {res.quarantined}"
    )
    pairs = statistics.median(s / d for s, d in zip(silence, duck, strict=True))
    print(
        f"ratio silence / DuckDB: {min(silence) / min(duck):.2f} best to best, {pairs:.2f} "
        f"median of the alternated pairs (target <= 5); {load()}"
    )

    ticks = engine.ticks_between(DAY0 + STEP, now, STEP)
    t = time.perf_counter()
    res = source.run_source(meters, path, RuleBook(), ticks, lag_s=3600, profiles=profiles)
    day = time.perf_counter() - t
    kinds: dict[str, int] = {}
    for a in res.alerts:
        kinds[a.kind] = kinds.get(a.kind, 0) + 1
    print(
        f"all rules, one day at 15-minute ticks ({len(ticks)} ticks), reading the file "
        f"included, stored profiles: {day:.2f} s (target < 60 s); alerts {kinds}; "
        f"set aside {res.quarantined}; register events {res.info}; {load()}"
    )
    if args.in_memory:
        gc.collect()
        t = time.perf_counter()
        readings = read_readings(path, meters)
        read_s = time.perf_counter() - t
        res = engine.run(meters, readings, RuleBook(), ticks, lag_s=3600, profiles=profiles)
        total = time.perf_counter() - t
        print(
            f"in memory (read_readings + run): {total:.2f} s, of which reading {read_s:.2f} s; "
            f"{len(res.alerts):,} alerts; {load()}"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(f"peak memory {peak:.1f} GB; end: {load()}")


if __name__ == "__main__":
    main()
