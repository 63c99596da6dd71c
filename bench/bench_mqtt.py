"""MQTT ingestion under load: readings at 10,000 messages a second, SOS alarms on the side.

The issue's figures: 10,000 messages per second sustained for a minute at QoS 1 with no
message lost; from an SOS message to a stored, assigned alert p95 under 2 s. This script:

1. builds a scratch database (a SQLite file, or with ``--database postgres`` a PostgreSQL
   database created next to ``DATABASE_URL``'s and dropped at the end), a temporary
   ``MONITORING_DIR``, a partner with ``--meters`` water meters, and five elders each with a
   visitor and an SOS button;
2. starts ``--subscribers`` ``tanfang mqtt`` processes (with two or more: a shared
   subscription) on the machine's Mosquitto, each writing one JSON line per batch;
3. starts ``--publishers`` publisher processes that together send ``--rate`` readings a
   second for ``--seconds`` at QoS 1 (each reading its own message, paced every 10 ms, at
   most the broker's receive maximum unacknowledged), and meanwhile publishes ``--sos`` SOS
   messages spread over the run from this process (paho-mqtt) and watches the database for
   their alerts;
4. waits until every acknowledged reading is in the store (or nothing moved for 30 s), stops
   the subscribers with SIGTERM, and prints: messages acknowledged by the broker and the
   achieved rate (overall and per second: min, median), readings stored, ``lost`` (acked
   but not stored), ingest lag p50/p95/max (from the publisher's send to the commit of the
   batch holding the reading), SOS to alert p50/p95/max (to the alert's ``created_at`` and
   to when another connection saw it), the CPU seconds of each part, the load average, and
   the broker's "messages dropped" warnings for our clients.

Times are printed, never asserted. The machine is shared: read the load beside the figures.

Usage::

    .venv/bin/python bench/bench_mqtt.py [--seconds 60] [--rate 10000] [--publishers 2]
        [--subscribers 1] [--meters 10000] [--sos 30] [--database sqlite|postgres] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HOST, PORT = "127.0.0.1", 1883
BROKER_LOG = Path("/var/log/mosquitto/mosquitto.log")
BROKER_PID = Path("/run/mosquitto/mosquitto.pid")
PREFIX_ROOT = "tfbench"
ELDERS = 5


def pct(values: np.ndarray | list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else float("nan")


def cpu_of(pid: int) -> float:
    """CPU seconds (user + system) of a running process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- publisher role


class PacedPublisher:
    """A paho-mqtt publisher (MQTT 5, QoS 1) that keeps at most the broker's receive maximum
    (Mosquitto's ``max_inflight_messages``, 20 by default) unacknowledged: more would be a
    protocol error. paho is driven through its external-loop API (one thread, no locks)."""

    def __init__(self, client_id: str) -> None:
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
        )
        self.window = 0
        self.acked = self.refused = 0
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        # With these set, paho queues what it sends and ``pump`` writes it.
        self.client.on_socket_register_write = lambda *_a: None
        self.client.on_socket_unregister_write = lambda *_a: None
        # paho's own limit cannot change once connected; ``window`` (from CONNACK) is kept
        # by the caller instead.
        self.client.max_inflight_messages_set(0)
        self.client.connect(HOST, PORT, keepalive=60)
        deadline = time.time() + 10
        while not self.window:
            if time.time() > deadline:
                raise SystemExit("publisher: no CONNACK")
            self.pump(0.05)

    def _on_connect(
        self, _c: object, _u: object, _f: object, reason: object, props: object
    ) -> None:
        if getattr(reason, "is_failure", False):
            raise SystemExit(f"publisher refused: {reason}")
        self.window = int(getattr(props, "ReceiveMaximum", 65_535))

    def _on_publish(self, _c: object, _u: object, _mid: int, reason: object, _p: object) -> None:
        self.acked += 1
        self.refused += bool(getattr(reason, "is_failure", False))

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1)

    def pump(self, timeout: float) -> None:
        """Write what is queued; read what arrives within ``timeout``; keep-alive."""
        import select

        client = self.client
        if client.want_write():
            client.loop_write()
        sock = client.socket()
        if sock is None:
            raise SystemExit("publisher: connection lost")
        readable, _w, _x = select.select([sock], [], [], timeout)
        while readable:
            before = self.acked
            client.loop_read()  # paho reads a packet per call: read while PUBACKs come
            if self.acked == before or client.socket() is None:
                break
        client.loop_misc()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_write()


def publish(args: argparse.Namespace) -> None:
    """One publisher process: ``rate`` messages a second for ``seconds`` from ``start``."""
    pub = PacedPublisher(f"{args.run}-pub-{args.index}")
    window = pub.window
    n = int(args.rate * args.seconds)
    per = args.meters_per
    first_meter = args.index * per
    topic = f"{PREFIX_ROOT}/{args.run}/v1/readings/bench-water"
    times = np.zeros(n)
    sent = 0
    behind = 0.0
    cpu0 = time.process_time()
    while time.time() < args.start:
        time.sleep(0.001)
    while pub.acked < n:
        now = time.time()
        due = min(n, int((now - args.start) * args.rate) + 1)
        k = min(due - sent, window - (sent - pub.acked))
        if k > 0:
            for i in range(sent, sent + k):
                meter = first_meter + i % per
                ts = args.t0 + 900 * (i // per)
                body = f'{{"meter_id":"BM{meter:06d}","ts":{ts},"value":{1 + i % 17}.5}}'
                pub.publish(topic, body.encode())
            pub.client.loop_write()
            times[sent : sent + k] = time.time()
            sent += k
            behind = max(behind, now - (args.start + (sent - 1) / args.rate))
        pub.pump(0.002)
    pub.close()
    np.save(Path(args.out) / f"pub-{args.index}.npy", times)
    result = {
        "sent": sent,
        "acked": pub.acked,
        "refused": pub.refused,
        "cpu": time.process_time() - cpu0,
        "window": window,
        "max_behind_s": behind,
    }
    (Path(args.out) / f"pub-{args.index}.json").write_text(json.dumps(result))


# --------------------------------------------------------------------------- setup


def scratch_database(kind: str, folder: Path) -> tuple[str, str | None]:
    """(DATABASE_URL, PostgreSQL database to drop at the end)."""
    if kind == "sqlite":
        return f"sqlite:///{folder / 'bench.sqlite3'}", None
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/tanfang")
    if not base.startswith("postgres"):
        raise SystemExit("--database postgres needs DATABASE_URL=postgres://... (or unset)")
    name = f"tanfang_bench_mqtt_{uuid.uuid4().hex[:8]}"
    postgres_admin(base, f'CREATE DATABASE "{name}"')
    return f"{base.rsplit('/', 1)[0]}/{name}", name


def postgres_admin(url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(sql)


def build_world(meters: int) -> list[str]:
    """Partner, meters, elders with visitors and SOS buttons; the devices' ids."""
    from django.core.management import call_command

    from tanfang.monitoring.models import DataPartner, Device, Meter
    from tests.factories import assigned_visitor, make_tree

    call_command("migrate", verbosity=0)
    partner = DataPartner.objects.create(code="bench-water", name="bench", kind="water_utility")
    Meter.objects.bulk_create(
        Meter(
            meter_id=f"BM{i:06d}",
            partner=partner,
            utility="water",
            register="interval",
            unit="L",
            interval_minutes=15,
        )
        for i in range(meters)
    )
    tree = make_tree()
    devices = []
    for i in range(ELDERS):
        _visitor, elder = assigned_visitor(tree.communities[i % len(tree.communities)])
        device = Device.objects.create(
            device_id=f"BSOS-{i}", partner=partner, elder=elder, kind="sos"
        )
        devices.append(device.device_id)
    return devices


# --------------------------------------------------------------------------- SOS


class SosWatch:
    """Publishes SOS messages at planned moments and notes when another connection first
    sees each alert (polling every 100 ms)."""

    def __init__(self, run: str, devices: list[str], count: int, start: float, seconds: float):
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"{run}-sos",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self.client.connect(HOST, PORT)
        self.client.loop_start()
        self.run_id = run
        self.devices = devices
        self.plan = [start + (i + 0.5) * seconds / max(count, 1) for i in range(count)]
        self.sent: dict[str, float] = {}
        self.seen: dict[str, float] = {}
        self.stop = threading.Event()
        self.publisher = threading.Thread(target=self._publish, daemon=True)
        self.watcher = threading.Thread(target=self._watch, daemon=True)

    def start(self) -> None:
        self.publisher.start()
        self.watcher.start()

    def _publish(self) -> None:
        for i, at in enumerate(self.plan):
            while time.time() < at:
                if self.stop.wait(min(0.01, max(0.0, at - time.time()))):
                    return
            device = self.devices[i % len(self.devices)]
            message_id = f"{self.run_id}-sos-{i}"
            payload = {"kind": "sos", "ts": int(time.time()), "message_id": message_id}
            self.sent[message_id] = time.time()
            self.client.publish(
                f"{PREFIX_ROOT}/{self.run_id}/v1/devices/bench-water/{device}",
                json.dumps(payload),
                qos=1,
            )

    def _watch(self) -> None:
        from django.db import connection

        from tanfang.monitoring.models import Alert

        try:
            while not self.stop.wait(0.1):
                now = time.time()
                for evidence in Alert.objects.filter(rule="device_sos").values_list(
                    "evidence", flat=True
                ):
                    message_id = str((evidence or {}).get("message_id", ""))
                    self.seen.setdefault(message_id, now)
        finally:
            connection.close()

    def finish(self, timeout: float = 10.0) -> None:
        self.publisher.join()
        deadline = time.time() + timeout
        while len(self.seen) < len(self.sent) and time.time() < deadline:
            time.sleep(0.1)
        self.stop.set()
        self.watcher.join()
        self.client.loop_stop()
        self.client.disconnect()

    def lags(self) -> tuple[list[float], list[float], int]:
        """Seconds to ``created_at``, seconds until seen, and how many have an assignee."""
        from tanfang.monitoring.models import Alert

        created, assigned = {}, 0
        for evidence, at, assignee in Alert.objects.filter(rule="device_sos").values_list(
            "evidence", "created_at", "assigned_to"
        ):
            created[str(evidence.get("message_id"))] = at.timestamp()
            assigned += assignee is not None
        to_created = [created[m] - t for m, t in self.sent.items() if m in created]
        to_seen = [self.seen[m] - t for m, t in self.sent.items() if m in self.seen]
        return to_created, to_seen, assigned


# --------------------------------------------------------------------------- the run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=10_000.0)
    parser.add_argument("--publishers", type=int, default=2)
    parser.add_argument("--subscribers", type=int, default=1)
    parser.add_argument("--meters", type=int, default=10_000)
    parser.add_argument("--sos", type=int, default=30)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--flush-interval", default="1")
    parser.add_argument("--fsync", action="store_true", help="the subscribers' --fsync")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    # The publisher role (started by the run itself).
    parser.add_argument("--role", default="run", help=argparse.SUPPRESS)
    for name in ("--index", "--meters-per", "--t0"):
        parser.add_argument(name, type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--start", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--run", default="", help=argparse.SUPPRESS)
    parser.add_argument("--out", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "publish":
        publish(args)
        return
    if args.meters % args.publishers:
        raise SystemExit("--meters must be a multiple of --publishers")
    folder = Path(tempfile.mkdtemp(prefix="tanfang-bench-mqtt-"))
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
    run_id = f"b{uuid.uuid4().hex[:8]}"
    monitoring = folder / "monitoring"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(
        DJANGO_SETTINGS_MODULE="tanfang.settings",
        DATABASE_URL=database_url,
        TANFANG_DATA_DIR=str(folder / "var"),
        TANFANG_MONITORING_DIR=str(monitoring),
        TANFANG_SECRET_KEY=env.get("TANFANG_SECRET_KEY", "bench-secret-key"),
        TANFANG_FIELD_KEYS=env.get(
            "TANFANG_FIELD_KEYS", "ZmDfcTF7_60GrrY167zsiPd67pEvs0aGOv2oasOM1Pg="
        ),
        TANFANG_BLIND_INDEX_KEY=env.get("TANFANG_BLIND_INDEX_KEY", "bench-blind-index-key"),
    )
    os.environ.update(env)
    import django

    django.setup()
    from tanfang.monitoring import store
    from tanfang.monitoring.models import IngestBatch

    began = time.time()
    devices = build_world(args.meters)
    print(
        f"database {args.database}, {args.meters:,} meters, {ELDERS} elders with SOS buttons: "
        f"set up in {time.time() - began:.1f} s"
    )
    broker_pid = int(BROKER_PID.read_text().strip()) if BROKER_PID.exists() else 0
    log_offset = BROKER_LOG.stat().st_size if BROKER_LOG.exists() else 0

    subscribers = []
    for i in range(args.subscribers):
        cmd = [
            sys.executable,
            "-m",
            "tanfang.cli",
            "mqtt",
            "--prefix",
            f"{PREFIX_ROOT}/{run_id}/v1",
        ]
        cmd += ["--client-id", f"{run_id}-sub-{i}", "--session-expiry", "300"]
        cmd += ["--flush-interval", args.flush_interval, "--log-every", "10"]
        cmd += ["--stats-file", str(folder / f"stats-{i}.jsonl")]
        if args.subscribers > 1:
            cmd += ["--share", "bench"]
        if args.fsync:
            cmd += ["--fsync"]
        log = (folder / f"sub-{i}.log").open("wb")
        subscribers.append((subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log), log))
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            logs = [
                (folder / f"sub-{i}.log").read_text(errors="replace")
                for i in range(args.subscribers)
            ]
            if all(t.count(" connected as ") >= 2 for t in logs):
                break
            time.sleep(0.2)
        else:
            raise SystemExit("the subscribers did not connect:\n" + "\n".join(logs))

        per = args.meters // args.publishers
        rate_each = args.rate / args.publishers
        total = int(rate_each * args.seconds) * args.publishers
        slots = -(-int(rate_each * args.seconds) // per)
        t0 = (int(time.time()) // 900 - slots - 96) * 900  # every reading in the past
        start = time.time() + 1.5
        load_before = os.getloadavg()
        sub_cpu0 = [cpu_of(p.pid) for p, _log in subscribers]
        broker_cpu0 = cpu_of(broker_pid) if broker_pid else float("nan")
        publishers = [
            subprocess.Popen(
                [sys.executable, __file__, "--role", "publish", "--index", str(i),
                 "--rate", str(rate_each), "--seconds", str(args.seconds),
                 "--meters-per", str(per), "--t0", str(t0),
                 "--start", str(start), "--run", run_id, "--out", str(folder)],
                cwd=ROOT, env=env,
            )
            for i in range(args.publishers)
        ]  # fmt: skip
        sos = SosWatch(run_id, devices, args.sos, start, args.seconds)
        sos.start()
        for proc in publishers:
            proc.wait()
        published_at = time.time()
        load_during = os.getloadavg()
        sos.finish()

        pubs = [json.loads((folder / f"pub-{i}.json").read_text()) for i in range(args.publishers)]
        acked = sum(p["acked"] for p in pubs)
        meter_ids = [f"BM{i:06d}" for i in range(args.meters)]

        def count() -> int:
            return int(store.readings_scan(meter_ids=meter_ids).select("ts").collect().height)

        stored, last_change, previous = 0, time.time(), -1
        while stored < acked and time.time() - last_change < 30:
            time.sleep(1.0)
            stored = count()
            if stored != previous:
                previous, last_change = stored, time.time()
        drained_at = time.time()
        sub_cpu = [cpu_of(p.pid) - c for (p, _log), c in zip(subscribers, sub_cpu0, strict=True)]
        broker_cpu = cpu_of(broker_pid) - broker_cpu0 if broker_pid else float("nan")
        for proc, _log in subscribers:
            proc.send_signal(signal.SIGTERM)
    except BaseException:
        for proc, _log in subscribers:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
        raise
    codes = [proc.wait(60) for proc, _log in subscribers]
    for _proc, log in subscribers:
        log.close()

    # Ingest lag: the commit of the batch holding a reading minus the send of its message.
    done: dict[int, float] = {}
    for i in range(args.subscribers):
        for line in (folder / f"stats-{i}.jsonl").read_text().splitlines():
            entry = json.loads(line)
            done[int(entry["batch"])] = float(entry["done"])
    import polars as pl

    frame = store.readings_scan(meter_ids=meter_ids).collect()
    sent_times = [np.load(folder / f"pub-{i}.npy") for i in range(args.publishers)]
    meter = frame["meter_id"].str.slice(2).cast(pl.Int64).to_numpy()
    slot = ((frame["ts"] - t0) // 900).to_numpy()
    owner = meter // per
    index = slot * per + (meter - owner * per)
    sent_at = np.concatenate(sent_times)[owner * len(sent_times[0]) + index]
    batch_done = np.array([done.get(int(b), np.nan) for b in frame["batch"].to_list()])
    lag = batch_done - sent_at
    per_second = np.bincount((np.concatenate(sent_times) - start).astype(int).clip(0))
    full = per_second[: int(args.seconds)]
    ingested = np.bincount((batch_done[~np.isnan(batch_done)] - start).astype(int).clip(0))
    batches = IngestBatch.objects.filter(source="mqtt")
    quarantined = sum(b.quarantined for b in batches)
    to_created, to_seen, assigned = sos.lags()
    last_sent = max(float(t.max()) for t in sent_times)
    dropped = 0
    if BROKER_LOG.exists():
        with BROKER_LOG.open("rb") as stream:
            stream.seek(log_offset)
            dropped = sum(1 for line in stream if b"dropped" in line and run_id.encode() in line)

    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(
        f"load average before {load_before[0]:.2f}, at the end of publishing "
        f"{load_during[0]:.2f} (2 cores, shared); uptime at the end: {uptime}"
    )
    print(
        f"readings: {args.publishers} publisher(s), {args.subscribers} subscriber(s)"
        f"{' (shared subscription)' if args.subscribers > 1 else ''}, QoS 1, "
        f"{args.seconds:.0f} s at {args.rate:,.0f}/s planned"
    )
    print(
        f"  acknowledged by the broker {acked:,} of {total:,} "
        f"({sum(p['refused'] for p in pubs)} refused); achieved "
        f"{acked / (last_sent - start):,.0f}/s overall; per second min {full.min():,} "
        f"median {int(np.median(full)):,} max {full.max():,} "
        f"(publishers at most {max(p['max_behind_s'] for p in pubs):.2f} s behind schedule)"
    )
    print(
        f"  stored {frame.height:,} distinct readings; lost={acked - frame.height} "
        f"(quarantined {quarantined}); drained {drained_at - published_at:.1f} s after the last "
        f"send; ingested per second median {int(np.median(ingested[1 : int(args.seconds)])):,}"
    )
    print(
        f"  ingest lag (send -> batch committed): p50 {pct(lag, 50):.2f} s, p95 {pct(lag, 95):.2f}"
        f" s, max {np.nanmax(lag):.2f} s; {len(done)} batches"
    )
    print(
        f"sos: {len(sos.sent)} sent, {len(to_created)} alerts stored, {assigned} assigned; "
        f"to created_at p50 {pct(to_created, 50):.3f} s p95 {pct(to_created, 95):.3f} s max "
        f"{max(to_created, default=float('nan')):.3f} s (target p95 < 2 s: "
        f"{pct(to_created, 95) / 2:.2f} of it); seen by another connection p95 "
        f"{pct(to_seen, 95):.3f} s (polling every 0.1 s)"
    )
    pub_cpu = sum(p["cpu"] for p in pubs)
    print(
        f"cpu seconds: subscribers {', '.join(f'{c:.1f}' for c in sub_cpu)} "
        f"({1e6 * sum(sub_cpu) / max(acked, 1):.0f} µs a message), publishers {pub_cpu:.1f}, "
        f"broker {broker_cpu:.1f}; subscriber exit codes {codes}; broker drop warnings {dropped}"
    )
    print("subscriber counters: " + " | ".join(
        (folder / f"sub-{i}.log").read_text(errors="replace").strip().splitlines()[-1]
        for i in range(args.subscribers)
    ))  # fmt: skip


if __name__ == "__main__":
    main()
