"""Checking a delivery of readings, without the database: parse, judge, convert, deduplicate.

``check_readings(frame, meters, now_ts=...)`` judges every reading on its own; the first
failing check names the reason:

1. ``unknown_meter``: the id is not one of the partner's meters (``meters``, built by
   ``meter_lookup``), so a partner can never write another partner's meter;
2. ``bad_timestamp``: not epoch seconds nor ISO 8601 with a UTC offset (a time without an
   offset only with the partner's ``tz``), or before 2000 (a clock that was never set);
3. ``bad_value``: not a finite number, or a unit that does not fit the meter;
4. ``future_timestamp``: more than 5 minutes after ``now_ts``;
5. ``negative_usage``: an interval's usage (or a register) below zero;
6. ``absurd_value``: above the utility's physical limit over the reading's interval (at least
   a quarter-hour, as in ``detection/normalise.py``), or a register above its capacity.

Good readings get the canonical unit (L for water and gas, Wh for electricity); the same
(meter, ts) more than once keeps the largest value and counts the rest as duplicates. The
hot path is numpy over whole columns: the common case (ids as given, ISO times in one form)
touches each column a few times; only rows that fail a fast parse are looked at again.
"""

from __future__ import annotations

import datetime as dt
import math
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from django.utils.translation import gettext as _

from tanfang.monitoring import store
from tanfang.monitoring.detection.tables import UNIT_FACTORS, UNIT_UTILITIES

REASONS = (
    "unknown_meter",
    "bad_timestamp",
    "bad_value",
    "future_timestamp",
    "negative_usage",
    "absurd_value",
)
FIELD_OF = {
    "unknown_meter": "meter_id",
    "bad_timestamp": "ts",
    "bad_value": "value",
    "future_timestamp": "ts",
    "negative_usage": "value",
    "absurd_value": "value",
}
FUTURE_TOLERANCE_S = 300
EARLIEST_TS = 946_684_800  # 2000-01-01T00:00:00Z
MAX_REGISTER = 1e12  # canonical units, for registers without a known capacity
DEFAULT_TZ = "Asia/Shanghai"
MIN_SPAN_S = 900  # as normalise: limits apply to at least a quarter-hour
UTILITIES = ("water", "electricity", "gas")

_ISO_WITH_OFFSET = (
    "%Y-%m-%dT%H:%M:%S%.f%z",
    "%Y-%m-%d %H:%M:%S%.f%z",
    "%Y-%m-%dT%H:%M%z",
    "%Y-%m-%d %H:%M%z",
)
_ISO_NAIVE = ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M")
_NAIVE = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$"
_NUMBER = r"^\s*-?\d+(\.\d*)?\s*$"
_PYTHON_FALLBACK_MAX = 100_000


class IngestError(ValueError):
    """A delivery that cannot be read at all (as opposed to bad readings in it)."""


# --------------------------------------------------------------------------- parsing


def parse_timestamps(
    series: pl.Series, *, ts_format: str | None = None, tz: str | None = None
) -> pl.Series:
    """Epoch seconds (Int64; null where unusable).

    Accepted: integers or decimals of epoch seconds (``ts_format="epoch_ms"``: milliseconds);
    ISO 8601 with an offset (``T`` or space, optional seconds and fraction, ``Z``); timezone-
    aware datetimes. Times without an offset only when ``tz`` says where they were read
    (a partner's column mapping), or with an explicit strftime ``ts_format`` (naive times
    then in ``tz``, default Asia/Shanghai).
    """
    dtype = series.dtype
    if ts_format in ("epoch", "epoch_ms") or dtype.is_numeric():
        number = series if dtype.is_numeric() else _strip(series).cast(pl.Float64, strict=False)
        if ts_format == "epoch_ms":
            number = number.cast(pl.Float64) / 1000
        if number.dtype.is_integer():
            return number.cast(pl.Int64).rename("ts")
        floats = number.cast(pl.Float64).to_numpy()
        return _epoch_series(np.where(np.isfinite(floats), np.floor(floats), np.nan))
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is None:
            if tz is None:
                return pl.Series("ts", [None] * len(series), dtype=pl.Int64)
            series = series.dt.replace_time_zone(tz, ambiguous="earliest", non_existent="null")
        return series.dt.epoch("s").rename("ts")
    text = series.cast(pl.String)
    if ts_format:
        parsed = _strip(text).str.to_datetime(format=ts_format, strict=False, time_unit="us")
        if parsed.dtype.time_zone is None:  # type: ignore[attr-defined]
            parsed = parsed.dt.replace_time_zone(
                tz or DEFAULT_TZ, ambiguous="earliest", non_existent="null"
            )
        return parsed.dt.epoch("s").rename("ts")
    out = np.full(len(text), np.nan)
    pending = text.is_not_null().to_numpy()
    # The first form tried on every row is the one the first value is in; every other form
    # only on the rows still unparsed.
    sample = text.drop_nulls().head(1).to_list()
    numeric_first = bool(sample) and bool(pl.Series(sample).str.contains(_NUMBER).item())
    first: str | tuple[str, str] = "integer" if numeric_first else ("fast", _ISO_WITH_OFFSET[0])
    attempts: list[str | tuple[str, str]] = ["integer", *(("iso", f) for f in _ISO_WITH_OFFSET)]
    attempts.append("decimal")
    if tz is not None:
        attempts += [("naive", f) for f in _ISO_NAIVE]
    if pending.any():
        epoch = _attempt(text, first, tz).to_numpy().astype(np.float64)
        hit = ~np.isnan(epoch) & pending
        out[hit] = epoch[hit]
        pending &= ~hit
    for attempt in attempts:
        if not pending.any():
            break
        idx = np.flatnonzero(pending)
        epoch = _attempt(_strip(text.gather(idx)), attempt, tz).to_numpy().astype(np.float64)
        hit = ~np.isnan(epoch)
        out[idx[hit]] = epoch[hit]
        pending[idx[hit]] = False
    if pending.any():
        for i in np.flatnonzero(pending)[:_PYTHON_FALLBACK_MAX]:
            out[i] = _iso_epoch(str(text[int(i)]).strip(), tz)
    return _epoch_series(out)


def _attempt(sub: pl.Series, attempt: str | tuple[str, str], tz: str | None) -> pl.Series:
    if isinstance(attempt, str):
        if attempt == "integer":
            return sub.str.to_integer(strict=False)
        return sub.cast(pl.Float64, strict=False).floor()
    kind, fmt = attempt
    if kind in ("fast", "iso"):
        if kind == "iso":  # a few rows: the rare forms too
            sub = sub.str.replace(r"[Zz]$", "+00:00")
        return sub.str.to_datetime(format=fmt, strict=False, time_unit="us").dt.epoch("s")
    parsed = sub.str.to_datetime(format=fmt, strict=False, time_unit="us")
    local = parsed.dt.replace_time_zone(tz, ambiguous="earliest", non_existent="null")
    return local.dt.epoch("s")


def _epoch_series(values: np.ndarray) -> pl.Series:
    return pl.Series("ts", values, nan_to_null=True).cast(pl.Int64)


def _strip(series: pl.Series) -> pl.Series:
    return series.cast(pl.String).str.strip_chars()


def _iso_epoch(text: str, tz: str | None) -> float:
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return math.nan
    if moment.tzinfo is None:
        if tz is None:
            return math.nan
        moment = moment.replace(tzinfo=zoneinfo.ZoneInfo(tz))
    return float(math.floor(moment.timestamp()))


def parse_values(series: pl.Series) -> np.ndarray:
    """Float64 array; NaN where not a finite number."""
    if series.dtype.is_numeric():
        values = series.cast(pl.Float64).fill_null(np.nan).to_numpy().copy()
    else:
        text = series.cast(pl.String)
        parsed = text.cast(pl.Float64, strict=False)
        values = parsed.fill_null(np.nan).to_numpy().copy()
        retry = (parsed.is_null() & text.is_not_null()).to_numpy()
        if retry.any():
            idx = np.flatnonzero(retry)
            again = _strip(text.gather(idx)).cast(pl.Float64, strict=False)
            values[idx] = again.fill_null(np.nan).to_numpy()
    values[~np.isfinite(values)] = np.nan
    return values


# --------------------------------------------------------------------------- meters


def meter_lookup(
    rows: Sequence[tuple[str, str, str, str, int | None, float | None]],
    *,
    limits: dict[str, float],
) -> pl.DataFrame:
    """A partner's meters, from (meter_id, utility, register, unit, interval_minutes,
    rollover) tuples, as ``check_readings`` needs them: ``meter_id, _m`` (row number),
    ``_utility, _cum, _factor`` (unit -> canonical), ``_limit`` (largest plausible usage
    of one interval) and ``_cap`` (largest plausible register), canonical units."""
    frame = pl.DataFrame(
        rows,
        schema={
            "meter_id": pl.String,
            "_utility": pl.String,
            "_register": pl.String,
            "_unit": pl.String,
            "_interval": pl.Float64,
            "_rollover": pl.Float64,
        },
        orient="row",
    )
    factor = pl.col("_unit").replace_strict(UNIT_FACTORS, default=1.0, return_dtype=pl.Float64)
    per_hour = pl.col("_utility").replace_strict(limits, default=None, return_dtype=pl.Float64)
    span = pl.max_horizontal(pl.col("_interval").fill_null(60) * 60, pl.lit(MIN_SPAN_S))
    return frame.select(
        "meter_id",
        pl.int_range(pl.len(), dtype=pl.Int32).alias("_m"),
        "_utility",
        (pl.col("_register") == "cumulative").alias("_cum"),
        factor.alias("_factor"),
        (per_hour * span / 3600).alias("_limit"),
        (pl.col("_rollover") * factor).fill_null(MAX_REGISTER).alias("_cap"),
    )


def _meter_rows(ids: pl.Series, meters: pl.DataFrame) -> tuple[np.ndarray, bool]:
    """Row of each id in ``meters`` (-1: unknown), and whether every known id matched as
    written (ids with stray spaces are found too)."""
    ids = ids.cast(pl.String).rename("meter_id")
    index = meters.select("meter_id", "_m")

    def find(some: pl.Series) -> np.ndarray:
        found = some.to_frame().join(index, on="meter_id", how="left", maintain_order="left")
        return found["_m"].fill_null(-1).to_numpy().astype(np.int64)

    rows = find(ids)
    missing = np.flatnonzero(rows < 0)
    if len(missing):
        rows[missing] = find(_strip(ids.gather(missing)))
        return rows, not (rows[missing] >= 0).any()
    return rows, True


# --------------------------------------------------------------------------- checking


@dataclass
class Checked:
    """A delivery checked: readings to store (canonical units) and readings set aside."""

    rows: int
    good: pl.DataFrame  # meter_id, ts, value
    bad: pl.DataFrame  # store.QUARANTINE_SCHEMA
    duplicates: int
    reasons: dict[str, int] = field(default_factory=dict)


def check_readings(
    frame: pl.DataFrame,
    meters: pl.DataFrame,
    *,
    now_ts: int,
    ts_format: str | None = None,
    tz: str | None = None,
    unit: str | None = None,
) -> Checked:
    """The module's checks over ``frame``: ``meter_id, ts, value`` and optionally ``row``
    (the number reported, default 1, 2, ...) and ``unit`` (per reading; else ``unit``,
    else the meter's own)."""
    missing = [c for c in ("meter_id", "ts", "value") if c not in frame.columns]
    if missing:
        raise IngestError(_("The column %(column)s is missing.") % {"column": missing[0]})
    n = frame.height
    if meters.is_empty():
        # No meters: every id is unknown (a null id matches nothing).
        nobody: Any = None
        meters = meter_lookup([(nobody, "water", "interval", "L", 15, None)], limits={})
    m, as_written = _meter_rows(frame["meter_id"], meters)
    known = m >= 0
    mi = np.where(known, m, 0)
    ts_series = parse_timestamps(frame["ts"], ts_format=ts_format, tz=tz)
    ts = ts_series.fill_null(-1).to_numpy()
    value = parse_values(frame["value"])
    factor = meters["_factor"].to_numpy()[mi]
    unit_bad = np.zeros(n, dtype=bool)
    units = _units(frame, unit, n)
    if units is not None:
        factor, unit_bad = _unit_factors(units, meters, mi, factor)
    cum = meters["_cum"].to_numpy()[mi]
    bound = np.where(cum, meters["_cap"].to_numpy()[mi], meters["_limit"].to_numpy()[mi])
    canonical = value * factor
    code = np.zeros(n, dtype=np.int8)
    # Assigned from the last reason to the first, so the first failing check wins.
    with np.errstate(invalid="ignore"):
        code[canonical > bound] = 6
        code[value < 0] = 5
    code[ts > now_ts + FUTURE_TOLERANCE_S] = 4
    code[np.isnan(value) | unit_bad] = 3
    code[ts < EARLIEST_TS] = 2
    code[~known] = 1
    bad = code != 0
    n_bad = int(bad.sum())
    ok = np.flatnonzero(~bad) if n_bad else None
    # The ids as stored: the partner's own spelling when it matched, else the registered one.
    if as_written and frame["meter_id"].dtype == pl.String:
        ids = frame["meter_id"] if ok is None else frame["meter_id"].gather(pl.Series(ok))
    else:
        ids = meters["meter_id"].gather(pl.Series(m if ok is None else m[ok]))
    good, duplicates = _deduplicated(
        ids=ids,
        m=m if ok is None else m[ok],
        ts=ts if ok is None else ts[ok],
        value=canonical if ok is None else canonical[ok],
    )
    set_aside = (
        _set_aside(frame, np.flatnonzero(bad), code, ts, cum, bound, units)
        if n_bad
        else (pl.DataFrame(schema=store.QUARANTINE_SCHEMA))
    )
    reasons = {str(r): int(c) for r, c in set_aside.group_by("reason").len().iter_rows()}
    return Checked(rows=n, good=good, bad=set_aside, duplicates=duplicates, reasons=reasons)


def _units(frame: pl.DataFrame, unit: str | None, n: int) -> pl.Series | None:
    if "unit" in frame.columns:
        units = _strip(frame["unit"])
        return units.fill_null(unit) if unit else units
    if unit:
        return pl.repeat(unit, n, eager=True, dtype=pl.String)
    return None


def _unit_factors(
    units: pl.Series, meters: pl.DataFrame, mi: np.ndarray, factor: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per reading: the factor of its own unit when it gives one (and whether that unit
    does not fit the meter's utility)."""
    fits = pl.DataFrame(
        [(u, un, UNIT_FACTORS[un]) for u in UTILITIES for un in UNIT_UTILITIES[u]],
        schema={"_utility": pl.String, "_unit": pl.String, "_f": pl.Float64},
        orient="row",
    )
    rows = pl.DataFrame({"_utility": meters["_utility"].gather(pl.Series(mi)), "_unit": units})
    joined = rows.join(fits, on=["_utility", "_unit"], how="left", maintain_order="left")
    given = (units.is_not_null() & (units != "")).to_numpy()
    own = joined["_f"].fill_null(np.nan).to_numpy()
    return np.where(given, own, factor), given & np.isnan(own)


def _deduplicated(
    *, ids: pl.Series, m: np.ndarray, ts: np.ndarray, value: np.ndarray
) -> tuple[pl.DataFrame, int]:
    """One reading per (meter, ts): the largest value (as the store and normalise decide).

    A stable sort of one int64 key per reading (numpy sorts these by radix: a delivery
    that is nearly in order costs little) finds the repeated keys; only those rows are
    looked at again."""
    good = pl.DataFrame({"meter_id": ids, "ts": ts, "value": value})
    if len(m) < 2:
        return good, 0
    key = m * (1 << 34) + ts
    order = np.argsort(key, kind="stable")
    ordered = key[order]
    same = ordered[1:] == ordered[:-1]
    if not same.any():
        return good, 0
    involved = np.zeros(len(key), dtype=bool)
    involved[order[1:][same]] = True
    involved[order[:-1][same]] = True
    rows = np.flatnonzero(involved)
    by_value = np.lexsort((-value[rows], key[rows]))  # per key, the largest value first
    keys = key[rows][by_value]
    first = np.concatenate(([True], keys[1:] != keys[:-1]))
    drop = involved
    drop[rows[by_value][first]] = False
    return good.filter(pl.Series(~drop)), int(drop.sum())


def _set_aside(
    frame: pl.DataFrame,
    idx: np.ndarray,
    code: np.ndarray,
    ts: np.ndarray,
    cum: np.ndarray,
    bound: np.ndarray,
    units: pl.Series | None,
) -> pl.DataFrame:
    """Quarantine rows: the reading as it was sent, the reason and a detail code that
    ``reason_text`` turns into words in the reader's language."""
    take = pl.Series(idx)
    rows = (
        frame["row"].cast(pl.Int64).gather(take)
        if "row" in frame.columns
        else pl.Series(idx + 1, dtype=pl.Int64)
    )
    sent = pl.DataFrame(
        {
            "row": rows,
            "meter_id": frame["meter_id"].gather(take).cast(pl.String),
            "ts": frame["ts"].gather(take).cast(pl.String),
            "value": frame["value"].gather(take).cast(pl.String),
            "reason": pl.Series(["", *REASONS]).gather(pl.Series(code[idx].astype(np.int64))),
            "_parsed": ts[idx],
            "_cum": cum[idx],
            "_bound": bound[idx],
            "_unit": units.gather(take) if units is not None else pl.Series([None] * len(idx)),
        },
        schema_overrides={"_unit": pl.String},
    )
    empty = pl.col("ts").is_null() | (pl.col("ts").str.strip_chars() == "")
    no_value = pl.col("value").is_null() | (pl.col("value").str.strip_chars() == "")
    number = pl.col("value").str.strip_chars().cast(pl.Float64, strict=False).is_finite()
    detail = (
        pl.when(pl.col("reason") == "bad_timestamp")
        .then(
            pl.when(empty)
            .then(pl.lit("empty"))
            .when(pl.col("_parsed") >= 0)
            .then(pl.lit("too_early"))
            .when(pl.col("ts").str.strip_chars().str.contains(_NAIVE))
            .then(pl.lit("no_offset"))
        )
        .when(pl.col("reason") == "bad_value")
        .then(
            pl.when(no_value)
            .then(pl.lit("empty"))
            .when(pl.col("_unit").is_not_null() & number.fill_null(False))
            .then(pl.format("unit:{}", pl.col("_unit")))
        )
        .when(pl.col("reason") == "negative_usage")
        .then(pl.when(pl.col("_cum")).then(pl.lit("register")))
        .when(pl.col("reason") == "absurd_value")
        .then(pl.format("limit:{}", pl.col("_bound").round(1)))
        .otherwise(pl.lit(""))
        .fill_null("")
    )
    return sent.with_columns(detail=detail).select(list(store.QUARANTINE_SCHEMA))
