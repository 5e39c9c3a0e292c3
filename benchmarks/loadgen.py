"""Run one load point against a running V2 server and record what it measured.

Closed-loop gRPC points use ``h2load`` and HTTP points ``wrk`` (compiled: on 2 cores a
Python generator cannot keep up and steals the server's CPU); open-loop points, and any point
with ``mode="python"``, use the Python generator (``benchmarks.python_load``) in a child
process. Without h2load or wrk a point falls back to the Python generator and says so in its
``note``.

A compiled stream point sends whole ModelStreamInfer calls of K = min(C, STREAM_MESSAGES)
requests each, max(1, C // K) streams in flight; it counts messages (so req/s and server
µs/req are per message) but h2load times whole streams, so its latency is null: per-message
latency comes from the Python stream point.

Before a point, one request goes through a real client and must succeed, otherwise the point
is skipped with the reason (e.g. ``UNIMPLEMENTED``). Server CPU is read from ``/proc`` for
the server's processes and their descendants around the measured window; errors a compiled
gRPC run cannot see (they travel in trailers) come from the server's statistics endpoint
when it has one, every worker's under ``--workers N`` (else ``errors`` is null; floors count
transport errors only).

Only loopback targets are accepted. Example:
``python -m benchmarks.loadgen --grpc 127.0.0.1:8001 --http 127.0.0.1:8000 --server-pid PID
--protocol grpc --model small_mlp --concurrency 64 --duration-s 5`` (``--protocol grpc-stream
--concurrency 256``: 4 streams × 64 messages; add ``--mode python`` for the Python generator)
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, replace
from typing import Any

from . import h2load, wrk
from .generators import measure
from .models import SIGNATURES
from .precheck import Skip, precheck
from .server_usage import UsageWindow

__all__ = ["Point", "Skip", "Target", "run_point"]

LOOPBACK = ("127.0.0.1", "localhost")
PROTOCOLS = ("grpc", "grpc-stream", "http")
MAX_CONNECTIONS = 8  # enough for SO_REUSEPORT to spread them over several processes
STREAM_MESSAGES = 64  # most requests per compiled stream (one h2load request)


@dataclass(frozen=True)
class Point:
    """One load point. ``rate`` (requests/s) makes it open loop, else closed loop at
    ``concurrency``. ``mode`` is "compiled" (h2load/wrk) or "python". ``stream_messages``
    caps the requests per stream of a compiled grpc-stream point; resolved, it is the exact
    count K (None for every other point)."""

    protocol: str
    model: str
    concurrency: int = 1
    rate: float | None = None
    rows: int = 1
    encoding: str = "binary"
    mode: str = "compiled"
    connections: int | None = None
    stream_messages: int | None = STREAM_MESSAGES

    def resolved(self) -> tuple[Point, list[str]]:
        """The mode, messages per stream and connection count this point really runs with,
        and notes on why."""
        mode, notes = self.mode, []
        if self.rate:
            mode = "python"
        tool = {"grpc": h2load, "grpc-stream": h2load, "http": wrk}.get(self.protocol)
        if mode == "compiled" and tool is not None and not tool.available():
            mode = "python"
            notes.append(f"{tool.__name__.rpartition('.')[2]} not installed: Python generator")
        messages = None
        if self.protocol == "grpc-stream" and mode == "compiled":
            messages = min(self.concurrency, self.stream_messages or STREAM_MESSAGES)
            notes += _stream_notes(self.concurrency, messages)
        connections = self.connections
        if connections is None:
            if self.rate:
                connections = MAX_CONNECTIONS
            elif self.protocol == "http":
                connections = self.concurrency
            else:  # the most connections, up to the cap, sharing the streams evenly
                streams = _streams(self.concurrency, messages)
                connections = max(d for d in range(1, MAX_CONNECTIONS + 1) if streams % d == 0)
        encoding = "raw" if self.protocol != "http" else self.encoding
        resolved = replace(
            self, mode=mode, connections=connections, encoding=encoding, stream_messages=messages
        )
        return resolved, notes

    def streams_per_connection(self) -> int:
        """h2load ``-m`` of a resolved compiled gRPC point: its streams (whole calls for
        grpc-stream) shared over its connections."""
        assert self.connections is not None
        return max(1, _streams(self.concurrency, self.stream_messages) // self.connections)


def _streams(concurrency: int, messages: int | None) -> int:
    """Streams in flight: one per request, or C // K whole calls of K messages (at least 1)."""
    return concurrency if messages is None else max(1, concurrency // messages)


def _stream_notes(concurrency: int, messages: int) -> list[str]:
    """What a compiled stream point of K = ``messages`` says about itself."""
    streams = _streams(concurrency, messages)
    notes = [
        f"h2load times whole streams of {messages} messages: no per-message latency "
        "(that comes from the Python stream point)"
    ]
    if streams * messages != concurrency:
        notes.append(
            f"{streams * messages} messages in flight ({streams} streams × {messages}), "
            f"not {concurrency}"
        )
    return notes


@dataclass(frozen=True)
class Target:
    """A running server: its addresses, its process ids, what it can tell."""

    server: str
    grpc: str | None = None
    http: str | None = None
    pids: tuple[int, ...] = ()
    is_floor: bool = False
    has_statistics: bool = True  # False: no statistics endpoint
    workers: int = 1  # ortserve --workers N: each worker's statistics are read and added up

    def address(self, protocol: str) -> str:
        address = self.http if protocol == "http" else self.grpc
        if address is None:
            raise Skip(f"{self.server} does not serve {protocol}")
        if address.rpartition(":")[0] not in LOOPBACK:
            raise ValueError(f"{address}: only loopback targets are allowed")
        return address


def run_point(
    point: Point, target: Target, duration_s: float = 5.0, warmup_s: float = 1.0
) -> dict[str, Any]:
    """Precheck, measure and record ``point`` against ``target``; raises Skip."""
    point, notes = point.resolved()
    address = target.address(point.protocol)
    precheck(point.protocol, address, point.model, point.rows, point.encoding)
    statistics = target.http if target.has_statistics else None
    window = UsageWindow(target.pids, statistics, point.model, duration_s, workers=target.workers)
    measured = measure(point, address, duration_s, warmup_s, window)
    measured.notes[:0] = notes
    server_errors = window.server_errors()
    if measured.client_errors is not None:
        errors: int | None = measured.client_errors
    elif target.is_floor:
        errors = measured.transport_errors
    elif server_errors is not None:
        errors = server_errors + measured.transport_errors
    else:
        errors = None
        measured.notes.append("errors unknown: no statistics (of every worker) to count them")
    throughput = measured.requests / measured.duration_s if measured.duration_s else 0.0
    return {
        "server": target.server,
        **asdict(point),
        "concurrency": None if point.rate else point.concurrency,
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
        "host_steal_share": None if window.host_shares is None else round(window.host_shares[0], 3),
        "host_idle_share": None if window.host_shares is None else round(window.host_shares[1], 3),
        "server_stats": None if target.is_floor else window.server_breakdown(),
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
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="ortserve --workers N: read every worker's statistics",
    )
    parser.add_argument("--protocol", choices=PROTOCOLS, required=True)
    parser.add_argument("--model", required=True, choices=sorted(SIGNATURES))
    parser.add_argument("--encoding", choices=["binary", "json"], default="binary", help="HTTP")
    parser.add_argument("--rows", type=int, default=1, help="rows per request")
    parser.add_argument("--concurrency", type=int, default=1, help="closed loop in flight")
    parser.add_argument("--rate", type=float, help="open loop: requests per second (Python)")
    parser.add_argument("--mode", choices=["compiled", "python"], default="compiled")
    parser.add_argument(
        "--connections",
        type=int,
        help="default: up to 8 sharing the streams evenly (compiled grpc-stream: C // K "
        "streams); HTTP: C",
    )
    parser.add_argument(
        "--stream-messages",
        type=int,
        default=STREAM_MESSAGES,
        metavar="K",
        help=f"compiled grpc-stream: at most K requests per stream (default {STREAM_MESSAGES})",
    )
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
        args.stream_messages,
    )
    target = Target(
        args.server_name,
        args.grpc,
        args.http,
        tuple(args.server_pid),
        args.floor,
        not (args.floor or args.no_statistics),
        args.workers,
    )
    try:
        record = run_point(point, target, args.duration_s, args.warmup_s)
    except Skip as skip:
        record = {"server": target.server, **asdict(point), "skipped": str(skip)}
    print(json.dumps(record))


if __name__ == "__main__":
    main()
