"""Plain HTTP requests (stdlib), for bodies no client library would send."""

from __future__ import annotations

import http.client
import time
from typing import Any

import orjson


def request(
    server: Any,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """Send one request to the server's HTTP port; returns status, headers, body."""
    host, port = server.http.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def post_json(server: Any, path: str, doc: Any) -> tuple[int, dict[str, Any]]:
    """POST a JSON document; returns the status and the parsed JSON reply."""
    status, _, body = request(server, "POST", path, orjson.dumps(doc))
    return status, orjson.loads(body)


def in_flight(server: Any) -> float:
    """The server's ``ortserve_requests_in_flight`` gauge, read from ``GET /metrics``."""
    _, _, body = request(server, "GET", "/metrics")
    for line in body.decode().splitlines():
        if line.startswith("ortserve_requests_in_flight "):
            return float(line.split()[1])
    raise AssertionError("no in-flight gauge")


def wait_in_flight(server: Any, count: int) -> None:
    """Wait until ``count`` requests are inside the server (the blocker reached the model)."""
    deadline = time.monotonic() + 10
    while in_flight(server) < count:
        assert time.monotonic() < deadline, "the blocking request never arrived"
        time.sleep(0.005)


def wait_until_idle(server: Any, what: str) -> None:
    """Wait until no request is inside the server; fails naming ``what`` after 10 s."""
    deadline = time.monotonic() + 10
    while in_flight(server) > 0:
        assert time.monotonic() < deadline, f"{what} is still in the server"
        time.sleep(0.01)


def stats(server: Any, model: str) -> dict[str, Any]:
    """One model's V2 statistics entry, over HTTP."""
    status, _, reply = request(server, "GET", f"/v2/models/{model}/stats")
    assert status == 200
    entry: dict[str, Any] = orjson.loads(reply)["model_stats"][0]
    return entry
