"""Model-aware health: ready means loaded and checked (finite outputs, golden examples),
re-checked while serving, with the reason on a status endpoint."""

from __future__ import annotations

import time

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.utils import InferenceServerException

from tests.conftest import start_server
from tests.integration.raw_http import request
from tests.onnx_models import gather, reciprocal, scale

pytestmark = pytest.mark.integration


def grpc_health(server, service: str) -> int:
    with grpc.insecure_channel(server.grpc) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return stub.Check(health_pb2.HealthCheckRequest(service=service)).status


def status(server, path: str = "/v2/health/status") -> tuple[int, dict]:
    import orjson

    code, _, body = request(server, "GET", path)
    return code, orjson.loads(body)


def wait_until(condition, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def health_server(tmp_path_factory):
    repo = tmp_path_factory.mktemp("health")
    scale(repo, "golden_ok", 1, 2.0)
    scale(repo, "golden_bad", 1, 2.0)
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    for name, factor in (("golden_ok", 2.0), ("golden_bad", 3.0)):
        folder = repo / name / "1"
        np.savez(folder / "golden_in.npz", x=x)
        np.savez(folder / "golden_out.npz", y=x * factor)
        (repo / name / "config.toml").write_text(
            '[health]\ninputs = "golden_in.npz"\noutputs = "golden_out.npz"\n'
        )
    reciprocal(repo, "gives_inf")  # zeros in, Inf out
    gather(repo, "flaky")
    (repo / "flaky" / "config.toml").write_text(
        "[health]\nfailures_to_unready = 3\nrecheck_interval_s = 2\n[batching]\nenabled = false\n"
    )
    server = start_server(repo, wait_for="serving")
    yield server
    assert server.stop() == 0


def test_server_is_serving_but_not_ready(health_server):
    assert "ortserve ready" not in "".join(health_server.output)
    assert not httpclient.InferenceServerClient(health_server.http).is_server_ready()
    assert not grpcclient.InferenceServerClient(health_server.grpc).is_server_ready()
    code, doc = status(health_server)
    assert code == 503 and not doc["ready"]
    by_name = {m["name"]: m for m in doc["models"]}
    assert by_name["golden_ok"]["ready"]
    assert not by_name["golden_bad"]["ready"] and by_name["golden_bad"]["loaded"]
    assert "golden example" in by_name["golden_bad"]["reason"]
    assert "NaN or Inf" in by_name["gives_inf"]["reason"]


def test_model_readiness_on_every_interface(health_server):
    for module, url in ((httpclient, health_server.http), (grpcclient, health_server.grpc)):
        client = module.InferenceServerClient(url)
        assert client.is_model_ready("golden_ok")
        assert not client.is_model_ready("golden_bad")
        assert not client.is_model_ready("gives_inf")
    serving = health_pb2.HealthCheckResponse.SERVING
    assert grpc_health(health_server, "golden_ok") == serving
    assert grpc_health(health_server, "golden_bad") == health_pb2.HealthCheckResponse.NOT_SERVING
    code, _, body = request(health_server, "GET", "/v2/models/golden_bad/ready")
    assert code == 503 and b"golden example" in body
    code, doc = status(health_server, "/v2/models/golden_ok/status")
    assert code == 200 and doc["ready"]


def test_a_not_ready_model_still_answers(health_server):
    client = httpclient.InferenceServerClient(health_server.http)
    item = httpclient.InferInput("x", [1, 4], "FP32")
    item.set_data_from_numpy(np.ones((1, 4), dtype=np.float32))
    assert client.infer("golden_bad", [item]).as_numpy("y").tolist() == [[2.0] * 4]


def test_failing_runs_make_a_model_not_ready_until_it_passes_again(health_server):
    client = grpcclient.InferenceServerClient(health_server.grpc)
    assert client.is_model_ready("flaky")

    def send(index: int) -> None:
        item = grpcclient.InferInput("index", [1, 1], "INT64")
        item.set_data_from_numpy(np.array([[index]], dtype=np.int64))
        client.infer("flaky", [item])

    for _ in range(3):
        with pytest.raises(InferenceServerException):
            send(99)  # out of the table: the model run fails
    wait_until(lambda: not client.is_model_ready("flaky"))
    _, doc = status(health_server, "/v2/models/flaky/status")
    assert "3 failed runs in a row" in doc["models"][0]["reason"]
    not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
    wait_until(lambda: grpc_health(health_server, "flaky") == not_serving, timeout=1.5)
    # the re-check (zeros: a valid index) passes within its interval
    wait_until(lambda: client.is_model_ready("flaky"))
    wait_until(
        lambda: grpc_health(health_server, "flaky") == health_pb2.HealthCheckResponse.SERVING
    )
    send(1)
