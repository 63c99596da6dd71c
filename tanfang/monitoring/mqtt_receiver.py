"""The MQTT connection of ``tanfang mqtt`` (paho-mqtt, MQTT 5, manual acknowledgements):
the broker's address, the subscriber's options, shared counters and the receiving thread.
What is done with the messages is in ``mqtt.py``; why it is done so in docs/monitoring-mqtt.md.
"""

from __future__ import annotations

import contextlib
import logging
import select
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
from django.conf import settings
from django.db import connection
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from tanfang.monitoring.mqtt_messages import (
    DEFAULT_PREFIX,
)

logger = logging.getLogger("tanfang.monitoring.mqtt")


WEEK_S = 7 * 86_400
BACKOFF_MAX_S = 30.0  # between connection attempts
CONNECT_TIMEOUT_S = 10.0  # from the TCP connection to the SUBACK
POLL_S = 0.5  # the receiving loop looks at the stop flag and the keep-alive this often
GROUP_MAX = 2_000  # messages read before they are handed on (spooled and acknowledged)
MAX_RECEIVE_MAXIMUM = 65_535
MAX_SESSION_EXPIRY = 0xFFFF_FFFF


@dataclass(frozen=True)
class Broker:
    host: str
    port: int = 1883
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> Broker:
        """``mqtt://[user[:password]@]host[:port]`` (TLS is not set up here)."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "mqtt" or not parts.hostname:
            raise ValueError(f"not an mqtt://host[:port] URL: {url!r}")
        return cls(
            host=parts.hostname,
            port=parts.port or 1883,
            username=urllib.parse.unquote(parts.username) if parts.username else None,
            password=urllib.parse.unquote(parts.password) if parts.password else None,
        )


@dataclass(frozen=True, slots=True)
class Message:
    """A PUBLISH received (``mid`` is the broker's packet id, 0 at QoS 0)."""

    topic: str
    payload: bytes
    qos: int
    mid: int
    received: float


@dataclass(frozen=True)
class Options:
    """How ``tanfang mqtt`` subscribes (its options, docs/monitoring-mqtt.md)."""

    broker: Broker
    client_id: str
    prefix: str = DEFAULT_PREFIX
    share: str = ""
    readings: bool = True
    devices: bool = True
    flush_interval: float = 1.0
    flush_bytes: int = 8 * 1024 * 1024
    receive_maximum: int = 10_000
    session_expiry: int = WEEK_S
    keepalive: int = 30
    fsync: bool = False
    spool_dir: Path | None = None
    stats_file: Path | None = None
    log_every: float = 60.0

    @property
    def spool_folder(self) -> Path:
        return self.spool_dir or Path(settings.MONITORING_DIR) / "spool" / self.client_id


class Tally:
    """Counters shared by the threads, and warnings about bad messages, a few per minute
    per reason (the counters have them all)."""

    WARNINGS_PER_MINUTE = 5

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self._warned: Counter[str] = Counter()
        self._window = time.monotonic()

    def add(self, name: str, n: int = 1) -> None:
        if n:
            with self._lock:
                self.counts[name] += n

    def reject(self, what: str, reason: str, detail: str, n: int = 1) -> None:
        self.note(f"{what}.rejected.{reason}", detail, n)

    def note(self, key: str, detail: str, n: int = 1) -> None:
        """Count ``key`` and log a warning, unless this key already had its few this minute."""
        with self._lock:
            self.counts[key] += n
            now = time.monotonic()
            if now - self._window > 60:
                self._warned.clear()
                self._window = now
            self._warned[key] += 1
            loud = self._warned[key] <= self.WARNINGS_PER_MINUTE
        if loud:
            logger.warning("MQTT %s: %s", key, detail)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self.counts.items()))


def _nothing(*_args: object) -> None:
    """paho's ``on_socket_(un)register_write``: with a callback set, paho queues what it
    sends (PUBACKs, pings) instead of writing it at once; the receiving loop writes."""


class Receiver(threading.Thread):
    """One MQTT connection (paho-mqtt, MQTT 5, manual acknowledgements): connect, subscribe,
    hand the messages of every read to ``handle`` (which acknowledges what it made safe with
    ``client.ack``), reconnect with back-off when anything fails.

    paho is driven through its external-loop API (``socket``, ``loop_read``, ``loop_write``,
    ``loop_misc``) rather than ``loop_forever``: the loop reads everything the socket has (up
    to ``GROUP_MAX`` messages; ``on_message`` only collects them), hands the group to
    ``handle`` — for readings one spool write — and then writes the group's PUBACKs. Only
    this thread touches its client.
    """

    def __init__(
        self,
        name: str,
        options: Options,
        topic: str,
        handle: Callable[[paho.Client, list[Message]], None],
        stop: threading.Event,
        tally: Tally,
    ) -> None:
        super().__init__(name=f"mqtt-{name}", daemon=True)
        self.kind = name
        self.options = options
        self.topic = topic
        self.handle = handle
        self.stop_event = stop
        self.tally = tally
        self.connected = threading.Event()
        self.client_id = f"{options.client_id}.{name}"
        self._inbox: list[Message] = []
        self._refused = ""  # why the broker refused the connection or the subscription
        self._session_present = False
        self._subscribed = False  # in this connection (``connected`` ends with it)
        self._leaving = False  # we are disconnecting: no warning for it

    def run(self) -> None:
        client = self._client()
        backoff = 0.5
        try:
            while not self.stop_event.is_set():
                if self._session(client):
                    backoff = 0.5
                if self.stop_event.wait(backoff):
                    break
                backoff = min(backoff * 2, BACKOFF_MAX_S)
        finally:
            connection.close()

    def _client(self) -> paho.Client:
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=True,
        )
        broker = self.options.broker
        if broker.username is not None:
            client.username_pw_set(broker.username, broker.password)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_disconnect = self._on_disconnect
        client.on_socket_register_write = _nothing
        client.on_socket_unregister_write = _nothing
        return client

    def _connect_properties(self) -> Properties:
        props = Properties(PacketTypes.CONNECT)
        if self.options.session_expiry:
            props.SessionExpiryInterval = min(self.options.session_expiry, MAX_SESSION_EXPIRY)
        # Always sent: Mosquitto 2.0 takes an absent receive maximum to mean its own
        # max_inflight_messages (20), not the protocol's default of 65535.
        props.ReceiveMaximum = self.options.receive_maximum
        return props

    def _session(self, client: paho.Client) -> bool:
        """One connection's life; True when it was established and nothing failed (a
        failure backs off as a refused connection does: a database outage is not retried
        twice a second)."""
        opts = self.options
        self._inbox.clear()
        self._refused = ""
        self._subscribed = False
        self._leaving = False
        failed = False
        try:
            client.connect(
                opts.broker.host,
                opts.broker.port,
                keepalive=opts.keepalive,
                clean_start=False,
                properties=self._connect_properties(),
            )
            deadline = time.monotonic() + CONNECT_TIMEOUT_S
            while not self.stop_event.is_set():
                sock = client.socket()
                if sock is None or self._refused:
                    break
                if not self.connected.is_set() and time.monotonic() > deadline:
                    logger.warning("MQTT %s connection: no answer from the broker", self.kind)
                    break
                wanted = [sock] if client.want_write() else []
                readable, _writable, _x = select.select([sock], wanted, [], POLL_S)
                if readable and not self._read(client):
                    break
                if self._inbox:
                    messages, self._inbox = self._inbox, []
                    self.handle(client, messages)
                if client.want_write() and client.loop_write() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    break
                if client.loop_misc() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    break
        except OSError as exc:
            logger.warning("MQTT %s connection: %s", self.kind, exc)
        except Exception:
            # Nothing unacknowledged is lost: the broker sends it again at the next connect.
            logger.exception("MQTT %s: handling failed, reconnecting", self.kind)
            connection.close()
            failed = True
        established = self._subscribed and not failed
        self.connected.clear()
        self._inbox.clear()
        self._close(client)
        return established

    def _read(self, client: paho.Client) -> bool:
        """Read what the socket has, a packet per ``loop_read`` (paho's), until it has no
        more messages or ``GROUP_MAX`` are waiting; False when the connection ended."""
        for _i in range(GROUP_MAX):
            waiting = len(self._inbox)
            if client.loop_read() != MQTTErrorCode.MQTT_ERR_SUCCESS or client.socket() is None:
                return False
            if len(self._inbox) == waiting:
                break  # nothing more to read now (or a control packet: back to select)
        return True

    def _close(self, client: paho.Client) -> None:
        """DISCONNECT (normal: the broker keeps the session for ``session_expiry``), after
        the acknowledgements still queued, and close."""
        if client.socket() is None:
            return
        self._leaving = True
        with contextlib.suppress(OSError):
            client.disconnect()
            deadline = time.monotonic() + 2.0
            while client.socket() is not None and client.want_write():
                if client.loop_write() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    break
                if time.monotonic() > deadline:
                    break
                time.sleep(0.01)
        sock = client.socket()
        if sock is not None:  # the DISCONNECT could not be written: close all the same
            with contextlib.suppress(OSError):
                sock.close()

    # ----------------------------------------------------------------- paho's callbacks

    def _on_connect(
        self,
        client: paho.Client,
        _userdata: object,
        flags: paho.ConnectFlags,
        reason: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            self._refused = f"the broker refused the connection: {reason}"
            logger.warning("MQTT %s connection: %s", self.kind, self._refused)
            return
        self._session_present = flags.session_present
        # Retain handling 2: no retained messages at subscription (a stale retained alarm
        # must not be replayed at every restart).
        options = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_DO_NOT_SEND)
        client.subscribe(self.topic, options=options)

    def _on_subscribe(
        self,
        _client: paho.Client,
        _userdata: object,
        _mid: int,
        reasons: list[ReasonCode],
        _properties: Properties | None,
    ) -> None:
        refused = [str(r) for r in reasons if r.is_failure]
        if refused:
            self._refused = f"subscription to {self.topic} refused: {', '.join(refused)}"
            logger.warning("MQTT %s: %s", self.kind, self._refused)
            return
        opts = self.options
        self._subscribed = True
        self.tally.add(f"{self.kind}.connections")
        logger.info(
            "MQTT %s connected as %s to %s:%s, subscribed to %s (session kept: %s)",
            self.kind,
            self.client_id,
            opts.broker.host,
            opts.broker.port,
            self.topic,
            self._session_present,
        )
        self.connected.set()

    def _on_message(self, _client: paho.Client, _userdata: object, msg: paho.MQTTMessage) -> None:
        try:
            topic = msg.topic
        except UnicodeDecodeError:  # a broker lets none through; counted as a bad topic
            topic = ""
        self._inbox.append(Message(topic, bytes(msg.payload), msg.qos, msg.mid, time.time()))

    def _on_disconnect(
        self,
        _client: paho.Client,
        _userdata: object,
        _flags: paho.DisconnectFlags,
        reason: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        self.connected.clear()
        if not self._leaving and not self._refused:
            logger.warning("MQTT %s connection lost: %s", self.kind, reason)


# --------------------------------------------------------------------------- flushing
