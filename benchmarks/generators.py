"""Running the generator of a resolved load point: h2load (gRPC, unary or whole streams), wrk
(HTTP) or the Python generator (``python_load``, in a child process), each timed so that the
server's usage window brackets only the measured phase."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from . import h2load, wrk
from .latency import percentiles_ms
from .payloads import grpc_request, http_request
from .server_usage import UsageWindow

if TYPE_CHECKING:
    from .loadgen import Point

ROOT = Path(__file__).resolve().parents[1]
PYTHON_GRACE_S = 60.0  # start-up, drain; then the Python generator is killed


@dataclass
class Measured:
    """What the generator saw in the measured window."""

    requests: int
    duration_s: float
    latency_ms: dict[str, float | None]
    client_errors: int | None
    transport_errors: int
    generator_cpu_s: float
    generator_wall_s: float
    dropped: int = 0
    notes: list[str] = field(default_factory=list)


def measure(
    point: Point, address: str, duration_s: float, warmup_s: float, window: UsageWindow
) -> Measured:
    """Run the generator for a resolved ``point``; ``window.start()``/``window.stop()``
    bracket the measured phase."""
    assert point.connections is not None
    if point.mode == "python":
        measured = _python(point, address, duration_s, warmup_s, window)
    elif point.protocol in ("grpc", "grpc-stream"):
        measured = _h2load(point, address, duration_s, warmup_s, window)
    else:
        body, headers = http_request(point.model, point.rows, point.encoding == "binary")
        url = f"http://{address}/v2/models/{point.model}/infer"
        http = wrk.run(url, body, headers, point.connections, duration_s, warmup_s, window.start)
        window.stop()
        measured = Measured(
            http.requests,
            http.duration_s,
            http.latency_ms,
            http.transport_errors,
            http.transport_errors,
            http.generator_cpu_s,
            http.generator_wall_s,
        )
    return measured


def _h2load(
    point: Point, address: str, duration_s: float, warmup_s: float, window: UsageWindow
) -> Measured:
    """A compiled gRPC point: unary calls, or whole streams of ``point.stream_messages``
    counted in messages (latency null: h2load times whole streams only)."""
    assert point.connections is not None
    message = grpc_request(point.model, point.rows)
    timing = (point.connections, point.streams_per_connection(), duration_s, warmup_s)
    run = h2load.run(address, message, *timing, window.start, point.stream_messages)
    streamed = point.stream_messages is not None  # h2load timed whole streams, not messages
    latency_ms = percentiles_ms([] if streamed else run.latencies_us, 1e-6)
    window.stop()
    return Measured(
        run.requests,
        run.duration_s,
        latency_ms,
        None,  # gRPC errors are not visible to h2load: run_point asks the server
        run.transport_errors,
        run.generator_cpu_s,
        run.generator_wall_s,
    )


def _python(
    point: Point, address: str, duration_s: float, warmup_s: float, window: UsageWindow
) -> Measured:
    args = [sys.executable, "-m", "benchmarks.python_load", "--protocol", point.protocol]
    args += ["--target", address, "--model", point.model, "--rows", str(point.rows)]
    args += ["--encoding", point.encoding if point.protocol == "http" else "binary"]
    args += ["--connections", str(point.connections)]
    args += ["--rate", str(point.rate)] if point.rate else ["--concurrency", str(point.concurrency)]
    args += ["--duration-s", str(duration_s), "--warmup-s", str(warmup_s)]
    result = None
    with subprocess.Popen(
        args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:  # closes both pipes and waits on the way out
        assert process.stdout is not None and process.stderr is not None
        watchdog = threading.Timer(warmup_s + duration_s + PYTHON_GRACE_S, process.kill)
        watchdog.start()
        for line in process.stdout:
            if line.strip() == "measuring":
                window.start()
            elif line.startswith("{"):
                window.stop()
                result = json.loads(line)
        errors = process.stderr.read()
        process.wait()
        watchdog.cancel()
    if process.returncode != 0 or result is None:
        raise RuntimeError(f"python_load exited {process.returncode}: {errors[-2000:]}")
    return Measured(
        result["requests"],
        result["duration_s"],
        result["latency_ms"],
        result["errors"],
        result["errors"],
        result["generator_cpu_s"],
        result["generator_wall_s"],
        dropped=result["dropped"],
    )
