"""File ingestion of meter readings: Parquet and CSV, validated and stored, against a bare read.

Target (issue 4, "Figures to reach"): at least 1,000,000 readings per second from Parquet and
300,000 from CSV, on this machine, validated and stored.

Steps, in one process and one run:
1. A temporary SQLite database (migrated) with one water-and-power partner and N meters
   (default 100,000: 40% electricity interval registers in kWh, 40% water and 20% gas
   cumulative registers in m³), registered in bulk.
2. One file of N x 100 quarter-hour readings (default 10 M), written twice: Parquet (``ts``
   epoch seconds, ``value`` float) and CSV (``ts`` ISO 8601 with +08:00, as partners' back
   ends write it). Shaped like a day of real deliveries: sorted by meter and time except
   0.5% late readings moved to the end, 0.1% duplicates, and 0.02% each of unknown meters,
   unparseable values and timestamps without an offset.
3. Timed, each format in its own empty store:
   - the reference: a bare Polars read of the same file (``pl.read_parquet``;
     ``pl.read_csv(infer_schema=False)``: every column as text, because a typed read stops
     at the first bad value, which real files have);
   - the partner's meter lookup (``partner_meters``: the ORM query and the Polars frame),
     reported separately; it is loaded once per file and a caller may keep it;
   - the ingestion (``files.ingest_file`` with that lookup, as ``tanfang readings import``
     runs it): content hash, read, parse, check every reading, units, in-batch duplicates,
     the good readings written to the store (atomically, fsynced), the set-aside ones to the
     quarantine file and the first 1000 to the database, the batch row;
   - the same file again (one hash and one query: nothing stored).
   Then, once, the store's own upkeep on that day: compaction and the hourly aggregates.
4. Print seconds, readings per second with and without the lookup, the ratio to the bare
   read, the CPU seconds, peak memory and the load average (the machine is shared: wall
   times vary with the other jobs). Times are never asserted.

Usage: ``.venv/bin/python bench/bench_ingest.py [--meters 100000] [--per-meter 100]
[--dir /tmp/tanfang-bench-ingest] [--keep] [--no-upkeep]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DAY0 = 1_714_492_800  # 2024-04-30T16:00Z = 2024-05-01T00:00+08:00
STEP = 900


def _setup(folder: Path) -> None:
    os.environ.setdefault("TANFANG_SECRET_KEY", "bench-secret")
    os.environ.setdefault("TANFANG_FIELD_KEYS", "ZmDfcTF7_60GrrY167zsiPd67pEvs0aGOv2oasOM1Pg=")
    os.environ.setdefault("TANFANG_BLIND_INDEX_KEY", "bench-blind-index-key")
    os.environ["TANFANG_DATA_DIR"] = str(folder / "data")
    os.environ["DATABASE_URL"] = f"sqlite:///{folder / 'bench.sqlite3'}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "tanfang.settings"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def register(n: int) -> Any:
    from tanfang.monitoring.models import DataPartner, Meter

    partner = DataPartner.objects.create(code="bench", name="Bench utility", kind="other")
    kinds = [("electricity", "interval", "kWh"), ("water", "cumulative", "m3")]
    kinds += [("water", "cumulative", "m3"), ("gas", "cumulative", "m3")]
    rows = []
    for i in range(n):
        utility, register_, unit = kinds[0] if i % 5 < 2 else kinds[1 + (i % 5 == 4) * 2]
        rows.append(
            Meter(
                meter_id=f"M{i:08d}",
                partner=partner,
                utility=utility,
                register=register_,
                unit=unit,
                interval_minutes=15 if register_ == "interval" else 60,
                rollover=99_999.0 if register_ == "cumulative" else None,
            )
        )
    Meter.objects.bulk_create(rows, batch_size=5000)
    return partner


def generate(n: int, per: int, folder: Path, seed: int = 4) -> tuple[Path, Path, int]:
    import polars as pl

    rng = np.random.default_rng(seed)
    meter = np.repeat(np.arange(n, dtype=np.int64), per)
    slot = np.tile(np.arange(per, dtype=np.int64), n)
    ts = DAY0 + (slot + 1) * STEP
    interval = (np.arange(n) % 5 < 2)[meter]
    use = rng.gamma(0.4, 80.0, size=n * per)  # Wh per quarter-hour, or L
    value = np.where(interval, use / 1000.0, 0.0)  # kWh
    register = np.cumsum(np.where(interval, 0.0, use / 1000.0).reshape(n, per), axis=1)
    register += rng.uniform(10, 9000, size=(n, 1))
    value = np.where(interval, value, register.reshape(-1)).round(3)
    ids = pl.Series([f"M{i:08d}" for i in range(n)]).gather(meter)
    frame = pl.DataFrame({"meter_id": ids, "ts": ts, "value": value})
    total = frame.height
    # Duplicates (0.1%) and late readings (0.5%, moved to the end).
    dup = rng.choice(total, size=total // 1000, replace=False)
    late = rng.random(total) < 0.005
    frame = pl.concat([frame.filter(pl.Series(~late)), frame.filter(pl.Series(late)), frame[dup]])
    bad = rng.choice(frame.height, size=3 * (total // 5000), replace=False)
    unknown, nan_value, naive = np.array_split(bad, 3)
    frame = frame.with_columns(
        meter_id=pl.when(pl.int_range(pl.len()).is_in(unknown.tolist()))
        .then(pl.lit("X-unknown"))
        .otherwise(pl.col("meter_id"))
    )
    parquet = folder / "readings.parquet"
    frame.with_columns(
        value=pl.when(pl.int_range(pl.len()).is_in(nan_value.tolist()))
        .then(float("nan"))
        .otherwise(pl.col("value"))
    ).write_parquet(parquet)
    iso = (
        pl.from_epoch(frame["ts"], "s")
        .dt.convert_time_zone("Asia/Shanghai")
        .dt.to_string("%Y-%m-%dT%H:%M:%S%:z")
    )
    csv = folder / "readings.csv"
    index = pl.int_range(pl.len())
    frame.with_columns(
        ts=pl.when(index.is_in(naive.tolist())).then(iso.str.slice(0, 19)).otherwise(iso),
        value=pl.when(index.is_in(nan_value.tolist()))
        .then(pl.lit("n/a"))
        .otherwise(pl.col("value").cast(pl.String)),
    ).write_csv(csv)
    return parquet, csv, frame.height


def run_format(
    name: str, path: Path, partner: Any, store_dir: Path, reference: Any
) -> dict[str, Any]:
    from django.conf import settings

    from tanfang.monitoring.files import ingest_file
    from tanfang.monitoring.ingest import batch_repeated, partner_meters

    settings.MONITORING_DIR = store_dir
    start = time.perf_counter()
    bare = reference(path)
    bare_s = time.perf_counter() - start
    rows = bare.height
    del bare

    start = time.perf_counter()
    lookup = partner_meters(partner)
    lookup_s = time.perf_counter() - start

    cpu = _cpu()
    start = time.perf_counter()
    batch = ingest_file(partner, path, meters=lookup)
    ingest_s = time.perf_counter() - start
    cpu = _cpu() - cpu

    stored_bytes = sum(p.stat().st_size for p in (store_dir / "readings").rglob("*.parquet"))
    start = time.perf_counter()
    again = ingest_file(partner, path, meters=lookup)
    again_s = time.perf_counter() - start
    assert batch_repeated(again) and again.pk == batch.pk
    assert batch.rows == rows, (batch.rows, rows)
    return {
        "format": name,
        "rows": rows,
        "size_mb": path.stat().st_size / 1e6,
        "bare_s": bare_s,
        "lookup_s": lookup_s,
        "ingest_s": ingest_s,
        "cpu_s": cpu,
        "again_s": again_s,
        "stored": batch.stored,
        "store_bytes": stored_bytes,
        "duplicates": batch.duplicates,
        "quarantined": batch.quarantined,
        "reasons": batch.reasons,
    }


def upkeep(store_dir: Path) -> dict[str, float]:
    import datetime as dt

    from django.conf import settings

    from tanfang.monitoring import store

    settings.MONITORING_DIR = store_dir
    day = dt.date(2024, 5, 1)
    meters = store.meters_from_db()
    start = time.perf_counter()
    compacted = store.readings_compact(day)
    compact_s = time.perf_counter() - start
    start = time.perf_counter()
    built = store.hourly_build(day, meters=meters)
    hourly_s = time.perf_counter() - start
    return {
        "compact_s": compact_s,
        "compact_rows": compacted.rows_in,
        "hourly_s": hourly_s,
        "hourly_rows": built.hours,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--meters", type=int, default=100_000)
    parser.add_argument("--per-meter", type=int, default=100)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the files and the database")
    parser.add_argument("--no-upkeep", action="store_true", help="skip compaction and hourly")
    args = parser.parse_args()
    folder = args.dir or Path(tempfile.mkdtemp(prefix="tanfang-bench-ingest-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        start = time.perf_counter()
        _setup(folder)
        partner = register(args.meters)
        print(f"setup: migrate + {args.meters:,} meters in {time.perf_counter() - start:.1f} s")
        start = time.perf_counter()
        parquet, csv, total = generate(args.meters, args.per_meter, folder)
        print(f"files: {total:,} readings generated in {time.perf_counter() - start:.1f} s")

        import polars as pl

        results = [
            run_format("parquet", parquet, partner, folder / "store-parquet", pl.read_parquet),
            run_format(
                "csv",
                csv,
                partner,
                folder / "store-csv",
                lambda p: pl.read_csv(p, infer_schema=False),
            ),
        ]
        print()
        print(
            f"{'format':8} {'readings':>11} {'MB':>6} {'bare read':>10} {'lookup':>7} "
            f"{'ingest':>7} {'cpu':>6} {'readings/s':>11} {'incl. lookup':>12} "
            f"{'ratio':>6} {'again':>6}"
        )
        for r in results:
            rate = r["rows"] / r["ingest_s"]
            rate_all = r["rows"] / (r["ingest_s"] + r["lookup_s"])
            print(
                f"{r['format']:8} {r['rows']:>11,} {r['size_mb']:>6.0f} {r['bare_s']:>9.2f}s "
                f"{r['lookup_s']:>6.2f}s {r['ingest_s']:>6.2f}s {r['cpu_s']:>5.1f}s "
                f"{rate:>11,.0f} {rate_all:>12,.0f} {r['ingest_s'] / r['bare_s']:>6.1f} "
                f"{r['again_s']:>5.2f}s"
            )
        for r in results:
            print(
                f"{r['format']}: stored {r['stored']:,} ({r['store_bytes'] / r['stored']:.1f} "
                f"bytes each on disk), duplicates {r['duplicates']:,}, set aside "
                f"{r['quarantined']:,} {r['reasons']}"
            )
        print("targets: parquet >= 1,000,000/s, csv >= 300,000/s (ingest, lookup separate)")
        if not args.no_upkeep:
            u = upkeep(folder / "store-parquet")
            print(
                f"upkeep (parquet store, 2024-05-01 UTC): compaction {u['compact_s']:.2f} s "
                f"({u['compact_rows']:,} readings), hourly aggregates {u['hourly_s']:.2f} s "
                f"({u['hourly_rows']:,} meter-hours)"
            )
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak memory {peak:,.0f} MB; load average {os.getloadavg()[0]:.2f} (2 cores)")
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
