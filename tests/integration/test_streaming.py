"""ModelStreamInfer: tritonclient's start_stream / async_stream_infer against a real server."""

from __future__ import annotations

import queue
import time

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.grpc import service_pb2, service_pb2_grpc

from tests.conftest import start_server
from tests.onnx_models import tile

pytestmark = pytest.mark.integration


def add_sub_inputs(value: float, rows: int = 1) -> list:
    inputs = []
    for name in ("INPUT0", "INPUT1"):
        item = grpcclient.InferInput(name, [rows, 16], "FP32")
        item.set_data_from_numpy(np.full((rows, 16), value, dtype=np.float32))
        inputs.append(item)
    return inputs


def test_stream_answers_every_request_with_its_id(server):
    answers: queue.Queue = queue.Queue()
    client = grpcclient.InferenceServerClient(server.grpc)
    client.start_stream(callback=lambda result, error: answers.put((result, error)))
    try:
        for k in range(60):
            client.async_stream_infer(
                "add_sub", add_sub_inputs(k, rows=1 + k % 3), request_id=f"r{k}"
            )
        seen = {}
        for _ in range(60):
            result, error = answers.get(timeout=30)
            assert error is None, error
            request_id = result.get_response().id
            seen[request_id] = result.as_numpy("OUTPUT0")
        assert set(seen) == {f"r{k}" for k in range(60)}
        for k in range(60):
            np.testing.assert_array_equal(seen[f"r{k}"], np.full((1 + k % 3, 16), 2.0 * k))
    finally:
        client.stop_stream()
        client.close()


def test_errors_travel_in_band_and_the_stream_stays_open(server):
    answers: queue.Queue = queue.Queue()
    client = grpcclient.InferenceServerClient(server.grpc)
    client.start_stream(callback=lambda result, error: answers.put((result, error)))
    try:
        bad = grpcclient.InferInput("INPUT0", [1, 16], "FP32")
        bad.set_data_from_numpy(np.ones((1, 16), dtype=np.float32))
        client.async_stream_infer("add_sub", [bad], request_id="bad")  # INPUT1 missing
        client.async_stream_infer("nope", add_sub_inputs(1.0), request_id="unknown")
        client.async_stream_infer("add_sub", add_sub_inputs(1.0), request_id="good")
        outcomes = {}
        for _ in range(3):
            result, error = answers.get(timeout=30)
            if error is not None:
                outcomes[error.message()] = "error"
            else:
                outcomes[result.get_response().id] = "ok"
        assert outcomes.pop("good") == "ok"
        messages = " | ".join(outcomes)
        assert "INPUT1" in messages and '"nope"' in messages
    finally:
        client.stop_stream()
        client.close()


def test_raw_stream_error_carries_the_request_id(server):
    """Below tritonclient: a malformed message and a bad request, each answered in-band."""
    good = service_pb2.ModelInferRequest(model_name="add_sub", id="fine")
    for name in ("INPUT0", "INPUT1"):
        good.inputs.add(name=name, datatype="FP32", shape=[1, 16])
        good.raw_input_contents.append(np.ones((1, 16), np.float32).tobytes())
    bad = service_pb2.ModelInferRequest(model_name="add_sub", id="broken")
    bad.inputs.add(name="INPUT0", datatype="FP32", shape=[1, 16])
    with grpc.insecure_channel(server.grpc) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        answers = list(stub.ModelStreamInfer(iter([bad, good])))
    by_id = {a.infer_response.id: a for a in answers}
    assert set(by_id) == {"fine", "broken"}
    assert by_id["fine"].error_message == ""
    assert "INPUT0" in by_id["broken"].error_message
    with grpc.insecure_channel(server.grpc) as channel:
        call = channel.stream_stream("/inference.GRPCInferenceService/ModelStreamInfer")
        answers = list(call(iter([b"\xff\xff garbage", good.SerializeToString()])))
    errors = [service_pb2.ModelStreamInferResponse.FromString(a).error_message for a in answers]
    assert sorted(bool(e) for e in errors) == [False, True]
    assert any("malformed" in e for e in errors)


def test_a_stream_whose_client_does_not_read_stops_taking_requests(tmp_path):
    """Answers a client leaves unread are held up to the backlog limit; beyond it the stream
    reads no more requests (HTTP/2 flow control then holds the client), so a client that
    sends without reading cannot fill the server's memory. Nothing is lost: once it reads,
    every answer arrives, matched to its request."""
    tile(tmp_path, "tile", repeats=64)  # 1 KiB in, 64 KiB out
    limit = 1 << 20
    running = start_server(tmp_path, env={"ORTSERVE_STREAM_BACKLOG_BYTES": str(limit)})
    total, sent = 2000, []

    def requests():
        for k in range(total):
            request = service_pb2.ModelInferRequest(model_name="tile", id=f"r{k}")
            request.inputs.add(name="x", datatype="FP32", shape=[1, 256])
            request.raw_input_contents.append(np.full((1, 256), k, np.float32).tobytes())
            sent.append(k)
            yield request

    stats = httpclient.InferenceServerClient(running.http)

    def executed() -> int:
        entry = stats.get_inference_statistics("tile")["model_stats"][0]
        return int(entry["inference_count"])

    try:
        with grpc.insecure_channel(running.grpc) as channel:
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
            answers = stub.ModelStreamInfer(requests())
            # not reading: wait until the server has stopped running requests
            before, deadline = -1, time.monotonic() + 30
            while time.monotonic() < deadline:
                time.sleep(0.5)
                now = executed()
                if now == before:
                    break
                before = now
            assert 0 < before < total // 2, (before, len(sent))  # all of them: 125 MiB unread
            seen = {}
            for answer in answers:
                assert answer.error_message == ""
                response = answer.infer_response
                seen[response.id] = np.frombuffer(response.raw_output_contents[0], np.float32)
                if len(seen) == total:
                    break
        assert set(seen) == {f"r{k}" for k in range(total)}
        for k in (0, total // 2, total - 1):
            np.testing.assert_array_equal(seen[f"r{k}"], np.full(256 * 64, k, np.float32))
        assert executed() == total
    finally:
        assert running.stop() == 0, "".join(running.output)
