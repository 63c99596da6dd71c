"""The Spark engine: the local engine's per-meter function, run per meter on Apache Spark.

A meter's alerts depend only on its readings, its row of the meter table and its district's
rules (engine.py). This engine reads the same files as the local one (``tables.py``: a METERS
table, readings as CSV or Parquet files or folders, including the reading store's
``readings/day=YYYY-MM-DD/*.parquet``), maps each reading to its meter's row with a broadcast
join, groups the readings by meter (``groupBy("_row").applyInPandas``) and, per group, parses
timestamps and values with the local engine's own functions and calls ``engine.run`` on the
one-meter table (what ``engine.detect_meter`` does) with the broadcast meter table, rule book
and ticks. The alerts come back as rows; the driver orders them as the local engine does. The
alerts are therefore the local engine's by construction; ``tests/test_detection_spark.py``
checks it on real data.

Every meter of the table is run, also one without readings (it is silent: ``data_silence``),
through one sentinel row per meter. Readings of unknown meters, unparseable times or values
and readings from the future are counted as the local engine counts them.

The session (``session``): ``TANFANG_SPARK_MASTER`` (default ``local[2]``) is the master URL,
``TANFANG_SPARK_DRIVER_MEMORY`` (default ``1g``) the driver's memory; anything else comes from
Spark's own configuration (``$SPARK_CONF_DIR/spark-defaults.conf``). The session time zone is
UTC, Arrow is on, the logs are quiet. docs/detection.md ("Spark engine") has the cluster setup.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from tanfang.monitoring.detection import engine
from tanfang.monitoring.detection.config import RuleBook
from tanfang.monitoring.detection.episodes import Alert
from tanfang.monitoring.detection.tables import (
    MeterTable,
    Readings,
    TableError,
    parse_ts,
    reading_files,
)

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import Column, DataFrame, SparkSession

ENV_MASTER = "TANFANG_SPARK_MASTER"
ENV_DRIVER_MEMORY = "TANFANG_SPARK_DRIVER_MEMORY"
DEFAULT_MASTER = "local[2]"
DEFAULT_DRIVER_MEMORY = "1g"
# Readings of unknown meters are counted in this many groups (never one huge group).
UNKNOWN_BUCKETS = 16
# The columns every reading has once read (``standardise``): the meter's row (negative:
# unknown meter), a sentinel flag, and ts / value either as numbers or as text.
READING_SCHEMA = "_row int, _s boolean, ts_n double, ts_s string, v_n double, v_s string"
ALERT_SCHEMA = (
    "meter int, seq int, rule string, kind string, severity string, started_at long, "
    "detected_at long, resolved_at long, evidence string, counts string"
)
# PySpark 4 warns that pandas 3 is not fully supported; the paths used here work with it
# (tests/test_detection_spark.py runs them).
_PANDAS_WARNING = "PySpark does not yet fully support pandas"


# -- the session ---------------------------------------------------------------------------
def _quiet_pandas_check() -> None:
    """PySpark checks the pandas version once, when ``pyspark.testing.utils`` is first
    imported (by type inference, among others); import it here with that warning ignored."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_PANDAS_WARNING, category=FutureWarning)
        import pyspark.testing.utils  # noqa: F401


def session(master: str | None = None, *, app_name: str = "tanfang-detect") -> SparkSession:
    """A Spark session for the detection engine (see the module's docstring)."""
    from pyspark.sql import SparkSession

    _quiet_pandas_check()
    master = master or os.environ.get(ENV_MASTER)
    if master is None and "PYSPARK_GATEWAY_PORT" not in os.environ:
        master = DEFAULT_MASTER  # (under spark-submit, its --master holds)
    local = master is not None and master.startswith("local")
    if local:
        # Workers run this interpreter (the project's environment), bound to the loopback.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    log4j = Path(__file__).with_name("spark-log4j2.properties")
    builder = SparkSession.builder.appName(app_name)
    if master is not None:
        builder = builder.master(master)
    builder = (
        builder.config(
            "spark.driver.memory", os.environ.get(ENV_DRIVER_MEMORY, DEFAULT_DRIVER_MEMORY)
        )
        .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={log4j.as_uri()}")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.showConsoleProgress", "false")
    )
    if local:
        # One machine: no web UI, few shuffle partitions (AQE coalesces them further), files
        # listed on the driver rather than by a Spark job.
        builder = (
            builder.config("spark.ui.enabled", "false")
            .config("spark.sql.shuffle.partitions", "8")
            .config("spark.sql.sources.parallelPartitionDiscovery.threshold", "100000")
        )
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


@contextmanager
def active_session(master: str | None = None) -> Iterator[SparkSession]:
    """The active session if there is one (left running), else a new one, stopped at the end."""
    from pyspark.sql import SparkSession

    existing = SparkSession.getActiveSession()
    spark = existing or session(master)
    try:
        yield spark
    finally:
        if existing is None:
            spark.stop()


# -- reading -------------------------------------------------------------------------------
@dataclass
class Sources:
    """Where the readings are, grouped so that one Spark read suits each group: CSV files by
    header (Spark reads CSV columns by position), Parquet files by the types of their
    columns (one schema per read). ``uri``: a location with a scheme, handed to Spark as is.
    """

    csv: list[tuple[tuple[str, ...], list[str]]] = field(default_factory=list)  # names, files
    parquet: list[tuple[tuple[str, ...], list[str]]] = field(default_factory=list)  # types
    uri: str = ""


def sources(path: str | Path) -> Sources:
    """The readings files of ``path`` as ``tables.read_readings`` finds them: a file, or every
    ``*.csv`` and ``*.parquet`` below a folder (the reading store's
    ``readings/day=YYYY-MM-DD/*.parquet`` included). Unusable files raise TableError here, on
    the driver, before any Spark work. A URI with a scheme (``hdfs://``, ``s3a://``, ...) is
    not listed: it is a ``.csv`` file, or a Parquet file or folder, read by Spark itself."""
    text = str(path)
    if "://" in text and not text.startswith("file://"):
        return Sources(uri=text)
    csv_groups: dict[tuple[str, ...], list[str]] = {}
    parquet_groups: dict[tuple[str, ...], list[str]] = {}
    for file in reading_files(text.removeprefix("file://")):
        uri = "file://" + str(file.resolve())
        if file.suffix.lower() == ".parquet":
            parquet_groups.setdefault(_parquet_types(file), []).append(uri)
        else:
            csv_groups.setdefault(_csv_header(file), []).append(uri)
    return Sources(list(csv_groups.items()), list(parquet_groups.items()))


def read_readings(spark: SparkSession, path: str | Path | Sources, meters: MeterTable) -> DataFrame:
    """Readings files as the local engine reads them (``tables.read_readings``), on Spark:
    READING_SCHEMA rows for ``run`` and ``open_at``. The schemas known from the headers and
    footers are given to Spark, which then reads no file to infer them."""
    from pyspark.sql import types as T

    found = path if isinstance(path, Sources) else sources(path)
    frames = []
    for names, files in found.csv:
        schema = T.StructType([T.StructField(n, T.StringType()) for n in names])
        frames.append(_checked(_csv_reader(spark).schema(schema).csv(files), files[0]))
    for types, files in found.parquet:
        fields = [_spark_type(t) for t in types]
        reader = spark.read
        if all(f is not None for f in fields):
            reader = reader.schema(
                T.StructType([T.StructField(n, f) for n, f in zip(_COLUMNS, fields, strict=True)])
            )
        frames.append(_checked(reader.parquet(*files), files[0]))
    if found.uri.lower().endswith(".csv"):
        frames.append(_checked(_csv_reader(spark).csv(found.uri), found.uri))
    elif found.uri:
        frame = spark.read.option("recursiveFileLookup", "true").parquet(found.uri)
        frames.append(_checked(frame, found.uri))
    return standardise(spark, frames, meters)


_COLUMNS = ("meter_id", "ts", "value")


def _csv_header(file: Path) -> tuple[str, ...]:
    try:
        with file.open(encoding="utf-8-sig", newline="") as handle:
            line = handle.readline().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise TableError(f"cannot read readings file {file}: {exc}") from exc
    names = tuple(next(csv.reader([line]), []))
    for name in _COLUMNS:
        if name not in names:
            raise TableError(f"cannot read readings file {file}: no column {name}")
    return names


def _parquet_types(file: Path) -> tuple[str, ...]:
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(file)
    except Exception as exc:  # pyarrow raises several kinds for unusable files
        raise TableError(f"cannot read readings file {file}: {exc}") from exc
    out = []
    for name in _COLUMNS:
        if name not in schema.names:
            raise TableError(f"cannot read readings file {file}: no column {name}")
        out.append(str(schema.field(name).type))
    return tuple(out)


def _spark_type(arrow: str) -> Any:
    """The Spark type Spark reads a Parquet column of this Arrow type as; None: unsure (Spark
    then infers the schema itself)."""
    from pyspark.sql import types as T

    simple = {
        "int8": T.ByteType(),
        "int16": T.ShortType(),
        "int32": T.IntegerType(),
        "int64": T.LongType(),
        "float": T.FloatType(),
        "double": T.DoubleType(),
        "string": T.StringType(),
        "large_string": T.StringType(),
        "bool": T.BooleanType(),
    }
    if arrow in simple:
        return simple[arrow]
    if arrow.startswith(("timestamp[ms", "timestamp[us")):
        return T.TimestampType() if "tz=" in arrow else T.TimestampNTZType()
    return None


def _csv_reader(spark: SparkSession) -> Any:
    return (
        spark.read.option("header", "true")
        .option("inferSchema", "false")
        .option("escape", '"')
        .option("encoding", "UTF-8")
    )


def _checked(frame: DataFrame, where: str) -> DataFrame:
    for name in _COLUMNS:
        if name not in frame.columns:
            raise TableError(f"cannot read readings file {where}: no column {name}")
    return frame.select("meter_id", "ts", "value")


def standardise(spark: SparkSession, frames: Sequence[DataFrame], meters: MeterTable) -> DataFrame:
    """Frames with ``meter_id, ts, value`` (any types) -> READING_SCHEMA rows, one sentinel
    row per meter of the table included.

    Numbers stay numbers and text stays text: the per-meter function parses both with the
    local engine's ``parse_ts`` and casts, so a value is never re-formatted on the way.
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    # As tables.meter_rows: integer ids match digit-only meter ids as integers (the first
    # row wins: "42" and "0042" are one id), other ids are compared as text.
    keys: dict[Any, int] = {}
    numeric_ids = bool(frames) and all(
        isinstance(f.schema["meter_id"].dataType, T.IntegralType) for f in frames
    )
    if numeric_ids:
        try:
            if not all(m.isdigit() for m in meters.meter_id):
                raise ValueError("not digits")
            for row, m in enumerate(meters.meter_id):
                if not -(2**63) <= int(m) < 2**63:
                    raise OverflowError(m)
                keys.setdefault(int(m), row)
        except (ValueError, OverflowError):
            numeric_ids, keys = False, {}
    if not numeric_ids:
        keys = {m: row for row, m in enumerate(meters.meter_id)}
    parts = []
    for frame in frames:
        ts_type = frame.schema["ts"].dataType
        value_type = frame.schema["value"].dataType
        ts_n, ts_s = _number_or_text(F.col("ts"), ts_type)
        v_n, v_s = _number_or_text(F.col("value"), value_type)
        key = F.col("meter_id").cast("long" if numeric_ids else "string")
        parts.append(
            frame.select(
                key.alias("_key"),
                ts_n.alias("ts_n"),
                ts_s.alias("ts_s"),
                v_n.alias("v_n"),
                v_s.alias("v_s"),
            )
        )
    lookup = spark.createDataFrame(
        list(keys.items()), schema=f"_key {'long' if numeric_ids else 'string'}, _known int"
    )
    sentinels = spark.range(len(meters)).select(
        F.col("id").cast("int").alias("_row"),
        F.lit(True).alias("_s"),
        *(F.lit(None).cast(t).alias(c) for c, t in _VALUE_COLUMNS),
    )
    if not parts:
        return sentinels
    readings = parts[0]
    for part in parts[1:]:
        readings = readings.unionByName(part)
    unknown = -1 - F.pmod(F.xxhash64(F.col("_key")), F.lit(UNKNOWN_BUCKETS)).cast("int")
    readings = readings.join(F.broadcast(lookup), on="_key", how="left").select(
        F.coalesce(F.col("_known"), unknown).alias("_row"),
        F.lit(False).alias("_s"),
        *(F.col(c) for c, _ in _VALUE_COLUMNS),
    )
    return readings.unionByName(sentinels)


# A time of day followed by a UTC offset, at the end of an ISO 8601 text.
_OFFSET = r"\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$"
_VALUE_COLUMNS = (("ts_n", "double"), ("ts_s", "string"), ("v_n", "double"), ("v_s", "string"))


def _number_or_text(col: Column, data_type: Any) -> tuple[Column, Column]:
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    none_n, none_s = F.lit(None).cast("double"), F.lit(None).cast("string")
    if isinstance(data_type, T.NumericType | T.BooleanType):
        return col.cast("double"), none_s
    if isinstance(data_type, T.TimestampType):  # an instant: epoch seconds
        return F.unix_seconds(col).cast("double"), none_s
    if isinstance(data_type, T.TimestampNTZType):  # no offset: unusable, as in tables.py
        return none_n, none_s
    return none_n, col.cast("string")


# -- the per-meter function ----------------------------------------------------------------
def _parse(pdf: pd.DataFrame) -> Readings:
    """One meter's rows -> Readings, with the local engine's parsing and counting."""
    ts_n = pdf["ts_n"].to_numpy(dtype=np.float64, na_value=np.nan)
    value = pdf["v_n"].to_numpy(dtype=np.float64, na_value=np.nan).copy()
    # Numbers: parse_ts's numeric branch (floor to whole seconds); text: parse_ts itself.
    known = np.isfinite(ts_n)
    ts = np.where(known, np.floor(np.where(known, ts_n, 0.0)), 0.0).astype(np.int64)
    text_ts = pdf["ts_s"].notna().to_numpy(dtype=bool)
    if text_ts.any():
        text = pl.Series("ts", pdf["ts_s"][text_ts].tolist(), dtype=pl.String)
        # parse_ts takes its format from the first text; one with an offset first, so that a
        # text without one stays unusable whatever order Spark delivers the rows in.
        first = np.argsort(~text.str.contains(_OFFSET).fill_null(False).to_numpy(), kind="stable")
        parsed = np.empty(len(text), dtype=object)
        parsed[first] = parse_ts(text.gather(first)).to_list()
        known[text_ts] = [v is not None for v in parsed]
        ts[text_ts] = [0 if v is None else v for v in parsed]
    text_v = pdf["v_s"].notna().to_numpy(dtype=bool)
    if text_v.any():
        cast = pl.Series(pdf["v_s"][text_v].tolist(), dtype=pl.String).cast(
            pl.Float64, strict=False
        )
        value[text_v] = cast.fill_null(np.nan).to_numpy()
    bad_ts = ~known
    bad_value = np.isnan(value) & known
    rejected = {}
    if bad_ts.any():
        rejected["bad_timestamp"] = int(bad_ts.sum())
    if bad_value.any():
        rejected["bad_value"] = int(bad_value.sum())
    keep = ~(bad_ts | bad_value)
    ts, value = ts[keep], value[keep]
    # Spark delivers a group in no particular order; the engine sorts (normalise.py), and
    # a fixed order here keeps device events with equal times deterministic.
    order = np.lexsort((value, ts))
    return Readings(np.zeros(len(ts), np.int32), ts[order], value[order], rejected)


def _meter_function(
    meters: Any, book: Any, ticks: Any, lag_s: int, step_s: int, future_cutoff: int | None
) -> Any:
    """``fn(key, pdf)`` for applyInPandas; ``meters``, ``book``, ``ticks`` are broadcasts."""

    def fn(key: tuple[Any, ...], pdf: pd.DataFrame) -> pd.DataFrame:
        import pandas as pd

        row = int(key[0])
        records: list[dict[str, Any]] = []
        counts: dict[str, dict[str, int]] = {}
        if row < 0:
            counts = {"quarantined": {"unknown_meter": len(pdf)}, "info": {}}
        else:
            readings = _parse(pdf[~pdf["_s"].to_numpy(dtype=bool)])
            table: MeterTable = meters.value.take([row])
            result = engine.run(
                table,
                readings,
                book.value,
                ticks.value,
                lag_s=lag_s,
                step_s=step_s,
                future_cutoff=future_cutoff,
            )
            for seq, alert in enumerate(result.alerts):
                records.append(
                    {
                        "meter": row,
                        "seq": seq,
                        "rule": alert.rule,
                        "kind": alert.kind,
                        "severity": alert.severity,
                        "started_at": alert.started_at,
                        "detected_at": alert.detected_at,
                        "resolved_at": alert.resolved_at,
                        "evidence": json.dumps(alert.evidence, ensure_ascii=False),
                        "counts": None,
                    }
                )
            if result.quarantined or result.info:
                counts = {"quarantined": result.quarantined, "info": result.info}
        if counts:
            records.append({"meter": row, "seq": -1, "counts": json.dumps(counts)})
        frame = pd.DataFrame.from_records(records, columns=_ALERT_COLUMNS)
        return frame.astype(_ALERT_DTYPES)

    return fn


_ALERT_COLUMNS = [c.split()[0] for c in ALERT_SCHEMA.split(", ")]
# Text as Python objects: pandas 3's Arrow-backed strings do not pass PySpark 4's converter.
_ALERT_DTYPES: dict[str, Any] = {
    "meter": "int32",
    "seq": "int32",
    "rule": object,
    "kind": object,
    "severity": object,
    "started_at": "Int64",
    "detected_at": "Int64",
    "resolved_at": "Int64",
    "evidence": object,
    "counts": object,
}


# -- the engine ----------------------------------------------------------------------------
def run(
    spark: SparkSession,
    meters: MeterTable,
    readings: DataFrame,
    book: RuleBook,
    ticks: np.ndarray,
    *,
    lag_s: int = engine.DEFAULT_LAG_S,
    step_s: int = engine.DEFAULT_STEP_S,
    future_cutoff: int | None = None,
) -> engine.Result:
    """``engine.run`` on Spark: ``readings`` from ``read_readings`` (or ``standardise``)."""
    out = alerts_frame(
        spark,
        meters,
        readings,
        book,
        ticks,
        lag_s=lag_s,
        step_s=step_s,
        future_cutoff=future_cutoff,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_PANDAS_WARNING, category=FutureWarning)
        rows = out.collect()
    result = engine.Result([])
    found: list[tuple[tuple[int, int, str, int], Alert]] = []
    quarantined: dict[str, int] = {}
    info: dict[str, int] = {}
    for r in rows:
        if r["counts"] is not None:
            counts = json.loads(r["counts"])
            for k, v in counts["quarantined"].items():
                quarantined[k] = quarantined.get(k, 0) + v
            for k, v in counts["info"].items():
                info[k] = info.get(k, 0) + v
            continue
        alert = Alert(
            meter=r["meter"],
            rule=r["rule"],
            kind=r["kind"],
            severity=r["severity"],
            started_at=r["started_at"],
            detected_at=r["detected_at"],
            resolved_at=r["resolved_at"],
            evidence=json.loads(r["evidence"]),
        )
        found.append(((alert.detected_at, alert.meter, alert.rule, r["seq"]), alert))
    # The local engine's order: (detected_at, meter, rule), then each meter's own order.
    found.sort(key=lambda pair: pair[0])
    result.alerts = [alert for _, alert in found]
    first = ("unknown_meter", "bad_timestamp", "bad_value", "future_timestamp")
    for key in [*first, *sorted(set(quarantined) - set(first))]:
        if key in quarantined:
            result.quarantined[key] = quarantined[key]
    result.info = dict(sorted(info.items()))
    return result


def alerts_frame(
    spark: SparkSession,
    meters: MeterTable,
    readings: DataFrame,
    book: RuleBook,
    ticks: np.ndarray,
    *,
    lag_s: int = engine.DEFAULT_LAG_S,
    step_s: int = engine.DEFAULT_STEP_S,
    future_cutoff: int | None = None,
) -> DataFrame:
    """The alerts as a Spark DataFrame (ALERT_SCHEMA; ``meter`` = row in ``meters``), for
    jobs that write them rather than collect them. Rows with ``counts`` carry a meter's
    counts of readings set aside (JSON), not an alert."""
    _quiet_pandas_check()
    context = spark.sparkContext
    fn = _meter_function(
        context.broadcast(meters),
        context.broadcast(book),
        context.broadcast(np.asarray(ticks, dtype=np.int64)),
        lag_s,
        step_s,
        future_cutoff,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_PANDAS_WARNING, category=FutureWarning)
        return readings.groupBy("_row").applyInPandas(fn, schema=ALERT_SCHEMA)


def lookback_ticks(now: int, *, tick_s: int, lookback_s: int) -> np.ndarray:
    """The ticks ``engine.open_at`` replays for ``--now``."""
    return np.arange(now - lookback_s // tick_s * tick_s, now + 1, tick_s, dtype=np.int64)


def open_at(
    spark: SparkSession,
    meters: MeterTable,
    readings: DataFrame,
    book: RuleBook,
    now: int,
    *,
    lag_s: int = engine.DEFAULT_LAG_S,
    tick_s: int = engine.DEFAULT_STEP_S,
    lookback_s: int = engine.DEFAULT_LOOKBACK_S,
    step_s: int = engine.DEFAULT_STEP_S,
) -> engine.Result:
    """``engine.open_at`` on Spark: the alerts open at ``now``."""
    ticks = lookback_ticks(now, tick_s=tick_s, lookback_s=lookback_s)
    res = run(
        spark,
        meters,
        readings,
        book,
        ticks,
        lag_s=lag_s,
        step_s=step_s,
        future_cutoff=now + 300,
    )
    res.alerts = [a for a in res.alerts if a.resolved_at is None]
    return res
