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
import itertools
import operator
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
SUPPRESSING = ("away", "hospital", "deceased")  # statuses that silence person alerts
READ_COLUMNS = ["meter_id", "ts", "value"]
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
    # Derived lookups (meter id -> row for integer ids, ...), built on first use.
    _derived: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.index:
            self.index = {m: i for i, m in enumerate(self.meter_id)}

    def __len__(self) -> int:
        return len(self.meter_id)

    def take(self, rows: np.ndarray | list[int]) -> MeterTable:
        idx = np.asarray(rows, dtype=np.int64).reshape(-1)
        if len(idx) == 0:
            return MeterTable([], [], [], [], self.factor[:0], self.interval_s[:0], [], [], [],
                              self.rollover[:0], [])  # fmt: skip
        pick = operator.itemgetter(*idx.tolist())

        def column(values: list[str]) -> list[str]:
            got = pick(values)
            return list(got) if len(idx) > 1 else [got]

        return MeterTable(
            meter_id=column(self.meter_id),
            elder_id=column(self.elder_id),
            utility=column(self.utility),
            register=column(self.register),
            factor=self.factor[idx],
            interval_s=self.interval_s[idx],
            tz=column(self.tz),
            district=column(self.district),
            status=column(self.status),
            rollover=self.rollover[idx],
            device_kind=column(self.device_kind),
        )

    def codes(self, name: str) -> tuple[list[str], np.ndarray]:
        """A text column as (its distinct values, sorted; each row's index into them), as
        ``np.unique(column, return_inverse=True)`` gives, cached."""
        key = f"codes:{name}"
        if key not in self._derived:
            column: list[str] = getattr(self, name)
            values = sorted(set(column))
            index = {v: i for i, v in enumerate(values)}
            codes = np.fromiter(map(index.__getitem__, column), np.int64, len(column))
            self._derived[key] = (values, codes)
        found: tuple[list[str], np.ndarray] = self._derived[key]
        return found

    def flags(self, name: str) -> np.ndarray:
        """Per meter bool arrays, cached: ``cumulative`` (register), ``suppressed`` (status
        away, hospital or deceased)."""
        key = f"flags:{name}"
        if key not in self._derived:
            if name == "cumulative":
                out = np.array([r == "cumulative" for r in self.register], dtype=bool)
            elif name == "suppressed":
                out = np.array([s in SUPPRESSING for s in self.status], dtype=bool)
            else:
                raise KeyError(name)
            self._derived[key] = out
        flags: np.ndarray = self._derived[key]
        return flags

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
    """Every reading of the file or folder, in file order, ids mapped to meter rows.

    Parquet files with numeric timestamps are read row group by row group (two threads);
    anything else through Polars as one frame. Both give the same readings.
    """
    files = reading_files(path)
    if not batchable(files):
        return readings_from_frame(_read_frame(files), meters)
    parts = list(reading_batches(files, meters))
    rejected: dict[str, int] = {}
    for part in parts:
        for k, v in part.rejected.items():
            rejected[k] = rejected.get(k, 0) + v
    if len(parts) == 1:
        only = parts[0]
        return Readings(only.meter, only.ts, only.value, rejected)
    return Readings(
        np.concatenate([p.meter for p in parts]) if parts else np.zeros(0, np.int32),
        np.concatenate([p.ts for p in parts]) if parts else np.zeros(0, np.int64),
        np.concatenate([p.value for p in parts]) if parts else np.zeros(0),
        rejected,
    )


def _read_frame(files: list[Path]) -> pl.DataFrame:
    frames = []
    for file in files:
        try:
            if file.suffix.lower() == ".parquet":
                frame = pl.read_parquet(file, columns=READ_COLUMNS)
            else:
                frame = pl.read_csv(
                    file,
                    columns=READ_COLUMNS,
                    schema_overrides={"meter_id": pl.String, "ts": pl.String},
                )
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise TableError(f"cannot read readings file {file}: {exc}") from exc
        frames.append(frame)
    return pl.concat(frames, how="diagonal_relaxed")


def batchable(files: list[Path]) -> bool:
    """Parquet files with numeric ts and one id type: readable slice by slice with exactly the
    readings the whole-frame path gives."""
    id_types = set()
    for file in files:
        if file.suffix.lower() != ".parquet":
            return False
        try:
            schema = pl.read_parquet_schema(file)
        except (OSError, pl.exceptions.PolarsError):
            return False  # the frame path reports the error
        if any(c not in schema for c in READ_COLUMNS):
            return False
        if not (schema["ts"].is_integer() or schema["ts"].is_float()):
            return False
        id_types.add(str(schema["meter_id"]))
    return len(id_types) == 1


BATCH_ROWS = 1 << 20  # readings per slice


def reading_batches(
    source: str | Path | list[Path],
    meters: MeterTable,
    *,
    threads: int = 2,
    transform: Any = None,
) -> Iterator[Any]:
    """The readings of Parquet files (numeric ts) as consecutive slices of about
    ``BATCH_ROWS`` readings, in file order, unusable rows left out and counted in each
    slice's ``rejected``. Polars decodes the files (its own threads, streaming: memory stays
    bounded); ``threads`` threads convert the slices, at most a few ahead of the consumer.
    ``transform(readings)``, when given, runs on each slice in those threads and its result
    is yielded instead."""
    files = source if isinstance(source, list) else reading_files(source)

    def frames() -> Iterator[pl.DataFrame]:
        for file in files:
            try:
                scan = pl.scan_parquet(file).select(READ_COLUMNS)
                yield from scan.collect_batches(chunk_size=BATCH_ROWS)
            except (OSError, pl.exceptions.PolarsError) as exc:
                raise TableError(f"cannot read readings file {file}: {exc}") from exc

    def convert(frame: pl.DataFrame) -> Any:
        out = _frame_readings(frame, meters)
        return out if transform is None else transform(out)

    yield from ordered_map(convert, frames(), threads=threads, ahead=threads + 1)


def ordered_map(
    fn: Any, items: Iterable[Any], *, threads: int = 2, ahead: int = 3
) -> Iterator[Any]:
    """``map(fn, items)`` on a few threads, in order, at most ``ahead`` results in flight."""
    if isinstance(items, list | tuple) and len(items) <= 1:
        threads = 1
    if threads <= 1:
        yield from map(fn, items)
        return
    source = iter(items)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        pending = [pool.submit(fn, item) for item in itertools.islice(source, ahead)]
        while pending:
            result = pending.pop(0).result()
            for item in itertools.islice(source, 1):
                pending.append(pool.submit(fn, item))
            yield result


def _frame_readings(frame: pl.DataFrame, meters: MeterTable) -> Readings:
    """One slice -> Readings (as ``readings_from_frame``)."""
    ts_col = frame["ts"]
    if ts_col.dtype.is_integer() and not ts_col.null_count():
        ts = ts_col.cast(pl.Int64).to_numpy()
        ts_null = None
    else:
        parsed = parse_ts(ts_col)
        ts_null = parsed.is_null().to_numpy()
        ts = parsed.fill_null(0).to_numpy()
    value = frame["value"]
    if value.dtype != pl.Float64:
        value = value.cast(pl.Float64, strict=False)
    rows = meter_rows(frame["meter_id"], meters)
    return _usable(rows, ts, ts_null, value.fill_null(np.nan).to_numpy())


def _usable(
    rows: np.ndarray, ts: np.ndarray, ts_null: np.ndarray | None, value: np.ndarray
) -> Readings:
    """Leave out unknown meters, then bad timestamps, then bad values (null or NaN)."""
    rejected: dict[str, int] = {}
    unknown = rows < 0
    bad_value = np.isnan(value)
    keep = None
    for reason, mask in (
        ("unknown_meter", unknown),
        ("bad_timestamp", ts_null),
        ("bad_value", bad_value),
    ):
        if mask is None or not mask.any():
            continue
        hit = mask if keep is None else mask & keep
        count = int(hit.sum())
        if count:
            rejected[reason] = count
            keep = ~hit if keep is None else keep & ~hit
    if keep is not None:
        rows, ts, value = rows[keep], ts[keep], value[keep]
    return Readings(
        rows.astype(np.int32, copy=False),
        ts.astype(np.int64, copy=False),
        value.astype(np.float64, copy=False),
        rejected,
    )


def readings_from_frame(frame: pl.DataFrame, meters: MeterTable) -> Readings:
    """Map meter ids to rows, parse timestamps and values; unusable rows are counted."""
    ts = parse_ts(frame["ts"])
    value = frame["value"].cast(pl.Float64, strict=False)
    rows = meter_rows(frame["meter_id"], meters)
    return _usable(
        rows,
        ts.fill_null(0).to_numpy(),
        ts.is_null().to_numpy() if ts.null_count() else None,
        value.fill_null(np.nan).to_numpy(),
    )


def meter_rows(ids: pl.Series, meters: MeterTable) -> np.ndarray:
    """Per id, its row in the meter table (int32, -1: unknown or null).

    Integer ids match digit-only meter ids as integers (``"0042"`` is 42); other ids are
    compared as text. Ids come in runs (a file lists a meter's readings together), so each
    run is looked up once.
    """
    n = len(ids)
    if n == 0:
        return np.zeros(0, np.int32)
    lookup = _int_lookup(meters) if ids.dtype.is_integer() else None
    if lookup is None and ids.dtype != pl.String:
        ids = ids.cast(pl.String)
    nulls = ids.is_null().to_numpy() if ids.null_count() else None
    if lookup is not None:
        a = ids.cast(pl.Int64).fill_null(0).to_numpy()
        starts = np.flatnonzero(np.concatenate(([True], a[1:] != a[:-1])))
        run_rows = lookup(a[starts])
    else:
        change = (ids != ids.shift(1)).fill_null(True).to_numpy()
        change[0] = True
        starts = np.flatnonzero(change)
        index = meters.index
        values = ids.gather(starts).to_list()
        run_rows = np.fromiter(
            (-1 if v is None else index.get(v, -1) for v in values), np.int32, len(values)
        )
    lengths = np.diff(np.append(starts, n))
    rows = np.repeat(run_rows.astype(np.int32, copy=False), lengths)
    if nulls is not None:
        rows[nulls] = -1
    return rows


def _int_lookup(meters: MeterTable) -> Any:
    """For digit-only meter ids: a vectorised int id -> row function (first row wins), else
    None (ids are then compared as text)."""
    if "int_lookup" in meters._derived:
        return meters._derived["int_lookup"]
    fn = None
    try:
        if all(m.isdigit() for m in meters.meter_id):
            keys = np.array([int(m) for m in meters.meter_id], dtype=np.int64)
            fn = _IntLookup(keys)
    except (ValueError, OverflowError):
        fn = None
    meters._derived["int_lookup"] = fn
    return fn


class _IntLookup:
    def __init__(self, keys: np.ndarray) -> None:
        self.lo = int(keys.min()) if len(keys) else 0
        span = int(keys.max()) - self.lo + 1 if len(keys) else 0
        self.lut: np.ndarray | None = None
        if len(keys) and span <= 4 * len(keys) + 1_000_000:
            lut = np.full(span, -1, dtype=np.int32)
            rows = np.arange(len(keys), dtype=np.int32)
            lut[keys[::-1] - self.lo] = rows[::-1]  # the first row wins
            self.lut = lut
        else:
            self.order = np.argsort(keys, kind="stable")
            self.sorted = keys[self.order]

    def __call__(self, values: np.ndarray) -> np.ndarray:
        out = np.full(len(values), -1, dtype=np.int32)
        if self.lut is not None:
            idx = values - self.lo
            ok = (idx >= 0) & (idx < len(self.lut))
            out[ok] = self.lut[idx[ok]]
            return out
        if not len(self.sorted):
            return out
        pos = np.searchsorted(self.sorted, values, side="left")
        pos_c = np.minimum(pos, len(self.sorted) - 1)
        ok = (pos < len(self.sorted)) & (self.sorted[pos_c] == values)
        out[ok] = self.order[pos_c[ok]]
        return out


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
    # A time without an offset is unusable (whatever the other rows say): Polars would read
    # the whole column as UTC when its first value has none.
    offset = text.str.contains(r"\d:\d{2}(:\d{2}(\.\d+)?)? ?(Z|[+-]\d{2}(:?\d{2})?)$")
    offset = offset.fill_null(False)
    parsed = text.str.to_datetime(time_zone="UTC", strict=False, time_unit="us").dt.epoch("s")
    out = pl.select(
        pl.when(numeric)
        .then(epoch)
        .when(offset)
        .then(parsed)
        .otherwise(None)
        .alias(series.name or "ts")
    ).to_series()
    missing = out.is_null() & offset
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
