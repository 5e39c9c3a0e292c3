"""One request through a real client before a load point: it must succeed.

A compiled gRPC generator cannot see gRPC errors (they travel in trailers), so a point whose
server answers e.g. ``UNIMPLEMENTED`` (no streaming yet) or ``NOT_FOUND`` would otherwise look
like a fast success. A failure raises Skip with the server's answer.
"""

from __future__ import annotations

import urllib.error
import urllib.request

from .payloads import INFER_PATH, STREAM_PATH, grpc_request, http_request, with_id

TIMEOUT_S = 30.0
PRECHECK_ID = "precheck"


class Skip(Exception):
    """The point cannot run against this server; the message says why."""


def precheck(protocol: str, address: str, model: str, rows: int, encoding: str) -> None:
    """Send one ``protocol`` request for ``model`` to ``address``; raises Skip if it fails."""
    if protocol == "http":
        _http(address, model, rows, encoding == "binary")
    else:
        _grpc(protocol == "grpc-stream", address, model, rows)


def _http(address: str, model: str, rows: int, binary: bool) -> None:
    body, headers = http_request(model, rows, binary)
    request = urllib.request.Request(f"http://{address}/v2/models/{model}/infer", body, headers)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S):
            return
    except urllib.error.HTTPError as error:
        raise Skip(f"HTTP {error.code}: {error.read()[:300].decode(errors='replace')}") from None
    except OSError as error:
        raise Skip(f"HTTP request failed: {error}") from None


def _grpc(is_stream: bool, address: str, model: str, rows: int) -> None:
    import grpc

    from server._proto import grpc_service_pb2 as pb

    message = grpc_request(model, rows)
    with grpc.insecure_channel(address) as channel:
        try:
            if not is_stream:
                channel.unary_unary(INFER_PATH)(message, timeout=TIMEOUT_S)
                return
            requests = iter([with_id(message, PRECHECK_ID.encode())])
            for data in channel.stream_stream(STREAM_PATH)(requests, timeout=TIMEOUT_S):
                response = pb.ModelStreamInferResponse.FromString(data)
                if response.error_message:
                    raise Skip(f"stream error_message: {response.error_message[:300]}")
                if response.infer_response.id != PRECHECK_ID:
                    raise Skip(f"stream response id {response.infer_response.id!r} is not ours")
                return
            raise Skip("stream closed without a response")
        except grpc.RpcError as error:
            raise Skip(f"{error.code().name}: {(error.details() or '')[:300]}") from None
