"""What the MQTT messages say: topics, reading payloads into ``ingest_frame`` frames, device
event payloads into ``device_alert_raise`` calls (docs/monitoring-mqtt.md has the formats).

Pure functions except ``device_message_store``, which writes through the alerts service.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from tanfang.monitoring.alerts import device_alert_raise
from tanfang.monitoring.models import Device, DeviceEvent

DEFAULT_PREFIX = "tanfang/v1"
DEVICE_EVENT_KINDS = ("sos", "fall", "smoke", "gas", "heartbeat", "battery")
EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
FUTURE_TOLERANCE = dt.timedelta(minutes=5)
EVIDENCE_BYTES = 2048  # of a larger device payload only its size is kept with the event
MESSAGE_ID_CHARS = 80  # DeviceEvent.message_id
BAD_PAYLOAD_CHARS = 1000  # of an unreadable payload, kept in the store's quarantine


def readings_topic(prefix: str, partner_code: str) -> str:
    return f"{prefix}/readings/{partner_code}"


def device_topic(prefix: str, partner_code: str, device_id: str) -> str:
    return f"{prefix}/devices/{partner_code}/{device_id}"


def topic_filter(prefix: str, kind: str, share: str = "") -> str:
    """The subscription for ``kind`` (``readings`` or ``devices``), shared when ``share``
    names a group (``$share/<group>/...``: the broker gives each message to one member)."""
    wildcard = "+" if kind == "readings" else "+/+"
    base = f"{prefix}/{kind}/{wildcard}"
    return f"$share/{share}/{base}" if share else base


def reading_partner(prefix: str, topic: str) -> str | None:
    """The partner code of a readings topic, None when the topic is not one."""
    head = f"{prefix}/readings/"
    if not topic.startswith(head):
        return None
    code = topic[len(head) :]
    return code if code and "/" not in code else None


def device_address(prefix: str, topic: str) -> tuple[str, str] | None:
    """(partner code, device id) of a device topic, None when the topic is not one."""
    head = f"{prefix}/devices/"
    if not topic.startswith(head):
        return None
    parts = topic[len(head) :].split("/")
    if len(parts) != 2 or not all(parts):
        return None
    return parts[0], parts[1]


# --------------------------------------------------------------------------- readings


@dataclass
class PartnerReadings:
    """One partner's readings from one spool segment, as columns for ``ingest_frame``.

    ``digest`` hashes the segment's identity and the partner's messages in it: the batch's
    ``content_sha256``, so a segment ingested twice (after a crash) is one batch.
    """

    meter_id: list[str | None] = field(default_factory=list)
    ts: list[Any] = field(default_factory=list)
    value: list[Any] = field(default_factory=list)
    messages: int = 0
    unreadable: int = 0
    first_received: float = math.inf
    last_received: float = 0.0
    digest: Any = field(default_factory=hashlib.sha256)

    def add_message(self, received: float, topic: str, payload: bytes) -> None:
        self.messages += 1
        self.first_received = min(self.first_received, received)
        self.last_received = max(self.last_received, received)
        self.digest.update(len(payload).to_bytes(4, "big") + payload)
        items = reading_items(payload)
        if items is None:
            self.unreadable += 1
            self.set_aside(payload.decode("utf-8", "replace"))
            return
        for item in items:
            if isinstance(item, dict):
                meter = item.get("meter_id")
                self.meter_id.append(None if meter is None else _text(meter)[:200])
                self.ts.append(item.get("ts"))
                self.value.append(item.get("value"))
            else:
                self.unreadable += 1
                self.set_aside(json.dumps(item, ensure_ascii=False))

    def set_aside(self, text: str) -> None:
        """A reading nobody can read: no meter, so ``ingest_frame`` quarantines it (as an
        unknown meter) with the text as sent in its value."""
        self.meter_id.append("")
        self.ts.append(None)
        self.value.append(_text(text[:BAD_PAYLOAD_CHARS]))

    def frame(self) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "meter_id": pl.Series(self.meter_id, dtype=pl.String),
                "ts": _column(self.ts, integer=True),
                "value": _column(self.value, integer=False),
                "row": pl.int_range(1, len(self.meter_id) + 1, eager=True, dtype=pl.Int64),
            }
        )


def reading_items(payload: bytes) -> list[Any] | None:
    """The readings of a payload: one JSON object or a list of them; None when unreadable."""
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(data, dict):
        return [data]
    if isinstance(data, list):
        return data
    return None


def _column(values: list[Any], *, integer: bool) -> pl.Series:
    """Numbers as numbers when every value is one (the common case, no parsing), else text
    for ``ingest_frame`` to parse and, where it cannot, to quarantine as sent."""
    if integer:
        if all(type(v) is int and -(2**62) < v < 2**62 for v in values):
            return pl.Series(values, dtype=pl.Int64)
    elif all(type(v) in (int, float) for v in values):
        try:
            return pl.Series([float(v) for v in values], dtype=pl.Float64)
        except OverflowError:  # an integer of hundreds of digits: judged as text
            pass
    return pl.Series([None if v is None else _text(v) for v in values], dtype=pl.String)


def _text(value: Any) -> str:
    """Text as sent, without NUL characters (PostgreSQL refuses them in text columns, and a
    message that can never be stored would hold up every message behind it)."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool) or not isinstance(value, int | float):
        text = json.dumps(value, ensure_ascii=False)[:BAD_PAYLOAD_CHARS]
    else:
        text = repr(value)[:BAD_PAYLOAD_CHARS]
    return text.replace("\x00", "\ufffd")


def segment_readings(
    segment: str, records: list[tuple[float, str, bytes]], *, prefix: str
) -> tuple[dict[str, PartnerReadings], int]:
    """Group a segment's messages by partner; also the number on topics that are not
    readings topics (cannot happen with our subscription, counted all the same)."""
    found: dict[str, PartnerReadings] = {}
    stray = 0
    for received, topic, payload in records:
        code = reading_partner(prefix, topic)
        if code is None:
            stray += 1
            continue
        group = found.get(code)
        if group is None:
            group = found[code] = PartnerReadings()
            group.digest.update(f"mqtt segment {segment} partner {code}\n".encode())
        group.add_message(received, topic, payload)
    return found, stray


# --------------------------------------------------------------------------- devices


@dataclass(frozen=True)
class DeviceEventIn:
    """A device message, read: what ``device_alert_raise`` needs."""

    partner_code: str
    device_id: str
    kind: str
    at: dt.datetime
    message_id: str
    payload: dict[str, Any]


def device_event_read(
    prefix: str, topic: str, payload: bytes, *, received_at: dt.datetime
) -> DeviceEventIn | str:
    """The event, or the reason it cannot be one (``bad_topic``, ``bad_json``,
    ``unknown_kind``).

    An alarm is never refused for its time: a missing or unusable ``ts`` (or one in the
    future: the device's clock is wrong) becomes the time of receipt, noted in the payload.
    A missing ``message_id`` is derived from the device, kind and ``ts`` (or, without a
    ``ts``, from the payload), so a re-delivery is recognised all the same. Fields other than
    ``kind``, ``ts`` and ``message_id`` are kept as the event's payload (as the HTTP API does).
    """
    address = device_address(prefix, topic)
    if address is None:
        return "bad_topic"
    partner_code, device_id = address
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return "bad_json"
    if not isinstance(data, dict):
        return "bad_json"
    kind = data.get("kind")
    if not isinstance(kind, str) or kind.lower() not in DEVICE_EVENT_KINDS:
        return "unknown_kind"
    kind = kind.lower()
    raw_ts = data.get("ts")
    at = event_time(raw_ts)
    extra = {k: v for k, v in data.items() if k not in ("kind", "ts", "message_id")}
    if len(payload) > EVIDENCE_BYTES:
        extra = {"payload_bytes": len(payload)}
    elif "\\u0000" in payload.decode("utf-8", "replace"):
        # PostgreSQL refuses NUL in JSON: such an alarm would never be stored.
        extra = json.loads(json.dumps(extra).replace("\\u0000", "\\ufffd"))
    if at is None or at > received_at + FUTURE_TOLERANCE:
        at = received_at
        extra["ts_unusable"] = str(raw_ts)[:40] if raw_ts is not None else None
    raw_id = data.get("message_id")
    if raw_id is None or raw_id == "":
        basis = raw_ts if raw_ts is not None else hashlib.sha256(payload).hexdigest()[:32]
        raw_id = f"{device_id}:{kind}:{basis}"
    return DeviceEventIn(
        partner_code=partner_code,
        device_id=device_id,
        kind=kind,
        at=at,
        message_id=fitted_message_id(_text(raw_id)),
        payload=extra,
    )


def fitted_message_id(message_id: str) -> str:
    """The id as sent, or a hash of it when longer than the column."""
    if len(message_id) <= MESSAGE_ID_CHARS:
        return message_id
    return "sha256:" + hashlib.sha256(message_id.encode()).hexdigest()


def event_time(value: Any) -> dt.datetime | None:
    """ISO 8601 with an offset, or epoch seconds (number or digits); None when neither, or
    before 2000."""
    moment: dt.datetime | None = None
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if math.isfinite(value):
            moment = _from_epoch(float(value))
    elif isinstance(value, str):
        text = value.strip()
        try:
            moment = _from_epoch(float(text))
        except ValueError:
            try:
                parsed = dt.datetime.fromisoformat(text.replace("z", "Z"))
            except ValueError:
                return None
            moment = parsed if parsed.tzinfo is not None else None
    if moment is None or moment < EARLIEST:
        return None
    return moment


def _from_epoch(seconds: float) -> dt.datetime | None:
    try:
        return dt.datetime.fromtimestamp(seconds, dt.UTC)
    except (OverflowError, OSError, ValueError):
        return None


def device_message_store(event: DeviceEventIn, *, received_at: dt.datetime) -> str:
    """Store the event through ``device_alert_raise``; what happened: ``alert_raised``,
    ``alert_repeated`` (a re-delivery of a raised alarm), ``event`` (heartbeat, battery, or
    an alarm not raised), or ``unknown_device`` (not a device of this partner).

    Message ids are unique across devices (as in the HTTP API). An id already used by
    another device is not a reason to drop an alarm: the event is stored under
    ``<device_id>:<id>`` instead, and the outcome ends in ``+id_conflict``.
    """
    device = (
        Device.objects.select_related("partner")
        .filter(device_id=event.device_id, partner__code=event.partner_code)
        .first()
    )
    if device is None:
        return "unknown_device"
    message_id = event.message_id
    owner = DeviceEvent.objects.filter(message_id=message_id).values_list("device_id", flat=True)
    conflict = bool(owner) and owner[0] != device.pk
    if conflict:
        message_id = fitted_message_id(f"{device.device_id}:{message_id}")
    alert, created = device_alert_raise(
        device,
        kind=event.kind,
        at=event.at,
        message_id=message_id,
        payload=event.payload,
        received_at=received_at,
    )
    outcome = "event" if alert is None else "alert_raised" if created else "alert_repeated"
    return f"{outcome}+id_conflict" if conflict else outcome
