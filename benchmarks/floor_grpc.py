"""The gRPC floor: the cheapest V2 gRPC server, to measure what grpc.aio itself costs.

A grpc.aio server on uvloop answering ``inference.GRPCInferenceService/ModelInfer`` (unary)
and ``ModelStreamInfer`` (bidi stream). It parses every request (a real server must) and
answers with a prebuilt serialized response whose outputs have the shapes and sizes the real
model returns for the request's row count; stream responses echo the request's ``id``. No
model runs. Prints ``floor ready grpc=HOST:PORT`` once it accepts connections; SIGTERM or
SIGINT stop it.

Example: ``python -m benchmarks.floor_grpc --model small_mlp --output y:FP32:-1,16``
(``--reuseport`` lets a second process serve the same port).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import AsyncIterator
from typing import Any

import grpc
import uvloop

from server._proto import grpc_service_pb2 as pb

from .payloads import (
    GRPC_SERVICE,
    OutputSpec,
    grpc_response,
    parse_output_spec,
    stream_response_with_id,
)

MAX_MESSAGE_BYTES = 64 * 2**20


class PrebuiltResponses:
    """Serialized responses per row count, built on first use."""

    def __init__(self, model: str, outputs: list[OutputSpec]) -> None:
        self.model = model
        self.outputs = outputs
        self._unary: dict[int, bytes] = {}
        self._stream: dict[int, bytes] = {}

    def unary(self, request: Any) -> bytes:
        rows = _rows(request)
        found = self._unary.get(rows)
        if found is None:
            found = self._unary[rows] = grpc_response(self.model, self.outputs, rows)
        return found

    def stream(self, request: Any) -> bytes:
        rows = _rows(request)
        found = self._stream.get(rows)
        if found is None:
            inner = pb.ModelInferResponse.FromString(self.unary(request))
            found = pb.ModelStreamInferResponse(infer_response=inner).SerializeToString()
            self._stream[rows] = found
        return stream_response_with_id(found, request.id.encode())


def _rows(request: Any) -> int:
    inputs = request.inputs
    return int(inputs[0].shape[0]) if inputs and inputs[0].shape else 1


def build_handler(responses: PrebuiltResponses) -> grpc.GenericRpcHandler:
    parse = pb.ModelInferRequest.FromString

    async def model_infer(data: bytes, context: Any) -> bytes:
        return responses.unary(parse(data))

    async def model_stream_infer(requests: AsyncIterator[bytes], context: Any) -> Any:
        async for data in requests:
            yield responses.stream(parse(data))

    return grpc.method_handlers_generic_handler(
        GRPC_SERVICE,
        {
            "ModelInfer": grpc.unary_unary_rpc_method_handler(model_infer),
            "ModelStreamInfer": grpc.stream_stream_rpc_method_handler(model_stream_infer),
        },
    )


async def serve(host: str, port: int, reuseport: bool, responses: PrebuiltResponses) -> None:
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 1 if reuseport else 0),
        ]
    )
    server.add_generic_rpc_handlers((build_handler(responses),))
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise SystemExit(f"floor_grpc: cannot bind {host}:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"floor ready grpc={host}:{bound}", flush=True)
    await stop.wait()
    await server.stop(1)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.floor_grpc",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--reuseport", action="store_true", help="set SO_REUSEPORT")
    parser.add_argument("--model", default="model", help="model_name in responses")
    parser.add_argument(
        "--output",
        action="append",
        type=parse_output_spec,
        required=True,
        metavar="NAME:DATATYPE:DIMS",
        help="an output of the response, -1 = the request's rows (repeat for several)",
    )
    args = parser.parse_args()
    responses = PrebuiltResponses(args.model, args.output)
    uvloop.run(serve(args.host, args.port, args.reuseport, responses))


if __name__ == "__main__":
    main()
