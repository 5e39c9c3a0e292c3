"""Dynamic batching through a real server: correctness under concurrency, queue limits,
deadlines, cancellation, instance parallelism, failure isolation, statistics and metrics."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import orjson
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpc_aio
import tritonclient.http as httpclient
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from tests.conftest import start_server
from tests.integration.clients import (
    MODES,
    cancel_queued_grpc_call,
    client_for,
    infer,
    slow_input,
)
from tests.integration.raw_http import (
    post_json,
    request,
    stats,
    wait_in_flight,
    wait_until_idle,
)
from tests.onnx_models import add_sub, gather, identity, slow

pytestmark = pytest.mark.integration

SLOW_STEPS = 24  # about 0.2 s per run on one thread
SLOW_RUN_S = 0.2
SLOW_DOC = {"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [1.0]}]}


def write_config(repo: Path, name: str, text: str) -> None:
    (repo / name / "config.toml").write_text(text)


@pytest.fixture(scope="module", params=["thread", "process"])
def batching_server(tmp_path_factory, request):
    repo = tmp_path_factory.mktemp("batching")
    add_sub(repo, "add_sub_batched")
    write_config(
        repo, "add_sub_batched", "[batching]\nmax_batch_size = 32\nmax_queue_delay_us = 3000\n"
    )
    identity(repo, "identity_batched", ["FP32", "INT64"])
    write_config(repo, "identity_batched", "[batching]\nmax_queue_delay_us = 3000\n")
    one_thread = "[runtime]\nintra_op_threads = 1\n"
    for name, batching, instances in (
        ("slow", "enabled = false\nmax_queue_size = 2\n", 1),
        ("slow_two", "enabled = false\nmax_queue_size = 1\n", 2),
        ("slow_one", "enabled = false\nmax_queue_size = 1\n", 1),
    ):
        slow(repo, name, steps=SLOW_STEPS)
        write_config(repo, name, f"[batching]\n{batching}{one_thread}instances = {instances}\n")
    slow(repo, "slow_timeout", steps=SLOW_STEPS)
    write_config(
        repo, "slow_timeout", f"[batching]\nenabled = false\ntimeout_ms = 50\n{one_thread}"
    )
    gather(repo)
    write_config(
        repo,
        "gather",
        "[batching]\nmax_batch_size = 8\nmax_queue_delay_us = 300000\n"
        "preferred_batch_sizes = [4]\n",
    )
    server = start_server(repo, "--executor", request.param)
    yield server
    assert server.stop() == 0


def test_mixed_rows_and_protocols_each_answer_is_its_callers(batching_server):
    before = stats(batching_server, "add_sub_batched")
    modes = list(MODES)

    def caller(index: int) -> int:
        mode = modes[index % len(modes)]
        client = client_for(mode, batching_server)
        for k in range(10):
            rows = 1 + (index * 7 + k) % 5
            a = np.full((rows, 16), index * 1000 + k, dtype=np.float32)
            b = np.arange(rows * 16, dtype=np.float32).reshape(rows, 16) + index
            result = infer(mode, client, "add_sub_batched", {"INPUT0": a, "INPUT1": b})
            np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + b)
            np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), a - b)
        client.close()
        return 10

    with ThreadPoolExecutor(24) as pool:
        assert sum(pool.map(caller, range(24))) == 240
    after = stats(batching_server, "add_sub_batched")
    requests = (
        after["inference_stats"]["success"]["count"] - before["inference_stats"]["success"]["count"]
    )
    runs = after["execution_count"] - before["execution_count"]
    assert requests == 240
    assert runs < requests, "no two requests ever shared a model run"
    assert any(int(b["batch_size"]) > 5 for b in after["batch_stats"])


def test_different_non_batch_dims_never_share_a_run(batching_server):
    def caller(index: int) -> None:
        width = 3 + index % 3
        x = np.full((1 + index % 2, width), index, dtype=np.float32)
        n = np.full((1 + index % 2, width), -index, dtype=np.int64)
        result = infer(
            "grpc",
            client_for("grpc", batching_server),
            "identity_batched",
            {"IN_FP32": x, "IN_INT64": n},
        )
        np.testing.assert_array_equal(result.as_numpy("OUT_FP32"), x)
        np.testing.assert_array_equal(result.as_numpy("OUT_INT64"), n)

    with ThreadPoolExecutor(18) as pool:
        list(pool.map(caller, range(54)))


def concurrent_outcomes(server, model: str, count: int) -> list[str]:
    """Send ``count`` requests at once over HTTP; the status of each."""

    def one(_: int) -> str:
        status, headers, _body = request(
            server,
            "POST",
            f"/v2/models/{model}/infer",
            b'{"inputs":[{"name":"x","datatype":"FP32","shape":[1,1],"data":[1.0]}]}',
        )
        if status == 429:
            assert headers.get("retry-after") == "1"
        return str(status)

    with ThreadPoolExecutor(count) as pool:
        return sorted(pool.map(one, range(count)))


def test_full_queue_rejects_at_once_with_429(batching_server):
    started = time.monotonic()
    outcomes = concurrent_outcomes(batching_server, "slow", 8)
    assert outcomes.count("200") >= 2 and outcomes.count("429") >= 1, outcomes
    assert set(outcomes) <= {"200", "429"}
    assert time.monotonic() - started < 30  # promptly: nobody waited forever


def test_full_queue_is_resource_exhausted_over_grpc(batching_server):
    async def main() -> list[str]:
        client = grpc_aio.InferenceServerClient(batching_server.grpc)
        try:
            calls = [client.infer("slow", slow_input(grpc_aio)) for _ in range(8)]
            results = await asyncio.gather(*calls, return_exceptions=True)
        finally:
            await client.close()
        return [r.status() if isinstance(r, InferenceServerException) else "OK" for r in results]

    outcomes = asyncio.run(main())
    assert "StatusCode.RESOURCE_EXHAUSTED" in outcomes and "OK" in outcomes, outcomes


def test_instances_run_in_parallel(batching_server):
    """With one slot queued, 3 requests fit two instances (2 run, 1 waits), not one (1 run,
    1 waits, 1 refused)."""
    assert concurrent_outcomes(batching_server, "slow_two", 3) == ["200"] * 3
    assert concurrent_outcomes(batching_server, "slow_one", 3).count("429") >= 1


def test_deadline_in_queue_is_504_and_never_runs(batching_server):
    before = stats(batching_server, "slow")

    def blocker() -> None:
        grpcclient.InferenceServerClient(batching_server.grpc).infer("slow", slow_input(grpcclient))

    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(blocker)
        wait_in_flight(batching_server, 1)  # the blocker reached the model first
        doc = {
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [2.0]}],
            "parameters": {"timeout": 20_000},
        }  # 20 ms, in microseconds
        status, reply = post_json(batching_server, "/v2/models/slow/infer", doc)
        running.result()
    assert status == 504 and "deadline" in reply["error"]
    after = stats(batching_server, "slow")
    assert (
        after["inference_stats"]["fail"]["count"] == before["inference_stats"]["fail"]["count"] + 1
    )
    assert after["execution_count"] == before["execution_count"] + 1  # only the blocker ran


def test_config_timeout_and_grpc_deadline(batching_server):
    client = grpcclient.InferenceServerClient(batching_server.grpc)
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(client.infer, "slow_timeout", slow_input(grpcclient))
        wait_in_flight(batching_server, 1)
        with pytest.raises(InferenceServerException) as error:
            client.infer("slow_timeout", slow_input(grpcclient))
        assert error.value.status() == "StatusCode.DEADLINE_EXCEEDED"
        assert "deadline" in error.value.message()
        running.result()
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(client.infer, "slow", slow_input(grpcclient))
        wait_in_flight(batching_server, 1)
        with pytest.raises(InferenceServerException) as error:
            client.infer("slow", slow_input(grpcclient), client_timeout=0.05)
        assert error.value.status() == "StatusCode.DEADLINE_EXCEEDED"
        running.result()


def test_cancelled_grpc_call_leaves_the_queue(batching_server):
    before = stats(batching_server, "slow")
    cancel_queued_grpc_call(batching_server, "slow")
    time.sleep(0.5)
    after = stats(batching_server, "slow")
    assert after["execution_count"] == before["execution_count"] + 1
    _, _, body = request(batching_server, "GET", "/metrics")
    assert b'ortserve_queue_depth{model="slow",version="1"} 0.0' in body
    assert b"ortserve_requests_in_flight 0.0" in body


def test_cancelled_stream_takes_its_queued_requests_with_it(batching_server):
    """A stream cancelled while one of its requests waits in the queue: that request never
    runs (the blocker, a unary call, still does)."""
    before = stats(batching_server, "slow")
    request_message = service_pb2.ModelInferRequest(model_name="slow", id="queued")
    request_message.inputs.add(name="x", datatype="FP32", shape=[1, 1])
    request_message.raw_input_contents.append(np.ones((1, 1), np.float32).tobytes())
    with ThreadPoolExecutor(1) as pool:
        blocker = pool.submit(post_json, batching_server, "/v2/models/slow/infer", SLOW_DOC)
        wait_in_flight(batching_server, 1)
        with grpc.insecure_channel(batching_server.grpc) as channel:
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
            stop = threading.Event()

            def messages():
                yield request_message
                stop.wait(30)  # keep the stream open until it is cancelled

            call = stub.ModelStreamInfer(messages())
            wait_in_flight(batching_server, 2)
            call.cancel()
            stop.set()
        assert blocker.result()[0] == 200
    wait_until_idle(batching_server, "the cancelled stream's request")
    time.sleep(2 * SLOW_RUN_S)  # had it stayed queued, it would have run by now
    after = stats(batching_server, "slow")
    assert after["execution_count"] == before["execution_count"] + 1  # only the blocker ran
    _, _, metrics = request(batching_server, "GET", "/metrics")
    assert b'outcome="cancelled",protocol="grpc-stream"' in metrics
    assert b'ortserve_queue_depth{model="slow",version="1"} 0.0' in metrics


def test_http_client_that_disconnects_leaves_the_queue(batching_server):
    """A request whose client hangs up while it is queued never runs and is never answered."""
    before = stats(batching_server, "slow")
    host, port = batching_server.http.rsplit(":", 1)
    body = orjson.dumps(SLOW_DOC)
    head = (
        f"POST /v2/models/slow/infer HTTP/1.1\r\nHost: {host}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    with ThreadPoolExecutor(1) as pool:
        blocker = pool.submit(post_json, batching_server, "/v2/models/slow/infer", SLOW_DOC)
        wait_in_flight(batching_server, 1)
        with socket.create_connection((host, int(port))) as hung_up:
            hung_up.sendall(head.encode() + body)
            wait_in_flight(batching_server, 2)
        assert blocker.result()[0] == 200
    wait_until_idle(batching_server, "the abandoned request")
    time.sleep(2 * SLOW_RUN_S)  # had it stayed queued, it would have run by now
    after = stats(batching_server, "slow")
    assert after["execution_count"] == before["execution_count"] + 1  # only the blocker ran
    assert after["inference_stats"]["fail"]["count"] == before["inference_stats"]["fail"]["count"]
    _, _, metrics = request(batching_server, "GET", "/metrics")
    assert b'outcome="cancelled",protocol="http"' in metrics
    assert b'ortserve_queue_depth{model="slow",version="1"} 0.0' in metrics


def test_a_request_that_breaks_the_model_fails_alone(batching_server):
    """Four requests share one batch (preferred size 4); index 30 breaks Gather."""
    indices = [1, 30, 3, 4]

    def one(index: int):
        item = httpclient.InferInput("index", [1, 1], "INT64")
        item.set_data_from_numpy(np.array([[index]], dtype=np.int64))
        try:
            return (
                httpclient.InferenceServerClient(batching_server.http)
                .infer("gather", [item])
                .as_numpy("y")
                .item()
            )
        except InferenceServerException as error:
            return error.status()

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(one, indices))
    assert outcomes == [10.0, "500", 30.0, 40.0]
    sizes = {int(b["batch_size"]) for b in stats(batching_server, "gather")["batch_stats"]}
    assert 4 in sizes, sizes  # they did share a batch


def test_statistics_over_both_protocols(batching_server):
    infer(
        "grpc",
        client_for("grpc", batching_server),
        "add_sub_batched",
        {"INPUT0": np.ones((2, 16), np.float32), "INPUT1": np.ones((2, 16), np.float32)},
    )
    http_stats = httpclient.InferenceServerClient(batching_server.http).get_inference_statistics(
        "add_sub_batched"
    )
    grpc_stats = grpcclient.InferenceServerClient(batching_server.grpc).get_inference_statistics(
        "add_sub_batched", as_json=True
    )
    for doc in (http_stats, grpc_stats):
        entry = doc["model_stats"][0]
        assert entry["name"] == "add_sub_batched" and entry["version"] == "1"
        assert int(entry["inference_count"]) >= 2
        assert int(entry["inference_stats"]["queue"]["count"]) >= 1
        assert int(entry["inference_stats"]["compute_infer"]["ns"]) > 0
    status, headers, _ = request(batching_server, "GET", "/v2/models/add_sub_batched/stats")
    assert status == 200 and headers["x-ortserve-pid"] == str(batching_server.process.pid)
    everything = httpclient.InferenceServerClient(batching_server.http).get_inference_statistics()
    assert {s["name"] for s in everything["model_stats"]} >= {"add_sub_batched", "slow"}
    with grpc.insecure_channel(batching_server.grpc) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as error:
            stub.ModelStatistics(service_pb2.ModelStatisticsRequest(name="nope"))
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


def test_prometheus_metrics(batching_server):
    status, headers, body = request(batching_server, "GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert headers["x-ortserve-pid"] == str(batching_server.process.pid)  # whose they are
    text = body.decode()
    for name in (
        "ortserve_batch_size_bucket",
        "ortserve_queue_duration_seconds_bucket",
        "ortserve_requests_total",
        "ortserve_request_duration_seconds_bucket",
        "ortserve_compute_duration_seconds_bucket",
        "ortserve_model_ready",
    ):
        assert name in text
    assert 'ortserve_batch_size_count{model="add_sub_batched",version="1"}' in text


def test_model_config_shows_dynamic_batching(batching_server):
    for module, url in ((httpclient, batching_server.http), (grpcclient, batching_server.grpc)):
        client = module.InferenceServerClient(url)
        kwargs = {"as_json": True} if module is grpcclient else {}
        config = client.get_model_config("gather", **kwargs)
        config = config.get("config", config)
        batching = config["dynamic_batching"]
        assert [int(n) for n in batching["preferred_batch_size"]] == [4]
        assert int(batching["max_queue_delay_microseconds"]) == 300000
        off = client.get_model_config("slow", **kwargs)
        off = off.get("config", off)
        assert "dynamic_batching" not in off
        parameters = {k: v["string_value"] for k, v in off["parameters"].items()}
        assert parameters == {  # the session options it runs with (its config's one thread)
            "intra_op_thread_count": "1",
            "inter_op_thread_count": "0",
            "ortserve_allow_spinning": "false",
            "ortserve_graph_optimization": "all",
        }
