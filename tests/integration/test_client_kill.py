"""Clients killed mid-request (gRPC and HTTP, large payloads) leave nothing behind."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.conftest import start_server
from tests.integration.raw_http import in_flight, request
from tests.onnx_models import identity, slow

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# A client that sends a large request and is killed before its answer comes.
CLIENT = r"""
import socket, sys, numpy as np
import tritonclient.grpc as g
kind, http, grpc_addr = sys.argv[1:4]
if kind == "grpc":
    c = g.InferenceServerClient(grpc_addr)
    big = g.InferInput("IN_FP32", [1, 2_000_000], "FP32")
    big.set_data_from_numpy(np.ones((1, 2_000_000), np.float32))
    slow = g.InferInput("x", [1, 1], "FP32")
    slow.set_data_from_numpy(np.ones((1, 1), np.float32))
    c.async_infer("slow", [slow], callback=lambda *a: None)
    c.async_infer("identity", [big], callback=lambda *a: None)
else:
    host, port = http.rsplit(":", 1)
    s = socket.create_connection((host, int(port)))
    s.sendall(b"POST /v2/models/identity/infer HTTP/1.1\r\nHost: x\r\n"
              b"Content-Length: 16000000\r\n\r\n" + b"{" + b" " * 4_000_000)
print("sent", flush=True)
import time; time.sleep(60)
"""


def test_killed_clients_leave_nothing_behind(tmp_path):
    slow(tmp_path, "slow", steps=24)
    (tmp_path / "slow" / "config.toml").write_text(
        "[batching]\nenabled = false\n[runtime]\nintra_op_threads = 1\n"
    )
    identity(tmp_path, "identity", ["FP32"])
    server = start_server(tmp_path)
    try:
        sizes = []
        for round_ in range(12):
            kind = "grpc" if round_ % 2 else "http"
            client = subprocess.Popen(
                [sys.executable, "-c", CLIENT, kind, server.http, server.grpc],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert client.stdout is not None and client.stdout.readline().strip() == "sent"
            time.sleep(0.05)
            client.kill()
            client.wait()
            client.stdout.close()
            sizes.append(server.rss_kb())
        deadline = time.monotonic() + 30
        while in_flight(server) != 0:
            assert time.monotonic() < deadline, "requests of killed clients still in flight"
            time.sleep(0.1)
        assert request(server, "GET", "/v2/health/ready")[0] == 200
        assert sizes[-1] - sizes[3] < 100_000, sizes  # KiB: flat once warm, not 8 MB per kill
    finally:
        assert server.stop() == 0
    assert "Traceback" not in "".join(server.output), "".join(server.output)[-3000:]
