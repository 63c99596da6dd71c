"""Meters and readings as column arrays, and reading them from CSV or Parquet files.

``METERS.csv`` has at least ``meter_id,elder_id,utility,register,unit``; optional columns:
``interval_minutes`` (the reading interval of an interval register), ``tz`` (IANA time zone of
the home, default Asia/Shanghai), ``district`` (area code choosing the district's rules),
``status`` (``away``, ``hospital`` or ``deceased`` silence every person alert),
``rollover`` (register capacity in the meter's unit) and ``device_kind`` (for
``utility=device``: sos, fall, smoke, gas).

Readings are CSV or Parquet files (one file, or every ``*.csv``/``*.parquet`` below a folder)
with at least ``meter_id,ts,value``; ``ts`` is ISO 8601 with an offset or epoch seconds and
stamps the end of the reading's interval.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

UNIT_FACTORS = {"L": 1.0, "m3": 1000.0, "ft3": 28.316846592, "Wh": 1.0, "kWh": 1000.0}
UNIT_UTILITIES = {
    "water": ("L", "m3"),
    "gas": ("L", "m3", "ft3"),
    "electricity": ("Wh", "kWh"),
    "device": ("", "event"),
}
REGISTERS = ("interval", "cumulative")
STATUSES = ("", "active", "away", "hospital", "deceased")
DEFAULT_TZ = "Asia/Shanghai"


class TableError(ValueError):
    """A meters or readings file cannot be used; the message says where and why."""


@dataclass
class MeterTable:
    """One row per meter; ``index`` maps a meter id to its row."""

    meter_id: list[str]
    elder_id: list[str]
    utility: list[str]
    register: list[str]
    factor: np.ndarray  # unit -> normalised unit (L or Wh)
    interval_s: np.ndarray  # NaN: not given
    tz: list[str]
    district: list[str]
    status: list[str]
    rollover: np.ndarray  # register capacity in normalised units, NaN: unknown
    device_kind: list[str]
    index: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.index:
            self.index = {m: i for i, m in enumerate(self.meter_id)}

    def __len__(self) -> int:
        return len(self.meter_id)

    def take(self, rows: np.ndarray | list[int]) -> MeterTable:
        idx = [int(i) for i in rows]
        return MeterTable(
            meter_id=[self.meter_id[i] for i in idx],
            elder_id=[self.elder_id[i] for i in idx],
            utility=[self.utility[i] for i in idx],
            register=[self.register[i] for i in idx],
            factor=self.factor[idx],
            interval_s=self.interval_s[idx],
            tz=[self.tz[i] for i in idx],
            district=[self.district[i] for i in idx],
            status=[self.status[i] for i in idx],
            rollover=self.rollover[idx],
            device_kind=[self.device_kind[i] for i in idx],
        )

    @classmethod
    def build(cls, rows: list[dict[str, object]]) -> MeterTable:
        """From dicts with the CSV's columns (missing optional columns take defaults)."""
        return cls.from_frame(pl.DataFrame(rows, infer_schema_length=None))

    @classmethod
    def from_frame(cls, frame: pl.DataFrame) -> MeterTable:
        need = ("meter_id", "elder_id", "utility", "register", "unit")
        missing = [c for c in need if c not in frame.columns]
        if missing:
            raise TableError(f"meters: missing column {missing[0]}")

        def col(name: str, default: str = "") -> list[str]:
            if name not in frame.columns:
                return [default] * frame.height
            return [default if v is None else str(v).strip() for v in frame[name].to_list()]

        def num(name: str) -> np.ndarray:
            if name not in frame.columns:
                return np.full(frame.height, np.nan)
            return frame[name].cast(pl.Float64, strict=False).fill_null(np.nan).to_numpy()

        ids, utility, register, unit = col("meter_id"), col("utility"), col("register"), col("unit")
        seen: set[str] = set()
        for n, (mid, u, r, un) in enumerate(zip(ids, utility, register, unit, strict=True)):
            where = f"meters line {n + 2}"
            if not mid:
                raise TableError(f"{where}: meter_id is empty")
            if mid in seen:
                raise TableError(f"{where}: meter {mid} appears twice")
            seen.add(mid)
            if u not in UNIT_UTILITIES:
                raise TableError(f"{where}: utility must be water, electricity, gas or device")
            if u != "device" and r not in REGISTERS:
                raise TableError(f"{where}: register must be interval or cumulative")
            if un not in UNIT_UTILITIES[u]:
                raise TableError(f"{where}: unit {un!r} does not fit {u}")
        status = col("status")
        for n, s in enumerate(status):
            if s not in STATUSES:
                raise TableError(f"meters line {n + 2}: status must be one of {STATUSES[1:]}")
        factor = np.array([UNIT_FACTORS.get(un, 1.0) for un in unit])
        tz = [t or DEFAULT_TZ for t in col("tz")]
        for t in set(tz):
            try:
                pl.Series([0]).cast(pl.Datetime("us", "UTC")).dt.convert_time_zone(t)
            except Exception as exc:
                raise TableError(f"meters: unknown time zone {t!r}") from exc
        return cls(
            meter_id=ids,
            elder_id=col("elder_id"),
            utility=utility,
            register=[
                "interval" if u == "device" else r for u, r in zip(utility, register, strict=True)
            ],
            factor=factor,
            interval_s=num("interval_minutes") * 60.0,
            tz=tz,
            district=col("district"),
            status=status,
            rollover=num("rollover") * factor,
            device_kind=col("device_kind", "sos"),
        )


def read_meters(path: str | Path) -> MeterTable:
    try:
        frame = pl.read_csv(path, infer_schema=False)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise TableError(f"cannot read meters file {path}: {exc}") from exc
    return MeterTable.from_frame(frame)


@dataclass
class Readings:
    """Readings of known meters as parallel arrays; rows that could not be used are counted."""

    meter: np.ndarray  # int32 row in the MeterTable
    ts: np.ndarray  # int64 epoch seconds, end of the interval
    value: np.ndarray  # float64, in the meter's own unit
    rejected: dict[str, int] = field(default_factory=dict)  # reason -> count

    def __len__(self) -> int:
        return len(self.ts)

    @classmethod
    def empty(cls) -> Readings:
        return cls(np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0))


def reading_files(path: str | Path) -> list[Path]:
    root = Path(path)
    if root.is_dir():
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".csv", ".parquet"))
        if not files:
            raise TableError(f"{root}: no .csv or .parquet files")
        return files
    if not root.exists():
        raise TableError(f"{root}: no such file or folder")
    return [root]


def read_readings(path: str | Path, meters: MeterTable) -> Readings:
    frames = []
    for file in reading_files(path):
        try:
            if file.suffix.lower() == ".parquet":
                frame = pl.read_parquet(file, columns=["meter_id", "ts", "value"])
            else:
                frame = pl.read_csv(
                    file,
                    columns=["meter_id", "ts", "value"],
                    schema_overrides={"meter_id": pl.String, "ts": pl.String},
                )
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise TableError(f"cannot read readings file {file}: {exc}") from exc
        frames.append(frame)
    return readings_from_frame(pl.concat(frames, how="diagonal_relaxed"), meters)


def readings_from_frame(frame: pl.DataFrame, meters: MeterTable) -> Readings:
    """Map meter ids to rows, parse timestamps and values; unusable rows are counted."""
    rejected: dict[str, int] = {}
    ts = parse_ts(frame["ts"])
    value = frame["value"].cast(pl.Float64, strict=False)
    ids = frame["meter_id"]
    lookup = pl.DataFrame(
        {"meter_id": meters.meter_id, "_row": np.arange(len(meters), dtype=np.int32)}
    )
    if ids.dtype.is_integer() and all(m.isdigit() for m in meters.meter_id):
        lookup = lookup.with_columns(pl.col("meter_id").cast(ids.dtype))
    else:
        ids = ids.cast(pl.String)
    joined = (
        pl.DataFrame({"meter_id": ids, "ts": ts, "value": value})
        .join(lookup, on="meter_id", how="left", maintain_order="left")
        .select("_row", "ts", "value")
    )
    bad = {
        "unknown_meter": joined["_row"].is_null(),
        "bad_timestamp": joined["ts"].is_null(),
        "bad_value": joined["value"].is_null() | joined["value"].is_nan().fill_null(True),
    }
    keep = np.ones(joined.height, dtype=bool)
    for reason, mask in bad.items():
        hit = mask.to_numpy() & keep
        if hit.any():
            rejected[reason] = int(hit.sum())
        keep &= ~hit
    if not keep.all():
        joined = joined.filter(pl.Series(keep))
    return Readings(
        meter=joined["_row"].to_numpy().astype(np.int32, copy=False),
        ts=joined["ts"].to_numpy().astype(np.int64, copy=False),
        value=joined["value"].to_numpy().astype(np.float64, copy=False),
        rejected=rejected,
    )


def parse_ts(series: pl.Series) -> pl.Series:
    """Epoch seconds (int64, null when unusable) from epoch numbers or ISO 8601 with offset."""
    if series.dtype.is_numeric():
        return series.cast(pl.Float64).floor().cast(pl.Int64)
    if isinstance(series.dtype, pl.Datetime):
        if series.dtype.time_zone is None:
            return pl.Series(series.name, [None] * len(series), dtype=pl.Int64)
        return series.dt.epoch("s")
    text = series.cast(pl.String).str.strip_chars()
    numeric = text.str.contains(r"^-?\d+(\.\d+)?$").fill_null(False)
    epoch = text.cast(pl.Float64, strict=False).floor().cast(pl.Int64)
    parsed = text.str.to_datetime(time_zone="UTC", strict=False, time_unit="us").dt.epoch("s")
    out = pl.select(
        pl.when(numeric).then(epoch).otherwise(parsed).alias(series.name or "ts")
    ).to_series()
    missing = out.is_null() & text.is_not_null() & ~numeric
    if missing.any():
        # Rows in another ISO form than the first: parse one by one; no offset -> null.
        values = out.to_list()
        for i in np.flatnonzero(missing.to_numpy()):
            values[i] = _iso_epoch(text[int(i)])
        out = pl.Series(out.name, values, dtype=pl.Int64)
    return out


def _iso_epoch(text: str) -> int | None:
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return int(moment.timestamp() // 1)
