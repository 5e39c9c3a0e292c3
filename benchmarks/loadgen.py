"""Run one load point against a running V2 server and record what it measured.

Closed-loop gRPC unary points use ``h2load`` and HTTP points ``wrk`` (compiled: on 2 cores a
Python generator cannot keep up and steals the server's CPU); streaming and open-loop points
use the Python generator (``benchmarks.python_load``) in a child process. Without h2load or
wrk a point falls back to the Python generator and says so in its ``note``.

Before a point, one request goes through a real client and must succeed, otherwise the point
is skipped with the reason (e.g. ``UNIMPLEMENTED``). Server CPU is read from ``/proc`` for
the server's processes and their descendants around the measured window; errors a compiled
gRPC run cannot see (they travel in trailers) come from the server's statistics endpoint
when it has one (else ``errors`` is null; floors count transport errors only).

Only loopback targets are accepted. Example:
``python -m benchmarks.loadgen --grpc 127.0.0.1:8001 --http 127.0.0.1:8000 --server-pid PID
--protocol grpc --model small_mlp --concurrency 64 --duration-s 5``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from . import h2load, wrk
from .latency import percentiles_ms
from .payloads import grpc_request, http_request, with_id
from .server_usage import InferCounts, infer_counts, tree_cpu_s

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = ("127.0.0.1", "localhost")
PROTOCOLS = ("grpc", "grpc-stream", "http")
MAX_CONNECTIONS = 4
STATS_SPAN = 0.9


class Skip(Exception):
    """The point cannot run against this server; the message says why."""


@dataclass(frozen=True)
class Point:
    """One load point. ``rate`` (requests/s) makes it open loop, else closed loop at
    ``concurrency``. ``mode`` is "compiled" (h2load/wrk) or "python"."""

    protocol: str
    model: str
    concurrency: int = 1
    rate: float | None = None
    rows: int = 1
    encoding: str = "binary"
    mode: str = "compiled"
    connections: int | None = None

    def resolved(self) -> Point:
        """The mode and connection count this point really runs with."""
        mode = self.mode
        if self.protocol == "grpc-stream" or self.rate:
            mode = "python"
        connections = self.connections
        if connections is None:
            if self.protocol == "http":
                connections = self.concurrency
            else:
                connections = min(self.concurrency, MAX_CONNECTIONS)
        encoding = "raw" if self.protocol != "http" else self.encoding
        return replace(self, mode=mode, connections=connections, encoding=encoding)


@dataclass(frozen=True)
class Target:
    """A running server: its addresses, its process ids, what it can tell."""

    server: str
    grpc: str | None = None
    http: str | None = None
    pids: tuple[int, ...] = ()
    is_floor: bool = False
    has_statistics: bool = True  # False: no endpoint, or one per worker process

    def address(self, protocol: str) -> str:
        address = self.http if protocol == "http" else self.grpc
        if address is None:
            raise Skip(f"{self.server} does not serve {protocol}")
        if address.rpartition(":")[0] not in LOOPBACK:
            raise ValueError(f"{address}: only loopback targets are allowed")
        return address


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


def precheck(point: Point, target: Target) -> None:
    """Send one request with a real client; raises Skip with the reason if it fails."""
    address = target.address(point.protocol)
    if point.protocol == "http":
        body, headers = http_request(point.model, point.rows, point.encoding == "binary")
        url = f"http://{address}/v2/models/{point.model}/infer"
        try:
            with urllib.request.urlopen(urllib.request.Request(url, body, headers), timeout=30):
                return
        except urllib.error.HTTPError as error:
            raise Skip(
                f"HTTP {error.code}: {error.read()[:300].decode(errors='replace')}"
            ) from None
        except OSError as error:
            raise Skip(f"HTTP request failed: {error}") from None
    import grpc

    from server._proto import grpc_service_pb2 as pb

    message = grpc_request(point.model, point.rows)
    with grpc.insecure_channel(address) as channel:
        try:
            if point.protocol == "grpc":
                channel.unary_unary(h2load.INFER_PATH)(message, timeout=30)
                return
            stream = channel.stream_stream("/inference.GRPCInferenceService/ModelStreamInfer")
            for data in stream(iter([with_id(message, b"precheck")]), timeout=30):
                response = pb.ModelStreamInferResponse.FromString(data)
                if response.error_message:
                    raise Skip(f"stream error_message: {response.error_message[:300]}")
                if response.infer_response.id != "precheck":
                    raise Skip(f"stream response id {response.infer_response.id!r} != 'precheck'")
                return
            raise Skip("stream closed without a response")
        except grpc.RpcError as error:
            raise Skip(f"{error.code().name}: {(error.details() or '')[:300]}") from None


def measure(
    point: Point, target: Target, duration_s: float, warmup_s: float, window: Any
) -> Measured:
    """Run the generator for ``point``; ``window.start()``/``window.stop()`` bracket the
    measured phase."""
    address = target.address(point.protocol)
    notes = []
    if point.mode == "compiled" and point.protocol == "grpc" and not h2load.available():
        notes.append("h2load not installed: Python generator")
        point = replace(point, mode="python")
    if point.mode == "compiled" and point.protocol == "http" and not wrk.available():
        notes.append("wrk not installed: Python generator")
        point = replace(point, mode="python")
    assert point.connections is not None
    if point.mode == "python":
        measured = _python(point, address, duration_s, warmup_s, window)
    elif point.protocol == "grpc":
        streams = max(1, point.concurrency // point.connections)
        run = h2load.run(
            address,
            grpc_request(point.model, point.rows),
            point.connections,
            streams,
            duration_s,
            warmup_s,
            window.start,
        )
        window.stop()
        measured = Measured(
            run.requests,
            run.duration_s,
            percentiles_ms(run.latencies_us, 1e-6),
            None,
            run.transport_errors,
            run.generator_cpu_s,
            run.generator_wall_s,
        )
    else:
        body, headers = http_request(point.model, point.rows, point.encoding == "binary")
        url = f"http://{address}/v2/models/{point.model}/infer"
        run = wrk.run(url, body, headers, point.connections, duration_s, warmup_s, window.start)
        window.stop()
        measured = Measured(
            run.requests,
            run.duration_s,
            run.latency_ms,
            run.transport_errors,
            run.transport_errors,
            run.generator_cpu_s,
            run.generator_wall_s,
        )
    measured.notes[:0] = notes
    return measured


def _python(
    point: Point, address: str, duration_s: float, warmup_s: float, window: Any
) -> Measured:
    args = [sys.executable, "-m", "benchmarks.python_load", "--protocol", point.protocol]
    args += ["--target", address, "--model", point.model, "--rows", str(point.rows)]
    args += ["--encoding", point.encoding if point.protocol == "http" else "binary"]
    args += ["--connections", str(point.connections)]
    args += ["--rate", str(point.rate)] if point.rate else ["--concurrency", str(point.concurrency)]
    args += ["--duration-s", str(duration_s), "--warmup-s", str(warmup_s)]
    process = subprocess.Popen(
        args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stderr is not None
    result = None
    for line in process.stdout:
        if line.strip() == "measuring":
            window.start()
        elif line.startswith("{"):
            window.stop()
            result = json.loads(line)
    errors = process.stderr.read()
    process.wait()
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


class Window:
    """Server CPU, and failures from the server's statistics, over the measured phase.

    Statistics are read at the start and after ``STATS_SPAN`` of the duration: h2load resets
    the streams still in flight when it stops, and a server may count those as failures.
    """

    def __init__(self, target: Target, model: str, duration_s: float) -> None:
        self.pids = list(target.pids)
        self.http = target.http if target.has_statistics else None
        self.model = model
        self.duration_s = duration_s
        self.cpu_s = 0.0
        self.counts: list[InferCounts | None] = []
        self._timer: threading.Timer | None = None

    def start(self) -> None:
        self.cpu_s = -tree_cpu_s(self.pids)
        self.counts = [infer_counts(self.http, self.model)]
        if self.counts[0] is not None:
            self._timer = threading.Timer(self.duration_s * STATS_SPAN, self._read_late)
            self._timer.start()

    def _read_late(self) -> None:
        self.counts.append(infer_counts(self.http, self.model))

    def stop(self) -> None:
        self.cpu_s += tree_cpu_s(self.pids)
        if self._timer is not None:
            self._timer.join()

    def server_errors(self) -> int | None:
        if len(self.counts) == 2 and self.counts[0] and self.counts[1]:
            return self.counts[1].fail - self.counts[0].fail
        return None


def run_point(
    point: Point, target: Target, duration_s: float = 5.0, warmup_s: float = 1.0
) -> dict[str, Any]:
    """Precheck, measure and record ``point`` against ``target``; raises Skip."""
    point = point.resolved()
    precheck(point, target)
    window = Window(target, point.model, duration_s)
    measured = measure(point, target, duration_s, warmup_s, window)
    server_errors = window.server_errors()
    if measured.client_errors is not None:
        errors: int | None = measured.client_errors
    elif target.is_floor:
        errors = measured.transport_errors
    elif server_errors is not None:
        errors = server_errors + measured.transport_errors
    else:
        errors = None
        measured.notes.append("errors unknown: no shared statistics endpoint")
    throughput = measured.requests / measured.duration_s if measured.duration_s else 0.0
    return {
        "server": target.server,
        **asdict(point),
        "duration_s": round(measured.duration_s, 3),
        "requests": measured.requests,
        "throughput_req_s": round(throughput, 1),
        "throughput_rows_s": round(throughput * point.rows, 1),
        "latency_ms": measured.latency_ms,
        "errors": errors,
        "transport_errors": measured.transport_errors,
        "server_errors": server_errors,
        "dropped": measured.dropped,
        "generator_cpu_share": round(measured.generator_cpu_s / measured.generator_wall_s, 3),
        "server_cpu_us_per_req": (
            round(window.cpu_s / measured.requests * 1e6, 1) if measured.requests else None
        ),
        "note": "; ".join(measured.notes),
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.loadgen",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--grpc", metavar="HOST:PORT", help="the server's gRPC address")
    parser.add_argument("--http", metavar="HOST:PORT", help="the server's HTTP address")
    parser.add_argument("--server-pid", type=int, action="append", default=[], metavar="PID")
    parser.add_argument("--server-name", default="server", help="label for the record")
    parser.add_argument("--floor", action="store_true", help="the target is a floor server")
    parser.add_argument(
        "--no-statistics", action="store_true", help="do not read /v2/models/NAME/stats"
    )
    parser.add_argument("--protocol", choices=PROTOCOLS, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--encoding", choices=["binary", "json"], default="binary", help="HTTP")
    parser.add_argument("--rows", type=int, default=1, help="rows per request")
    parser.add_argument("--concurrency", type=int, default=1, help="closed loop in flight")
    parser.add_argument("--rate", type=float, help="open loop: requests per second (Python)")
    parser.add_argument("--mode", choices=["compiled", "python"], default="compiled")
    parser.add_argument("--connections", type=int, help="default: min(concurrency, 4); HTTP: C")
    parser.add_argument("--duration-s", type=float, default=5.0)
    parser.add_argument("--warmup-s", type=float, default=1.0)
    return parser


def main() -> None:
    args = build_parser().parse_args()
    point = Point(
        args.protocol,
        args.model,
        args.concurrency,
        args.rate,
        args.rows,
        args.encoding,
        args.mode,
        args.connections,
    )
    target = Target(
        args.server_name,
        args.grpc,
        args.http,
        tuple(args.server_pid),
        args.floor,
        not (args.floor or args.no_statistics),
    )
    try:
        record = run_point(point, target, args.duration_s, args.warmup_s)
    except Skip as skip:
        record = {"server": target.server, **asdict(point), "skipped": str(skip)}
    print(json.dumps(record))


if __name__ == "__main__":
    main()
