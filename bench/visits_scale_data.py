"""Give a large demo city a year of visit history, for the visit benchmarks (PostgreSQL only).

The visit benchmarks of issue 3 are stated at 1,000,000 elders and 50,000,000 visits. The
demo writes one week of visits at that size; this script adds ``--weeks`` past weeks with
one visit per elder per week (50 weeks × 1,000,000 elders = 50,000,000), generated inside
PostgreSQL with ``generate_series`` because sending fifty million rows from Python would take
hours. The rows are plausible, not varied: a mode that cycles, met, counting, no findings.

For speed the secondary indexes are dropped first and built again afterwards, and foreign
keys are not re-checked row by row (``session_replication_role = replica``): every id comes
from the tables themselves. It is idempotent: a week already generated is skipped (the
client UUIDs are derived from the elder and the week).

Usage (the environment of the demo: DATABASE_URL and the TANFANG_* keys)::

    .venv/bin/python bench/visits_scale_data.py --weeks 50
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

INSERT = """
INSERT INTO visits_visit (
    client_uuid, elder_id, community_id, visitor_id, visitor_name, provider_id, organised_by,
    mode, started_at, ended_at, person_met, outcome, sections, notes, consent, risk_level,
    risk_reasons, latitude, longitude, location_accuracy_m, counts, local_date, week_key,
    month_key, source, recorded_by_id, recorded_at, locked_after, revision)
SELECT md5('bench-visit:' || e.id || ':' || %(week)s)::uuid, e.id, e.community_id, NULL,
    '探访员', NULL, 'government',
    (ARRAY['in_home', 'phone', 'in_home', 'phone', 'online'])[1 + (e.id %% 5)],
    t.ts, t.ts + interval '20 minutes', 'elder', 'met', '{}'::jsonb, '', false, 'general',
    '[]'::jsonb, NULL, NULL, NULL, true, t.d, to_char(t.d, 'IYYY-"W"IW'), to_char(t.d, 'YYYY-MM'),
    'import', NULL, now(), t.ts + interval '1 day', 1
FROM registry_elder e
CROSS JOIN LATERAL (
    SELECT (%(monday)s::date + (e.id %% 7)::int) AS d
) AS x
CROSS JOIN LATERAL (
    SELECT x.d AS d,
           ((x.d + time '08:30' + (e.id %% 540) * interval '1 minute')
               AT TIME ZONE 'Asia/Shanghai') AS ts
) AS t
WHERE e.id > %(low)s AND e.id <= %(high)s
"""


def _saved_indexes() -> Path:
    """Where the dropped indexes' definitions are kept until they are built again."""
    folder = Path(os.environ.get("TANFANG_DATA_DIR", ROOT / "var"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "bench-visit-indexes.json"


def _django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tanfang.settings")
    import django

    django.setup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weeks", type=int, default=50)
    parser.add_argument("--chunk", type=int, default=250_000, help="elders per statement")
    args = parser.parse_args()
    _django()
    from django.db import connection
    from django.utils import timezone

    if connection.vendor != "postgresql":
        raise SystemExit("PostgreSQL only (DATABASE_URL)")
    today = timezone.localdate()
    this_monday = today - dt.timedelta(days=today.weekday())
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute("SELECT max(id) FROM registry_elder")
        top = cursor.fetchone()[0] or 0
        # Plain indexes only: the unique constraint's index goes and comes with it.
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'visits_visit' "
            "AND indexname <> 'visits_visit_pkey' AND indexname NOT IN "
            "(SELECT conname FROM pg_constraint WHERE conrelid = 'visits_visit'::regclass)"
        )
        indexes = cursor.fetchall()
        saved = _saved_indexes()
        if saved.exists() and not indexes:
            # A run that died after dropping them: build them from what it saved.
            indexes = json.loads(saved.read_text())
        saved.write_text(json.dumps(indexes))
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'visits_visit'::regclass AND contype = 'u'"
        )
        uniques = cursor.fetchall()
        todo = []
        for week in range(1, args.weeks + 1):
            monday = this_monday - dt.timedelta(weeks=week)
            key = f"{monday.isocalendar().year}-W{monday.isocalendar().week:02d}"
            cursor.execute(
                "SELECT count(*) FROM visits_visit WHERE week_key = %s AND source = 'import'",
                [key],
            )
            if cursor.fetchone()[0] < top // 2:
                todo.append((week, monday))
        print(f"{len(todo)} weeks to generate for {top:,} elders", flush=True)
        for name, _ in uniques if todo else ():
            cursor.execute(f'ALTER TABLE visits_visit DROP CONSTRAINT "{name}"')
        for name, _ in indexes if todo else ():
            cursor.execute(f'DROP INDEX IF EXISTS "{name}"')
        cursor.execute("SET session_replication_role = replica")
        for week, monday in todo:
            mark = time.monotonic()
            for low in range(0, top, args.chunk):
                cursor.execute(
                    INSERT,
                    {"week": week, "monday": monday, "low": low, "high": low + args.chunk},
                )
            print(f"  week {monday}: {time.monotonic() - mark:.1f} s", flush=True)
        cursor.execute("SET session_replication_role = origin")
        cursor.execute("SET maintenance_work_mem = '1GB'")
        cursor.execute("SET max_parallel_maintenance_workers = 2")
        for name, definition in uniques if todo else ():
            mark = time.monotonic()
            cursor.execute(f'ALTER TABLE visits_visit ADD CONSTRAINT "{name}" {definition}')
            print(f"  {name}: {time.monotonic() - mark:.1f} s", flush=True)
        for name, definition in indexes:
            mark = time.monotonic()
            cursor.execute(definition.replace("CREATE INDEX", "CREATE INDEX IF NOT EXISTS"))
            print(f"  {name}: {time.monotonic() - mark:.1f} s", flush=True)
        cursor.execute("ANALYZE visits_visit")
        _saved_indexes().unlink(missing_ok=True)
        cursor.execute("SELECT count(*) FROM visits_visit")
        total = cursor.fetchone()[0]
    print(f"visits: {total:,}; {time.monotonic() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
