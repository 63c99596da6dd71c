"""The MQTT subscriber's write-ahead spool: messages are on disk before they are acknowledged.

A QoS 1 message is the subscriber's responsibility from the moment it sends the PUBACK; the
readings are handed to ``ingest_frame`` in batches a second or so later. In between they
live here: one folder per client id under ``MONITORING_DIR/spool/``, a sequence of segment
files ``000000000042.wal``. The receiving thread appends every message of a receive to the
open segment with one ``write`` (and ``fsync`` when asked) and only then acknowledges them;
the flushing thread closes the segment (``rotate``), ingests it and removes it. At start-up
the segments left by a previous run (killed, or the database was down) are ingested first,
in order. A segment ingested but not yet removed when the process died is ingested again:
its batches carry a content hash, so ``ingest_frame`` answers with the first batch and
stores nothing twice.

Record layout (big-endian): CRC-32 of the rest (u32), receive time (f64, epoch s), topic
length (u16), payload length (u32), topic, payload. A torn last record (the process died in
the middle of a write) is not a message anyone acknowledged: it is skipped.
"""

from __future__ import annotations

import fcntl
import os
import re
import struct
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

MAGIC = b"TFSPOOL1"
_HEAD = struct.Struct("!IdHI")
_SEGMENT = re.compile(r"^(\d{12})\.wal$")


class SpoolBusy(RuntimeError):
    """Another process holds this spool (the same client id runs twice)."""


@dataclass(frozen=True, slots=True)
class Record:
    received: float
    topic: str
    payload: bytes


def segment_seq(path: Path) -> int:
    match = _SEGMENT.match(path.name)
    if match is None:
        raise ValueError(f"not a spool segment: {path}")
    return int(match.group(1))


def encode(received: float, topic: str, payload: bytes) -> bytes:
    raw_topic = topic.encode()
    rest = _HEAD.pack(0, received, len(raw_topic), len(payload))[4:] + raw_topic + payload
    return struct.pack("!I", zlib.crc32(rest)) + rest


def read_segment(path: Path) -> tuple[list[Record], int]:
    """The records of a segment and the number of bytes after the last whole one (a torn
    write, or damage: reading stops at the first record whose checksum is wrong)."""
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        return [], len(data)
    records: list[Record] = []
    pos, n = len(MAGIC), len(data)
    head = _HEAD.size
    while pos + head <= n:
        crc, received, tlen, plen = _HEAD.unpack_from(data, pos)
        end = pos + head + tlen + plen
        if end > n or zlib.crc32(data[pos + 4 : end]) != crc:
            break
        topic = data[pos + head : pos + head + tlen].decode("utf-8", "replace")
        records.append(Record(received, topic, data[pos + head + tlen : end]))
        pos = end
    return records, n - pos


class Spool:
    """Segments of one client id. ``append`` and ``rotate`` may be called from different
    threads; ``open`` takes an exclusive lock on the folder for the life of the process."""

    def __init__(self, folder: Path, *, fsync: bool = False) -> None:
        self.folder = folder
        self.fsync = fsync
        self._lock = threading.Lock()
        self._lock_file: IO[bytes] | None = None
        self._file: IO[bytes] | None = None
        self._seq = 0
        self.records = 0  # in the open segment
        self.bytes = 0

    def open(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        lock = (self.folder / "lock").open("ab")
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise SpoolBusy(
                f"{self.folder} is in use by another process (the same client id twice?)"
            ) from None
        self._lock_file = lock
        self._seq = max((segment_seq(p) for p in self._segments()), default=0)
        self._start_segment()

    def close(self) -> None:
        """Close the open segment (removed when empty) and release the folder."""
        with self._lock:
            self._finish_segment()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def append(self, items: Sequence[tuple[float, str, bytes]]) -> None:
        """Write messages to the open segment; they are on disk (in the page cache, or on
        the device with ``fsync``) when this returns."""
        data = b"".join(encode(r, t, p) for r, t, p in items)
        with self._lock:
            if self._file is None:
                raise RuntimeError("the spool is not open")
            self._file.write(data)
            self._file.flush()
            if self.fsync:
                os.fsync(self._file.fileno())
            self.records += len(items)
            self.bytes += len(data)

    def rotate(self) -> Path | None:
        """Close the open segment and start the next; the closed one (None when empty)."""
        with self._lock:
            if self.records == 0:
                return None
            closed = self._finish_segment()
            self._start_segment()
            return closed

    def pending(self) -> list[Path]:
        """Closed segments, oldest first (the open one is not among them)."""
        current = self._seq if self._file is not None else None
        return [p for p in self._segments() if segment_seq(p) != current]

    def remove(self, path: Path) -> None:
        path.unlink(missing_ok=True)

    def set_aside(self, path: Path) -> Path:
        """Move a segment that cannot be ingested to ``failed/`` (kept, not retried)."""
        failed = self.folder / "failed"
        failed.mkdir(exist_ok=True)
        return path.rename(failed / path.name)

    def _segments(self) -> list[Path]:
        return sorted(p for p in self.folder.iterdir() if _SEGMENT.match(p.name))

    def _path(self, seq: int) -> Path:
        return self.folder / f"{seq:012d}.wal"

    def _start_segment(self) -> None:
        self._seq += 1
        stream = self._path(self._seq).open("xb")
        stream.write(MAGIC)
        stream.flush()
        self._file = stream
        self.records = 0
        self.bytes = 0

    def _finish_segment(self) -> Path | None:
        stream, self._file = self._file, None
        if stream is None:
            return None
        path = self._path(self._seq)
        if self.fsync:
            os.fsync(stream.fileno())
        stream.close()
        if self.records == 0:
            path.unlink(missing_ok=True)
            return None
        return path
