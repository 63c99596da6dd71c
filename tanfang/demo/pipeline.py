"""Preparing the demo's batches in parallel while the main process writes them.

Generating a family, encrypting its identifiers and classifying it cost far more than the
insert, so for a large demo worker processes (forked, so they share the loaded tree and
rules) prepare batches while the main process inserts the previous ones. The identities are
decided in the main process, in index order (their ID sequence codes must be unique); all the
rest depends only on the seed and the index, so the city is the same however many processes
build it.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
from collections import deque
from collections.abc import Iterator

from django.db import connections

from tanfang.demo.bulk import Batch, BulkContext, prepare_batch
from tanfang.demo.people import ElderFactory
from tanfang.demo.shapes import Identity

# Below this many elders a pool costs more than it saves.
PARALLEL_FROM = 20_000

_state: tuple[ElderFactory, BulkContext] | None = None


def _prepare(identities: list[Identity]) -> Batch:
    assert _state is not None
    factory, context = _state
    return prepare_batch([factory.make(identity) for identity in identities], context)


def default_workers(elders: int) -> int:
    if elders < PARALLEL_FROM or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return max(1, min(os.cpu_count() or 1, 4))


def batches(
    *, factory: ElderFactory, context: BulkContext, elders: int, batch_size: int, workers: int
) -> Iterator[Batch]:
    """The prepared batches of elders ``0 … elders-1``, in order."""
    chunks = (
        [factory.identity(i) for i in range(start, min(start + batch_size, elders))]
        for start in range(0, elders, batch_size)
    )
    if workers <= 1:
        for identities in chunks:
            yield prepare_batch([factory.make(i) for i in identities], context)
        return
    global _state
    _state = (factory, context)
    # The children inherit the process; they must not share its database connection.
    connections.close_all()
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            pending = deque(
                pool.apply_async(_prepare, (identities,))
                for identities in itertools.islice(chunks, 2 * workers)
            )
            while pending:
                batch = pending.popleft().get()
                following = next(chunks, None)
                if following is not None:
                    pending.append(pool.apply_async(_prepare, (following,)))
                yield batch
    finally:
        _state = None
