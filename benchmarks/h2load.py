"""Closed-loop gRPC load with nghttp2's ``h2load`` (compiled, so it leaves the CPU to the
server): unary ModelInfer, or whole ModelStreamInfer streams.

The ModelInferRequest is encoded once and written gRPC-framed (compressed flag 0, 4-byte
big-endian length, message) to a file h2load POSTs over and over; ``--log-file`` gives one
line per request (start µs, status, µs to the end of the response) for the percentiles. gRPC
errors travel in trailers, which h2load does not read: status -1 (failed stream) and non-200
are all it can see, so the caller checks the server's statistics as well.

Streams: each h2load request is one whole ModelStreamInfer call whose body is K framed
requests (ids "0".."K-1"), then the half-close; the server answers each one and ends the
stream once every answer is out. ``run`` then counts messages (K per stream); its log times
whole streams, not messages, and errors inside a stream (``error_message`` in an answer) are
invisible to h2load, as trailers are for unary calls.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .payloads import INFER_PATH, STREAM_PATH, with_id

GRACE_S = 60.0  # past its duration, h2load is killed
# Logged statuses of a request that went well: 200, or 0 when its headers came during the
# warm-up (h2load then records no status but counts it a success) and it ended in the window,
# as most streams straddling the warm-up's end do; -1 is a reset or failed stream.
OK_STATUSES = (0, 200)
GRPC_HEADERS = ("content-type: application/grpc", "te: trailers")


@dataclass
class Run:
    """One h2load run: counts, per-request latencies (µs) and h2load's own CPU."""

    requests: int
    transport_errors: int
    duration_s: float
    latencies_us: np.ndarray
    generator_cpu_s: float
    generator_wall_s: float


def available() -> bool:
    return shutil.which("h2load") is not None


def grpc_frame(message: bytes) -> bytes:
    """``message`` as one gRPC length-prefixed message (uncompressed)."""
    return b"\x00" + struct.pack(">I", len(message)) + message


def stream_body(message: bytes, messages: int) -> bytes:
    """One ModelStreamInfer call's request body: ``messages`` framed copies of ``message``,
    the i-th with ``id`` "i" (servers echo it, so every answer is told apart)."""
    return b"".join(grpc_frame(with_id(message, str(i).encode())) for i in range(messages))


def command(
    target: str,
    data: Path,
    log: Path,
    connections: int,
    streams: int,
    duration_s: float,
    warmup_s: float,
    path: str = INFER_PATH,
) -> list[str]:
    """The h2load command line: ``connections`` × ``streams`` requests in flight, each
    POSTing ``data`` to ``path``."""
    args = ["h2load", "-c", str(connections), "-m", str(streams), "-t", "1"]
    args += ["--duration", _ms(duration_s), "--warm-up-time", _ms(warmup_s)]
    args += ["-d", str(data), "--log-file", str(log)]
    for header in GRPC_HEADERS:
        args += ["-H", header]
    return [*args, f"http://{target}{path}"]


def run(
    target: str,
    message: bytes,
    connections: int,
    streams: int,
    duration_s: float,
    warmup_s: float,
    on_measure: Callable[[], None] = lambda: None,
    stream_messages: int | None = None,
) -> Run:
    """h2load against ``target`` (HOST:PORT): unary ModelInfer calls of ``message``, or, with
    ``stream_messages`` K, whole ModelStreamInfer calls of K copies of it each, counted in
    messages (``requests`` is streams done × K, a stream that did not end with HTTP 200 is K
    transport errors, ``latencies_us`` times whole streams). ``on_measure`` is called when
    the measured phase starts (after ``warmup_s``). Raises RuntimeError if h2load fails."""
    timing = (connections, streams, duration_s, warmup_s, on_measure)
    if stream_messages is None:
        return _run(target, INFER_PATH, grpc_frame(message), *timing)
    done = _run(target, STREAM_PATH, stream_body(message, stream_messages), *timing)
    done.requests *= stream_messages
    done.transport_errors *= stream_messages
    return done


def _run(
    target: str,
    path: str,
    body: bytes,
    connections: int,
    streams: int,
    duration_s: float,
    warmup_s: float,
    on_measure: Callable[[], None],
) -> Run:
    """h2load POSTing ``body`` to ``path`` over and over; one h2load request per log line."""
    with tempfile.TemporaryDirectory(prefix="h2load-") as folder:
        data, log = Path(folder, "request.grpc"), Path(folder, "requests.log")
        data.write_bytes(body)
        args = command(target, data, log, connections, streams, duration_s, warmup_s, path)
        started = time.perf_counter()
        output_path = Path(folder, "output.txt")
        with output_path.open("wb") as output_file:
            process = subprocess.Popen(args, stdout=output_file, stderr=subprocess.STDOUT)
        watchdog = threading.Timer(warmup_s + duration_s + GRACE_S, process.kill)
        watchdog.start()
        time.sleep(warmup_s)
        on_measure()
        _, status, usage = os.wait4(process.pid, 0)
        watchdog.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)
        wall_s = time.perf_counter() - started
        if process.returncode != 0 or not log.exists():
            output = output_path.read_text(errors="replace")
            raise RuntimeError(f"h2load exited {process.returncode}: {output[-2000:]}")
        rows = read_log(log)
    ok = np.isin(rows[:, 0], OK_STATUSES)
    return Run(
        requests=len(rows),
        transport_errors=int(np.count_nonzero(~ok)),
        duration_s=duration_s,
        latencies_us=rows[ok, 1],
        generator_cpu_s=usage.ru_utime + usage.ru_stime,
        generator_wall_s=wall_s,
    )


def read_log(log: Path) -> np.ndarray:
    """(status, µs) per request from an h2load ``--log-file``."""
    if log.stat().st_size == 0:
        return np.empty((0, 2), np.int64)
    return np.loadtxt(log, dtype=np.int64, ndmin=2, usecols=(1, 2))


def _ms(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"
