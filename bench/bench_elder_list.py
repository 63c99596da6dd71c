"""Elder-list latency with a city-sized registry, measured with a real HTTP client.

Steps:
1. Build (once) a demo city with ``--elders N`` (default 1,000,000) in its own database
   (``--database-url``, default a PostgreSQL database ``tanfang_bench_list``); a marker table
   row from ``tanfang demo`` makes later runs skip the build.
2. Start ``tanfang serve`` on a free loopback port.
3. Sign in as the demo community worker and the demo city administrator, warm up, then time
   ``--requests`` sequential GETs of each page with httpx: the community worker's elder list
   (first page and the third, following the keyset links), the city admin's list filtered
   by category and focus, and a search by name. The reference, timed in the same run, is
   the sign-in page (no database work): ratios show what the list costs beyond any page.
4. Print p50/p95/max in milliseconds and the p95 ratio to the reference.

Usage: ``.venv/bin/python bench/bench_elder_list.py [--elders N] [--requests R]``.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
TANFANG = str(Path(sys.executable).with_name("tanfang"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(database_url: str, data_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("TANFANG_SECRET_KEY", "bench-secret")
    env.setdefault("TANFANG_FIELD_KEYS", "ZmDfcTF7_60GrrY167zsiPd67pEvs0aGOv2oasOM1Pg=")
    env.setdefault("TANFANG_BLIND_INDEX_KEY", "bench-blind-index-key")
    env["TANFANG_DATA_DIR"] = str(data_dir)
    env["DATABASE_URL"] = database_url
    env["DJANGO_SETTINGS_MODULE"] = "tanfang.settings"
    return env


def _ensure_database(url: str) -> None:
    if not url.startswith("postgres"):
        return
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def _login(client: httpx.Client, username: str, password: str) -> None:
    page = client.get("/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token, "no CSRF token on the login page"
    response = client.post(
        "/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": token.group(1)},
        headers={"Referer": str(client.base_url) + "/login/"},
    )
    assert response.status_code in (200, 302), response.status_code
    assert client.get("/elders/").status_code == 200, f"{username} cannot open the list"


def _time(client: httpx.Client, path: str, n: int) -> list[float]:
    for _ in range(5):
        client.get(path)
    out = []
    for _ in range(n):
        start = time.perf_counter()
        response = client.get(path)
        out.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    return out


def _next_page(client: httpx.Client, path: str) -> str:
    """Follow the list's keyset "next" link (``?after=...``)."""
    page = client.get(path).text
    link = re.search(r'href="([^"]*after=[^"]*)"', page)
    assert link, f"no next-page link on {path}"
    href = link.group(1).replace("&amp;", "&")
    return "/elders/" + href if href.startswith("?") else href


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elders", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument(
        "--database-url", default="postgres://postgres@127.0.0.1:5432/tanfang_bench_list"
    )
    parser.add_argument("--data-dir", default=str(ROOT / "var" / "bench-list"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-user", default="community")
    parser.add_argument("--admin-user", default="admin")
    parser.add_argument("--password", default="tanfang-demo")
    args = parser.parse_args()

    data_dir = Path(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    env = _env(args.database_url, data_dir)
    _ensure_database(args.database_url)
    start = time.perf_counter()
    subprocess.run(
        [TANFANG, "demo", "--no-serve", "--elders", str(args.elders)],
        cwd=ROOT,
        env=env,
        check=True,
    )
    print(f"demo city ready ({args.elders:,} elders) in {time.perf_counter() - start:.1f} s")

    port = _free_port()
    server = subprocess.Popen(
        [
            TANFANG,
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(args.workers),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                httpx.get(base + "/login/", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        rows: list[tuple[str, list[float]]] = []
        with httpx.Client(base_url=base, timeout=30) as anon:
            rows.append(("reference: sign-in page", _time(anon, "/login/", args.requests)))
        with httpx.Client(base_url=base, timeout=30) as worker:
            _login(worker, args.worker_user, args.password)
            rows.append(("community worker: list", _time(worker, "/elders/", args.requests)))
            third = _next_page(worker, _next_page(worker, "/elders/"))
            rows.append(("community worker: page 3", _time(worker, third, args.requests)))
        with httpx.Client(base_url=base, timeout=30) as admin:
            _login(admin, args.admin_user, args.password)
            rows.append(
                (
                    "city admin: living alone + focus",
                    _time(admin, "/elders/?category=living_alone&focus=1", args.requests),
                )
            )
            rows.append(
                ("city admin: impaired", _time(admin, "/elders/?category=impaired", args.requests))
            )
            rows.append(("city admin: search 王", _time(admin, "/elders/?q=王", args.requests)))
    finally:
        server.terminate()
        server.wait(timeout=20)

    reference = _p95(rows[0][1])
    print(
        f"\n{args.requests} sequential requests each, {args.elders:,} elders, "
        f"{args.database_url.split('://')[0]}, {args.workers} gunicorn workers"
    )
    print(f"{'page':38} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'p95/ref':>8}")
    for name, values in rows:
        p95 = _p95(values)
        print(
            f"{name:38} {statistics.median(values):8.1f} {p95:8.1f} {max(values):8.1f} "
            f"{p95 / reference:8.2f}"
        )
    print("target: list pages p95 < 150 ms")


if __name__ == "__main__":
    main()
