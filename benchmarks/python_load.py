"""The Python load generator (asyncio on uvloop), for open-loop points, per-message stream
latency and anything run with ``--mode python``.

Closed loop: ``--concurrency C`` requests always in flight. Open loop: ``--rate R`` requests
per second with Poisson arrivals; latency is measured from each request's *scheduled* send
time, so a server (or generator) that falls behind shows as queueing instead of hiding it.
Requests beyond ``--max-in-flight`` are not sent and are counted as ``dropped``.

Protocols: ``grpc`` (unary ModelInfer, pre-serialized bytes through a generic
``channel.unary_unary`` with no serializer), ``grpc-stream`` (ModelStreamInfer: many requests
in flight on one stream per connection, responses matched by ``id``, ``error_message`` counted
as an error), ``http`` (aiohttp, ``--encoding binary`` or ``json``).

Prints ``measuring`` when the measured window starts (after ``--warmup-s``), then one JSON line:
requests, errors, dropped, duration_s, latency percentiles, and the generator's own CPU share.
Example: ``python -m benchmarks.python_load --protocol grpc --target 127.0.0.1:8001
--model small_mlp --rate 500 --duration-s 5``
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import uvloop

from .latency import percentiles_ms
from .models import SIGNATURES
from .payloads import INFER_PATH, STREAM_PATH, grpc_request, http_request, with_id

Call = Callable[[], Awaitable[bool]]
MAX_MESSAGE_BYTES = 64 * 2**20
DRAIN_TIMEOUT_S = 10.0


@dataclass
class Tally:
    """What one measured window saw; latencies in seconds."""

    start: float
    end: float
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    dropped: int = 0

    def add(self, ok: bool, sent: float, done: float) -> None:
        if self.start <= done <= self.end or self.start <= sent < self.end:
            self.latencies.append(done - sent)
            self.errors += not ok


async def closed_loop(call: Call, concurrency: int, duration_s: float) -> Tally:
    """``concurrency`` workers, each sending its next request when the last one answered."""
    start = time.perf_counter()
    tally = Tally(start, start + duration_s)

    async def worker() -> None:
        while (sent := time.perf_counter()) < tally.end:
            ok = await _safely(call)
            tally.add(ok, sent, time.perf_counter())

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return tally


async def open_loop(call: Call, rate: float, duration_s: float, max_in_flight: int) -> Tally:
    """Requests at Poisson arrival times averaging ``rate`` per second."""
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    tally = Tally(start, start + duration_s)
    in_flight: dict[asyncio.Task[None], float] = {}

    async def one(scheduled: float) -> None:
        ok = await _safely(call)
        tally.add(ok, scheduled, time.perf_counter())

    scheduled = start + rng.exponential(1.0 / rate)
    while scheduled < tally.end:
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if len(in_flight) < max_in_flight:
            task = asyncio.create_task(one(scheduled))
            in_flight[task] = scheduled
            task.add_done_callback(in_flight.pop)
        else:
            tally.dropped += 1
        scheduled += rng.exponential(1.0 / rate)
    if in_flight:
        _, late = await asyncio.wait(list(in_flight), timeout=DRAIN_TIMEOUT_S)
        now = time.perf_counter()
        for task in late:
            tally.add(False, in_flight[task], now)
            task.cancel()
    return tally


async def _safely(call: Call) -> bool:
    try:
        return await call()
    except asyncio.CancelledError:
        raise
    except Exception:
        return False


async def grpc_unary_call(target: str, request: bytes, connections: int) -> tuple[Call, Any]:
    """A call sending ``request`` round-robin over ``connections`` channels."""
    import grpc

    channels = [_grpc_channel(grpc, target) for _ in range(connections)]
    stubs = itertools.cycle([c.unary_unary(INFER_PATH) for c in channels])

    async def call() -> bool:
        await next(stubs)(request)
        return True

    async def close() -> None:
        for channel in channels:
            await channel.close()

    return call, close


def _grpc_channel(grpc: Any, target: str) -> Any:
    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.use_local_subchannel_pool", 1),  # one TCP connection per channel
    ]
    return grpc.aio.insecure_channel(target, options=options)


class StreamMux:
    """One ModelStreamInfer stream carrying many requests, answered by ``id``."""

    def __init__(self, channel: Any, request: bytes) -> None:
        from server._proto import grpc_service_pb2 as pb

        self._parse = pb.ModelStreamInferResponse.FromString
        self._request = request
        self._ids = itertools.count()
        self._pending: dict[str, asyncio.Future[bool]] = {}
        self._call = channel.stream_stream(STREAM_PATH)()
        self._writes: asyncio.Queue[bytes] = asyncio.Queue()
        self._tasks = [asyncio.create_task(self._write()), asyncio.create_task(self._read())]

    async def call(self) -> bool:
        request_id = str(next(self._ids))
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        self._writes.put_nowait(with_id(self._request, request_id.encode()))
        return await future

    async def _write(self) -> None:
        while True:
            await self._call.write(await self._writes.get())

    async def _read(self) -> None:
        try:
            async for data in self._call:
                response = self._parse(data)
                future = self._pending.pop(response.infer_response.id, None)
                if future is None and self._pending:  # an error without an id: the oldest
                    future = self._pending.pop(next(iter(self._pending)))
                if future is not None and not future.done():
                    future.set_result(not response.error_message)
        except Exception as error:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(error)
            self._pending.clear()
            raise

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._call.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def grpc_stream_call(target: str, request: bytes, connections: int) -> tuple[Call, Any]:
    """A call sending ``request`` round-robin over one stream on each of ``connections``."""
    import grpc

    channels = [_grpc_channel(grpc, target) for _ in range(connections)]
    muxes = [StreamMux(c, request) for c in channels]
    calls = itertools.cycle([m.call for m in muxes])

    async def call() -> bool:
        ok: bool = await next(calls)()
        return ok

    async def close() -> None:
        for mux in muxes:
            await mux.close()
        for channel in channels:
            await channel.close()

    return call, close


async def http_call(
    url: str, body: bytes, headers: dict[str, str], connections: int
) -> tuple[Call, Any]:
    """A call POSTing ``body`` to ``url`` over at most ``connections`` keep-alive connections."""
    import aiohttp

    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections),
        timeout=aiohttp.ClientTimeout(total=30),
        skip_auto_headers=("User-Agent",),
    )

    async def call() -> bool:
        async with session.post(url, data=body, headers=headers) as response:
            await response.read()
            return response.status == 200

    return call, session.close


async def make_call(args: argparse.Namespace) -> tuple[Call, Any]:
    if args.protocol == "http":
        body, headers = http_request(args.model, args.rows, args.encoding == "binary")
        url = f"http://{args.target}/v2/models/{args.model}/infer"
        return await http_call(url, body, headers, args.connections)
    request = grpc_request(args.model, args.rows)
    if args.protocol == "grpc-stream":
        return await grpc_stream_call(args.target, request, args.connections)
    return await grpc_unary_call(args.target, request, args.connections)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Warm up, then measure one window; the result as a JSON-ready dict."""
    call, close = await make_call(args)
    try:
        if args.warmup_s > 0:
            await _drive(call, args, args.warmup_s)
        print("measuring", flush=True)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        tally = await _drive(call, args, args.duration_s)
        cpu_s, wall_s = time.process_time() - cpu0, time.perf_counter() - wall0
    finally:
        await close()
    return {
        "requests": len(tally.latencies),
        "errors": tally.errors,
        "dropped": tally.dropped,
        "duration_s": round(tally.end - tally.start, 3),
        "latency_ms": percentiles_ms(tally.latencies, 1.0),
        "generator_cpu_s": round(cpu_s, 3),
        "generator_wall_s": round(wall_s, 3),
    }


async def _drive(call: Call, args: argparse.Namespace, duration_s: float) -> Tally:
    if args.rate:
        return await open_loop(call, args.rate, duration_s, args.max_in_flight)
    return await closed_loop(call, args.concurrency, duration_s)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.python_load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--protocol", choices=["grpc", "grpc-stream", "http"], required=True)
    parser.add_argument("--target", required=True, help="HOST:PORT of the gRPC or HTTP server")
    parser.add_argument("--model", required=True, choices=sorted(SIGNATURES))
    parser.add_argument("--encoding", choices=["binary", "json"], default="binary", help="HTTP")
    parser.add_argument("--rows", type=int, default=1, help="rows per request")
    load = parser.add_mutually_exclusive_group()
    load.add_argument("--concurrency", type=int, default=16, help="closed loop (default)")
    load.add_argument("--rate", type=float, help="open loop: requests per second")
    parser.add_argument("--connections", type=int, default=1, help="gRPC channels / HTTP sockets")
    parser.add_argument("--max-in-flight", type=int, default=4096, help="open loop cap")
    parser.add_argument("--duration-s", type=float, default=5.0)
    parser.add_argument("--warmup-s", type=float, default=1.0)
    return parser


def main() -> None:
    args = build_parser().parse_args()
    if args.protocol == "http":
        args.connections = args.max_in_flight if args.rate else args.concurrency
    print(json.dumps(uvloop.run(run(args))), flush=True)


if __name__ == "__main__":
    main()
