"""Reading the rows of the elders file into records, batch by batch, in this process or, for a
big file on the command line, in worker processes as well.

Reading a row (``rows.Layout.parse_row``: every cell, the ID number's check digit, the
row's consistency) is most of the validation pass, and rows do not depend on each other: the
command line hands batches of rows to a pool of forked workers while it goes on reading the
file, and takes the results back in file order. At most a few batches are in flight, so the
file is never held in memory. A worker touches no database connection (it only parses) and
leaves with ``os._exit``, so the connections it inherited are left alone. The upload page
parses in its own process: forking a threaded web server is not safe.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from tanfang.imports import values as v
from tanfang.imports.base import RowError
from tanfang.imports.readers import Table
from tanfang.imports.rows import Layout
from tanfang.registry.records import UNSET

BATCH = 500
PARALLEL_MIN_BYTES = 1 << 20  # smaller files are read faster than a pool starts
MAX_WORKERS = 4


class Parsed(NamedTuple):
    """What the validation pass keeps of a row with a valid ID number."""

    row: int
    key: bytes  # 128 bits of the ID number's blind index
    digest: str  # the whole blind index (queries use it)
    community_code: Any
    grid_code: Any
    incomplete: bool  # no name or no community: cannot create the elder alone


@dataclass
class Batch:
    rows: int = 0  # rows read, blank rows not counted
    errors: list[RowError] = field(default_factory=list)
    parsed: list[Parsed] = field(default_factory=list)
    spool: bytes = b""  # the records, pickled one after another as (row, key, record)


def key_of(digest: str) -> bytes:
    """The part of the blind index kept in memory per elder: 128 bits are plenty."""
    return bytes.fromhex(digest[:32])


def parse_batch(layout: Layout, raw: list[tuple[int, list[Any]]]) -> Batch:
    batch = Batch(rows=len(raw))
    spool: list[bytes] = []
    for row, cells in raw:
        record, digest, errors = layout.parse_row(row, cells)
        batch.errors.extend(errors)
        if record is None or digest is None:
            continue
        key = key_of(digest)
        batch.parsed.append(
            Parsed(
                row, key, digest, record.community_code, record.grid_code,
                not record.name or record.community_code is UNSET,
            )
        )  # fmt: skip
        spool.append(pickle.dumps((row, key, record), pickle.HIGHEST_PROTOCOL))
    batch.spool = b"".join(spool)
    return batch


def _raw_batches(table: Table) -> Iterator[list[tuple[int, list[Any]]]]:
    raw: list[tuple[int, list[Any]]] = []
    for row, cells in table.rows():
        if all(v.is_blank(cell) for cell in cells):
            continue
        raw.append((row, cells))
        if len(raw) >= BATCH:
            yield raw
            raw = []
    if raw:
        yield raw


def batches(table: Table, layout: Layout, *, parallel: bool) -> Iterator[Batch]:
    """The file's rows read into records, in file order."""
    workers = _workers(table) if parallel else 0
    if workers < 1:
        for raw in _raw_batches(table):
            yield parse_batch(layout, raw)
        return
    yield from _in_workers(_raw_batches(table), layout, workers)


def _workers(table: Table) -> int:
    if "fork" not in multiprocessing.get_all_start_methods():
        return 0
    if table.path.stat().st_size < PARALLEL_MIN_BYTES:
        return 0
    return min(os.cpu_count() or 1, MAX_WORKERS)


_LAYOUT: Layout | None = None  # the layout a forked worker parses with


def _work(raw: list[tuple[int, list[Any]]]) -> Batch:
    assert _LAYOUT is not None
    return parse_batch(_LAYOUT, raw)


def _in_workers(
    raws: Iterable[list[tuple[int, list[Any]]]], layout: Layout, workers: int
) -> Iterator[Batch]:
    global _LAYOUT
    _LAYOUT = layout  # inherited by the workers when they are forked, just below
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            pending: deque[Any] = deque()
            for raw in raws:
                pending.append(pool.apply_async(_work, (raw,)))
                if len(pending) >= 2 * workers:
                    yield pending.popleft().get()
            while pending:
                yield pending.popleft().get()
    finally:
        _LAYOUT = None
