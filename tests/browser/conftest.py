"""Browser tests drive Debian's Chromium against a real ``tanfang serve`` process.

The server runs on a demo city built by ``tanfang demo --no-serve`` into a database of its own:
a temporary SQLite file, or a fresh PostgreSQL database when ``DATABASE_URL`` points at
PostgreSQL. Nothing is mocked: the same commands an operator runs.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
TANFANG = str(Path(sys.executable).with_name("tanfang"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _postgres_admin(url: str, sql: str) -> None:
    import psycopg

    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql)


@pytest.fixture(scope="session")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: ./dev test installs Debian's chromium")
    data_dir = tmp_path_factory.mktemp("browser-var")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_SETTINGS_MODULE")}
    env.update(
        TANFANG_DATA_DIR=str(data_dir),
        TANFANG_SECRET_KEY="browser-test-secret",
        TANFANG_FIELD_KEYS=os.environ["TANFANG_FIELD_KEYS"],
        TANFANG_BLIND_INDEX_KEY=os.environ["TANFANG_BLIND_INDEX_KEY"],
        DJANGO_SETTINGS_MODULE="tanfang.settings",
    )
    database_url = os.environ.get("DATABASE_URL", "")
    pg_db = None
    if database_url.startswith("postgres"):
        pg_db = f"tanfang_browser_{uuid.uuid4().hex[:8]}"
        _postgres_admin(database_url, f'CREATE DATABASE "{pg_db}"')
        env["DATABASE_URL"] = database_url.rsplit("/", 1)[0] + "/" + pg_db
    else:
        env.pop("DATABASE_URL", None)
    subprocess.run(
        [TANFANG, "demo", "--no-serve", "--elders", "300", "--seed", "7"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
    )
    port = _free_port()
    log = (data_dir / "server.log").open("w")
    server = subprocess.Popen(
        [TANFANG, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url + "/login/", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "tanfang serve did not start:\n"
                        + (data_dir / "server.log").read_text(errors="replace")
                    ) from None
                time.sleep(0.3)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()
        if pg_db is not None:
            _postgres_admin(database_url, f'DROP DATABASE IF EXISTS "{pg_db}" WITH (FORCE)')


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield b
        b.close()


@pytest.fixture
def phone_page(browser: object) -> Iterator[object]:
    """A page the size of a 375-pixel-wide phone."""
    context = browser.new_context(  # type: ignore[attr-defined]
        viewport={"width": 375, "height": 812},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        locale="zh-CN",
    )
    page = context.new_page()
    yield page
    context.close()
