"""Visits at city scale: a visitor's worklist and the weekly rate of every node of the city.

Run against a large demo (1,000,000 elders; ``bench/visits_scale_data.py`` adds fifty weeks of
visit history) with its environment (DATABASE_URL, TANFANG_* keys) and a running server::

    .venv/bin/python bench/bench_visit_api.py prepare --visitors 50 --out var/bench-tokens.json
    .venv/bin/tanfang serve --port 8010 --workers 2 &
    .venv/bin/python bench/bench_visits_scale.py http://127.0.0.1:8010 \\
        --tokens var/bench-tokens.json

What it measures, each with a reference measured in the same run:
1. worklist: ``--requests`` GETs of ``/api/v1/worklist/`` and of the ``/worklist/`` page, the
   visitors taken in turn, one at a time: p50/p95; reference: the sign-in page's p95.
2. rates: ``rates_for`` the city for the current ISO week (every node: city, districts,
   subdistricts, communities), ``--repeat`` times in-process: median and worst; reference: a
   bare ``SELECT count(*)`` of the week's counting visits on the same database.
3. the command ``tanfang rates --period W --area 110000 --format csv``, wall time once.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tanfang.settings")
    import django

    django.setup()


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _timed_get(client: httpx.Client, url: str, **kw: object) -> float:
    mark = time.perf_counter()
    response = client.get(url, **kw)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - mark
    if response.status_code != 200:
        raise SystemExit(f"{url}: HTTP {response.status_code}")
    return elapsed * 1000


def worklists(base: str, tokens: list[dict[str, str]], requests: int) -> None:
    with httpx.Client(base_url=base, timeout=30) as client:
        for _ in range(10):
            _timed_get(client, "/login/")
        reference = [_timed_get(client, "/login/") for _ in range(requests)]
        api = []
        for i in range(requests):
            token = tokens[i % len(tokens)]["token"]
            api.append(
                _timed_get(client, "/api/v1/worklist/", headers={"Authorization": f"Token {token}"})
            )
    ref95 = _quantile(reference, 0.95)
    p95 = _quantile(api, 0.95)
    print(f"sign-in page (reference): p50 {_quantile(reference, 0.5):.1f} ms, p95 {ref95:.1f} ms")
    print(
        f"worklist API ({len(tokens)} visitors): p50 {_quantile(api, 0.5):.1f} ms, "
        f"p95 {p95:.1f} ms, ratio {p95 / ref95:.1f}"
    )


def rates(repeat: int) -> str:
    from django.db import connection
    from django.utils import timezone

    from tanfang.areas.models import Area
    from tanfang.visits.obligations import Frequency, period_of
    from tanfang.visits.rates import rates_for

    key = period_of(timezone.localdate(), Frequency.WEEK)[2]
    city = Area.objects.get(code="110000")
    times, rows = [], []
    for _ in range(repeat):
        mark = time.perf_counter()
        rows = rates_for(area=city, period=key)
        times.append(time.perf_counter() - mark)
    with connection.cursor() as cursor:
        mark = time.perf_counter()
        cursor.execute("SELECT count(*) FROM visits_visit WHERE week_key = %s AND counts", [key])
        visits = cursor.fetchone()[0]
        reference = time.perf_counter() - mark
    top = rows[0]
    print(
        f"weekly rate {key}, {len(rows):,} nodes: median {statistics.median(times):.2f} s, "
        f"worst {max(times):.2f} s; city {top.visited:,}/{top.due:,}"
    )
    print(
        f"reference: count of the week's {visits:,} counting visits {reference:.2f} s; "
        f"ratio {statistics.median(times) / reference:.1f}"
    )
    return key


def rates_command(key: str) -> None:
    mark = time.perf_counter()
    done = subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "tanfang"),
            "rates",
            "--period",
            key,
            "--area",
            "110000",
            "--format",
            "csv",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = done.stdout.count("\n")
    print(
        f"tanfang rates --period {key} --area 110000: {time.perf_counter() - mark:.2f} s, "
        f"{lines - 1:,} rows"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--tokens", required=True)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    tokens = json.loads(Path(args.tokens).read_text())
    _django()
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM registry_elder")
        elders = cursor.fetchone()[0]
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = 'visits_visit'")
        visits = cursor.fetchone()[0]
    print(f"{elders:,} elders, about {visits:,} visits ({connection.vendor})")
    worklists(args.url, tokens, args.requests)
    key = rates(args.repeat)
    rates_command(key)


if __name__ == "__main__":
    main()
