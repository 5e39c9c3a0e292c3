"""Closed-loop gRPC unary load with nghttp2's ``h2load`` (compiled, so it leaves the CPU to
the server).

The ModelInferRequest is encoded once and written gRPC-framed (compressed flag 0, 4-byte
big-endian length, message) to a file h2load POSTs over and over; ``--log-file`` gives one
line per request (start µs, status, µs to the end of the response) for the percentiles. gRPC
errors travel in trailers, which h2load does not read: status -1 (failed stream) and non-200
are all it can see, so the caller checks the server's statistics as well.
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

from .payloads import INFER_PATH

GRACE_S = 60.0  # past its duration, h2load is killed
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


def command(
    target: str,
    data: Path,
    log: Path,
    connections: int,
    streams: int,
    duration_s: float,
    warmup_s: float,
) -> list[str]:
    """The h2load command line: ``connections`` × ``streams`` requests in flight."""
    args = ["h2load", "-c", str(connections), "-m", str(streams), "-t", "1"]
    args += ["--duration", _ms(duration_s), "--warm-up-time", _ms(warmup_s)]
    args += ["-d", str(data), "--log-file", str(log)]
    for header in GRPC_HEADERS:
        args += ["-H", header]
    return [*args, f"http://{target}{INFER_PATH}"]


def run(
    target: str,
    message: bytes,
    connections: int,
    streams: int,
    duration_s: float,
    warmup_s: float,
    on_measure: Callable[[], None] = lambda: None,
) -> Run:
    """Run h2load against ``target`` (HOST:PORT); ``on_measure`` is called when its
    measured phase starts (after ``warmup_s``). Raises RuntimeError if h2load fails."""
    with tempfile.TemporaryDirectory(prefix="h2load-") as folder:
        data, log = Path(folder, "request.grpc"), Path(folder, "requests.log")
        data.write_bytes(grpc_frame(message))
        args = command(target, data, log, connections, streams, duration_s, warmup_s)
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
    statuses = rows[:, 0]
    return Run(
        requests=len(statuses),
        transport_errors=int(np.count_nonzero(statuses != 200)),
        duration_s=duration_s,
        latencies_us=rows[statuses == 200, 1],
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
