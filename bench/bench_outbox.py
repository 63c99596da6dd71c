"""The outbox under load: 100,000 SMS through two workers, one killed midway.

The issue's figure: 100,000 notifications through the outbox to the local SMS test server in
under 60 s with two workers, none duplicated, none lost, including a worker killed midway.
This script:

1. builds a scratch database (with ``--database postgres``, the default, a PostgreSQL
   database created next to ``DATABASE_URL``'s and dropped at the end; or a SQLite file) and
   writes ``--count`` urgent SMS notifications with their outbox messages, in bulk, to
   synthetic numbers 170xxxxxxxx (encrypted as the contact rows keep them);
2. starts the local Alibaba SMS sink (``python -m tanfang.notifications.sinks.sms_server``,
   checking every request's signature) recording to a file;
3. measures two references in the same run: the bare sink, ``count / 100`` SendBatchSms
   requests of 100 numbers from one client through the same SDK channel without any
   database (to a second sink process); and one bare ``UPDATE`` of every message row
   (rolled back);
4. starts two ``tanfang outbox`` worker processes, SIGKILLs the first once the sink holds
   ``--kill-at`` (default half) of the messages, restarts it under the same name (it takes
   over what it held at once), and waits until every message is ``sent``;
5. prints the time (from starting the workers, and from the first to the last message at
   the sink), messages a second, duplicates at the sink (numbers recorded more than once:
   must be 0), lost (numbers never recorded, or messages not ``sent``: must be 0), how the
   in-doubt messages were settled, the references and the ratios, CPU seconds and the load.

Times are printed, never asserted. The machine is shared: read the load beside the figures.

Usage::

    .venv/bin/python bench/bench_outbox.py [--count 100000] [--database postgres|sqlite]
        [--in-flight 4] [--rate 0] [--redis] [--kill-at 0.5] [--via outbox|worker] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_SECONDS = 60.0
PARAMS = {"elder": "王奶奶", "what": "SOS", "time": "10:00", "phone": "110", "link": "x"}


def phone(i: int) -> str:
    return f"170{i:08d}"  # synthetic numbers only


def postgres_admin(url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(sql)


def scratch_database(kind: str, folder: Path) -> tuple[str, str | None]:
    """(DATABASE_URL, PostgreSQL database to drop at the end)."""
    if kind == "sqlite":
        return f"sqlite:///{folder / 'bench.sqlite3'}", None
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/tanfang")
    if not base.startswith("postgres"):
        raise SystemExit("--database postgres needs DATABASE_URL=postgres://... (or unset)")
    name = f"tanfang_bench_outbox_{uuid.uuid4().hex[:8]}"
    postgres_admin(base, f'CREATE DATABASE "{name}"')
    return f"{base.rsplit('/', 1)[0]}/{name}", name


def build_outbox(count: int) -> None:
    from django.core.management import call_command
    from django.utils import timezone

    from tanfang.core.crypto import encrypt
    from tanfang.notifications.models import Message, Notification

    call_command("migrate", verbosity=0)
    now = timezone.now()
    step = 10_000
    for start in range(0, count, step):
        rows = range(start, min(count, start + step))
        notifications = Notification.objects.bulk_create(
            Notification(
                key=f"bench-{i}",
                topic="emergency",
                template="emergency_family",
                params=PARAMS,
                text="紧急",
                recipient_kind="first_contact",
                delivery="fallback",
                channels=["sms"],
                urgent=True,
                created_at=now,
            )
            for i in rows
        )
        Message.objects.bulk_create(
            Message(
                notification=n,
                key=f"{n.key}:sms",
                channel="sms",
                address_cipher=encrypt(phone(i)),
                address_masked="170****",
                body="紧急",
                sms_template_code="SMS_TF_EMERGENCY_FAMILY",
                sms_params=PARAMS,
                urgent=True,
                next_attempt_at=now,
                created_at=now,
            )
            for i, n in zip(rows, notifications, strict=True)
        )


class Sink:
    """The SMS sink in its own process, recording to ``record``."""

    def __init__(self, record: Path, env: dict[str, str]) -> None:
        self.record = record
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tanfang.notifications.sinks.sms_server",
                "--record",
                f"{record}",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("TANFANG_SMS_ENDPOINT="):
            raise SystemExit(f"the SMS sink did not start: {line!r}")
        self.endpoint = line.split("=", 1)[1]

    def stats(self) -> dict[str, int]:
        with urllib.request.urlopen(f"http://{self.endpoint}/_sink/stats", timeout=10) as r:
            return dict(json.load(r))

    def stop(self) -> float:
        """Stop it; its CPU seconds (user + system, from /proc)."""
        cpu = cpu_of(self.proc.pid)
        self.proc.terminate()
        self.proc.wait(30)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return cpu


def cpu_of(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reference_sink(count: int, env: dict[str, str], folder: Path) -> tuple[float, int]:
    """Seconds for ``count / 100`` SendBatchSms of 100 numbers from one client, no database."""
    from tanfang.notifications.channels.base import Outgoing
    from tanfang.notifications.channels.sms_aliyun import AliyunSms

    sink = Sink(folder / "reference.jsonl", env)
    try:
        channel = AliyunSms(
            endpoint=sink.endpoint,
            protocol="http",
            access_key_id=env["TANFANG_SMS_ACCESS_KEY_ID"],
            access_key_secret=env["TANFANG_SMS_ACCESS_KEY_SECRET"],
            sign_name="探访",
            rate=0,
        )
        batches = [
            [
                Outgoing(
                    i, f"ref-{i}", phone(i), "紧急", True, "", "SMS_TF_EMERGENCY_FAMILY", PARAMS
                )
                for i in range(start, min(count, start + 100))
            ]
            for start in range(0, count, 100)
        ]
        began = time.perf_counter()
        for n, batch in enumerate(batches):
            results = channel.send(batch, batch_key=f"ref-{n}")
            assert all(r.outcome == "sent" for r in results), results[0]
        seconds = time.perf_counter() - began
        return seconds, sink.stats()["messages"]
    finally:
        sink.stop()


def reference_update() -> tuple[float, int]:
    """Seconds for one bare UPDATE of every message row (rolled back)."""
    from django.db import connection, transaction

    from tanfang.notifications.models import Message

    began = time.perf_counter()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"UPDATE {Message._meta.db_table} SET attempts = attempts + 1")
            rows = cursor.rowcount
        seconds = time.perf_counter() - began
        transaction.set_rollback(True)
    return seconds, rows


def recorded(record: Path) -> list[dict[str, Any]]:
    with record.open(encoding="utf-8") as stream:
        return [json.loads(line) for line in stream if line.endswith("}\n")]


def sent_count() -> int:
    from tanfang.notifications.models import Message

    return Message.objects.filter(state="sent").count()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--database", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--in-flight", type=int, default=0, help="batches at once per worker")
    parser.add_argument("--rate", type=int, default=0, help="SMS requests/s (0: no limit)")
    parser.add_argument("--redis", action="store_true", help="share the rate through Redis")
    parser.add_argument("--kill-at", type=float, default=0.5)
    parser.add_argument(
        "--via",
        choices=["outbox", "worker"],
        default="outbox",
        help="run the workers as `tanfang outbox` or as `tanfang worker --only outbox`",
    )
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="tanfang-bench-outbox-"))
    database_url, pg_name = scratch_database(args.database, folder)
    try:
        run(args, folder, database_url)
    finally:
        if pg_name is not None:
            from django.db import connections

            connections.close_all()
            postgres_admin(database_url, f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def run(args: argparse.Namespace, folder: Path, database_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(
        DJANGO_SETTINGS_MODULE="tanfang.settings",
        DATABASE_URL=database_url,
        TANFANG_DATA_DIR=str(folder / "var"),
        TANFANG_SECRET_KEY=env.get("TANFANG_SECRET_KEY", "bench-secret-key"),
        TANFANG_FIELD_KEYS=env.get(
            "TANFANG_FIELD_KEYS", "ZmDfcTF7_60GrrY167zsiPd67pEvs0aGOv2oasOM1Pg="
        ),
        TANFANG_BLIND_INDEX_KEY=env.get("TANFANG_BLIND_INDEX_KEY", "bench-blind-index-key"),
        TANFANG_SMS_ACCESS_KEY_ID="tanfang-demo-ak",
        TANFANG_SMS_ACCESS_KEY_SECRET="tanfang-demo-secret",  # the local sink's demo secret
        TANFANG_SMS_PROTOCOL="http",
        TANFANG_SMS_RATE=str(args.rate),
        TANFANG_REDIS_URL="redis://127.0.0.1:6379/0" if args.redis else "",
    )
    os.environ.update(env)
    import django

    django.setup()

    began = time.time()
    build_outbox(args.count)
    print(
        f"database {args.database}: {args.count:,} urgent SMS notifications written in "
        f"{time.time() - began:.1f} s (setup, not timed)"
    )
    ref_sink, ref_messages = reference_sink(args.count, env, folder)
    ref_update, ref_rows = reference_update()
    print(
        f"reference: bare sink {args.count // 100:,} SendBatchSms x 100 from one client, no "
        f"database: {ref_sink:.1f} s ({ref_messages / ref_sink:,.0f} messages/s); one bare "
        f"UPDATE of {ref_rows:,} rows: {ref_update:.2f} s"
    )

    record = folder / "sms.jsonl"
    sink = Sink(record, env)
    env["TANFANG_SMS_ENDPOINT"] = sink.endpoint
    load_before = os.getloadavg()
    logs = []

    def worker(name: str) -> subprocess.Popen[bytes]:
        if args.via == "worker":
            # The whole worker, outbox only: a restarted one has a new identity, so what the
            # killed one held is taken over when its lease (10 s here) runs out.
            cmd = [sys.executable, "-m", "tanfang.cli", "worker", "--only", "outbox"]
            cmd += ["--name", name]
            env["TANFANG_OUTBOX_LEASE_SECONDS"] = "10"
            if args.in_flight:
                env["TANFANG_OUTBOX_IN_FLIGHT"] = str(args.in_flight)
        else:
            cmd = [sys.executable, "-m", "tanfang.cli", "outbox", "--worker", name]
            cmd += ["--seconds", "900", "--lease", "10"]
            if args.in_flight:
                cmd += ["--in-flight", str(args.in_flight)]
        log = (folder / f"{name}.log").open("ab")
        logs.append(log)
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log)

    start = time.time()
    procs = [worker("bench-w1"), worker("bench-w2")]
    killed_cpu = 0.0
    kill_at = int(args.count * args.kill_at)
    seen_at_kill = 0
    try:
        while (seen_at_kill := sink.stats()["messages"]) < kill_at:
            if any(p.poll() is not None for p in procs):
                raise SystemExit("a worker ended early: see its log with --keep")
            time.sleep(0.05)
        killed_cpu = cpu_of(procs[0].pid)
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(30)
        killed_after = time.time() - start
        procs.append(worker("bench-w1"))
        deadline = time.time() + 600
        while (done := sent_count()) < args.count and time.time() < deadline:
            time.sleep(0.1)
        finished = time.time() - start
        cpus = [cpu_of(p.pid) for p in procs[1:]]
        load_during = os.getloadavg()
        for proc in procs[1:]:
            proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(60) for proc in procs[1:]]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
        for log in logs:
            log.close()
    stats = sink.stats()
    sink_cpu = sink.stop()

    rows = recorded(record)
    by_phone = Counter(r["phone"] for r in rows)
    expected = {phone(i) for i in range(args.count)}
    duplicates = sum(n - 1 for n in by_phone.values() if n > 1)
    lost = len(expected - set(by_phone)) + (args.count - done)
    stamps = sorted(r["time"] for r in rows)
    import datetime as dt

    first_at = dt.datetime.fromisoformat(stamps[0]).timestamp() - start
    spread = (
        dt.datetime.fromisoformat(stamps[-1]) - dt.datetime.fromisoformat(stamps[0])
    ).total_seconds()
    from django.db.models import Count

    from tanfang.notifications.models import MessageAttempt

    outcomes = dict(
        MessageAttempt.objects.values_list("outcome").annotate(n=Count("id")).order_by()
    )
    print(
        f"outbox: 2 workers as `tanfang {args.via}` (in flight per worker: "
        f"{args.in_flight or 'default'}, SMS rate "
        f"{args.rate or 'unlimited'}{' shared in Redis' if args.redis else ''}); worker 1 "
        f"SIGKILLed at {killed_after:.1f} s with {seen_at_kill:,} messages at the sink, "
        f"restarted at once; exit codes after SIGTERM {codes}"
    )
    print(
        f"  all {done:,} sent {finished:.1f} s after the workers started (target < "
        f"{TARGET_SECONDS:.0f} s: {finished / TARGET_SECONDS:.2f} of it): "
        f"{args.count / finished:,.0f} messages/s; the first reached the sink after "
        f"{first_at:.1f} s (process start), first to last at the sink {spread:.1f} s "
        f"({args.count / max(spread, 1e-9):,.0f}/s)"
    )
    print(
        f"  sink: {len(rows):,} messages recorded, {len(by_phone):,} numbers; duplicates="
        f"{duplicates} (sink's own count {stats['duplicates']}); lost={lost}; requests "
        f"{stats['requests']:,}, refused {stats['refused']}"
    )
    print(f"  attempts by outcome: {outcomes}")
    print(
        f"  ratios: outbox time / bare sink {finished / ref_sink:.2f}; outbox time / bare "
        f"UPDATE of every row {finished / max(ref_update, 1e-9):.1f}"
    )
    own = resource.getrusage(resource.RUSAGE_SELF)
    print(
        f"cpu seconds: workers {killed_cpu:.1f} (killed) + "
        f"{', '.join(f'{c:.1f}' for c in cpus)}, sink {sink_cpu:.1f}, this script "
        f"{own.ru_utime + own.ru_stime:.1f}; load average before {load_before[0]:.2f}, at "
        f"the end {load_during[0]:.2f} (2 cores, shared)"
    )
    if duplicates or lost:
        raise SystemExit("FAILED: duplicates or lost messages")


if __name__ == "__main__":
    main()
