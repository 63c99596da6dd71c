"""The nightly recomputation against a real database: ``status_refresh_all`` on every elder.

The issue's figure: the whole due list of 1,000,000 elders recomputed in under 30 s on this
machine. Against the database in ``DATABASE_URL`` (a demo city, e.g. ``tanfang demo
--elders 1000000`` on PostgreSQL), this script:

1. times a reference in the same run: ``SELECT count(*), max(id) FROM registry_elder`` plus
   ``SELECT count(*) FROM visits_visit WHERE local_date >= <window start>`` — the least any
   recomputation must read (every elder, every visit of the window);
2. runs ``status_refresh_all`` ``--runs`` times (default 2: the first run writes what changed
   since the statuses were last computed — all rows when ``--on`` is in another week — and
   the second is the steady state, which writes nothing), printing elders, seconds per phase
   (read, engine, write; summed over the workers) and in total, the CPU seconds of the
   Python processes and the load average before the run (the machine is shared), rows
   changed, and the ratio of the total to the reference;
3. with ``--check N``, compares N random elders' stored statuses with what
   ``status_refresh`` computes for them, inside a transaction that is rolled back (nothing
   it does is kept).

It writes only what ``status_refresh_all`` writes: visit statuses.

Usage (the demo's environment: ``DATABASE_URL`` and the ``TANFANG_*`` keys)::

    .venv/bin/python bench/bench_obligations_db.py [--on 2026-12-07] [--workers 2] [--runs 2]
        [--full-history] [--check 2000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TARGET_SECONDS = 30.0  # for 1,000,000 elders


def _django() -> None:
    if not os.environ.get("DATABASE_URL"):
        raise SystemExit("set DATABASE_URL to the database to measure (a demo city)")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tanfang.settings")
    import django

    django.setup()


def _reference(window_from: dt.date) -> tuple[float, int, int]:
    """Seconds of the two plain reads, elders and visits of the window (best of three)."""
    from django.db import connection

    best = float("inf")
    elders = visits = 0
    for _ in range(3):
        began = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*), max(id) FROM registry_elder")
            elders = cursor.fetchone()[0]
            cursor.execute(
                "SELECT count(*) FROM visits_visit WHERE local_date >= %s",
                [connection.ops.adapt_datefield_value(window_from)],
            )
            visits = cursor.fetchone()[0]
        best = min(best, time.perf_counter() - began)
    return best, elders, visits


def _cpu() -> float:
    """CPU seconds of this process and of its reaped children (the forked workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _check(sample: int, on: dt.date) -> int:
    """How many of ``sample`` random elders' stored statuses differ from ``status_refresh``'s
    answer (computed from scratch in a transaction that is rolled back)."""
    from django.db import connection, transaction

    from tanfang.visits.models import ElderVisitStatus
    from tanfang.visits.status import status_refresh

    with connection.cursor() as cursor:
        cursor.execute("SELECT max(id) FROM registry_elder")
        top = cursor.fetchone()[0] or 0
    rng = random.Random(2026)
    ids = sorted({rng.randint(1, top) for _ in range(sample)})

    def rows() -> dict[int, dict[str, Any]]:
        found = ElderVisitStatus.objects.filter(elder_id__in=ids).values()
        return {r["elder_id"]: {k: v for k, v in r.items() if k != "computed_on"} for r in found}

    stored = rows()
    with transaction.atomic():
        ElderVisitStatus.objects.filter(elder_id__in=ids).delete()
        status_refresh(elder_ids=ids, on=on)
        fresh = rows()
        transaction.set_rollback(True)
    differing = [k for k in fresh if stored.get(k) != fresh[k]]
    for elder_id in differing[:3]:
        was, now = stored.get(elder_id, {}), fresh[elder_id]
        print(f"  elder {elder_id}: " + ", ".join(
            f"{k}: {was.get(k)!r} ≠ {v!r}" for k, v in now.items() if was.get(k) != v
        ))  # fmt: skip
    print(f"check: {len(fresh)} elders compared with status_refresh, {len(differing)} differ")
    return len(differing)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--on", type=dt.date.fromisoformat, default=None)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--full-history", action="store_true")
    parser.add_argument("--check", type=int, default=0, metavar="N")
    args = parser.parse_args()
    _django()
    from django.db import connection
    from django.utils import timezone

    from tanfang.visits.policy import policy_load
    from tanfang.visits.status import CALENDAR
    from tanfang.visits.status_bulk import status_refresh_all, visit_window

    on = args.on or timezone.localdate()
    window_from, lookback_from = visit_window(policy_load(), on, CALENDAR)
    reference, elders, visits = _reference(window_from)
    print(
        f"{connection.vendor} {connection.settings_dict['NAME']}: {elders:,} elders; on {on}; "
        f"visits read from {window_from} ({visits:,} of them; the look-back would start "
        f"{lookback_from})"
    )
    print(f"reference (count elders + count visits of the window): {reference:.2f} s")
    for run in range(args.runs):
        load = os.getloadavg()[0]
        cpu = _cpu()
        report = status_refresh_all(
            on=on, workers=args.workers, full_history=args.full_history and run == 0
        )
        cpu = _cpu() - cpu
        label = "first" if run == 0 else "again"
        print(
            f"{label}: {report.elders:,} elders in {report.seconds:.1f} s; Python CPU "
            f"{cpu:.1f} s; load average before {load:.1f} "
            f"(read {report.read_seconds:.1f} s, engine {report.engine_seconds:.1f} s, write "
            f"{report.write_seconds:.1f} s, summed over {report.workers} worker(s)); "
            f"changed {report.changed:,} (inserted {report.inserted:,}, skipped "
            f"{report.skipped:,}); {report.seconds / reference:.1f}× the reference; "
            f"{report.seconds * 1_000_000 / max(report.elders, 1):.1f} s per million elders "
            f"(target {TARGET_SECONDS:.0f} s)"
        )
    if args.check:
        _check(args.check, on)


if __name__ == "__main__":
    main()
