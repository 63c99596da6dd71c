"""Raw-SQL reads and writes of the nightly recomputation (``status_bulk``), for one chunk.

A chunk is a run of elders in id order (keyset: ``id > after``, at most ``limit``). For it:

1. ``elders_read``: the elders' facts joined with their stored status (LEFT JOIN on the
   primary keys), with the status row's ``xmin`` on PostgreSQL;
2. ``window_summaries_read``: per elder, the summary of her visits in the window, computed
   by the database; ``history_read``: the same over all visits, for elders without a status
   row; ``visits_read`` / ``visits_since_read``: visit rows, when the engine needs them;
   ``contracts_read``: station or home-care-bed contracts covering the day;
   ``open_actions_read``: open care actions;
3. ``statuses_write``: the changed rows. PostgreSQL: binary ``COPY`` into a temporary
   table, one ``UPDATE ... FROM`` guarded by the ``xmin`` read in step 1 (a row that someone
   else rewrote in between keeps their newer answer), one ``INSERT ... ON CONFLICT DO
   NOTHING`` for rows that did not exist. SQLite: ``executemany``; the caller holds the
   chunk in one ``BEGIN IMMEDIATE`` transaction, so nobody writes in between.

Values cross as the backend gives them: typed on PostgreSQL (times as integer microseconds,
see ``micros``); on SQLite, where a raw cursor returns expressions' dates, times and booleans
as text and integers, ``Decode`` turns them into Python values, and writes go through
``connection.ops`` adapters, as the ORM would send them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

from django.db import DatabaseError, connection

from tanfang.care.models import CareAction
from tanfang.registry.models import CareContract, Elder
from tanfang.visits.models import ElderVisitStatus, Visit
from tanfang.visits.obligations.types import MODE_RANK

ELDER_TABLE = Elder._meta.db_table
STATUS_TABLE = ElderVisitStatus._meta.db_table
VISIT_TABLE = Visit._meta.db_table
CONTRACT_TABLE = CareContract._meta.db_table
ACTION_TABLE = CareAction._meta.db_table
_TEMP_TABLE = "tanfang_status_bulk_new"

CONTACT_MODES = tuple(sorted(mode for mode, rank in MODE_RANK.items() if rank >= 1))
IN_HOME_MODES = tuple(sorted(mode for mode, rank in MODE_RANK.items() if rank >= 2))

# Elder columns, then the stored status; positions are used by ``status_bulk``.
_ELDER_COLUMNS = (
    "id",
    "city_id",
    "district_id",
    "subdistrict_id",
    "community_id",
    "category_bits",
    "life_status",
    "willing_to_be_visited",
    "willingness_recorded_on",
    "advanced_age",
)
# The stored values compared with the new ones, in this order (``computed_on`` is not
# compared: it is written only with a change, see docs/visit-obligations.md).
STATUS_COLUMNS = (
    "community_id",
    "excluded",
    "frequency",
    "period_key",
    "scheduled",
    "next_due_on",
    "overdue_since",
    "open_obligations",
    "last_visit_at",
    "last_counted_at",
    "last_contact_at",
    "last_in_home_at",
    "risk_level",
    "urgency",
)
WRITE_COLUMNS = ("elder_id", *STATUS_COLUMNS, "computed_on")
# Positions in an ``elders_read`` row.
HAS_STATUS = len(_ELDER_COLUMNS)
XMIN = HAS_STATUS + 1
STORED = XMIN + 1
OPEN_AT = STORED + STATUS_COLUMNS.index("open_obligations")
RISK_AT = STORED + STATUS_COLUMNS.index("risk_level")
SUMMARY_AT = STORED + STATUS_COLUMNS.index("last_visit_at")  # then counted, contact, home


def postgres() -> bool:
    return connection.vendor == "postgresql"


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


def _identity(value: Any) -> Any:
    return value


def micros(expression: str) -> str:
    """SQL for a timestamp column or expression as the driver should hand it over.

    On PostgreSQL, microseconds since the epoch (an exact integer): Django loads
    ``timestamptz`` through a Python subclass of psycopg's loader, which parses each value
    with a regular expression (about 4 µs a value; a million elders have millions), while an
    integer loads in C and becomes a datetime in a fraction of that (``_from_micros``)."""
    if postgres():
        # EXTRACT gives an exact numeric since PostgreSQL 14 (Django 5.2's oldest).
        return f"(EXTRACT(EPOCH FROM {expression}) * 1000000)::bigint"
    return expression


def _from_micros(value: Any) -> dt.datetime | None:
    return None if value is None else _EPOCH + _MICROSECOND * value


def _sqlite_datetime(value: Any) -> dt.datetime | None:
    # Django's sqlite3 converters parse columns declared ``datetime`` (naive, in UTC); an
    # expression such as MAX(...) comes back as text.
    if value is None:
        return None
    if not isinstance(value, dt.datetime):
        value = dt.datetime.fromisoformat(value)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


def _sqlite_date(value: Any) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(value)


def _sqlite_bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


class Decode:
    """Turns a raw cursor's values into Python values (nothing to do on PostgreSQL)."""

    def __init__(self) -> None:
        typed = postgres()
        self.typed = typed
        self.datetime: Callable[[Any], dt.datetime | None] = (
            _from_micros if typed else _sqlite_datetime
        )
        self.date: Callable[[Any], dt.date | None] = _identity if typed else _sqlite_date
        self.boolean: Callable[[Any], bool | None] = _identity if typed else _sqlite_bool
        # The summary times of an ``elders_read`` row (SQLite's are converted already).
        self.stored: Callable[[Any], dt.datetime | None] = _from_micros if typed else _identity

    def elder_row(self, row: Sequence[Any]) -> tuple[Any, ...]:
        """An ``elders_read`` row from SQLite with its text and integers made dates, times
        and booleans."""
        out = list(row)
        for index, convert in _SQLITE_CONVERSIONS:
            out[index] = convert(out[index])
        return tuple(out)


_SUMMARY_COLUMNS = ("last_visit_at", "last_counted_at", "last_contact_at", "last_in_home_at")
_SQLITE_CONVERSIONS: tuple[tuple[int, Callable[[Any], Any]], ...] = (
    (_ELDER_COLUMNS.index("willing_to_be_visited"), _sqlite_bool),
    (_ELDER_COLUMNS.index("willingness_recorded_on"), _sqlite_date),
    (_ELDER_COLUMNS.index("advanced_age"), _sqlite_bool),
    *((STORED + STATUS_COLUMNS.index(c), _sqlite_bool) for c in ("scheduled",)),
    *((STORED + STATUS_COLUMNS.index(c), _sqlite_date) for c in ("next_due_on", "overdue_since")),
    *((STORED + STATUS_COLUMNS.index(c), _sqlite_datetime) for c in _SUMMARY_COLUMNS),
)


def elders_read(*, after: int, last: int, limit: int, decode: Decode) -> list[tuple[Any, ...]]:
    """Up to ``limit`` elders with ``after < id <= last``, in id order, with their status."""
    xmin = "s.xmin::text" if decode.typed else "NULL"
    columns = ", ".join(
        [
            *(f"e.{c}" for c in _ELDER_COLUMNS),
            "s.elder_id IS NOT NULL",
            xmin,
            *(micros(f"s.{c}") if c in _SUMMARY_COLUMNS else f"s.{c}" for c in STATUS_COLUMNS),
        ]
    )
    # The range is repeated for the status side: PostgreSQL does not carry a range through
    # an outer join, and would otherwise scan the status index from its start every chunk.
    sql = (
        f"SELECT {columns} FROM {ELDER_TABLE} e "
        f"LEFT JOIN {STATUS_TABLE} s ON s.elder_id = e.id "
        "AND s.elder_id > %s AND s.elder_id <= %s "
        "WHERE e.id > %s AND e.id <= %s ORDER BY e.id LIMIT %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [after, last, after, last, limit])
        rows = cursor.fetchall()
    # PostgreSQL's rows go as they are: their stored summary times (microseconds) are
    # converted by the caller through ``Decode.stored``, once each.
    return rows if decode.typed else [decode.elder_row(row) for row in rows]


def _visit_columns() -> str:
    started = micros("started_at")
    return f"elder_id, {started}, mode, outcome, organised_by, counts, id, risk_level"


def visits_read(*, first: int, last: int, since: dt.date, decode: Decode) -> list[tuple[Any, ...]]:
    """Visits of elders ``first..last`` dated (Asia/Shanghai) on ``since`` or later; the
    conditions as in ``window_summaries_read``."""
    earliest = dt.datetime.combine(since, dt.time(), tzinfo=dt.UTC) - dt.timedelta(days=1)
    sql = (
        f"SELECT {_visit_columns()} FROM {VISIT_TABLE} "
        "WHERE elder_id >= %s AND elder_id <= %s AND started_at >= %s AND local_date >= %s"
    )
    ops = connection.ops
    params = [
        first,
        last,
        ops.adapt_datetimefield_value(earliest),
        ops.adapt_datefield_value(since),
    ]
    return _visit_rows(sql, params, decode)


def visits_since_read(
    *, elder_ids: Sequence[int], since: dt.date, decode: Decode
) -> list[tuple[Any, ...]]:
    """All visits of the given elders dated on ``since`` or later (the whole look-back, for
    the few elders a window's summaries do not serve; ``status_bulk``)."""
    if not elder_ids:
        return []
    sql = (
        f"SELECT {_visit_columns()} FROM {VISIT_TABLE} "
        f"WHERE {_ids('elder_id', len(elder_ids))} AND local_date >= %s"
    )
    params = [*_ids_params(elder_ids), connection.ops.adapt_datefield_value(since)]
    return _visit_rows(sql, params, decode)


def _ids(column: str, count: int = 0) -> str:
    """``column`` among a list of ids: one array parameter on PostgreSQL, else one
    placeholder per id (``count`` of them)."""
    if postgres():
        return f"{column} = ANY(%s)"
    return f"{column} IN ({', '.join(['%s'] * count)})"


def _ids_params(ids: Sequence[int]) -> list[Any]:
    return [list(ids)] if postgres() else list(ids)


def _visit_rows(sql: str, params: list[Any], decode: Decode) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    when, flag = decode.datetime, decode.boolean
    return [(r[0], when(r[1]), r[2], r[3], r[4], flag(r[5]), r[6], r[7]) for r in rows]


# (latest visit, latest counting visit, latest counting one by phone or better, latest
# counting one in person, risk level recorded by the latest visit — by time, then id)
Summary = tuple[dt.datetime | None, dt.datetime | None, dt.datetime | None, dt.datetime | None, str]


def _summaries(where: str, params: list[Any], decode: Decode) -> dict[int, Summary]:
    """Per elder, over her visits matching ``where``, what ``status._history`` computes."""
    contact = ", ".join(f"'{mode}'" for mode in CONTACT_MODES)
    home = ", ".join(f"'{mode}'" for mode in IN_HOME_MODES)
    sql = (
        f"SELECT elder_id, {micros('MAX(started_at)')}, "
        f"{micros('MAX(CASE WHEN counts THEN started_at END)')}, "
        f"{micros(f'MAX(CASE WHEN counts AND mode IN ({contact}) THEN started_at END)')}, "
        f"{micros(f'MAX(CASE WHEN counts AND mode IN ({home}) THEN started_at END)')}, "
        "MAX(CASE WHEN latest = 1 THEN risk_level END) "
        "FROM (SELECT elder_id, started_at, counts, mode, risk_level, ROW_NUMBER() OVER "
        "(PARTITION BY elder_id ORDER BY started_at DESC, id DESC) AS latest "
        f"FROM {VISIT_TABLE} WHERE {where}) ranked GROUP BY elder_id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    when = decode.datetime
    return {
        row[0]: (when(row[1]), when(row[2]), when(row[3]), when(row[4]), row[5] or "")
        for row in rows
    }


def window_summaries_read(
    *, first: int, last: int, since: dt.date, decode: Decode
) -> dict[int, Summary]:
    """Summaries of the visits of elders ``first..last`` dated on ``since`` or later (only
    elders with such visits). ``local_date`` decides, as in ``status_refresh``; the condition
    on ``started_at`` (a day earlier, so it never excludes a row the date keeps) lets
    PostgreSQL answer from the (elder, started_at) index without visiting older rows."""
    earliest = dt.datetime.combine(since, dt.time(), tzinfo=dt.UTC) - dt.timedelta(days=1)
    ops = connection.ops
    where = "elder_id >= %s AND elder_id <= %s AND started_at >= %s AND local_date >= %s"
    params = [
        first,
        last,
        ops.adapt_datetimefield_value(earliest),
        ops.adapt_datefield_value(since),
    ]
    return _summaries(where, params, decode)


def history_read(*, elder_ids: Iterable[int], decode: Decode) -> dict[int, Summary]:
    """All-time summaries of the given elders (those without a stored status, or everyone
    when asked for the full history). Read over their id range and filtered: such elders
    usually come in runs (a first recomputation, newly registered elders)."""
    wanted = set(elder_ids)
    if not wanted:
        return {}
    found = _summaries("elder_id >= %s AND elder_id <= %s", [min(wanted), max(wanted)], decode)
    return {elder_id: summary for elder_id, summary in found.items() if elder_id in wanted}


Contracts = dict[int, tuple[tuple[dt.date, dt.date | None], ...]]


def contracts_read(*, first: int, last: int, on: dt.date, decode: Decode) -> Contracts:
    """Station and home-care-bed contracts of elders ``first..last`` that cover ``on``.

    The engine asks contracts only about ``on`` (scheduled or not, station or not), so the
    others — which ``status_refresh`` also passes — change nothing."""
    day = connection.ops.adapt_datefield_value(on)
    sql = (
        f"SELECT elder_id, starts_on, ends_on FROM {CONTRACT_TABLE} "
        "WHERE elder_id >= %s AND elder_id <= %s AND starts_on <= %s "
        "AND (ends_on IS NULL OR ends_on >= %s)"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [first, last, day, day])
        rows = cursor.fetchall()
    found: dict[int, list[tuple[dt.date, dt.date | None]]] = {}
    date = decode.date
    for elder_id, starts, ends in rows:
        found.setdefault(elder_id, []).append((date(starts), date(ends)))  # type: ignore[arg-type]
    return {elder_id: tuple(periods) for elder_id, periods in found.items()}


def open_actions_read(*, first: int, last: int) -> dict[int, int]:
    """How many open care actions each elder ``first..last`` has (only those with any)."""
    sql = (
        f"SELECT elder_id, COUNT(*) FROM {ACTION_TABLE} "
        "WHERE elder_id >= %s AND elder_id <= %s AND closed = %s GROUP BY elder_id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [first, last, False])
        return dict(cursor.fetchall())


@contextmanager
def session() -> Iterator[None]:
    """The session settings of a run. PostgreSQL: no JIT compilation — the window's
    summaries cost enough to trigger it, and compiling each chunk's query took about 20 ms,
    longer than the time it saves."""
    if not postgres():
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('jit')")
        before = cursor.fetchone()[0]
        cursor.execute("SET jit = off")
    try:
        yield
    finally:
        # After a failed statement in a caller's transaction this cannot run; the caller's
        # rollback then undoes the SET anyway.
        with suppress(DatabaseError), connection.cursor() as cursor:
            cursor.execute("SELECT set_config('jit', %s, false)", [before])


def elder_bounds() -> tuple[int, int]:
    """(how many elders, the largest id)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*), MAX(id) FROM {ELDER_TABLE}")
        count, top = cursor.fetchone()
    return int(count), int(top or 0)


def elder_id_at(offset: int) -> int:
    """The id of the elder at ``offset`` in id order (to split the elders evenly)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id FROM {ELDER_TABLE} ORDER BY id LIMIT 1 OFFSET %s", [offset])
        row = cursor.fetchone()
    return int(row[0]) if row else 0


# A row to write: (old xmin or None when there is no status row, *WRITE_COLUMNS values),
# ``open_obligations`` as JSON text (as Django's JSONField writes it).
WriteRow = tuple[Any, ...]


def statuses_write(rows: Sequence[WriteRow]) -> tuple[int, int, int]:
    """Write the changed statuses; returns (updated, inserted, skipped).

    Skipped rows were rewritten by someone else since they were read (PostgreSQL: their
    ``xmin`` changed, or they appeared meanwhile): that writer's answer is newer.
    """
    if not rows:
        return 0, 0, 0
    if postgres():
        return _write_postgres(rows)
    return _write_sqlite(rows)


def _write_postgres(rows: Sequence[WriteRow]) -> tuple[int, int, int]:
    columns = ", ".join(WRITE_COLUMNS)
    values = ", ".join(f"{c}::jsonb" if c == "open_obligations" else c for c in WRITE_COLUMNS)
    assignments = ", ".join(
        f"{c} = n.{c}::jsonb" if c == "open_obligations" else f"{c} = n.{c}"
        for c in WRITE_COLUMNS[1:]
    )
    with connection.cursor() as cursor:
        # A chunk lost in a crash is written again by the next run (the job is idempotent),
        # so its commit need not wait for the WAL to reach the disk.
        cursor.execute("SET LOCAL synchronous_commit TO OFF")
        cursor.execute("SELECT to_regclass(%s)", [f"pg_temp.{_TEMP_TABLE}"])
        if cursor.fetchone()[0] is None:
            cursor.execute(
                f"CREATE TEMP TABLE {_TEMP_TABLE} "
                f"(old_xmin text, LIKE {STATUS_TABLE}) ON COMMIT DELETE ROWS"
            )
            # The JSON arrives as text, once per distinct value, and is parsed by the server.
            cursor.execute(f"ALTER TABLE {_TEMP_TABLE} ALTER COLUMN open_obligations TYPE text")
        else:
            # Inside a caller's transaction ON COMMIT has not emptied it yet.
            cursor.execute(f"TRUNCATE {_TEMP_TABLE}")
        # Binary COPY: psycopg's C dumpers, three to four times less work than text.
        with cursor.cursor.copy(
            f"COPY {_TEMP_TABLE} (old_xmin, {columns}) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(_COPY_TYPES)
            for row in rows:
                copy.write_row(row)
        cursor.execute(
            f"UPDATE {STATUS_TABLE} s SET {assignments} FROM {_TEMP_TABLE} n "
            "WHERE n.old_xmin IS NOT NULL AND s.elder_id = n.elder_id "
            "AND s.xmin::text = n.old_xmin"
        )
        updated = cursor.rowcount
        cursor.execute(
            f"INSERT INTO {STATUS_TABLE} ({columns}) SELECT {values} FROM {_TEMP_TABLE} "
            "WHERE old_xmin IS NULL ON CONFLICT (elder_id) DO NOTHING"
        )
        inserted = cursor.rowcount
    return updated, inserted, len(rows) - updated - inserted


# Types of (old_xmin, *WRITE_COLUMNS) for the binary COPY; character columns travel as text,
# the same bytes as varchar.
_COPY_TYPES = [
    "text",
    "int8",  # elder_id
    "int8",  # community_id
    "text",  # excluded
    "text",  # frequency
    "text",  # period_key
    "bool",  # scheduled
    "date",  # next_due_on
    "date",  # overdue_since
    "text",  # open_obligations (JSON)
    "timestamptz",  # last_visit_at
    "timestamptz",  # last_counted_at
    "timestamptz",  # last_contact_at
    "timestamptz",  # last_in_home_at
    "text",  # risk_level
    "int4",  # urgency
    "date",  # computed_on
]


def _write_sqlite(rows: Sequence[WriteRow]) -> tuple[int, int, int]:
    ops = connection.ops
    updates, inserts = [], []
    for old, elder_id, *values, computed_on in rows:
        for index in _SQLITE_DATES:
            values[index] = ops.adapt_datefield_value(values[index])
        for index in _SQLITE_DATETIMES:
            values[index] = ops.adapt_datetimefield_value(values[index])
        computed = ops.adapt_datefield_value(computed_on)
        if old is None:
            inserts.append((elder_id, *values, computed))
        else:
            updates.append((*values, computed, elder_id))
    assignments = ", ".join(f"{c} = %s" for c in WRITE_COLUMNS[1:])
    with connection.cursor() as cursor:
        if updates:
            cursor.executemany(
                f"UPDATE {STATUS_TABLE} SET {assignments} WHERE elder_id = %s", updates
            )
        inserted = 0
        if inserts:
            marks = ", ".join(["%s"] * len(WRITE_COLUMNS))
            cursor.executemany(
                f"INSERT INTO {STATUS_TABLE} ({', '.join(WRITE_COLUMNS)}) VALUES ({marks}) "
                "ON CONFLICT (elder_id) DO NOTHING",
                inserts,
            )
            inserted = cursor.rowcount
    return len(updates), inserted, len(inserts) - inserted


_SQLITE_DATES = tuple(STATUS_COLUMNS.index(c) for c in ("next_due_on", "overdue_since"))
_SQLITE_DATETIMES = tuple(
    STATUS_COLUMNS.index(c)
    for c in ("last_visit_at", "last_counted_at", "last_contact_at", "last_in_home_at")
)
