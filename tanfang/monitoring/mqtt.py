"""MQTT ingestion: meter readings and device events from the broker (``tanfang mqtt``).

Two connections (paho-mqtt, MQTT 5), each a thread with a persistent session
(docs/monitoring-mqtt.md):

- **readings** (``<prefix>/readings/<partner>``, one JSON reading or a list): the messages of
  each read are appended to the spool (``mqtt_spool``) with one write and only then
  acknowledged; a flushing thread
  closes the spool's segment every ``flush_interval`` seconds (or sooner when it grows past
  ``flush_bytes``) and hands it to ``ingest_frame``, one batch per partner and segment.
- **devices** (``<prefix>/devices/<partner>/<device>``): each event is stored through
  ``device_alert_raise`` at once (an SOS is an assigned alert within milliseconds) and
  acknowledged after the commit. A database failure leaves the message unacknowledged: the
  connection is dropped and the broker delivers it again when we are back.

Bad messages never stop the subscriber: they are counted by reason and logged (a few per
minute per reason); unreadable readings are quarantined through ``ingest_frame``. With
``share`` several processes split the load (``$share/<group>/...``), each with its own client
id and spool. ``Subscriber.stop`` (SIGTERM, SIGINT) stops receiving, ingests what is
spooled and disconnects, keeping the sessions.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import socket
import threading
import time
from collections import Counter
from pathlib import Path
from typing import IO

import paho.mqtt.client as paho
import polars as pl
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, connection

from tanfang.monitoring.ingest import batch_repeated, ingest_frame, partner_meters
from tanfang.monitoring.models import DataPartner, IngestSource
from tanfang.monitoring.mqtt_messages import (
    DeviceEventIn,
    device_event_read,
    device_message_store,
    segment_readings,
    topic_filter,
)
from tanfang.monitoring.mqtt_receiver import (
    Broker,
    Message,
    Options,
    Receiver,
    Tally,
)
from tanfang.monitoring.mqtt_spool import Spool, read_segment, segment_seq

logger = logging.getLogger("tanfang.monitoring.mqtt")

METERS_FRESH_S = 300.0  # a partner's meter list is reloaded at least this often ...
METERS_RECHECK_S = 1.0  # ... and when a batch names a meter not in it, if older than this
FLUSH_RETRY_MAX_S = 10.0  # between attempts to ingest while the database fails
# A message or segment that fails this many times with an error other than the database
# being unreachable is set aside (a "poison" message must not block the ones behind it).
POISON_ATTEMPTS = 3
UNREACHABLE = (OperationalError, InterfaceError)


def default_client_id() -> str:
    return f"tanfang-{socket.gethostname()}"[:60]


class StatsFile:
    """One JSON line per ingested batch (``--stats-file``): what the benchmark reads."""

    def __init__(self, path: Path | None) -> None:
        self._stream: IO[str] | None = path.open("a", encoding="utf-8") if path else None
        self._lock = threading.Lock()

    def write(self, **fields: object) -> None:
        if self._stream is None:
            return
        with self._lock:
            self._stream.write(json.dumps(fields) + "\n")
            self._stream.flush()

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()


# --------------------------------------------------------------------------- receiving


class MeterLookups:
    """Each partner's meter lookup for ``ingest_frame``, kept between batches; reloaded
    when old or when a batch names a meter it does not know (a meter just registered)."""

    def __init__(self) -> None:
        self._kept: dict[int, tuple[float, pl.DataFrame]] = {}

    def lookup(self, partner: DataPartner, meter_ids: pl.Series) -> pl.DataFrame:
        now = time.monotonic()
        kept = self._kept.get(partner.pk)
        if kept is not None:
            loaded, frame = kept
            age = now - loaded
            if age < METERS_FRESH_S and (
                age < METERS_RECHECK_S or meter_ids.is_in(frame["meter_id"]).all()
            ):
                return frame
        frame = partner_meters(partner)
        self._kept[partner.pk] = (now, frame)
        return frame


class Flusher(threading.Thread):
    """Closes the spool's segment every ``flush_interval`` and ingests the closed ones, in
    order; keeps them on disk and retries with back-off while the database fails."""

    def __init__(self, subscriber: Subscriber) -> None:
        super().__init__(name="mqtt-flush", daemon=True)
        self.sub = subscriber
        self.wake = threading.Event()
        self.finish = threading.Event()
        self.meters = MeterLookups()
        self.failures: Counter[str] = Counter()
        self.flushed = threading.Event()  # set after each successful flush (tests wait on it)

    def run(self) -> None:
        opts = self.sub.options
        backoff = opts.flush_interval
        last_log = time.monotonic()
        try:
            while True:
                finishing = self.finish.is_set()
                try:
                    self.flush()
                    backoff = opts.flush_interval
                except Exception:
                    logger.exception("MQTT readings: ingesting the spool failed, kept on disk")
                    connection.close()
                    backoff = min(backoff * 2, FLUSH_RETRY_MAX_S)
                if finishing:
                    break
                if time.monotonic() - last_log >= opts.log_every:
                    last_log = time.monotonic()
                    logger.info("MQTT counters: %s", self.sub.tally.snapshot())
                self.wake.wait(backoff)
                self.wake.clear()
        finally:
            connection.close()

    def flush(self) -> int:
        """Close the open segment and ingest every closed one; readings messages ingested.

        A segment that fails ``POISON_ATTEMPTS`` times while the database answers (a bug,
        not an outage) is moved to ``failed/`` with an error in the log, so that the
        segments behind it go on; moved back, ``tanfang mqtt --drain`` ingests it.
        """
        spool = self.sub.spool
        spool.rotate()
        done = 0
        for path in spool.pending():
            close_old_connections()
            try:
                done += self.ingest_segment(path)
            except UNREACHABLE:
                raise
            except Exception:
                self.failures[path.name] += 1
                if self.failures[path.name] < POISON_ATTEMPTS:
                    raise
                del self.failures[path.name]
                logger.exception("MQTT readings: %s set aside in failed/", path.name)
                spool.set_aside(path)
                self.sub.tally.add("readings.segments_failed")
                continue
            spool.remove(path)
        self.flushed.set()
        return done

    def ingest_segment(self, path: Path) -> int:
        sub = self.sub
        records, torn = read_segment(path)
        if torn:
            logger.warning(
                "MQTT spool %s: %d bytes after the last whole record skipped", path, torn
            )
        segment = f"{sub.options.client_id}/{segment_seq(path)}"
        groups, stray = segment_readings(
            segment,
            [(r.received, r.topic, r.payload) for r in records],
            prefix=sub.options.prefix,
        )
        # Counted once the whole segment is in: a segment retried is not counted twice.
        notes: list[tuple[str, str, int]] = []
        counts: Counter[str] = Counter()
        if stray:
            notes.append(("bad_topic", f"{stray} message(s) in {segment}", stray))
        partners = {
            p.code: p for p in DataPartner.objects.filter(code__in=list(groups), active=True)
        }
        for code, group in groups.items():
            partner = partners.get(code)
            if partner is None:
                detail = f"{group.messages} message(s) for partner {code!r}"
                notes.append(("unknown_partner", detail, group.messages))
                continue
            frame = group.frame()
            batch = ingest_frame(
                partner,
                frame,
                source=IngestSource.MQTT,
                name=f"mqtt {segment}",
                content_sha256=group.digest.hexdigest(),
                meters=self.meters.lookup(partner, frame["meter_id"]),
            )
            repeated = batch_repeated(batch)
            counts["readings.messages"] += group.messages
            if not repeated:
                counts["readings.stored"] += batch.stored
                counts["readings.duplicates"] += batch.duplicates
                counts["readings.quarantined"] += batch.quarantined
                if group.unreadable:
                    detail = f"{group.unreadable} unreadable reading(s) from {code!r}"
                    notes.append(("bad_json", detail + ", quarantined", group.unreadable))
            sub.stats.write(
                event="batch",
                batch=batch.pk,
                partner=code,
                segment=segment,
                messages=group.messages,
                rows=frame.height,
                stored=batch.stored,
                quarantined=batch.quarantined,
                repeated=repeated,
                first_received=group.first_received,
                last_received=group.last_received,
                done=time.time(),
            )
        for name, n in counts.items():
            sub.tally.add(name, n)
        for reason, detail, n in notes:
            sub.tally.reject("readings", reason, detail, n)
        return len(records)


# --------------------------------------------------------------------------- the subscriber


class Subscriber:
    """The readings and devices connections and the spool flusher of one process."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.tally = Tally()
        self.stats = StatsFile(options.stats_file)
        self.spool = Spool(options.spool_folder, fsync=options.fsync)
        self._stop = threading.Event()
        self.flusher = Flusher(self)
        self.receivers: list[Receiver] = []
        self._failures: Counter[str] = Counter()
        if options.readings:
            self.receivers.append(
                Receiver(
                    "readings",
                    options,
                    topic_filter(options.prefix, "readings", options.share),
                    self._readings_received,
                    self._stop,
                    self.tally,
                )
            )
        if options.devices:
            self.receivers.append(
                Receiver(
                    "devices",
                    options,
                    topic_filter(options.prefix, "devices", options.share),
                    self._device_received,
                    self._stop,
                    self.tally,
                )
            )

    def start(self) -> None:
        """Open the spool (segments of an earlier run are ingested first) and connect."""
        self.spool.open()
        self.flusher.start()
        for receiver in self.receivers:
            receiver.start()

    def stop(self) -> None:
        """Ask the threads to stop (safe from a signal handler); ``join`` waits for them."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def wait_connected(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        return all(r.connected.wait(max(0.0, deadline - time.monotonic())) for r in self.receivers)

    def join(self) -> dict[str, int]:
        """After ``stop``: let the connections end, ingest the spool, release it."""
        self._stop.set()
        for receiver in self.receivers:
            receiver.join()
        self.flusher.finish.set()
        self.flusher.wake.set()
        self.flusher.join()
        self.spool.close()
        self.stats.close()
        counts = self.tally.snapshot()
        logger.info("MQTT subscriber stopped: %s", counts)
        return counts

    def run(self) -> dict[str, int]:
        """Start and block until ``stop``; the counters."""
        self.start()
        while not self._stop.wait(1.0):
            pass
        return self.join()

    def drain(self) -> int:
        """Ingest what an earlier run left in the spool, without connecting."""
        self.spool.open()
        try:
            return self.flusher.flush()
        finally:
            self.spool.close()
            self.stats.close()

    # ----------------------------------------------------------------- handlers

    def _readings_received(self, client: paho.Client, messages: list[Message]) -> None:
        """The group in the spool with one write, then its acknowledgements."""
        self.spool.append([(m.received, m.topic, m.payload) for m in messages])
        for m in messages:
            if m.qos:
                client.ack(m.mid, m.qos)
        self.tally.add("readings.received", len(messages))
        if self.spool.bytes >= self.options.flush_bytes:
            self.flusher.wake.set()

    def _device_received(self, client: paho.Client, messages: list[Message]) -> None:
        """Each event stored and then acknowledged, in order; a database error propagates
        (the receiver reconnects and the unacknowledged rest comes again)."""
        for message in messages:
            received_at = dt.datetime.now(dt.UTC)
            self.tally.add("devices.received")
            event = device_event_read(
                self.options.prefix, message.topic, message.payload, received_at=received_at
            )
            if isinstance(event, str):
                excerpt = message.payload[:120].decode("utf-8", "replace")
                self.tally.reject("devices", event, f"{message.topic}: {excerpt}")
            else:
                close_old_connections()
                try:
                    outcome = device_message_store(event, received_at=received_at)
                except UNREACHABLE:
                    raise  # the database is away: reconnect, the broker sends it again
                except Exception as exc:
                    key = hashlib.sha256(message.topic.encode() + message.payload).hexdigest()
                    self._failures[key] += 1
                    if self._failures[key] < POISON_ATTEMPTS:
                        raise
                    del self._failures[key]
                    self._dead_letter(message, exc)
                    outcome = "failed"
                self._device_outcome(message, event, outcome)
            if message.qos:
                client.ack(message.mid, message.qos)

    def _device_outcome(self, message: Message, event: DeviceEventIn, outcome: str) -> None:
        outcome, _plus, conflict = outcome.partition("+")
        if outcome == "unknown_device":
            self.tally.reject("devices", outcome, message.topic)
        elif outcome != "failed":
            self.tally.add(f"devices.{outcome}")
            if outcome == "alert_raised":
                logger.info("MQTT %s alarm from %s stored", event.kind, event.device_id)
        if conflict:
            self.tally.note(
                "devices.id_conflict",
                f"{message.topic}: message_id {event.message_id!r} is another device's",
            )

    def _dead_letter(self, message: Message, exc: Exception) -> None:
        """A device message that cannot be stored (not for want of a database): kept in
        ``dead-letter.jsonl`` beside the spool, logged as an error, and acknowledged."""
        logger.error(
            "MQTT device message on %s failed %d times, kept in dead-letter.jsonl: %r",
            message.topic,
            POISON_ATTEMPTS,
            exc,
        )
        self.tally.add("devices.failed")
        line = {
            "at": dt.datetime.now(dt.UTC).isoformat(),
            "topic": message.topic,
            "payload": message.payload.decode("utf-8", "replace"),
            "error": repr(exc)[:500],
        }
        with (self.spool.folder / "dead-letter.jsonl").open("a", encoding="utf-8") as stream:
            stream.write(json.dumps(line, ensure_ascii=False) + "\n")


def options_from(broker_url: str | None = None, **kw: object) -> Options:
    """``Options`` with the broker of ``settings.MQTT_URL`` unless given."""
    broker = Broker.parse(broker_url or settings.MQTT_URL)
    kw.setdefault("client_id", default_client_id())
    return Options(broker=broker, **kw)  # type: ignore[arg-type]


def shutdown_on_signals(subscriber: Subscriber) -> None:
    """SIGTERM and SIGINT stop the subscriber cleanly (main thread only)."""
    import signal

    def stop(signum: int, _frame: object) -> None:
        logger.info("MQTT subscriber: signal %d, stopping", signum)
        subscriber.stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(ValueError):
            signal.signal(sig, stop)
