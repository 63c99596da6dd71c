"""Importing a 100,000-row elders file, on SQLite and on PostgreSQL, as CSV and as xlsx.

Target (issue 2, point 8): a 100,000-row file validated and written in under 60 s on each
database, on this machine (2 cores), without holding the whole file in memory.

Steps:
1. Write a deterministic synthetic file (``tanfang.imports.synthetic``: made-up names, valid
   synthetic ID numbers, 0-3 children, assessments, contracts, willingness, first contacts)
   as CSV and as xlsx, over a generated tree of 16 districts x 10 subdistricts x 20
   communities.
2. For each database and format, in a fresh child process and a fresh database (a temporary
   SQLite file; PostgreSQL database ``tanfang_bench_import``, created and dropped here):
   migrate, build the tree, then time
   - the reference: reading every row of the file, nothing else (``Table.rows``);
   - the import: ``import_file`` as ``tanfang import elders`` runs it (validation pass, the
     rows read by worker processes, duplicate check, write pass in chunks of 1,000 through
     ``elders_upsert``, one transaction, classification, run record and audit entry);
   - the same file again (must create and update nothing).
   Peak memory is the child's maximum resident set (``getrusage``), and its growth during
   the import over what the process held before it.
3. Print seconds (wall clock, and the CPU time of the importing process — the machine is
   shared, and PostgreSQL's own work is in its server process), rows/s, the ratio of the
   import to the reference, memory, and the load average when the run ended.

Usage: ``.venv/bin/python bench/bench_import.py [--rows N] [--databases sqlite,postgres]
[--formats csv,xlsx] [--postgres-url postgres://postgres@127.0.0.1:5432]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DISTRICTS = (
    "110101",
    "110102",
    "110105",
    "110106",
    "110107",
    "110108",
    "110109",
    "110111",
    "110112",
    "110113",
    "110114",
    "110115",
    "110116",
    "110117",
    "110118",
    "110119",
)
SUBDISTRICTS = 10
COMMUNITIES = 20
PG_NAME = "tanfang_bench_import"
TARGET_SECONDS = 60.0


def community_codes() -> list[str]:
    return [
        f"{d}{s:03d}{c:03d}"
        for d in DISTRICTS
        for s in range(1, SUBDISTRICTS + 1)
        for c in range(1, COMMUNITIES + 1)
    ]


def _env(database_url: str, data_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("TANFANG_SECRET_KEY", "bench-secret")
    env.setdefault("TANFANG_FIELD_KEYS", "ZmDfcTF7_60GrrY167zsiPd67pEvs0aGOv2oasOM1Pg=")
    env.setdefault("TANFANG_BLIND_INDEX_KEY", "bench-blind-index-key")
    env["TANFANG_DATA_DIR"] = str(data_dir)
    env["DATABASE_URL"] = database_url
    env["DJANGO_SETTINGS_MODULE"] = "tanfang.settings"
    return env


def _postgres(admin_url: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(admin_url + "/postgres", autocommit=True) as conn:
        conn.execute(statement)


# --------------------------------------------------------------------------- the child


def _build_tree() -> None:
    from tanfang.areas.models import Area, AreaLevel, CommunityKind, SubdistrictKind

    city = Area.objects.create(code="110000", name="北京市", level=AreaLevel.CITY)
    Area.objects.filter(pk=city.pk).update(city=city)
    for d in DISTRICTS:
        district = Area.objects.create(
            code=d, name=f"区{d}", level=AreaLevel.DISTRICT, parent=city, city=city
        )
        Area.objects.filter(pk=district.pk).update(district=district)
        subs = Area.objects.bulk_create(
            Area(
                code=f"{d}{s:03d}",
                name=f"街道{d}{s:03d}",
                level=AreaLevel.SUBDISTRICT,
                parent=district,
                city=city,
                district=district,
                subdistrict_kind=SubdistrictKind.STREET,
            )
            for s in range(1, SUBDISTRICTS + 1)
        )
        for sub in subs:
            sub.subdistrict = sub
        Area.objects.bulk_update(subs, ["subdistrict"])
        communities = Area.objects.bulk_create(
            Area(
                code=f"{sub.code}{c:03d}",
                name=f"社区{sub.code}{c:03d}",
                level=AreaLevel.COMMUNITY,
                parent=sub,
                city=city,
                district=district,
                subdistrict=sub,
                community_kind=CommunityKind.RESIDENTS,
            )
            for sub in subs
            for c in range(1, COMMUNITIES + 1)
        )
        for community in communities:
            community.community = community
        Area.objects.bulk_update(communities, ["community"], batch_size=500)


def _cpu() -> float:
    """CPU seconds of this process and of the workers it has waited for."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime


def child(path: Path) -> dict[str, Any]:
    import django

    django.setup()
    import datetime as dt

    from django.core.management import call_command

    from tanfang.imports.readers import open_table
    from tanfang.imports.services import import_file
    from tanfang.registry.models import Elder

    call_command("migrate", verbosity=0)
    _build_tree()

    start = time.perf_counter()
    rows = sum(1 for _ in open_table(path).rows())
    reference = time.perf_counter() - start

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpu_before = _cpu()
    start = time.perf_counter()
    outcome = import_file(
        kind="elders",
        path=path,
        actor=None,
        source="bench",
        source_date=dt.date(2026, 1, 5),
        parallel=True,  # as ``tanfang import`` does
    )
    seconds = time.perf_counter() - start
    cpu = _cpu() - cpu_before
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert outcome.ok, [str(e) for e in outcome.errors[:5]]

    start = time.perf_counter()
    again = import_file(
        kind="elders",
        path=path,
        actor=None,
        source="bench",
        source_date=dt.date(2026, 1, 5),
        parallel=True,  # as ``tanfang import`` does
    )
    again_seconds = time.perf_counter() - start
    return {
        "rows": rows,
        "reference_s": reference,
        "import_s": seconds,
        "cpu_s": cpu,
        "created": outcome.counts.created,
        "elders": Elder.objects.count(),
        "again_s": again_seconds,
        "again": [again.counts.created, again.counts.updated, again.counts.unchanged],
        "peak_rss_mb": rss_after / 1024,
        "rss_growth_mb": (rss_after - rss_before) / 1024,
    }


# --------------------------------------------------------------------------- the parent


def _write_files(rows: int, folder: Path, formats: list[str]) -> dict[str, Path]:
    from tanfang.imports import synthetic

    codes = community_codes()
    files: dict[str, Path] = {}
    for fmt in formats:
        start = time.perf_counter()
        path = folder / f"elders-{rows}.{fmt}"
        write = synthetic.write_csv if fmt == "csv" else synthetic.write_xlsx
        write(path, synthetic.synthetic_rows(rows, codes, seed=2024))
        files[fmt] = path
        print(
            f"wrote {path.name}: {path.stat().st_size / 1e6:.1f} MB in "
            f"{time.perf_counter() - start:.1f} s",
            flush=True,
        )
    return files


def _run(database: str, path: Path, folder: Path, pg_admin: str) -> dict[str, Any]:
    if database == "sqlite":
        url = f"sqlite:///{folder / f'bench-{path.suffix[1:]}.sqlite3'}"
    else:
        _postgres(pg_admin, f'DROP DATABASE IF EXISTS "{PG_NAME}"')
        _postgres(pg_admin, f'CREATE DATABASE "{PG_NAME}"')
        url = f"{pg_admin}/{PG_NAME}"
    try:
        done = subprocess.run(
            [sys.executable, __file__, "--child", str(path)],
            env=_env(url, folder),
            capture_output=True,
            text=True,
            check=False,
            cwd=ROOT,
        )
    finally:
        if database == "postgres":
            _postgres(pg_admin, f'DROP DATABASE IF EXISTS "{PG_NAME}"')
    if done.returncode != 0:
        raise SystemExit(f"{database}/{path.name} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--formats", default="csv,xlsx")
    parser.add_argument("--postgres-url", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    os.environ.update(_env("sqlite:///:memory:", Path(tempfile.gettempdir())))
    import django

    django.setup()
    print(f"{os.cpu_count()} CPUs; {args.rows:,} rows; target {TARGET_SECONDS:.0f} s", flush=True)
    with tempfile.TemporaryDirectory(prefix="tanfang-bench-import-") as tmp:
        folder = Path(tmp)
        files = _write_files(args.rows, folder, args.formats.split(","))
        header = (
            f"{'database':9} {'format':6} {'import s':>9} {'cpu s':>6} {'rows/s':>8} "
            f"{'read s':>7} {'ratio':>6} {'again s':>8} {'again c/u/n':>16} "
            f"{'peak MB':>8} {'growth MB':>9} {'load':>5}  target"
        )
        print(header)
        for database in args.databases.split(","):
            for fmt, path in files.items():
                r = _run(database, path, folder, args.postgres_url)
                assert r["created"] == r["elders"] == r["rows"], r
                assert r["again"][:2] == [0, 0], r
                ok = "ok" if r["import_s"] < TARGET_SECONDS else "MISSED"
                print(
                    f"{database:9} {fmt:6} {r['import_s']:9.1f} {r['cpu_s']:6.1f} "
                    f"{r['rows'] / r['import_s']:8.0f} {r['reference_s']:7.1f} "
                    f"{r['import_s'] / r['reference_s']:6.1f} {r['again_s']:8.1f} "
                    f"{'/'.join(map(str, r['again'])):>16} {r['peak_rss_mb']:8.0f} "
                    f"{r['rss_growth_mb']:9.0f} {os.getloadavg()[0]:5.1f}  {ok}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
