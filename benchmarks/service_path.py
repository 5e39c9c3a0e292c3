"""ortserve's own cost per request, with no transport: a request's bytes decoded, validated,
batched, run and its answer encoded, in one process, at a given concurrency.

It loads the repository into the same ``InferenceService`` the server runs, on uvloop, and
starts C asyncio tasks, each sending requests back to back through the front ends' own
handlers: the bytes of a ModelInferRequest to the gRPC servicer's ``ModelInfer``, or an infer
body with the binary extension or JSON to the HTTP app's infer endpoint (as ASGI). No
socket, HTTP/2, grpc.aio or uvicorn is in between, so what it measures is the part of a
request's cost that is ortserve's own (its Python and the model runs); the floors measure the
transport's. On a shared 2-core host it varies much less than a loopback point,
which suits an A/B of a change to the request path.

The tasks move in step: each run takes one request from every task, so rows per run is about
C. Choose C for the batch size to study (a loopback gRPC c64 point on the 2-core development
host runs batches of about 14 rows).

Prints one JSON object: per repeat, the process's CPU µs per request (every thread: the
loop's and the runtime's), wall µs per request and rows per model run; and their medians.

Example: ``python -m benchmarks.service_path --model-repository DIR --model small_mlp
--concurrency 64 --requests 20000``
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import uvloop

from server._proto import grpc_service_pb2 as pb
from server.frontends.grpc_service import InferenceServicer
from server.frontends.http_app import build_http_app
from server.metrics import Metrics
from server.model_loading import load_models
from server.service import InferenceService
from server.settings import Settings, load_settings

from .payloads import grpc_request, http_request

Handle = Callable[[], Awaitable[bytes]]


class _NoDeadline:
    """What ``ModelInfer`` reads of its gRPC context here: a call without a deadline."""

    def time_remaining(self) -> None:
        return None


def grpc_handler(service: InferenceService, model: str, rows: int) -> Handle:
    """One gRPC request's bytes to its answer's, through the front end's ``ModelInfer``."""
    data = grpc_request(model, rows)
    parse = pb.ModelInferRequest.FromString
    model_infer = InferenceServicer(service, Settings().stream_backlog_bytes).ModelInfer
    context = _NoDeadline()

    async def handle() -> bytes:
        answer: bytes = await model_infer(parse(data), context)
        return answer

    return handle


def http_handler(service: InferenceService, model: str, rows: int, binary: bool) -> Handle:
    """One HTTP infer body to its answer's, through the front end's ASGI infer endpoint;
    raises if the answer is not a 200."""
    body, headers = http_request(model, rows, binary)
    scope = {
        "type": "http",
        "method": "POST",
        "path": f"/v2/models/{model}/infer",
        "headers": [
            (b"content-length", b"%d" % len(body)),
            *((k.lower().encode(), v.encode()) for k, v in headers.items()),
        ],
    }
    message = {"type": "http.request", "body": body, "more_body": False}
    endpoint = build_http_app(service, len(body))

    async def receive() -> dict[str, Any]:
        return message

    async def handle() -> bytes:
        sent: list[MutableMapping[str, Any]] = []

        async def send(event: MutableMapping[str, Any]) -> None:
            sent.append(event)

        await endpoint(scope, receive, send)
        if sent[0]["status"] != 200:
            raise RuntimeError(f"HTTP {sent[0]['status']}: {sent[1]['body'][:200]!r}")
        content: bytes = sent[1]["body"]
        return content

    return handle


async def load_service(repository: Path) -> InferenceService:
    """The repository's models loaded, as ``ortserve serve`` loads them, accepting requests;
    the caller closes each version's runtime when done."""
    settings = load_settings(None, {}, {"model_repository": str(repository)})
    metrics = Metrics()
    service = InferenceService(await load_models(settings, metrics), metrics, None, None)
    service.is_accepting = True
    gc.freeze()  # as the server does once it is up
    return service


async def measure(
    repository: Path,
    model: str,
    protocol: str,
    rows: int,
    concurrency: int,
    requests: int,
    repeats: int,
) -> dict[str, Any]:
    """Load ``repository``, warm up, then ``repeats`` rounds of ``requests`` requests."""
    service = await load_service(repository)
    if protocol == "grpc":
        handle = grpc_handler(service, model, rows)
    else:
        handle = http_handler(service, model, rows, binary=protocol == "http-binary")
    per_task = max(1, requests // concurrency)

    async def one_task(count: int) -> None:
        for _ in range(count):
            await handle()

    def executions() -> tuple[int, int]:
        stats = service.statistics(model)["model_stats"]
        return (
            sum(s["inference_count"] for s in stats),
            sum(s["execution_count"] for s in stats),
        )

    rounds = []
    try:
        await asyncio.gather(*(one_task(max(1, per_task // 10)) for _ in range(concurrency)))
        for _ in range(repeats):
            inferred, executed = executions()
            cpu, wall = time.process_time(), time.perf_counter()
            await asyncio.gather(*(one_task(per_task) for _ in range(concurrency)))
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            now = executions()
            inferred, executed = now[0] - inferred, now[1] - executed
            count = per_task * concurrency
            rounds.append(
                {
                    "cpu_us_per_req": round(cpu / count * 1e6, 1),
                    "wall_us_per_req": round(wall / count * 1e6, 1),
                    "rows_per_run": round(inferred / max(executed, 1), 1),
                }
            )
    finally:
        for version in service.store.all_versions():
            version.runtime.close()
    return {
        "model": model,
        "protocol": protocol,
        "rows": rows,
        "concurrency": concurrency,
        "requests_per_repeat": per_task * concurrency,
        "repeats": rounds,
        **{key: statistics.median(r[key] for r in rounds) for key in rounds[0]},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.service_path",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model-repository", type=Path, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--protocol", choices=["grpc", "http-binary", "http-json"], default="grpc")
    parser.add_argument("--rows", type=int, default=1, help="rows per request (default 1)")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--requests", type=int, default=20_000, help="per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if min(args.rows, args.concurrency, args.requests, args.repeats) < 1:
        parser.error("--rows, --concurrency, --requests and --repeats must be at least 1")
    result = uvloop.run(
        measure(
            args.model_repository,
            args.model,
            args.protocol,
            args.rows,
            args.concurrency,
            args.requests,
            args.repeats,
        )
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
