"""The gRPC front end: V2 GRPCInferenceService and grpc.health.v1 -> InferenceService."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from .. import metadata
from .._proto import grpc_service_pb2 as pb
from .._proto import grpc_service_pb2_grpc as pb_grpc
from .._proto import model_config_pb2
from ..errors import ModelNotFound, ModelNotReady, ServeError
from ..service import InferenceService
from . import grpc_codec, grpc_wire
from .grpc_stream import InferenceStream

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """PEM files for TLS; ``client_ca`` set means clients must present certificates."""

    cert: Path
    key: Path
    client_ca: Path | None = None


SERVICE_NAME = "inference.GRPCInferenceService"
ANSWERS_BYTES = {"ModelInfer"}  # RPCs whose handler returns its response already serialized


class GoneClientFilter(logging.Filter):
    """Turns grpc.aio's traceback for an answer whose client has already gone (it cannot
    be sent: ``ExecuteBatchError``) into one debug line; nothing was lost but the client."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if type(error).__name__ == "ExecuteBatchError":
            log.debug("an answer could not be sent: its client has gone")
            return False
        return True


def quiet_gone_clients() -> None:
    """Install GoneClientFilter on grpc's logger (once)."""
    logger = logging.getLogger("grpc._cython.cygrpc")
    if not any(isinstance(f, GoneClientFilter) for f in logger.filters):
        logger.addFilter(GoneClientFilter())


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """The V2 RPCs; those not defined here answer UNIMPLEMENTED."""

    def __init__(self, service: InferenceService, stream_backlog_bytes: int) -> None:
        self.service = service
        self.stream_backlog_bytes = stream_backlog_bytes

    async def ServerLive(self, request: Any, context: Any) -> Any:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Any) -> Any:
        return pb.ServerReadyResponse(ready=self.service.is_ready())

    async def ModelReady(self, request: Any, context: Any) -> Any:
        try:
            model = self.service.model(request.name, request.version)
        except ModelNotFound:
            return pb.ModelReadyResponse(ready=False)
        except ModelNotReady:
            if not self.service.is_accepting:
                raise
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=model.is_healthy)

    async def ServerMetadata(self, request: Any, context: Any) -> Any:
        return json_format.ParseDict(metadata.server_metadata(), pb.ServerMetadataResponse())

    async def ModelMetadata(self, request: Any, context: Any) -> Any:
        model = self.service.model(request.name, request.version)
        doc = metadata.model_metadata(model, self.service.store.versions(model.name))
        return json_format.ParseDict(doc, pb.ModelMetadataResponse())

    async def ModelConfig(self, request: Any, context: Any) -> Any:
        model = self.service.model(request.name, request.version)
        config = json_format.ParseDict(metadata.model_config(model), model_config_pb2.ModelConfig())
        return pb.ModelConfigResponse(config=config)

    async def ModelStreamInfer(self, messages: AsyncIterator[bytes], context: Any) -> None:
        if self.service.auth is not None:
            try:
                self.service.authenticate(_authorization(context))
            except ServeError as error:
                await context.abort(getattr(grpc.StatusCode, error.grpc_code), str(error))
        await InferenceStream(self.service, context, self.stream_backlog_bytes).serve(messages)

    async def ModelStatistics(self, request: Any, context: Any) -> Any:
        doc = self.service.statistics(request.name, request.version)
        return json_format.ParseDict(doc, pb.ModelStatisticsResponse())

    async def ModelInfer(self, request: Any, context: Any) -> Any:
        if self.service.auth is not None:
            self.service.authenticate(_authorization(context))
        infer_request = grpc_codec.decode_request(request)
        infer_request.protocol = "grpc"
        infer_request.timeout_s = context.time_remaining()
        response = await self.service.infer(infer_request)
        return grpc_wire.encode_response(response)


def inference_handlers(servicer: InferenceServicer) -> grpc.GenericRpcHandler:
    """Method handlers for the unary RPCs ``servicer`` defines (others: UNIMPLEMENTED).

    Requests arrive as bytes and are parsed inside the error wrapper, so a malformed
    message is INVALID_ARGUMENT naming the problem rather than grpcio's INTERNAL.
    """
    handlers = {}
    for method in pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods:
        implementation = getattr(type(servicer), method.name, None)
        inherited = getattr(pb_grpc.GRPCInferenceServiceServicer, method.name, None)
        if implementation is None or implementation is inherited:
            continue
        if method.client_streaming:  # parses each message itself
            handlers[method.name] = grpc.stream_stream_rpc_method_handler(
                getattr(servicer, method.name)  # answers are written already serialized
            )
            continue
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            _unary(getattr(servicer, method.name), getattr(pb, method.input_type.name)),
            response_serializer=None if method.name in ANSWERS_BYTES else _serialize,
        )
    return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)


def _serialize(message: Any) -> bytes:
    data: bytes = message.SerializeToString()
    return data


def _authorization(context: Any) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            return str(value)
    return None


def _unary(handler: Callable[[Any, Any], Awaitable[Any]], message_type: Any) -> Any:
    """Parse the request, call ``handler``, and map every error to its gRPC status once:
    ServeError to its code, a malformed message to INVALID_ARGUMENT, anything else to
    INTERNAL (logged)."""
    name = message_type.DESCRIPTOR.name

    async def handle(data: bytes, context: Any) -> Any:
        try:
            return await handler(message_type.FromString(data), context)
        except ServeError as error:
            await context.abort(getattr(grpc.StatusCode, error.grpc_code), str(error))
        except DecodeError as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed {name}: {error}")
        except grpc.aio.AbortError:
            raise
        except Exception as error:
            log.exception("unhandled error in %s", name)
            await context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(error).__name__}")

    return handle


async def build_grpc_server(
    service: InferenceService,
    host: str,
    port: int,
    max_message_bytes: int,
    stream_backlog_bytes: int,
    reuse_port: bool,
    tls: TlsFiles | None = None,
) -> tuple[grpc.aio.Server, int, HealthServicer]:
    """A grpc.aio server bound to ``host:port`` (0 picks one); returns it, its port, health.
    ``stream_backlog_bytes``: the unread answers a stream holds before it stops reading."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.so_reuseport", int(reuse_port)),
        ]
    )
    servicer = InferenceServicer(service, stream_backlog_bytes)
    server.add_generic_rpc_handlers((inference_handlers(servicer),))
    health = HealthServicer()
    await health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    target = f"{_grpc_host(host)}:{port}"
    if tls is None:
        bound = server.add_insecure_port(target)
    else:
        credentials = grpc.ssl_server_credentials(
            [(tls.key.read_bytes(), tls.cert.read_bytes())],
            root_certificates=tls.client_ca.read_bytes() if tls.client_ca else None,
            require_client_auth=tls.client_ca is not None,
        )
        bound = server.add_secure_port(target, credentials)
    if bound == 0:
        raise OSError(f"cannot bind gRPC to {host}:{port}")
    return server, bound, health


def _grpc_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


async def set_health(health: HealthServicer, service: InferenceService) -> None:
    """Publish the server's and each model's readiness on grpc.health.v1."""
    serving = health_pb2.HealthCheckResponse.SERVING
    not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
    ready = service.is_ready()
    await health.set("", serving if ready else not_serving)
    await health.set(SERVICE_NAME, serving if ready else not_serving)
    for name in service.store.names():
        model_ready = service.is_accepting and any(
            v.is_healthy for v in service.store.versions(name)
        )
        await health.set(name, serving if model_ready else not_serving)
