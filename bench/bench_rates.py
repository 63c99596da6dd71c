"""Benchmark of the visit rates on PostgreSQL: 1,000,000 elders' statuses, 50,000,000 visits.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/tanfang_bench_rates \
        uv run python bench/bench_rates.py --load      # once: build the data (~30-40 min)
    DATABASE_URL=... uv run python bench/bench_rates.py  # measure

The data are written with SQL straight into the tables the rates read: a tree of 1 city, 16
districts, 336 subdistricts and 7,056 communities; a visit status for each of 1,000,000
elders (6 % excluded, by reason); one visit a week for each elder over the 50 weeks ending on
``ON`` (97 % counting; 85 % of the elders visited in the current week so far). The registry's
elder rows are not needed by the rates and are not built: foreign-key triggers are off while
loading (``session_replication_role = replica``). Indexes are dropped during the load and
built again afterwards, exactly as the migrations define them.

Measured: the rates of every node of the city (7,409 rows) for the open week (the figure:
target < 2 s), a closed week computed from the visits, a closed week from its snapshot,
closing a week (the snapshot of every node), the open month, a trend of 8 weeks for a
district without and with snapshots; and a reference ``SELECT 1`` round trip.
``PGOPTIONS="-c jit=off"`` measures without PostgreSQL's JIT (which costs 1-2.5 s of
compilation on the closed-week query, more than the query itself).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django

django.setup()

from django.db import connection  # noqa: E402
from django.db.models import F  # noqa: E402

from tanfang.areas.models import Area  # noqa: E402

ON = dt.date(2026, 11, 26)  # Thursday of 2026-W48
ELDERS = int(os.environ.get("BENCH_ELDERS", 1_000_000))
WEEKS = int(os.environ.get("BENCH_WEEKS", 50))
DISTRICTS, SUBDISTRICTS, COMMUNITIES = 16, 21, 21


def _tree() -> None:
    city = Area.objects.create(code="110000", name="北京市", level="city")
    Area.objects.filter(pk=city.pk).update(city_id=city.pk)
    districts = Area.objects.bulk_create(
        Area(code=f"1101{d:02d}", name=f"区{d}", level="district", parent=city, city_id=city.pk)
        for d in range(1, DISTRICTS + 1)
    )
    Area.objects.filter(level="district").update(district_id=F("pk"))
    subs = Area.objects.bulk_create(
        Area(
            code=f"{d.code}{s:03d}",
            name=f"{d.name}街道{s}",
            level="subdistrict",
            parent=d,
            city_id=city.pk,
            district_id=d.pk,
        )
        for d in districts
        for s in range(1, SUBDISTRICTS + 1)
    )
    Area.objects.filter(level="subdistrict").update(subdistrict_id=F("pk"))
    Area.objects.bulk_create(
        Area(
            code=f"{s.code}{c:03d}",
            name=f"{s.name}社区{c}",
            level="community",
            parent=s,
            city_id=city.pk,
            district_id=s.district_id,
            subdistrict_id=s.pk,
        )
        for s in subs
        for c in range(1, COMMUNITIES + 1)
    )
    Area.objects.filter(level="community").update(community_id=F("pk"))


_VISITS = """
INSERT INTO visits_visit (client_uuid, visitor_name, organised_by, mode, started_at, ended_at,
    person_met, outcome, sections, notes, consent, risk_level, risk_reasons, counts, local_date,
    week_key, month_key, source, recorded_at, locked_after, revision, community_id, elder_id)
SELECT gen_random_uuid(), 'bench', 'government', 'phone', t.at, t.at + interval '10 minutes',
    'elder', CASE WHEN t.counts THEN 'met' ELSE 'not_home' END, '{}'::jsonb, '', false,
    'general', '[]'::jsonb, t.counts, t.day, to_char(t.day, 'IYYY-"W"IW'),
    to_char(t.day, 'YYYY-MM'), 'app', t.at, t.at + interval '1 day', 1,
    c.ids[(g %% c.n) + 1], g
FROM generate_series(1, %(elders)s) AS g
CROSS JOIN (SELECT array_agg(id ORDER BY id) AS ids, count(*)::int AS n
            FROM areas_area WHERE level = 'community') AS c
CROSS JOIN LATERAL (
    SELECT %(start)s::date + (g %% %(days)s) AS day,
           ((%(start)s::date + (g %% %(days)s)) + time '08:00'
             + (g %% 600) * interval '1 minute') AT TIME ZONE 'Asia/Shanghai' AS at,
           (hashint4(g * 53 + %(week)s) %% 100 + 100) %% 100 >= 3 AS counts
) AS t
WHERE %(last)s = false OR g %% 100 < 85
"""

_STATUSES = """
INSERT INTO visits_eldervisitstatus (elder_id, community_id, excluded, frequency, period_key,
    scheduled, next_due_on, overdue_since, open_obligations, last_visit_at, last_counted_at,
    risk_level, urgency, computed_on)
SELECT g, c.ids[(g %% c.n) + 1],
    CASE g %% 50 WHEN 0 THEN 'deceased' WHEN 1 THEN 'moved_away' WHEN 2 THEN 'in_institution'
        WHEN 3 THEN 'in_hospital' ELSE CASE WHEN g %% 100 IN (4, 54) THEN 'declined' ELSE '' END
    END,
    'week', %(key)s, true, %(end)s::date, NULL, '[]'::jsonb, v.last, v.last, 'general', 0, %(on)s
FROM generate_series(1, %(elders)s) AS g
CROSS JOIN (SELECT array_agg(id ORDER BY id) AS ids, count(*)::int AS n
            FROM areas_area WHERE level = 'community') AS c
LEFT JOIN LATERAL (
    SELECT max(started_at) AS last FROM visits_visit
    WHERE elder_id = g AND counts AND local_date >= %(since)s
) AS v ON true
"""


def load() -> None:
    if Area.objects.exists():
        sys.exit("the database is not empty: load into a fresh, migrated database")
    began = time.perf_counter()
    _tree()
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        cursor.execute("SET maintenance_work_mem = '1GB'")
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN "
            "('visits_visit', 'visits_eldervisitstatus') AND indexname NOT LIKE '%%_pkey'"
        )
        indexes = cursor.fetchall()
        for name, _definition in indexes:
            cursor.execute(
                f'ALTER TABLE visits_visit DROP CONSTRAINT IF EXISTS "{name}"'
                if name.endswith("_key")
                else f'DROP INDEX "{name}"'
            )
        week_start = ON - dt.timedelta(days=ON.weekday())
        for week in range(WEEKS):
            start = week_start - dt.timedelta(weeks=WEEKS - 1 - week)
            last = week == WEEKS - 1
            days = (ON - start).days + 1 if last else 7
            cursor.execute(
                _VISITS,
                {"elders": ELDERS, "start": start, "days": days, "week": week, "last": last},
            )
            print(f"week {start}: {time.perf_counter() - began:.0f} s", flush=True)
        for name, definition in indexes:
            if name.endswith("_key"):
                cursor.execute(
                    f'ALTER TABLE visits_visit ADD CONSTRAINT "{name}" UNIQUE (client_uuid)'
                )
            elif "eldervisitstatus" not in definition:
                cursor.execute(definition)
            print(f"index {name}: {time.perf_counter() - began:.0f} s", flush=True)
        cursor.execute("CREATE INDEX bench_tmp ON visits_visit (elder_id, local_date)")
        cursor.execute(
            _STATUSES,
            {
                "elders": ELDERS,
                "key": ON.strftime("%G-W%V"),
                "end": week_start + dt.timedelta(days=6),
                "on": ON,
                "since": week_start - dt.timedelta(weeks=8),
            },
        )
        cursor.execute("DROP INDEX bench_tmp")
        for _name, definition in indexes:
            if "eldervisitstatus" in definition:
                cursor.execute(definition)
        cursor.execute("VACUUM ANALYZE visits_visit")
        cursor.execute("VACUUM ANALYZE visits_eldervisitstatus")
        cursor.execute("ANALYZE areas_area")
    print(f"loaded in {time.perf_counter() - began:.0f} s")


def _time(label: str, call, repeat: int = 5) -> list[float]:
    call()  # warm the cache
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - began)
    rows = len(result) if hasattr(result, "__len__") else result
    print(
        f"| {label} | {rows} | {statistics.median(times) * 1000:.0f} | {max(times) * 1000:.0f} |",
        flush=True,
    )
    return times


def measure() -> None:
    from tanfang.visits.models import RateSnapshot
    from tanfang.visits.rates import period_containing, rate_snapshot_close, rate_trend, rates_for

    city = Area.objects.get(code="110000")
    district = Area.objects.get(code="110101")
    week = period_containing(ON, "week")
    closed = period_containing(ON - dt.timedelta(days=14), "week")
    snapped = period_containing(ON - dt.timedelta(days=7), "week")
    RateSnapshot.objects.all().delete()

    def select_one() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone()[0]

    print("| what | rows | median ms | max ms |")
    print("| --- | --- | --- | --- |")
    _time("reference: SELECT 1", select_one)
    _time(
        f"every node of the city, open week {week.key}",
        lambda: rates_for(area=city, period=week, on=ON),
    )
    _time(
        f"every node of the city, open month {ON:%Y-%m}",
        lambda: rates_for(area=city, period=ON.strftime("%Y-%m"), on=ON),
    )
    _time(
        f"every node of the city, closed week {closed.key} computed",
        lambda: rates_for(area=city, period=closed, on=ON),
    )
    _time(
        f"close week {snapped.key} (snapshot of every node)",
        lambda: rate_snapshot_close(snapped, on=ON),
        repeat=2,
    )
    _time(
        f"every node of the city, closed week {snapped.key} from its snapshot",
        lambda: rates_for(area=city, period=snapped, on=ON),
    )
    _time(
        "one district, trend of 8 weeks, no snapshot",
        lambda: rate_trend(area=district, kind="week", on=ON),
        repeat=2,
    )
    for back in range(1, 8):
        rate_snapshot_close(period_containing(ON - dt.timedelta(weeks=back), "week"), on=ON)
    _time(
        "one district, trend of 8 weeks, 7 closed weeks kept",
        lambda: rate_trend(area=district, kind="week", on=ON),
    )
    rows = rates_for(area=city, period=week, on=ON)
    top = rows[0]
    print(
        f"\ncity {week.key}: due {top.due}, visited {top.visited}, rate {top.rate}, "
        f"excluded {top.excluded}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--load", action="store_true", help="build the data first")
    options = parser.parse_args()
    if "postgres" not in os.environ.get("DATABASE_URL", ""):
        sys.exit("set DATABASE_URL to a PostgreSQL database")
    if options.load:
        load()
    measure()
