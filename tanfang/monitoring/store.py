"""The reading store: raw meter readings as Parquet files, the layout both engines read.

Raw readings are not database rows (docs/monitoring-ingest.md has the figures). Under
``settings.MONITORING_DIR``::

    readings/day=YYYY-MM-DD/<batch_id>-<seq>.parquet   meter_id, ts, value, batch
    readings/day=YYYY-MM-DD/compact.parquet            the day merged and deduplicated
    hourly/month=YYYY-MM/day-YYYY-MM-DD.parquet        meter_id, hour, usage, n, covered_s
    quarantine/partner=<code>/<batch_id>.parquet       row, meter_id, ts, value, reason, detail

``ts`` is UTC epoch seconds stamping the end of the reading's interval; the day folder is the
UTC day of ``ts``, so one (meter, ts) always lands in the same folder and deduplicating a day
deduplicates the store. ``value`` is in the canonical unit (L for water and gas, Wh for
electricity) and, for cumulative meters, is the register reading: ``hourly_build`` turns
registers into usage with ``detection/normalise.py`` (resets, rollovers, jitter).

Every file is written to a hidden temporary name in its folder, flushed to disk and renamed:
a crash leaves either the whole file or none of it (the ``.tmp`` leftovers are ignored by
readers and removed by ``retention_apply``).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
from django.conf import settings

from tanfang.monitoring.detection.config import DEFAULT_BOOK
from tanfang.monitoring.detection.engine import UNITS as CANONICAL_UNITS
from tanfang.monitoring.detection.normalise import Normalised, normalise
from tanfang.monitoring.detection.tables import MeterTable, Readings

DAY_S = 86_400
HOUR_S = 3_600
READINGS_SCHEMA: dict[str, pl.DataType] = {
    "meter_id": pl.String(),
    "ts": pl.Int64(),
    "value": pl.Float64(),
    "batch": pl.Int64(),
}
HOURLY_SCHEMA: dict[str, pl.DataType] = {
    "meter_id": pl.String(),
    "hour": pl.Int64(),
    "usage": pl.Float64(),
    "n": pl.Int32(),
    "covered_s": pl.Int32(),
}
QUARANTINE_SCHEMA: dict[str, pl.DataType] = {
    "row": pl.Int64(),
    "meter_id": pl.String(),
    "ts": pl.String(),
    "value": pl.String(),
    "reason": pl.String(),
    "detail": pl.String(),
}
COMPACT_NAME = "compact.parquet"
# A cumulative register's first reading of a day needs the reading before it.
HOURLY_LOOKBACK_S = DAY_S
_DAY_DIR = re.compile(r"^day=(\d{4}-\d{2}-\d{2})$")
_MONTH_DIR = re.compile(r"^month=(\d{4}-\d{2})$")
_HOURLY_FILE = re.compile(r"^day-(\d{4}-\d{2}-\d{2})\.parquet$")


def root() -> Path:
    return Path(settings.MONITORING_DIR)


def day_of(ts: int) -> dt.date:
    return dt.date(1970, 1, 1) + dt.timedelta(days=ts // DAY_S)


def day_start(day: dt.date) -> int:
    return (day - dt.date(1970, 1, 1)).days * DAY_S


def as_day(day: dt.date | str) -> dt.date:
    return day if isinstance(day, dt.date) else dt.date.fromisoformat(day)


def day_dir(day: dt.date) -> Path:
    return root() / "readings" / f"day={day.isoformat()}"


def hourly_path(day: dt.date) -> Path:
    return root() / "hourly" / f"month={day:%Y-%m}" / f"day-{day.isoformat()}.parquet"


def quarantine_path(partner_code: str, batch_id: int) -> Path:
    return root() / "quarantine" / f"partner={partner_code}" / f"{batch_id}.parquet"


def relative(path: Path) -> str:
    return path.relative_to(root()).as_posix()


# --------------------------------------------------------------------------- writing


def write_atomic(frame: pl.DataFrame, path: Path) -> None:
    """Write ``frame`` to ``path`` so that a reader (or a crash) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with tmp.open("wb") as stream:
            frame.write_parquet(stream, compression="lz4", statistics=True)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _claim(folder: Path, stem: str) -> Path:
    """The first free ``<stem>-<seq>.parquet`` in ``folder``."""
    seq = 0
    while (folder / f"{stem}-{seq}.parquet").exists():
        seq += 1
    return folder / f"{stem}-{seq}.parquet"


def readings_append(frame: pl.DataFrame, *, batch_id: int) -> list[str]:
    """Store readings (``meter_id``, ``ts`` epoch s, ``value`` canonical) of one batch; one
    new file per UTC day they fall on. Returns the files written, relative to the store."""
    if frame.is_empty():
        return []
    data = frame.select(
        pl.col("meter_id").cast(pl.String),
        pl.col("ts").cast(pl.Int64),
        pl.col("value").cast(pl.Float64),
        pl.lit(batch_id, dtype=pl.Int64).alias("batch"),
    )
    days = data["ts"] // DAY_S
    lo, hi = days.min(), days.max()
    assert isinstance(lo, int) and isinstance(hi, int)
    if lo == hi:
        parts = {lo: data}
    else:
        parts = {
            int(key[0]): part
            for key, part in data.with_columns(_day=days)
            .partition_by("_day", as_dict=True, maintain_order=False)
            .items()
        }
    written = []
    for day_number, part in sorted(parts.items()):
        folder = day_dir(day_of(day_number * DAY_S))
        folder.mkdir(parents=True, exist_ok=True)
        path = _claim(folder, str(batch_id))
        write_atomic(part.select(list(READINGS_SCHEMA)), path)
        written.append(relative(path))
    return written


def quarantine_append(frame: pl.DataFrame, *, partner_code: str, batch_id: int) -> str | None:
    """Keep every reading set aside by a batch (row, meter_id, ts, value, reason, detail)."""
    if frame.is_empty():
        return None
    path = quarantine_path(partner_code, batch_id)
    write_atomic(frame.select([pl.col(c).cast(t) for c, t in QUARANTINE_SCHEMA.items()]), path)
    return relative(path)


# --------------------------------------------------------------------------- reading


def day_files(day: dt.date) -> list[Path]:
    folder = day_dir(day)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix == ".parquet" and p.name[0] != ".")


def stored_days() -> list[dt.date]:
    folder = root() / "readings"
    if not folder.is_dir():
        return []
    days = []
    for child in folder.iterdir():
        match = _DAY_DIR.match(child.name)
        if match and child.is_dir():
            days.append(dt.date.fromisoformat(match.group(1)))
    return sorted(days)


def _empty(schema: dict[str, pl.DataType]) -> pl.LazyFrame:
    return pl.LazyFrame(schema=schema)


def _dedupe(frame: pl.LazyFrame) -> pl.LazyFrame:
    """One reading per (meter, ts); when deliveries disagree the larger value wins (as in
    ``normalise.sort_dedupe``), so the result does not depend on the order of arrival."""
    return frame.group_by("meter_id", "ts").agg(
        pl.col("batch").sort_by("value").last(), pl.col("value").max()
    )


def readings_scan(
    *,
    since: int | None = None,
    until: int | None = None,
    meter_ids: Sequence[str] | None = None,
) -> pl.LazyFrame:
    """Stored readings with ``since <= ts <= until`` (epoch s), deduplicated on (meter, ts).

    Columns ``meter_id, ts, value, batch``, in no particular order. A day already compacted
    (one ``compact.parquet``) is read as is; the others are deduplicated on the fly.
    """
    days = stored_days()
    if since is not None:
        days = [d for d in days if d >= day_of(since)]
    if until is not None:
        days = [d for d in days if d <= day_of(until)]
    clean: list[Path] = []
    mixed: list[Path] = []
    for day in days:
        files = day_files(day)
        if len(files) == 1 and files[0].name == COMPACT_NAME:
            clean.extend(files)
        else:
            mixed.extend(files)
    frames = []
    for files, dedupe in ((clean, False), (mixed, True)):
        if not files:
            continue
        frame = pl.scan_parquet(files, hive_partitioning=False, schema=READINGS_SCHEMA)
        if since is not None:
            frame = frame.filter(pl.col("ts") >= since)
        if until is not None:
            frame = frame.filter(pl.col("ts") <= until)
        if meter_ids is not None:
            frame = frame.filter(pl.col("meter_id").is_in(list(meter_ids)))
        frames.append((_dedupe(frame) if dedupe else frame).select(list(READINGS_SCHEMA)))
    if not frames:
        return _empty(READINGS_SCHEMA)
    return pl.concat(frames, how="vertical")


def hourly_scan(
    *,
    since: int | None = None,
    until: int | None = None,
    meter_ids: Sequence[str] | None = None,
) -> pl.LazyFrame:
    """Hourly aggregates whose hour starts in [since, until] (epoch s)."""
    files = [
        path
        for day, path in _hourly_files()
        if (since is None or day >= day_of(since)) and (until is None or day <= day_of(until))
    ]
    if not files:
        return _empty(HOURLY_SCHEMA)
    frame = pl.scan_parquet(files, hive_partitioning=False, schema=HOURLY_SCHEMA)
    if since is not None:
        frame = frame.filter(pl.col("hour") >= since)
    if until is not None:
        frame = frame.filter(pl.col("hour") <= until)
    if meter_ids is not None:
        frame = frame.filter(pl.col("meter_id").is_in(list(meter_ids)))
    return frame


def _hourly_files() -> list[tuple[dt.date, Path]]:
    folder = root() / "hourly"
    if not folder.is_dir():
        return []
    found = []
    for month in folder.iterdir():
        if not (month.is_dir() and _MONTH_DIR.match(month.name)):
            continue
        for path in month.iterdir():
            match = _HOURLY_FILE.match(path.name)
            if match:
                found.append((dt.date.fromisoformat(match.group(1)), path))
    return sorted(found)


# --------------------------------------------------------------------------- compaction


@dataclass
class Compacted:
    day: dt.date
    files: int = 0  # files merged
    rows_in: int = 0
    rows_out: int = 0


def readings_compact(day: dt.date | str) -> Compacted:
    """Merge a day's files into one ``compact.parquet``, deduplicated and sorted by
    (meter, ts).

    Steps: list the day's files; write the merged file under a temporary name and rename it
    over ``compact.parquet``; only then delete the parts that were merged. A crash before
    the rename changes nothing; after it, the leftover parts are duplicates of rows in the
    compact file, which readers deduplicate and the next compaction removes. Parts appended
    while this runs are not in the listing and stay.
    """
    day = as_day(day)
    files = day_files(day)
    out = Compacted(day, files=len(files))
    if not files or (len(files) == 1 and files[0].name == COMPACT_NAME):
        return out
    frame = pl.read_parquet(files, hive_partitioning=False, schema=READINGS_SCHEMA)
    out.rows_in = frame.height
    merged = _dedupe(frame.lazy()).sort("meter_id", "ts").select(list(READINGS_SCHEMA)).collect()
    out.rows_out = merged.height
    write_atomic(merged, day_dir(day) / COMPACT_NAME)
    for path in files:
        if path.name != COMPACT_NAME:
            path.unlink(missing_ok=True)
    _fsync_dir(day_dir(day))
    return out


# --------------------------------------------------------------------------- hourly


@dataclass
class HourlyBuilt:
    day: dt.date
    meters: int = 0
    hours: int = 0
    path: str = ""
    set_aside: dict[str, int] = field(default_factory=dict)


def meters_from_db() -> pl.DataFrame:
    """Every meter's facts the store needs (``meter_id, utility, register, interval_minutes,
    rollover`` with the rollover in canonical units)."""
    from tanfang.monitoring.detection.tables import UNIT_FACTORS
    from tanfang.monitoring.models import Meter

    rows = list(
        Meter.objects.values_list(
            "meter_id", "utility", "register", "unit", "interval_minutes", "rollover"
        )
    )
    frame = pl.DataFrame(
        rows,
        schema={
            "meter_id": pl.String,
            "utility": pl.String,
            "register": pl.String,
            "unit": pl.String,
            "interval_minutes": pl.Int64,
            "rollover": pl.Float64,
        },
        orient="row",
    )
    factors = pl.DataFrame({"unit": list(UNIT_FACTORS), "_f": list(UNIT_FACTORS.values())})
    return (
        frame.join(factors, on="unit", how="left")
        .with_columns(rollover=pl.col("rollover") * pl.col("_f"))
        .drop("_f", "unit")
    )


def hourly_build(day: dt.date | str, *, meters: pl.DataFrame | None = None) -> HourlyBuilt:
    """Usage per meter and UTC hour of ``day``, written to ``hourly/`` (replacing an earlier
    build of the same day, so it can be rerun when late readings arrived).

    Steps:
    1. read the day's readings and, for registers, the day before's (the first reading of
       the day needs the one before it);
    2. ``normalise`` (detection core): interval registers give usage over (ts - interval, ts];
       cumulative registers give the rise since the last accepted reading, with resets,
       rollovers and jitter handled and impossible jumps set aside;
    3. spread each interval's usage over the hours it overlaps, in proportion to the overlap
       (a gap interval whose register moved puts its usage in its last hour);
    4. keep the hours some interval covered: ``usage`` there, ``covered_s`` how much of the
       hour the intervals covered (3600 = fully known; less = partly missing, never zero),
       ``n`` the readings stamped in the hour.

    ``meters``: ``meter_id, utility, register, interval_minutes, rollover`` (canonical
    units); default: every meter in the database. Readings of meters not in it are skipped.
    """
    day = as_day(day)
    start = day_start(day)
    end = start + DAY_S
    out = HourlyBuilt(day)
    readings = readings_scan(since=start - HOURLY_LOOKBACK_S + 1, until=end).collect()
    meters = meters_from_db() if meters is None else meters
    present = meters.join(readings.select("meter_id").unique(), on="meter_id", how="semi")
    hourly = pl.DataFrame(schema=HOURLY_SCHEMA)
    if present.height:
        hourly = _hourly(readings, present, start, out)
    write_atomic(hourly, hourly_path(day))
    out.meters = hourly["meter_id"].n_unique()
    out.hours = hourly.height
    out.path = relative(hourly_path(day))
    return out


def _hourly(
    readings: pl.DataFrame, meters: pl.DataFrame, start: int, out: HourlyBuilt
) -> pl.DataFrame:
    table = MeterTable.from_frame(
        meters.select(
            "meter_id",
            pl.lit("").alias("elder_id"),
            "utility",
            "register",
            pl.col("utility").replace_strict(CANONICAL_UNITS, default="L").alias("unit"),
            "interval_minutes",
            "rollover",
        )
    )
    index = pl.DataFrame({"meter_id": table.meter_id, "_m": np.arange(len(table), dtype=np.int32)})
    # Sorted here (Polars, in parallel) so that normalise finds them in order.
    rows = readings.join(index, on="meter_id", how="inner").sort("_m", "ts")
    m = rows["_m"].to_numpy().astype(np.int32)
    ts = rows["ts"].to_numpy()
    # Interval registers only need the day's own readings; registers the one before too.
    cumulative = np.array([r == "cumulative" for r in table.register], dtype=bool)
    keep = (ts > start) | cumulative[m]
    limits = DEFAULT_BOOK["limits"]
    max_per_hour = np.array([limits[u]["max_per_hour"] for u in table.utility], dtype=np.float64)
    max_gap_s = np.array([limits[u]["max_gap_hours"] * 3600 for u in table.utility])
    norm = normalise(
        Readings(meter=m[keep], ts=ts[keep], value=rows["value"].to_numpy()[keep]),
        table,
        max_per_hour=max_per_hour,
        max_gap_s=max_gap_s,
        future_cutoff=None,
    )
    out.set_aside = norm.quarantined()
    usage, covered = _spread_hours(norm, start, len(table))
    acc_in = (norm.acc_ts > start) & (norm.acc_ts <= start + DAY_S)
    counts = np.zeros(len(table) * 24, dtype=np.int64)
    slot = (norm.acc_ts[acc_in] - start - 1) // HOUR_S
    np.add.at(counts, norm.acc_meter[acc_in].astype(np.int64) * 24 + slot, 1)
    cells = np.flatnonzero(covered > 0)
    meter_rows = cells // 24
    return pl.DataFrame(
        {
            "meter_id": pl.Series(table.meter_id).gather(meter_rows),
            "hour": start + (cells % 24) * HOUR_S,
            "usage": usage[cells],
            "n": counts[cells].astype(np.int32),
            "covered_s": np.rint(covered[cells]).astype(np.int32),
        },
        schema=HOURLY_SCHEMA,
    ).sort("meter_id", "hour")


def _spread_hours(norm: Normalised, start: int, n_meters: int) -> tuple[np.ndarray, np.ndarray]:
    """(usage, covered seconds) per meter x hour of the day starting at ``start``."""
    usage = np.zeros(n_meters * 24)
    covered = np.zeros(n_meters * 24)
    a = norm.iv_start - start
    b = norm.iv_end - start
    inside = (b > 0) & (a < DAY_S) & (b > a)
    a, b = a[inside], b[inside]
    m = norm.iv_meter[inside].astype(np.int64)
    u = norm.iv_usage[inside]
    gap = norm.iv_gap[inside]
    first = np.floor_divide(a, HOUR_S)
    last = np.floor_divide(b - 1, HOUR_S)
    # Hours beyond the day are not this build's; a gap's usage is known only in its last hour.
    first = np.where(gap, last, np.maximum(first, 0))
    keep = last < 24
    last = np.minimum(last, 23)
    n = np.where(keep | ~gap, last - first + 1, 0)
    length = (b - a).astype(np.float64)
    rep = np.repeat(np.arange(len(a)), n)
    offset = np.arange(len(rep)) - np.repeat(np.cumsum(n) - n, n)
    hour = first[rep] + offset
    lo = np.maximum(a[rep], hour * HOUR_S)
    hi = np.minimum(b[rep], (hour + 1) * HOUR_S)
    overlap = (hi - lo).astype(np.float64)
    share = np.where(gap[rep], u[rep], u[rep] * overlap / length[rep])
    cell = m[rep] * 24 + hour
    np.add.at(usage, cell, share)
    np.add.at(covered, cell, overlap)
    return usage, np.minimum(covered, HOUR_S)


# --------------------------------------------------------------------------- retention


@dataclass
class Retained:
    raw_days_deleted: list[dt.date] = field(default_factory=list)
    hourly_built: list[dt.date] = field(default_factory=list)
    hourly_days_deleted: list[dt.date] = field(default_factory=list)
    quarantine_files_deleted: int = 0
    leftovers_removed: int = 0


def retention_apply(now: dt.datetime, *, meters: pl.DataFrame | None = None) -> Retained:
    """Delete what has outlived its keeping time.

    Raw readings older than ``RAW_READING_DAYS`` are deleted day by day, each only once its
    hourly aggregates exist and are newer than every file of the day (otherwise they are
    built first); hourly aggregates older than ``HOURLY_READING_DAYS`` are deleted, and so
    are quarantined readings older than the raw readings' keeping time and temporary files
    left by a crash.
    """
    out = Retained()
    today = day_of(int(now.timestamp()))
    raw_before = today - dt.timedelta(days=settings.RAW_READING_DAYS)
    hourly_before = today - dt.timedelta(days=settings.HOURLY_READING_DAYS)
    expired = [day for day in stored_days() if day < raw_before]
    # Every aggregate first, then the deletions: a day's registers need the day before.
    for day in expired:
        target = hourly_path(day)
        newest = max((p.stat().st_mtime for p in day_files(day)), default=0.0)
        if not target.exists() or target.stat().st_mtime < newest:
            if meters is None:
                meters = meters_from_db()
            hourly_build(day, meters=meters)
            out.hourly_built.append(day)
    for day in expired:
        shutil.rmtree(day_dir(day))
        out.raw_days_deleted.append(day)
    for day, path in _hourly_files():
        if day < hourly_before:
            path.unlink()
            out.hourly_days_deleted.append(day)
    for month in (root() / "hourly").glob("month=*"):
        if month.is_dir() and not any(month.iterdir()):
            month.rmdir()
    cutoff = now.timestamp() - settings.RAW_READING_DAYS * DAY_S
    for path in (root() / "quarantine").glob("partner=*/*.parquet"):
        if path.stat().st_mtime < cutoff:
            path.unlink()
            out.quarantine_files_deleted += 1
    out.leftovers_removed = _remove_leftovers(now.timestamp() - DAY_S)
    return out


def _remove_leftovers(older_than: float) -> int:
    """Temporary files of writes that a crash interrupted (a day old: no writer is on them)."""
    folder = root()
    if not folder.is_dir():
        return 0
    removed = 0
    for path in folder.rglob(".*.tmp"):
        if path.is_file() and path.stat().st_mtime < older_than:
            path.unlink(missing_ok=True)
            removed += 1
    return removed
