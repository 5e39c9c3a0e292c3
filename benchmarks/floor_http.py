"""The HTTP floor: the cheapest V2 HTTP server, to measure what Starlette on uvicorn costs.

A Starlette app on uvicorn (httptools, uvloop, no access log, no lifespan) with
``POST /v2/models/{name}/infer``: it reads the body and returns a prebuilt body with the
outputs the real model returns for ``--rows`` rows -- binary tensor extension (with
``Inference-Header-Content-Length``) when the request used it, JSON otherwise. No model runs.
Prints ``floor ready http=HOST:PORT`` once it accepts connections; SIGTERM or SIGINT stop it.

Example: ``python -m benchmarks.floor_http --model small_mlp --output y:FP32:-1,16``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
from collections.abc import Iterator

import uvicorn
import uvloop
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .payloads import BINARY_HEADER, OutputSpec, http_response, parse_output_spec


def build_app(model: str, outputs: list[OutputSpec], rows: int) -> Starlette:
    binary_body, binary_headers = http_response(model, outputs, rows, binary=True)
    json_body, json_headers = http_response(model, outputs, rows, binary=False)

    async def infer(request: Request) -> Response:
        await request.body()
        if BINARY_HEADER in request.headers:
            return Response(binary_body, headers=binary_headers)
        return Response(json_body, headers=json_headers)

    return Starlette(routes=[Route("/v2/models/{name}/infer", infer, methods=["POST"])])


class QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling (it re-raises SIGTERM on the way out)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(host: str, port: int, app: Starlette) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    config = uvicorn.Config(
        app,
        http="httptools",
        loop="none",
        lifespan="off",
        access_log=False,
        proxy_headers=False,
        log_level="warning",
    )
    server = QuietServer(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, setattr, server, "should_exit", True)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
            raise SystemExit("floor_http: server stopped during start-up")
        await asyncio.sleep(0.01)
    print(f"floor ready http={host}:{sock.getsockname()[1]}", flush=True)
    await task


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.floor_http",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--model", default="model", help="model_name in responses")
    parser.add_argument("--rows", type=int, default=1, help="rows the responses carry")
    parser.add_argument(
        "--output",
        action="append",
        type=parse_output_spec,
        required=True,
        metavar="NAME:DATATYPE:DIMS",
        help="an output of the response, -1 = --rows (repeat for several)",
    )
    args = parser.parse_args()
    uvloop.run(serve(args.host, args.port, build_app(args.model, args.output, args.rows)))


if __name__ == "__main__":
    main()
