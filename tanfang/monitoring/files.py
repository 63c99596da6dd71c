"""Reading files from the utilities' back-ends: CSV or Parquet, with the partner's mapping.

The format (docs/monitoring-ingest.md): one reading per row, at least the columns
``meter_id``, ``ts`` (ISO 8601 with a UTC offset, or epoch seconds; the end of the
reading's interval) and ``value`` (the interval's usage, or the register for cumulative
meters, in the meter's unit). A partner whose files look different has a column mapping
(``DataPartner.column_mapping``), per utility (``"water"``, ``"electricity"``, ``"gas"``)
or for all (``"*"``)::

    {"water": {"meter_id": "表号", "ts": "抄表时间", "value": "读数", "unit": "m3",
               "ts_format": "%Y-%m-%d %H:%M:%S", "tz": "Asia/Shanghai",
               "delimiter": ";", "encoding": "gbk"}}

``unit``: the unit of every value in the file (else each meter's own unit); ``ts_format``:
strftime format of the times (or ``epoch`` / ``epoch_ms``); ``tz``: where times without an
offset were read; ``delimiter`` and ``encoding`` for CSV files.

Rows are numbered as a spreadsheet numbers them: the header is row 1, the first reading
row 2 (for Parquet files too, so a partner reads the same numbers in both).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import zoneinfo
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from django.utils.translation import gettext as _

from tanfang.monitoring.detection.tables import UNIT_FACTORS
from tanfang.monitoring.ingest import ingest_frame
from tanfang.monitoring.models import DataPartner, IngestBatch, IngestSource

MAPPING_KEYS = ("meter_id", "ts", "value", "unit", "ts_format", "tz", "delimiter", "encoding")
UTILITY_KEYS = ("water", "electricity", "gas", "*")
FIRST_ROW = 2  # the header is row 1


class FileError(ValueError):
    """A file (or a mapping) that cannot be read at all; the message is for the user."""


@dataclass(frozen=True)
class FileFormat:
    """How a partner's files spell our columns (defaults: our own format)."""

    meter_id: str = "meter_id"
    ts: str = "ts"
    value: str = "value"
    unit: str | None = None
    ts_format: str | None = None
    tz: str | None = None
    delimiter: str = ","
    encoding: str = "utf-8"

    def column_of(self, name: str) -> str:
        """The file's column name for one of ours (``meter_id``, ``ts``, ``value``)."""
        return str(getattr(self, name, name))


def file_format(partner: DataPartner, utility: str | None = None) -> FileFormat:
    """The partner's mapping for ``utility`` (else its ``*`` entry, else its only entry)."""
    mapping: Any = partner.column_mapping or {}
    if not isinstance(mapping, dict):
        raise FileError(_("The partner's column mapping must be a JSON object."))
    unknown = sorted(set(mapping) - set(UTILITY_KEYS))
    if unknown:
        raise FileError(
            _("The column mapping has an unknown utility “%(key)s”.") % {"key": unknown[0]}
        )
    if utility is not None and utility not in UTILITY_KEYS:
        raise FileError(_("Unknown utility “%(key)s”.") % {"key": utility})
    entry: Any = {}
    if utility and utility in mapping:
        entry = mapping[utility]
    elif "*" in mapping:
        entry = mapping["*"]
    elif len(mapping) == 1:
        entry = next(iter(mapping.values()))
    elif mapping:
        raise FileError(
            _("This partner has column mappings for several utilities: choose one of %(keys)s.")
            % {"keys": ", ".join(sorted(mapping))}
        )
    return format_from_mapping(entry)


def format_from_mapping(entry: Any) -> FileFormat:
    if not isinstance(entry, dict):
        raise FileError(_("A column mapping entry must be a JSON object."))
    unknown = sorted(set(entry) - set(MAPPING_KEYS))
    if unknown:
        raise FileError(_("The column mapping has an unknown key “%(key)s”.") % {"key": unknown[0]})
    if not all(isinstance(v, str) and v for v in entry.values()):
        raise FileError(_("Every value of a column mapping must be a non-empty text."))
    unit = entry.get("unit")
    if unit is not None and unit not in UNIT_FACTORS:
        raise FileError(_("Unknown unit “%(unit)s” in the column mapping.") % {"unit": unit})
    tz = entry.get("tz")
    if tz is not None:
        try:
            zoneinfo.ZoneInfo(tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise FileError(_("Unknown time zone “%(tz)s”.") % {"tz": tz}) from exc
    encoding = entry.get("encoding", "utf-8")
    try:
        "".encode(encoding)
    except LookupError as exc:
        raise FileError(_("Unknown encoding “%(encoding)s”.") % {"encoding": encoding}) from exc
    delimiter = entry.get("delimiter", ",")
    if delimiter in ("\\t", "tab"):
        delimiter = "\t"
    if len(delimiter) != 1:
        raise FileError(_("The CSV delimiter must be one character."))
    return FileFormat(**{**entry, "delimiter": delimiter, "encoding": encoding})


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def is_parquet(path: Path) -> bool:
    if path.suffix.lower() in (".parquet", ".pq"):
        return True
    with path.open("rb") as stream:
        return stream.read(4) == b"PAR1"


def read_readings_file(path: Path, fmt: FileFormat) -> pl.DataFrame:
    """``meter_id, ts, value, row`` as the file has them (text for CSV), unchecked."""
    try:
        if is_parquet(path):
            return _parquet(path, fmt)
        return read_csv_bytes(path, fmt)
    except OSError as exc:
        raise FileError(
            _("Cannot read %(path)s: %(reason)s") % {"path": path.name, "reason": exc.strerror}
        ) from exc


def _parquet(path: Path, fmt: FileFormat) -> pl.DataFrame:
    try:
        names = pl.read_parquet_schema(path)
    except pl.exceptions.PolarsError as exc:
        raise FileError(
            _("%(path)s is not a readable Parquet file.") % {"path": path.name}
        ) from exc
    columns = _columns(list(names), fmt)
    frame = pl.read_parquet(path, columns=list(columns))
    return _rename(frame, columns)


def read_csv_bytes(source: Path | bytes, fmt: FileFormat) -> pl.DataFrame:
    """A CSV file (or an HTTP body) in ``fmt``'s delimiter and encoding."""
    data: Path | io.BytesIO = source if isinstance(source, Path) else io.BytesIO(source)
    encoding = fmt.encoding.lower().replace("_", "-")
    try:
        if encoding not in ("utf-8", "utf8", "utf-8-sig"):
            # Decoded once here (Polars would decode in Python too, once per read).
            raw = data.read_bytes() if isinstance(data, Path) else data.getvalue()
            data = io.BytesIO(raw.decode(encoding).encode("utf-8"))
        header = pl.read_csv(data, separator=fmt.delimiter, n_rows=0, infer_schema=False)
        columns = _columns(header.columns, fmt)
        if isinstance(data, io.BytesIO):
            data.seek(0)
        frame = pl.read_csv(
            data, separator=fmt.delimiter, columns=list(columns), infer_schema=False
        )
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError, UnicodeDecodeError) as exc:
        raise FileError(
            _("The file is not CSV in the encoding %(encoding)s: %(reason)s")
            % {"encoding": fmt.encoding, "reason": str(exc).splitlines()[0][:200]}
        ) from exc
    return _rename(frame, columns)


def _columns(present: list[str], fmt: FileFormat) -> dict[str, str]:
    """The file's column -> ours; a missing column is an error naming it."""
    found = {name.strip().lstrip("\ufeff"): name for name in present}
    columns = {}
    for ours in ("meter_id", "ts", "value"):
        theirs = fmt.column_of(ours)
        if theirs not in found:
            raise FileError(
                _("The column “%(column)s” is missing (the file has: %(present)s).")
                % {"column": theirs, "present": ", ".join(found) or "-"}
            )
        columns[found[theirs]] = ours
    return columns


def _rename(frame: pl.DataFrame, columns: dict[str, str]) -> pl.DataFrame:
    return frame.rename(columns).select(
        "meter_id",
        "ts",
        "value",
        pl.int_range(FIRST_ROW, pl.len() + FIRST_ROW, dtype=pl.Int64).alias("row"),
    )


def ingest_file(
    partner: DataPartner,
    path: Path,
    *,
    utility: str | None = None,
    now: dt.datetime | None = None,
    by: Any = None,
    meters: pl.DataFrame | None = None,
) -> IngestBatch:
    """Import one file of readings: the same file again is the same batch (by content)."""
    fmt = file_format(partner, utility)
    digest = sha256_of(path)
    first = IngestBatch.objects.filter(partner=partner, content_sha256=digest).first()
    if first is not None:
        first.repeated = True  # type: ignore[attr-defined]
        return first
    frame = read_readings_file(path, fmt)
    return ingest_frame(
        partner,
        frame,
        source=IngestSource.FILE,
        name=path.name,
        content_sha256=digest,
        now=now,
        by=by,
        meters=meters,
        ts_format=fmt.ts_format,
        tz=fmt.tz,
        unit=fmt.unit,
    )
