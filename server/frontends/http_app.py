"""The HTTP front end: Starlette routes of the V2 REST protocol -> InferenceService."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from .. import metadata
from ..errors import ModelNotFound, ModelNotReady, PayloadTooLarge, ServeError
from ..service import InferenceService
from .http_codec import decode_request, decompress, encode_response

log = logging.getLogger(__name__)

HEADER_LENGTH = "inference-header-content-length"
CLIENT_CLOSED = 499  # the client went away before its request was read


def json_response(
    doc: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(orjson.dumps(doc), status, headers, media_type="application/json")


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with PayloadTooLarge as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body of {declared} bytes exceeds the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the {limit}-byte limit")
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def build_http_app(service: InferenceService, max_request_bytes: int) -> Starlette:
    """The Starlette app serving the V2 REST endpoints for ``service``."""

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

    async def infer(request: Request) -> Response:
        service.authenticate(request.headers.get("authorization"))
        params = request.path_params
        try:
            body = await read_body(request, max_request_bytes)
        except ClientDisconnect:
            return Response(status_code=CLIENT_CLOSED)  # nobody is left to read it
        encoding = request.headers.get("content-encoding", "").strip().lower()
        body = decompress(body, encoding, max_request_bytes)
        infer_request, choice = decode_request(
            body, request.headers.get(HEADER_LENGTH), params["name"], params.get("version", "")
        )
        infer_request.protocol = "http"
        response = await service.infer(infer_request)
        content, header_length = encode_response(response, choice)
        headers = {}
        route = response.parameters.get("ortserve_route")
        if route is not None:
            headers["X-Ortserve-Route"] = route
        if header_length is None:
            return Response(content, headers=headers, media_type="application/json")
        headers["Inference-Header-Content-Length"] = str(header_length)
        return Response(content, headers=headers, media_type="application/octet-stream")

    async def statistics(request: Request) -> Response:
        params = request.path_params
        return json_response(service.statistics(params.get("name", ""), params.get("version", "")))

    async def status(request: Request) -> Response:
        name = request.path_params.get("name")
        doc = service.status(name)
        return json_response(doc, 200 if doc["ready"] else 503)

    async def prometheus(request: Request) -> Response:
        return Response(service.metrics.render(), media_type=CONTENT_TYPE_LATEST)

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
            Route(base + "/infer", infer, methods=["POST"]),
        ]
    return Starlette(
        routes=routes,
        exception_handlers={
            ServeError: _serve_error,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
    )


async def _serve_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, ServeError)
    headers = {"Retry-After": "1"} if error.http_status == 429 else None
    return json_response({"error": str(error)}, error.http_status, headers)


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    return json_response({"error": error.detail}, error.status_code, error.headers)


async def _internal_error(request: Request, error: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return json_response({"error": f"internal error: {type(error).__name__}"}, 500)
