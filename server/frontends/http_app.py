"""The HTTP front end: the V2 REST protocol -> InferenceService.

``POST /v2/models/{name}[/versions/{version}]/infer`` is served by a plain ASGI handler
(``InferEndpoint``): it is the one hot path, and Starlette's request and response objects,
middleware and route matching cost more than the inference bookkeeping itself. Every other
endpoint is a Starlette route behind it. A client that disconnects while its request waits
withdraws the request, as a cancelled gRPC call does (``http_disconnect``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import metadata
from ..errors import InternalError, ModelNotFound, ModelNotReady, PayloadTooLarge, ServeError
from ..service import InferenceService
from .http_codec import decode_request, decompress
from .http_disconnect import DisconnectWatch, Receive
from .http_response import encode_response

log = logging.getLogger(__name__)

HEADER_LENGTH = "inference-header-content-length"
SHUTDOWN_CUT = "server is shutting down: the request was not done within drain_timeout_s"
ANSWERED_BY = "x-ortserve-pid"  # on statistics and metrics: under --workers, whose they are


def json_response(
    doc: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(orjson.dumps(doc), status, headers, media_type="application/json")


INFER_PATH = re.compile(r"/v2/models/([^/]+)(?:/versions/([^/]+))?/infer")
Scope = MutableMapping[str, Any]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
_WANTED = {
    b"authorization": "authorization",
    b"content-length": "content-length",
    b"content-encoding": "content-encoding",
    HEADER_LENGTH.encode(): HEADER_LENGTH,
}


class InferEndpoint:
    """ASGI app: inference requests handled directly, everything else passed to ``app``."""

    def __init__(self, service: InferenceService, max_request_bytes: int, app: Any) -> None:
        self.service = service
        self.limit = max_request_bytes
        self.app = app
        self.waiting = DisconnectWatch()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            match = INFER_PATH.fullmatch(scope["path"])
            if match is not None:
                await self.infer(scope, receive, send, match[1], match[2] or "")
                return
        await self.app(scope, receive, send)

    async def infer(
        self, scope: Scope, receive: Receive, send: Send, name: str, version: str
    ) -> None:
        headers: dict[str, str] = {}
        for key, value in scope["headers"]:
            wanted = _WANTED.get(key)
            if wanted is not None and wanted not in headers:
                headers[wanted] = value.decode("latin-1")
        extra: list[tuple[bytes, bytes]] = []
        service = self.service
        try:
            if service.auth is not None:
                service.authenticate(headers.get("authorization"))
            body = await _read(receive, headers.get("content-length"), self.limit)
            if body is None:
                return  # the client went away: nobody is left to answer
            encoding = headers.get("content-encoding")
            if encoding is not None:
                body = decompress(body, encoding.strip().lower(), self.limit)
            infer_request, choice = decode_request(body, headers.get(HEADER_LENGTH), name, version)
            infer_request.protocol = "http"
            response = await self.waiting.await_answer(receive, service.infer(infer_request))
            if response is None:
                return  # the client left: the request was withdrawn, nobody is left to answer
            content, header_length = encode_response(response, choice)
            status = 200
            if response.parameters:
                route = response.parameters.get("ortserve_route")
                if route is not None:
                    extra.append((b"x-ortserve-route", str(route).encode()))
            if header_length is None:
                media = b"application/json"
            else:
                media = b"application/octet-stream"
                extra.append((b"inference-header-content-length", b"%d" % header_length))
        except Exception as error:
            if not isinstance(error, ServeError):
                log.exception("unhandled error on POST %s", scope["path"])
            status, content, headers = error_answer(error)
            media = b"application/json"
            extra += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        except asyncio.CancelledError:
            if service.is_accepting:
                raise
            # uvicorn ends what is left once the drain time is up (a body still arriving):
            # the task ends here, with the shutdown's answer instead of uvicorn's bare 500
            status, content, _ = error_answer(ModelNotReady(SHUTDOWN_CUT))
            media = b"application/json"
        extra += [(b"content-type", media), (b"content-length", b"%d" % len(content))]
        await send({"type": "http.response.start", "status": status, "headers": extra})
        await send({"type": "http.response.body", "body": content})


async def _read(receive: Receive, declared: str | None, limit: int) -> bytes | None:
    """The request body (None if the client left), refused once it passes ``limit`` bytes."""
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body of {declared} bytes exceeds the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the {limit}-byte limit")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def build_http_app(service: InferenceService, max_request_bytes: int) -> InferEndpoint:
    """The ASGI app serving the V2 REST endpoints for ``service``."""
    answered_by = {ANSWERED_BY: str(os.getpid())}  # each worker counts its own requests

    async def live(request: Request) -> Response:
        return json_response({"live": True})

    async def ready(request: Request) -> Response:
        if service.is_ready():
            return json_response({"ready": True})
        return json_response({"ready": False, "error": "server is not ready"}, 503)

    async def server_metadata(request: Request) -> Response:
        return json_response(metadata.server_metadata())

    def lookup(request: Request) -> Any:
        params = request.path_params
        return service.model(params["name"], params.get("version", ""))

    async def model_metadata(request: Request) -> Response:
        model = lookup(request)
        return json_response(metadata.model_metadata(model, service.store.versions(model.name)))

    async def model_config(request: Request) -> Response:
        return json_response(metadata.model_config(lookup(request)))

    async def model_ready(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            model = lookup(request)
        except (ModelNotFound, ModelNotReady) as error:
            return json_response(
                {"name": name, "ready": False, "error": str(error)}, error.http_status
            )
        if not model.is_healthy:
            return json_response(
                {"name": model.name, "ready": False, "error": model.health.reason}, 503
            )
        return json_response({"name": model.name, "ready": True})

    async def statistics(request: Request) -> Response:
        params = request.path_params
        doc = service.statistics(params.get("name", ""), params.get("version", ""))
        return json_response(doc, headers=answered_by)

    async def status(request: Request) -> Response:
        name = request.path_params.get("name")
        doc = service.status(name)
        return json_response(doc, 200 if doc["ready"] else 503)

    async def prometheus(request: Request) -> Response:
        metrics = service.metrics.render()
        return Response(metrics, headers=answered_by, media_type=CONTENT_TYPE_LATEST)

    model_path = "/v2/models/{name}"
    version_path = "/v2/models/{name}/versions/{version}"
    routes = [
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        Route("/v2", server_metadata, methods=["GET"]),
        Route("/metrics", prometheus, methods=["GET"]),
        Route("/v2/health/status", status, methods=["GET"]),
        Route("/v2/models/{name}/status", status, methods=["GET"]),
        Route("/v2/models/stats", statistics, methods=["GET"]),  # before /v2/models/{name}
    ]
    for base in (model_path, version_path):
        routes += [
            Route(base, model_metadata, methods=["GET"]),
            Route(base + "/ready", model_ready, methods=["GET"]),
            Route(base + "/config", model_config, methods=["GET"]),
            Route(base + "/stats", statistics, methods=["GET"]),
            # POSTs never get here (InferEndpoint takes them); other methods get 405
            Route(base + "/infer", _not_reached, methods=["POST"]),
        ]
    app = Starlette(
        routes=routes,
        exception_handlers={
            ServeError: _serve_error,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
    )
    return InferEndpoint(service, max_request_bytes, app)


async def _not_reached(request: Request) -> Response:
    raise InternalError("inference requests are served by InferEndpoint")


def error_answer(error: Exception) -> tuple[int, bytes, dict[str, str]]:
    """Status, JSON body and headers of the answer to ``error`` (the one mapping for HTTP)."""
    if isinstance(error, ServeError):
        headers = {"Retry-After": "1"} if error.http_status == 429 else {}
        return error.http_status, orjson.dumps({"error": str(error)}), headers
    return 500, orjson.dumps({"error": f"internal error: {type(error).__name__}"}), {}


def _error_response(error: Exception) -> Response:
    status, content, headers = error_answer(error)
    return Response(content, status, headers, media_type="application/json")


async def _serve_error(request: Request, error: Exception) -> Response:
    return _error_response(error)


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    return json_response({"error": error.detail}, error.status_code, error.headers)


async def _internal_error(request: Request, error: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return _error_response(error)
