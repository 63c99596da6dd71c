"""Readings in: one path for files, HTTP pushes and MQTT (``ingest_frame``).

Every delivery becomes one ``IngestBatch``:

1. the same content again (same partner, same SHA-256) is the same batch: nothing is
   stored and the first batch is returned with ``repeated`` set (``batch_repeated``);
2. every reading is judged on its own (``checks.check_readings``: unknown meter, bad time
   or value, future, negative, absurd), converted to L or Wh, and the same (meter, ts)
   twice in the delivery counted as a duplicate: a bad reading never takes good ones down;
3. in one transaction: the batch row, the good readings to the store
   (``store.readings_append``, by the UTC day of each reading's own time, so late and
   out-of-order readings land where they belong), every set-aside reading to the store's
   quarantine folder and the first 1000 to ``QuarantinedReading`` rows. A failure removes
   the files it wrote; a concurrent delivery of the same content finds the first batch.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from typing import Any

import polars as pl
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from tanfang.monitoring import store
from tanfang.monitoring.checks import FIELD_OF, check_readings, meter_lookup
from tanfang.monitoring.detection.config import DEFAULT_BOOK, RuleBook, RuleBookError
from tanfang.monitoring.models import (
    DataPartner,
    DistrictRules,
    IngestBatch,
    Meter,
    QuarantinedReading,
)

QUARANTINE_ROWS_KEPT = 1000


# --------------------------------------------------------------------------- meters


def ingest_limits() -> dict[str, float]:
    """Physical limit per hour and utility: the city's rule book (its ``limits``) over the
    detection defaults, so ingestion and detection set aside the same readings."""
    city = DistrictRules.objects.filter(area=None).first()
    limits = DEFAULT_BOOK["limits"]
    if city is not None and city.rules:
        with contextlib.suppress(RuleBookError):
            limits = RuleBook(city.rules).for_district(None).limits
    return {u: float(v["max_per_hour"]) for u, v in limits.items()}


def partner_meters(partner: DataPartner, *, limits: dict[str, float] | None = None) -> pl.DataFrame:
    """The partner's meters as a lookup for ``check_readings``: ``meter_id, _m, _utility,
    _cum, _factor, _limit`` (largest plausible usage of one interval, canonical units) and
    ``_cap`` (largest plausible register). Callers that ingest often may keep it."""
    rows = list(
        Meter.objects.filter(partner=partner).values_list(
            "meter_id", "utility", "register", "unit", "interval_minutes", "rollover"
        )
    )
    return meter_lookup(rows, limits=limits if limits is not None else ingest_limits())


# --------------------------------------------------------------------------- messages


def reason_text(reason: str, detail: str = "") -> str:
    """What is wrong with a reading, in the active language."""
    code, _sep, arg = detail.partition(":")
    if reason == "unknown_meter":
        return _("unknown meter, or a meter of another partner")
    if reason == "bad_timestamp":
        if code == "no_offset":
            return _("the time has no UTC offset (e.g. 2024-05-01T08:00:00+08:00)")
        if code == "too_early":
            return _("the time is before the year 2000")
        if code == "empty":
            return _("the time is empty")
        return _("not a time: ISO 8601 with a UTC offset, or epoch seconds")
    if reason == "bad_value":
        if code == "unit":
            return _("the unit %(unit)s does not fit this meter") % {"unit": arg}
        if code == "empty":
            return _("the value is empty")
        return _("not a number")
    if reason == "future_timestamp":
        return _("the time is more than 5 minutes in the future")
    if reason == "negative_usage":
        if code == "register":
            return _("a register reading cannot be negative")
        return _("negative usage")
    if reason == "absurd_value":
        if code == "limit":
            return _("above the physical limit (%(limit)s L or Wh)") % {"limit": arg}
        return _("above the physical limit")
    return reason


def row_message(row: int, reason: str, detail: str = "", column: str = "") -> str:
    """``Row 12, column “ts”: the time has no UTC offset ...`` in the active language;
    ``column``: the column as the file spells it (default: the field's own name)."""
    return _("Row %(row)d, column “%(column)s”: %(message)s") % {
        "row": row,
        "column": column or FIELD_OF.get(reason, "?"),
        "message": reason_text(reason, detail),
    }


# --------------------------------------------------------------------------- the batch


def ingest_frame(
    partner: DataPartner,
    frame: pl.DataFrame,
    *,
    source: str,
    name: str = "",
    content_sha256: str = "",
    now: dt.datetime | None = None,
    by: Any = None,
    meters: pl.DataFrame | None = None,
    ts_format: str | None = None,
    tz: str | None = None,
    unit: str | None = None,
) -> IngestBatch:
    """Check and store one delivery (module docstring); return its batch.

    A delivery whose ``content_sha256`` this partner sent before returns the first batch
    with ``repeated`` True (``batch_repeated``) and stores nothing. ``meters``: the partner's
    lookup (``partner_meters``), loaded when not given. ``ts_format``, ``tz``, ``unit``:
    the partner's column mapping (files.py).
    """
    now = now or timezone.now()
    if content_sha256:
        first = _first_delivery(partner, content_sha256)
        if first is not None:
            return first
    if meters is None:
        meters = partner_meters(partner)
    checked = check_readings(
        frame, meters, now_ts=int(now.timestamp()), ts_format=ts_format, tz=tz, unit=unit
    )
    written: list[str] = []
    try:
        with transaction.atomic():
            batch = IngestBatch.objects.create(
                partner=partner,
                source=source,
                name=name[:255],
                content_sha256=content_sha256,
                received_at=now,
                rows=checked.rows,
                stored=checked.good.height,
                duplicates=checked.duplicates,
                quarantined=checked.bad.height,
                reasons=checked.reasons,
                by=by,
                **_span(checked.good),
            )
            written = store.readings_append(checked.good, batch_id=batch.pk)
            kept = store.quarantine_append(
                checked.bad, partner_code=partner.code, batch_id=batch.pk
            )
            QuarantinedReading.objects.bulk_create(
                _quarantine_rows(batch, checked.bad.head(QUARANTINE_ROWS_KEPT))
            )
            batch.store_paths = written + ([kept] if kept else [])
            batch.save(update_fields=["store_paths"])
    except IntegrityError:
        # The same content arrived at the same time by another path: that one is the batch.
        _remove(written)
        first = _first_delivery(partner, content_sha256) if content_sha256 else None
        if first is None:
            raise
        return first
    except BaseException:
        _remove(written)
        raise
    batch.repeated = False  # type: ignore[attr-defined]
    return batch


def batch_repeated(batch: IngestBatch) -> bool:
    """Whether ``ingest_frame`` answered with an earlier batch of the same content."""
    return bool(getattr(batch, "repeated", False))


def _first_delivery(partner: DataPartner, content_sha256: str) -> IngestBatch | None:
    first = IngestBatch.objects.filter(partner=partner, content_sha256=content_sha256).first()
    if first is not None:
        first.repeated = True  # type: ignore[attr-defined]
    return first


def _span(good: pl.DataFrame) -> dict[str, dt.datetime | None]:
    if good.is_empty():
        return {"first_ts": None, "last_ts": None}
    lo, hi = good["ts"].min(), good["ts"].max()
    assert isinstance(lo, int) and isinstance(hi, int)
    return {
        "first_ts": dt.datetime.fromtimestamp(lo, dt.UTC),
        "last_ts": dt.datetime.fromtimestamp(hi, dt.UTC),
    }


def _quarantine_rows(batch: IngestBatch, bad: pl.DataFrame) -> list[QuarantinedReading]:
    def cut(text: str | None, size: int) -> str:
        return (text or "")[:size]

    return [
        QuarantinedReading(
            batch=batch,
            row=max(0, int(row or 0)),
            meter_id=cut(meter_id, 64),
            ts=cut(ts, 40),
            value=cut(value, 40),
            reason=reason,
            detail=cut(detail, 200),
        )
        for row, meter_id, ts, value, reason, detail in bad.iter_rows()
    ]


def _remove(paths: list[str]) -> None:
    for path in paths:
        (store.root() / path).unlink(missing_ok=True)


# --------------------------------------------------------------------------- reports


def batch_report(batch: IngestBatch, *, limit: int = QUARANTINE_ROWS_KEPT) -> dict[str, Any]:
    """What a partner is told about a delivery (the API's answer, the command's output)."""
    set_aside = [
        {
            "row": q.row,
            "field": FIELD_OF.get(q.reason, ""),
            "reason": q.reason,
            "message": reason_text(q.reason, q.detail),
            "detail": q.detail,
            "meter_id": q.meter_id,
            "ts": q.ts,
            "value": q.value,
        }
        for q in QuarantinedReading.objects.filter(batch=batch).order_by("row", "id")[:limit]
    ]
    return {
        "batch": batch.pk,
        "repeated": batch_repeated(batch),
        "source": batch.source,
        "name": batch.name,
        "received_at": batch.received_at.isoformat(),
        "rows": batch.rows,
        "stored": batch.stored,
        "duplicates": batch.duplicates,
        "quarantined": batch.quarantined,
        "reasons": dict(batch.reasons),
        "first_ts": batch.first_ts.isoformat() if batch.first_ts else None,
        "last_ts": batch.last_ts.isoformat() if batch.last_ts else None,
        "set_aside": set_aside,
        "set_aside_not_listed": max(0, batch.quarantined - len(set_aside)),
    }


def quarantine_scan(partner_code: str | None = None) -> pl.LazyFrame:
    """Every reading ever set aside (kept in the store), with ``partner`` and ``batch``."""
    pattern = f"partner={partner_code}" if partner_code else "partner=*"
    files = sorted((store.root() / "quarantine").glob(f"{pattern}/*.parquet"))
    if not files:
        return pl.LazyFrame(
            schema={"partner": pl.String, "batch": pl.Int64, **store.QUARANTINE_SCHEMA}
        )
    frames = [
        pl.scan_parquet(path, schema=store.QUARANTINE_SCHEMA).with_columns(
            partner=pl.lit(path.parent.name.removeprefix("partner=")),
            batch=pl.lit(int(path.stem), dtype=pl.Int64),
        )
        for path in files
        if re.fullmatch(r"\d+", path.stem)
    ]
    return pl.concat(frames).select("partner", "batch", *store.QUARANTINE_SCHEMA)
