"""Fallback with fault-injecting models: one that raises, one that sleeps, one that returns
Inf; the route is marked; the circuit breaker opens and recovers."""

from __future__ import annotations

import time

import numpy as np
import orjson
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.conftest import run_to_exit, start_server
from tests.integration.clients import cancel_queued_grpc_call
from tests.integration.raw_http import request, stats, wait_until_idle
from tests.onnx_models import gather, negate, reciprocal, scale, slow

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def fallback_server(tmp_path_factory):
    repo = tmp_path_factory.mktemp("fallback")
    gather(repo, "raises")  # index >= 10 breaks it
    gather(repo, "raises_base", size=100)
    (repo / "raises" / "config.toml").write_text(
        '[fallback]\nchain = ["cache", "baseline"]\nbaseline = "raises_base"\n'
        "breaker_failures = 3\nbreaker_cooldown_s = 1.0\n"
    )
    gather(repo, "hopeless", size=5)
    gather(repo, "hopeless_base", size=5)
    (repo / "hopeless" / "config.toml").write_text(
        '[fallback]\nchain = ["baseline"]\nbaseline = "hopeless_base"\n'
    )
    slow(repo, "sleeps", steps=24)
    slow(repo, "sleeps_base", steps=0)
    (repo / "sleeps" / "config.toml").write_text(
        '[runtime]\nintra_op_threads = 1\n[fallback]\nchain = ["baseline"]\n'
        'baseline = "sleeps_base"\ntimeout_ms = 30\n'
    )
    reciprocal(repo, "gives_inf")
    negate(repo, "gives_inf_base")
    (repo / "gives_inf" / "config.toml").write_text(
        '[health]\ncheck_finite = false\n[fallback]\nchain = ["baseline"]\n'
        'baseline = "gives_inf_base"\n'
    )
    slow(repo, "guarded", steps=24)  # about 0.2 s a run on one thread
    (repo / "guarded" / "config.toml").write_text(
        "[runtime]\nintra_op_threads = 1\n[batching]\nenabled = false\n"
        '[fallback]\nchain = ["baseline"]\nbaseline = "sleeps_base"\n'
    )
    server = start_server(repo)
    yield server
    assert server.stop() == 0


def lookup(server, model: str, index: int) -> tuple[int, str | None, dict]:
    doc = {"inputs": [{"name": "index", "datatype": "INT64", "shape": [1, 1], "data": [index]}]}
    status, headers, body = request(server, "POST", f"/v2/models/{model}/infer", orjson.dumps(doc))
    return status, headers.get("x-ortserve-route"), orjson.loads(body)


def test_a_failing_primary_falls_back_to_the_baseline(fallback_server):
    status, route, body = lookup(fallback_server, "raises", 42)
    assert (status, route) == (200, "baseline")
    assert body["outputs"][0]["data"] == [420.0]
    assert body["model_name"] == "raises" and body["parameters"]["ortserve_route"] == "baseline"


def test_breaker_opens_cache_answers_then_it_recovers(fallback_server):
    assert lookup(fallback_server, "raises", 1)[:2] == (200, "primary")  # now cached
    for _ in range(3):
        assert lookup(fallback_server, "raises", 77)[1] == "baseline"  # 3 failures: open
    status, route, body = lookup(fallback_server, "raises", 1)  # primary not even tried
    assert (status, route) == (200, "cache") and body["outputs"][0]["data"] == [10.0]
    assert lookup(fallback_server, "raises", 2)[1] == "baseline"  # not cached: baseline
    time.sleep(1.2)  # the cool-down: half-open, one trial request
    assert lookup(fallback_server, "raises", 3)[1] == "primary"  # the trial succeeds: closed
    assert lookup(fallback_server, "raises", 4)[1] == "primary"
    _, _, metrics = request(fallback_server, "GET", "/metrics")
    assert b'ortserve_fallbacks_total{model="raises",route="cache"}' in metrics


def test_a_slow_primary_falls_back_over_grpc(fallback_server):
    client = grpcclient.InferenceServerClient(fallback_server.grpc)
    item = grpcclient.InferInput("x", [1, 1], "FP32")
    item.set_data_from_numpy(np.full((1, 1), 5.0, dtype=np.float32))
    result = client.infer("sleeps", [item])
    assert result.as_numpy("y").tolist() == [[5.0]]
    parameters = result.get_response().parameters
    assert parameters["ortserve_route"].string_param == "baseline"


def test_non_finite_outputs_fall_back(fallback_server):
    client = httpclient.InferenceServerClient(fallback_server.http)
    item = httpclient.InferInput("x", [1, 3], "FP32")
    item.set_data_from_numpy(np.array([[0.0, 2.0, 4.0]], dtype=np.float32))
    result = client.infer("gives_inf", [item])
    np.testing.assert_array_equal(result.as_numpy("y"), [[-0.0, -2.0, -4.0]])
    assert result.get_response()["parameters"]["ortserve_route"] == "baseline"
    item.set_data_from_numpy(np.array([[1.0, 2.0, 4.0]], dtype=np.float32))
    result = client.infer("gives_inf", [item])
    assert result.get_response()["parameters"]["ortserve_route"] == "primary"


def test_when_the_whole_chain_fails_it_is_503_naming_the_model_and_cause(fallback_server):
    status, _, body = lookup(fallback_server, "hopeless", 50)
    assert status == 503
    assert '"hopeless"' in body["error"] and "out of data bounds" in body["error"]
    client = grpcclient.InferenceServerClient(fallback_server.grpc)
    item = grpcclient.InferInput("index", [1, 1], "INT64")
    item.set_data_from_numpy(np.array([[50]], dtype=np.int64))
    with pytest.raises(InferenceServerException) as error:
        client.infer("hopeless", [item])
    assert error.value.status() == "StatusCode.UNAVAILABLE"


def test_invalid_input_is_not_a_fallback_case(fallback_server):
    doc = {"inputs": [{"name": "index", "datatype": "FP32", "shape": [1, 1], "data": [1.0]}]}
    status, _, body = request(fallback_server, "POST", "/v2/models/raises/infer", orjson.dumps(doc))
    assert status == 400 and "expected INT64" in body.decode()


def test_a_baseline_with_other_inputs_is_refused_at_start(tmp_path):
    gather(tmp_path, "primary")
    scale(tmp_path, "other", 1, 2.0)
    (tmp_path / "primary" / "config.toml").write_text(
        '[fallback]\nchain = ["baseline"]\nbaseline = "other"\n'
    )
    result = run_to_exit(tmp_path)
    assert result.returncode == 2 and "does not take the same inputs" in result.stderr


def test_a_cancelled_call_to_a_model_with_fallback_leaves_the_queue(fallback_server):
    """The fallback chain runs as its own task; a caller that goes away cancels it, so its
    queued primary request never runs, and neither does the baseline."""
    before = stats(fallback_server, "guarded")
    baseline_before = stats(fallback_server, "sleeps_base")

    cancel_queued_grpc_call(fallback_server, "guarded")
    wait_until_idle(fallback_server, "the cancelled request")
    time.sleep(0.4)  # had it stayed queued, it would have run by now
    assert stats(fallback_server, "guarded")["execution_count"] == before["execution_count"] + 1
    assert (
        stats(fallback_server, "sleeps_base")["execution_count"]
        == (baseline_before["execution_count"])
    )
    _, _, metrics = request(fallback_server, "GET", "/metrics")
    assert b'ortserve_requests_total{model="guarded",outcome="cancelled",protocol="grpc"}' in (
        metrics
    )
    assert b'ortserve_queue_depth{model="guarded",version="1"} 0.0' in metrics
