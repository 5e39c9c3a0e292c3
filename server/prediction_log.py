"""PredictionLog: every prediction becomes one JSONL record, written off the request path.

The event loop only appends a record (references to the request's arrays, nothing encoded)
to a bounded buffer; one writer thread encodes records with orjson, hashes inputs when asked,
appends them to the open segment, fsyncs at least every ``fsync_interval_s``, rotates
segments by size and age, and optionally gzips closed ones. A record is one line written in
one call, so a crash leaves every closed segment and every complete line valid. When the
buffer is full, ``block`` makes the request wait (asynchronously, bounded) for room; ``drop``
counts the record as dropped. ``close()`` drains everything and flushes before exit.
"""

from __future__ import annotations

import asyncio
import collections
import gzip
import hashlib
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from .errors import Overloaded

log = logging.getLogger(__name__)
SEGMENT_PREFIX = "predictions-"
WRITE_INTERVAL_S = 0.05


@dataclass(frozen=True, slots=True, kw_only=True)
class LogConfig:
    """Where and how the prediction log writes (from the server's settings)."""

    directory: Path
    segment_bytes: int = 64 * 2**20
    segment_age_s: float = 3600.0
    gzip_closed: bool = False
    fsync_interval_s: float = 1.0
    queue_size: int = 65536
    when_full: str = "block"  # "block" (up to block_ms) or "drop"
    block_ms: int = 1000


@dataclass(slots=True)
class Record:
    """One prediction, as the request path hands it over: nothing encoded yet."""

    timestamp: float
    request_id: str
    model: str
    version: str
    route: str
    latency_ms: float
    status: str
    protocol: str
    inputs: dict[str, Any] | None  # arrays; None when inputs are not logged
    input_policy: str  # "full", "hash" or "none"
    outputs: dict[str, Any] | None
    error: str = ""


def _encode(record: Record) -> bytes:
    doc: dict[str, Any] = {
        "ts": record.timestamp,
        "id": record.request_id,
        "model": record.model,
        "version": record.version,
        "route": record.route,
        "latency_ms": round(record.latency_ms, 3),
        "status": record.status,
        "protocol": record.protocol,
    }
    if record.error:
        doc["error"] = record.error
    if record.inputs is not None:
        if record.input_policy == "hash":
            digest = hashlib.sha256()
            for name in sorted(record.inputs):
                digest.update(name.encode())
                digest.update(_bytes_of(record.inputs[name]))
            doc["inputs_sha256"] = digest.hexdigest()
        elif record.input_policy == "full":
            doc["inputs"] = {k: _jsonable(v) for k, v in record.inputs.items()}
    if record.outputs is not None:
        doc["outputs"] = {k: _jsonable(v) for k, v in record.outputs.items()}
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE)


def _bytes_of(array: Any) -> bytes:
    if array.dtype.kind == "O":
        return b"\0".join(str(v).encode() for v in array.reshape(-1))
    return bytes(memoryview(array.reshape(-1).view("u1")))


def _jsonable(array: Any) -> Any:
    if array.dtype.kind in "OSU" or array.dtype.kind == "f" and array.dtype.itemsize == 2:
        return array.tolist()
    return array if array.flags.c_contiguous else array.copy()


class PredictionLog:
    """The bounded buffer, its writer thread, and the segment files."""

    def __init__(self, config: LogConfig) -> None:
        self.config = config
        self.written = 0
        self.dropped = 0
        self._buffer: collections.deque[Record] = collections.deque()
        self._wake = threading.Event()
        # The writer wakes every WRITE_INTERVAL_S (or when the buffer is half full) and
        # writes what has gathered: one GIL hand-over per chunk, not per record.
        self._high_water = max(1, config.queue_size // 2)
        self._interval_s = min(WRITE_INTERVAL_S, config.fsync_interval_s)
        self._closing = False
        self._room: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        config.directory.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._write_loop, name="prediction-log")
        self._file: Any = None
        self._path: Path | None = None
        self._opened_at = 0.0
        self._size = 0
        self._sequence = 0

    def start(self) -> None:
        """Start the writer; call on the running event loop."""
        self._loop = asyncio.get_running_loop()
        self._room = asyncio.Event()
        self._thread.start()

    @property
    def depth(self) -> int:
        return len(self._buffer)

    @property
    def is_full(self) -> bool:
        return len(self._buffer) >= self.config.queue_size

    def put(self, record: Record) -> None:
        """Hand a record over, never waiting. Under ``drop`` a full buffer drops it (counted);
        under ``block`` requests wait in ``admit`` instead, so records of requests already
        accepted always fit (the buffer then holds at most queue_size + requests in flight)."""
        if self.config.when_full == "drop" and self.is_full:
            self.dropped += 1
            return
        self._buffer.append(record)
        if len(self._buffer) == self._high_water:  # else the writer comes round by itself
            self._wake.set()

    async def admit(self) -> None:
        """Before accepting a request under ``block``: wait (bounded) while the buffer is full.

        Raises Overloaded when it stays full for ``block_ms``.
        """
        if self.config.when_full != "block" or not self.is_full:
            return
        assert self._room is not None
        deadline = time.monotonic() + self.config.block_ms / 1000
        while self.is_full:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Overloaded("prediction log is full; retry later")
            self._room.clear()
            try:
                await asyncio.wait_for(self._room.wait(), remaining)
            except TimeoutError:
                pass

    def close(self) -> None:
        """Drain the buffer, flush and fsync, close the segment; blocks until done."""
        self._closing = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()

    def _write_loop(self) -> None:
        last_sync = time.monotonic()
        dirty = False
        while True:
            self._wake.wait(self._interval_s)
            self._wake.clear()
            closing = self._closing
            wrote = self._write_available()
            dirty = dirty or wrote
            now = time.monotonic()
            if dirty and (closing or now - last_sync >= self.config.fsync_interval_s):
                self._sync()
                dirty, last_sync = False, now
            if self._file is not None and now - self._opened_at >= self.config.segment_age_s:
                self._rotate()
            if closing and not self._buffer:
                self._close_segment(gzip_it=False)
                return

    def _write_available(self) -> bool:
        chunk: list[bytes] = []
        size = 0
        before = self.written
        while self._buffer:
            record = self._buffer.popleft()
            try:
                line = _encode(record)
            except Exception:
                log.exception("prediction log: cannot encode a record of %s", record.model)
                continue
            chunk.append(line)
            size += len(line)
            if size >= 1 << 20:
                self._append(chunk)
                chunk, size = [], 0
        if chunk:
            self._append(chunk)
        if self._loop is not None and self._room is not None and not self.is_full:
            try:
                self._loop.call_soon_threadsafe(self._room.set)
            except RuntimeError:
                pass  # the loop is closed
        return self.written > before

    def _append(self, lines: list[bytes]) -> None:
        """Write whole lines, starting a new segment whenever the next line would not fit."""
        start = 0
        while start < len(lines):
            if self._file is None:
                self._rotate()
            room = self.config.segment_bytes - self._size
            end, used = start, 0
            while end < len(lines) and (
                used + len(lines[end]) <= room or (end == start and self._size == 0)
            ):  # a line longer than a whole segment still goes into an empty one
                used += len(lines[end])
                end += 1
            if end == start:  # the segment is full
                self._rotate()
                continue
            self._file.write(b"".join(lines[start:end]))
            self._size += used
            self.written += end - start
            start = end

    def _rotate(self) -> None:
        self._close_segment(gzip_it=self.config.gzip_closed)
        self._sequence += 1
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        name = f"{SEGMENT_PREFIX}{stamp}-{os.getpid()}-{self._sequence:05d}.jsonl"
        self._path = self.config.directory / name
        self._file = self._path.open("ab")
        self._opened_at = time.monotonic()
        self._size = 0

    def _sync(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())

    def _close_segment(self, gzip_it: bool) -> None:
        if self._file is None or self._path is None:
            return
        self._sync()
        self._file.close()
        self._file = None
        if gzip_it and self._size:
            packed = self._path.with_suffix(".jsonl.gz")
            with self._path.open("rb") as source, gzip.open(packed, "wb") as target:
                shutil.copyfileobj(source, target)
            self._path.unlink()
        elif not self._size:
            self._path.unlink()
