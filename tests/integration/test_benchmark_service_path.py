"""benchmarks.service_path: the request path without a transport answers what the model
computes, over both protocols, and reports its cost per request and rows per run."""

from __future__ import annotations

import asyncio
import statistics
from pathlib import Path

import numpy as np
import onnxruntime as ort
import orjson
import pytest

from benchmarks.models import build_models
from benchmarks.payloads import grpc_request
from benchmarks.service_path import grpc_handler, http_handler, load_service, measure
from server._proto import grpc_service_pb2 as pb


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("service_path")
    build_models(root, ("small_mlp",))
    return root


def _expected(repository: Path, rows: int) -> np.ndarray:
    request = pb.ModelInferRequest.FromString(grpc_request("small_mlp", rows))
    x = np.frombuffer(request.raw_input_contents[0], np.float32).reshape(rows, 256)
    session = ort.InferenceSession(
        str(repository / "small_mlp" / "1" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    (y,) = session.run(None, {request.inputs[0].name: x})
    return np.asarray(y)


def test_its_answers_are_the_models_over_grpc_and_http_json(repository: Path) -> None:
    expected = _expected(repository, 3)

    async def answers() -> tuple[bytes, bytes]:
        service = await load_service(repository)
        try:
            grpc = await grpc_handler(service, "small_mlp", 3)()
            http = await http_handler(service, "small_mlp", 3, binary=False)()
        finally:
            for version in service.store.all_versions():
                version.runtime.close()
        return grpc, http

    grpc, http = asyncio.run(answers())
    response = pb.ModelInferResponse.FromString(grpc)
    assert list(response.outputs[0].shape) == [3, 16]
    got = np.frombuffer(response.raw_output_contents[0], np.float32).reshape(3, 16)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    (output,) = orjson.loads(http)["outputs"]
    assert output["shape"] == [3, 16]
    np.testing.assert_allclose(
        np.asarray(output["data"], np.float32).reshape(3, 16), expected, rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("protocol", ["grpc", "http-binary", "http-json"])
def test_it_reports_cost_per_request_and_rows_per_run(repository: Path, protocol: str) -> None:
    result = asyncio.run(measure(repository, "small_mlp", protocol, 2, 4, 40, 2))
    assert result["requests_per_repeat"] == 40 and len(result["repeats"]) == 2
    for round_ in result["repeats"]:
        assert round_["cpu_us_per_req"] > 0 and round_["wall_us_per_req"] > 0
        assert 2 <= round_["rows_per_run"] <= 8  # 2-row requests, 4 callers in step
    assert result["cpu_us_per_req"] == statistics.median(
        r["cpu_us_per_req"] for r in result["repeats"]
    )
