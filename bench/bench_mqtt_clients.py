"""How the MQTT subscriber receives with paho-mqtt: the measurements behind
docs/monitoring-mqtt.md's choices.

One paced publisher process (paho-mqtt, QoS 1) sends ``--count`` small messages at
``--rate`` a second to the machine's Mosquitto; this process receives them in one of these
ways and prints, for each, messages received, the receiving rate, the CPU microseconds per
message (this process, all threads) and the messages handled at once (``receiver``: what one
read brought, spooled with one write):

- ``receiver``: the subscriber's own receiving code (``tanfang.monitoring.mqtt_receiver.Receiver``):
  paho's external-loop API, the messages of each read appended to the spool with one write,
  then their PUBACKs — what ``tanfang mqtt`` does;
- ``receiver-fsync``: the same with an fsync before the acknowledgements (``--fsync``);
- ``paho-per-message``: the plain way: ``loop_start``, every message appended to a spool
  file and flushed in ``on_message`` and acknowledged there;
- ``manual-311``: no spool, acknowledgements held until a batch is "ingested" once a
  second, MQTT 3.1.1: the broker then has at most ``max_inflight_messages`` (20)
  unacknowledged messages out to us;
- ``manual-v5``: the same with MQTT 5 and receive maximum 65535;
- ``manual-v5-stall``: the same, with one batch taking ``--stall`` seconds (a database that
  stops answering for a while: a restart, a lock, a checkpoint), with enough messages to
  outlast the window. The spool modes do not depend on how long ingestion takes: they
  acknowledge once the message is on disk.

Each line also counts the broker's "Outgoing messages are being dropped" warnings for the
mode's client (Mosquitto's log, when readable).

Usage::

    .venv/bin/python bench/bench_mqtt_clients.py [--rate 10000] [--count 60000]
        [--modes receiver,paho-per-message,...] [--stall 10]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

HOST, PORT = "127.0.0.1", 1883
BROKER_LOG = Path("/var/log/mosquitto/mosquitto.log")
MODES = [
    "receiver",
    "receiver-fsync",
    "paho-per-message",
    "manual-311",
    "manual-v5",
    "manual-v5-stall",
]
STALL_S = [10.0]
PAYLOAD = b'{"meter_id":"BM000123","ts":1714521600,"value":3.5}'


def publisher(topic: str, count: int, rate: float, start: float) -> None:
    from bench_mqtt import PacedPublisher

    pub = PacedPublisher(f"cmp-pub-{uuid.uuid4().hex[:6]}")
    sent = 0
    while time.time() < start:
        time.sleep(0.001)
    while pub.acked < count:
        due = min(count, int((time.time() - start) * rate) + 1)
        k = min(due - sent, pub.window - (sent - pub.acked))
        for _ in range(max(k, 0)):
            pub.publish(topic, PAYLOAD)
        sent += max(k, 0)
        pub.pump(0.002)
    pub.close()


class Meter:
    def __init__(self) -> None:
        self.got = 0
        self.reads = 0
        self.first = 0.0
        self.last = 0.0

    def seen(self, n: int) -> None:
        now = time.perf_counter()
        if not self.got:
            self.first = now
        self.got += n
        self.reads += 1
        self.last = now


def run_receiver(
    client_id: str, topic: str, meter: Meter, stop: Callable[[], bool], folder: Path, mode: str
) -> None:
    from tanfang.monitoring.mqtt import options_from
    from tanfang.monitoring.mqtt_receiver import Message, Options, Receiver, Tally
    from tanfang.monitoring.mqtt_spool import Spool

    spool = Spool(folder / mode, fsync=mode.endswith("-fsync"))
    spool.open()

    def handle(client: object, messages: list[Message]) -> None:
        spool.append([(m.received, m.topic, m.payload) for m in messages])
        for m in messages:
            client.ack(m.mid, m.qos)  # type: ignore[attr-defined]
        meter.seen(len(messages))

    options: Options = options_from(f"mqtt://{HOST}:{PORT}", client_id=client_id)
    stop_event = threading.Event()
    receiver = Receiver("readings", options, topic, handle, stop_event, Tally())
    receiver.start()
    while not stop():
        time.sleep(0.05)
    stop_event.set()
    receiver.join()
    spool.close()


def run_paho(
    client_id: str, topic: str, meter: Meter, stop: Callable[[], bool], folder: Path, mode: str
) -> None:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from tanfang.monitoring.mqtt_spool import encode

    v311 = mode == "manual-311"
    manual = mode.startswith("manual")
    stall = STALL_S[0] if mode.endswith("-stall") else 0.0
    version = MQTTProtocolVersion.MQTTv311 if v311 else MQTTProtocolVersion.MQTTv5
    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=version, manual_ack=True
    )
    props = None
    if not v311:
        props = Properties(PacketTypes.CONNECT)
        props.ReceiveMaximum = 65_535 if manual else 10_000
    spool = (folder / f"{mode}.wal").open("ab")
    held: list[int] = []
    lock = threading.Lock()

    def on_message(c: paho.Client, _u: object, m: paho.MQTTMessage) -> None:
        if manual:
            with lock:
                held.append(m.mid)
        else:
            spool.write(encode(time.time(), m.topic, bytes(m.payload)))
            spool.flush()
            c.ack(m.mid, m.qos)
        meter.seen(1)

    client.on_message = on_message
    client.connect(HOST, PORT, properties=props)
    client.subscribe(topic, qos=1)
    client.loop_start()
    last_flush = time.monotonic()
    while not stop():
        time.sleep(0.05)
        if manual and time.monotonic() - last_flush >= 1.0:
            if stall and meter.got and time.perf_counter() - meter.first > 2.0:
                end = time.monotonic() + stall  # what the window allows arrives, unacked
                while time.monotonic() < end and not stop():
                    time.sleep(0.05)
                stall = 0.0
            with lock:
                ids, held[:] = list(held), []
            for mid in ids:
                client.ack(mid, 1)
            last_flush = time.monotonic()
    client.loop_stop()
    client.disconnect()
    spool.close()


def measure(mode: str, rate: float, count: int, folder: Path) -> None:
    if mode.endswith("-stall"):
        count = max(count, int(rate * (STALL_S[0] + 5)))  # more than the window holds
    client_id = f"cmp-{mode}-{uuid.uuid4().hex[:6]}"
    log_offset = BROKER_LOG.stat().st_size if BROKER_LOG.exists() else 0
    topic = f"tfcmp/{uuid.uuid4().hex[:8]}/r"
    meter = Meter()
    start = time.time() + 1.0
    limit = start + count / rate + 10 + (STALL_S[0] if mode.endswith("-stall") else 0)
    proc = multiprocessing.Process(target=publisher, args=(topic, count, rate, start))

    def stop() -> bool:
        return meter.got >= count or time.time() > limit

    run = run_receiver if mode.startswith("receiver") else run_paho
    cpu0 = time.process_time()
    worker = threading.Thread(target=run, args=(client_id, topic, meter, stop, folder, mode))
    worker.start()
    time.sleep(0.5)
    proc.start()
    worker.join()
    cpu = time.process_time() - cpu0
    proc.terminate()
    proc.join()
    span = max(meter.last - meter.first, 1e-9)
    dropped = 0
    if BROKER_LOG.exists():
        with BROKER_LOG.open("rb") as stream:
            stream.seek(log_offset)
            dropped = sum(1 for line in stream if b"dropped" in line and client_id.encode() in line)
    print(
        f"{mode:18s} received {meter.got:>7,} of {count:,} in {span:5.1f} s: "
        f"{meter.got / span:>8,.0f}/s, {1e6 * cpu / max(meter.got, 1):5.1f} µs CPU a message; "
        f"{meter.got / max(meter.reads, 1):5.1f} a group; broker 'dropped' warnings: {dropped}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=10_000)
    parser.add_argument("--count", type=int, default=60_000)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--stall", type=float, default=10.0)
    args = parser.parse_args()
    STALL_S[0] = args.stall
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    print(f"load average {os.getloadavg()[0]:.2f} (2 cores, shared); {args.rate:,.0f}/s planned")
    with tempfile.TemporaryDirectory(prefix="tanfang-mqtt-cmp-") as tmp:
        for mode in args.modes.split(","):
            measure(mode, args.rate, args.count, Path(tmp))


if __name__ == "__main__":
    main()
