"""Recording visits through the field-app API under load: latency, throughput, nothing lost.

Two steps, so the load generator can aim at any running ``tanfang serve``:

``prepare`` (run with the server's environment: ``DATABASE_URL``, the ``TANFANG_*`` keys)
  creates, once, ``--visitors`` visitors ``bench-visitor-NN`` in the communities with the most
  active elders, assigns each ``--elders-each`` elders that have no visitor yet (through
  ``visits.teams.visitor_assign``), issues their API tokens (``tanfang token``) and writes
  ``[{"username", "token"}]`` to ``--out``. Any other visitors work too: write their
  ``tanfang token USERNAME`` output into the same JSON shape (or one token per line).

``run URL --tokens FILE``
  1. every visitor lists her elders (``GET /api/v1/elders/``);
  2. reference: ``--concurrency`` clients GET the sign-in page (no database work) for
     ``--reference-seconds``;
  3. load: ``--concurrency`` visitors (default 50), each in a loop for ``--seconds``, POST a
     visit for one of her own elders (``/api/v1/visits/``, a fresh ``client_uuid``, plausible
     findings; one in ten with consent and a hazard or need, so care actions open). A share
     ``--resend`` of submissions is sent a second time at once, as a phone on a bad line
     does; a transport error or 5xx is retried with the same body (up to 3 times); with
     ``--think S`` each visitor then pauses 0.5-1.5 × S seconds, as a person filling in the
     next record does (without it the 50 clients form a closed loop that measures only the
     server's saturation: latency = 50 / throughput);
  4. prints p50/p95/p99 of the POSTs and requests/s, the reference's p95 and the ratio;
  5. checks that what is stored is exactly what was acknowledged: with the server's
     environment (default), the visits of these ``client_uuid``s in the database and the
     visits recorded by these visitors since the start; with ``--no-db-check``, through the
     API (each acknowledged visit read back by id). Exit status 1 if any visit is lost or
     doubled, or any submission failed for good.

Example, against the demo city (SQLite; PostgreSQL with ``DATABASE_URL``)::

    export TANFANG_DATA_DIR=var/bench-visits   # plus the TANFANG_* keys of that server
    .venv/bin/tanfang demo --no-serve
    .venv/bin/python bench/bench_visit_api.py prepare --visitors 50 --out var/bench-tokens.json
    .venv/bin/tanfang serve --port 8010 --workers 2 &
    .venv/bin/python bench/bench_visit_api.py run http://127.0.0.1:8010 \\
        --tokens var/bench-tokens.json --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
SHANGHAI = dt.timezone(dt.timedelta(hours=8))
RETRIES = 3


# --------------------------------------------------------------------------- prepare


def _django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tanfang.settings")
    import django

    django.setup()


def prepare(visitors: int, elders_each: int, out: Path) -> None:
    _django()
    import io

    from django.core.management import call_command
    from django.db.models import Count, Q
    from django.utils import timezone

    from tanfang.accounts.models import Role, User
    from tanfang.registry.models import Elder, LifeStatus, VisitorAssignment
    from tanfang.visits.teams import visitor_assign

    today = timezone.localdate()
    current = Q(starts_on__lte=today) & (Q(ends_on__isnull=True) | Q(ends_on__gte=today))
    taken = VisitorAssignment.objects.filter(current).values("elder_id")
    free = (
        Elder.objects.filter(life_status=LifeStatus.ACTIVE)
        .exclude(willing_to_be_visited=False)
        .exclude(pk__in=taken)
    )
    communities = [
        row["community_id"]
        for row in free.values("community_id").annotate(n=Count("id")).order_by("-n")[:visitors]
    ]
    if not communities:
        raise SystemExit("no active elder without a visitor: is this the right database?")
    accounts = []
    for number in range(1, visitors + 1):
        username = f"bench-visitor-{number:02d}"
        user = User.objects.filter(username=username).first()
        if user is None:
            user = User(
                username=username,
                role=Role.VISITOR,
                area_id=communities[(number - 1) % len(communities)],
                last_name="压测",
                first_name=f"{number:02d}",
            )
            user.set_unusable_password()  # tokens only
            user.save()
        mine = VisitorAssignment.objects.filter(current, visitor=user).count()
        if mine < elders_each:
            wanted = elders_each - mine
            picked = list(free.filter(community_id=user.area_id).order_by("id")[:wanted])
            for elder in picked:
                visitor_assign(actor=None, elder=elder, visitor=user)
        text = io.StringIO()
        call_command("token", username, stdout=text)
        accounts.append({"username": username, "token": text.getvalue().strip()})
        assigned = VisitorAssignment.objects.filter(current, visitor=user).count()
        print(f"{username}: area {user.area_id}, {assigned} elders")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(accounts, indent=1))
    print(f"{len(accounts)} visitors' tokens written to {out}")


# --------------------------------------------------------------------------- load


@dataclass
class Visitor:
    username: str
    token: str
    elders: list[int] = field(default_factory=list)


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    acknowledged: dict[str, int] = field(default_factory=dict)  # client_uuid → visit id
    created: int = 0
    replayed: int = 0
    resends: int = 0
    retries: int = 0
    refused: list[str] = field(default_factory=list)  # 4xx: a bug in the generator or server
    failed: list[str] = field(default_factory=list)  # no answer after every retry


def _tokens(path: Path) -> list[Visitor]:
    text = path.read_text().strip()
    if text.startswith("["):
        return [Visitor(item["username"], item["token"]) for item in json.loads(text)]
    return [Visitor(f"token-{i}", line.strip()) for i, line in enumerate(text.splitlines())]


def _findings(rng: random.Random) -> tuple[dict[str, Any], bool]:
    sections: dict[str, Any] = {
        "health": {
            "expression": "clear",
            "mobility": rng.choice(["independent", "independent", "aided"]),
            "mental_state": rng.choice(["good", "good", "good", "low"]),
        },
        "family": {"support": "yes", "calls": rng.choice(["often", "sometimes"])},
    }
    consent = rng.random() < 0.1
    if consent:
        if rng.random() < 0.5:
            sections["safety"] = {"gas": {"hazard": True, "what": "软管老化"}}
        else:
            sections["needs"] = {"kinds": ["rehabilitation_nursing"]}
        sections["consent"] = {"care_actions": True, "given_by": "elder"}
    return sections, consent


def _visit(rng: random.Random, elder: int) -> dict[str, Any]:
    started = dt.datetime.now(SHANGHAI) - dt.timedelta(minutes=rng.randint(20, 180))
    in_home = rng.random() < 0.4
    sections, consent = _findings(rng)
    body: dict[str, Any] = {
        "client_uuid": str(uuid.uuid4()),
        "elder": elder,
        "mode": "in_home" if in_home else "phone",
        "started_at": started.isoformat(timespec="seconds"),
        "ended_at": (started + dt.timedelta(minutes=rng.randint(5, 30))).isoformat(
            timespec="seconds"
        ),
        "person_met": "elder",
        "outcome": "met",
        "sections": sections,
        "notes": "",
        "consent": consent,
    }
    if in_home:
        body["location"] = {
            "latitude": round(39.9 + rng.random() / 10, 6),
            "longitude": round(116.4 + rng.random() / 10, 6),
            "accuracy_m": rng.randint(5, 50),
        }
    return body


async def _elders_of(client: httpx.AsyncClient, visitor: Visitor) -> None:
    response = await client.get(
        "/api/v1/elders/",
        params={"page_size": 500},
        headers={"Authorization": f"Token {visitor.token}"},
    )
    response.raise_for_status()
    visitor.elders = [row["id"] for row in response.json()["results"]]


async def _submit(
    client: httpx.AsyncClient, visitor: Visitor, body: dict[str, Any], tally: Tally
) -> None:
    """POST one submission as the app does: retry the same body until the server answers."""
    headers = {"Authorization": f"Token {visitor.token}"}
    for attempt in range(RETRIES + 1):
        start = time.perf_counter()
        try:
            response = await client.post("/api/v1/visits/", json=body, headers=headers)
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        else:
            if response.status_code < 500:
                tally.latencies.append((time.perf_counter() - start) * 1000)
                if response.status_code in (200, 201):
                    tally.acknowledged[body["client_uuid"]] = response.json()["id"]
                    tally.created += response.status_code == 201
                    tally.replayed += response.status_code == 200
                else:
                    tally.refused.append(f"{response.status_code} {response.text[:300]}")
                return
            error = f"HTTP {response.status_code}"
        if attempt < RETRIES:
            tally.retries += 1
            await asyncio.sleep(0.2 * (attempt + 1))
    tally.failed.append(f"{body['client_uuid']}: {error}")


async def _until(deadline: float, step: Callable[[], Awaitable[None]]) -> None:
    while time.perf_counter() < deadline:
        await step()


async def _load(
    args: argparse.Namespace, visitors: list[Visitor]
) -> tuple[Tally, list[float], float]:
    """The visitors' elders, then the reference, then the load: (tally, reference, seconds)."""
    limits = httpx.Limits(max_connections=args.concurrency * 2, max_keepalive_connections=None)
    async with httpx.AsyncClient(base_url=args.url, timeout=60, limits=limits) as client:
        await asyncio.gather(*(_elders_of(client, v) for v in visitors))
        empty = [v.username for v in visitors if not v.elders]
        if empty:
            raise SystemExit(f"visitors without elders: {', '.join(empty)}")

        reference: list[float] = []

        async def sign_in_page() -> None:
            for attempt in range(3):
                start = time.perf_counter()
                try:
                    response = await client.get("/login/")
                except httpx.TransportError:
                    if attempt == 2:
                        raise
                    continue  # a kept-alive connection the server had closed: go again
                reference.append((time.perf_counter() - start) * 1000)
                response.raise_for_status()
                return

        deadline = time.perf_counter() + args.reference_seconds
        await asyncio.gather(*(_until(deadline, sign_in_page) for _ in range(args.concurrency)))

        tally = Tally()
        rng = random.Random(args.seed)

        def worker(visitor: Visitor) -> Callable[[], Awaitable[None]]:
            async def step() -> None:
                body = _visit(rng, rng.choice(visitor.elders))
                await _submit(client, visitor, body, tally)
                if rng.random() < args.resend:
                    tally.resends += 1
                    await _submit(client, visitor, body, tally)
                if args.think:
                    # A person on a phone: fills in the next record before submitting again.
                    await asyncio.sleep(args.think * (0.5 + rng.random()))

            return step

        async def staggered(visitor: Visitor) -> None:
            # People do not all press "submit" at the same instant: with think time, each
            # visitor starts at a random moment of the first pause.
            if args.think:
                await asyncio.sleep(args.think * rng.random())
            await _until(deadline, worker(visitor))

        started = time.perf_counter()
        deadline = started + args.seconds
        people = [visitors[i % len(visitors)] for i in range(args.concurrency)]
        await asyncio.gather(*(staggered(v) for v in people))
        return tally, reference, time.perf_counter() - started


def _quantile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def _verify_db(tally: Tally, usernames: list[str], since: dt.datetime) -> tuple[int, int]:
    """(visits stored under the acknowledged client_uuids, visits recorded by these visitors
    since the start)."""
    _django()
    from tanfang.visits.models import Visit

    ids = list(tally.acknowledged)
    stored = sum(
        Visit.objects.filter(client_uuid__in=ids[i : i + 5000]).count()
        for i in range(0, len(ids), 5000)
    )
    recorded = Visit.objects.filter(
        recorded_by__username__in=usernames, recorded_at__gte=since
    ).count()
    return stored, recorded


async def _verify_api(args: argparse.Namespace, tally: Tally, visitors: list[Visitor]) -> int:
    """How many acknowledged visits read back with their own client_uuid."""
    token = visitors[0].token
    by_id = {visit_id: key for key, visit_id in tally.acknowledged.items()}
    found = 0
    async with httpx.AsyncClient(base_url=args.url, timeout=60) as client:
        for visit_id, key in by_id.items():
            response = await client.get(
                f"/api/v1/visits/{visit_id}/", headers={"Authorization": f"Token {token}"}
            )
            found += response.status_code == 200 and response.json()["client_uuid"] == key
    return found


def run(args: argparse.Namespace) -> int:
    visitors = _tokens(Path(args.tokens))
    since = dt.datetime.now(dt.UTC)
    tally, reference, elapsed = asyncio.run(_load(args, visitors))
    posts = tally.latencies
    if len(posts) < 2 or len(reference) < 2:
        raise SystemExit("too few requests to measure: run longer")
    p = {q: _quantile(posts, q) for q in (50, 95, 99)}
    ref95 = _quantile(reference, 95)
    print(
        f"\n{args.concurrency} concurrent visitors ({len(visitors)} accounts), "
        f"{args.seconds:.0f} s, {args.url}"
    )
    print(f"{'':34} {'n':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'req/s':>8}")
    print(
        f"{'reference: sign-in page':34} {len(reference):7d} "
        f"{statistics.median(reference):8.1f} {ref95:8.1f} {_quantile(reference, 99):8.1f} "
        f"{len(reference) / args.reference_seconds:8.1f}"
    )
    print(
        f"{'POST /api/v1/visits/':34} {len(posts):7d} {p[50]:8.1f} {p[95]:8.1f} "
        f"{p[99]:8.1f} {len(posts) / elapsed:8.1f}"
    )
    print(f"p95 ratio visit / sign-in page: {p[95] / ref95:.2f}   (target: visit p95 < 100 ms)")
    print(
        f"submissions: {tally.created} created (201), {tally.replayed} answered as already "
        f"recorded (200), {tally.resends} deliberate resends, {tally.retries} retries after "
        f"errors, {len(tally.refused)} refused (4xx), {len(tally.failed)} failed"
    )
    for line in (tally.refused + tally.failed)[:5]:
        print("  ", line)

    acknowledged = len(tally.acknowledged)
    distinct_ids = len(set(tally.acknowledged.values()))
    ok = not tally.failed and not tally.refused and distinct_ids == acknowledged
    if args.no_db_check:
        found = asyncio.run(_verify_api(args, tally, visitors))
        print(
            f"verification (API): {acknowledged} distinct client_uuids acknowledged, "
            f"{distinct_ids} distinct visit ids, {found} read back with their client_uuid"
        )
        ok = ok and found == acknowledged
    else:
        stored, recorded = _verify_db(tally, [v.username for v in visitors], since)
        print(
            f"verification (database): {acknowledged} distinct client_uuids acknowledged, "
            f"{stored} visits stored under them, {recorded} visits recorded by these "
            f"visitors during the run"
        )
        ok = ok and stored == acknowledged == recorded
    print("no visit lost or duplicated" if ok else "MISMATCH: see above")
    return 0 if ok else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="create visitors with elders and tokens")
    p.add_argument("--visitors", type=int, default=50)
    p.add_argument("--elders-each", type=int, default=20)
    p.add_argument("--out", default=str(ROOT / "var" / "bench-visit-tokens.json"))
    r = sub.add_parser("run", help="load a running server")
    r.add_argument("url", help="e.g. http://127.0.0.1:8000")
    r.add_argument("--tokens", required=True, help="JSON from prepare, or one token per line")
    r.add_argument("--concurrency", type=int, default=50)
    r.add_argument("--seconds", type=float, default=30)
    r.add_argument("--reference-seconds", type=float, default=5)
    r.add_argument("--resend", type=float, default=0.1, help="share of submissions sent twice")
    r.add_argument(
        "--think",
        type=float,
        default=0.0,
        help="seconds each visitor waits between submissions (0.5-1.5 times this; 0: none)",
    )
    r.add_argument("--seed", type=int, default=2026)
    r.add_argument(
        "--no-db-check",
        action="store_true",
        help="verify through the API instead of the server's database",
    )
    args = parser.parse_args()
    if args.command == "prepare":
        prepare(args.visitors, args.elders_each, Path(args.out))
    else:
        sys.exit(run(args))


if __name__ == "__main__":
    main()
