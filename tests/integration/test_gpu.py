"""The inference tests on CUDA (``device = "cuda"``); they skip where CUDA is absent."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from benchmarks.raw_ort import measure_batch
from server.model_process import ModelRunner
from server.ort_options import resolve_providers
from tests.conftest import start_server
from tests.integration.clients import MODES, as_json, client_for, infer
from tests.integration.test_datatypes import all_inputs, check_outputs
from tests.onnx_models import identity, strings

pytestmark = [
    pytest.mark.integration,
    pytest.mark.gpu,
    pytest.mark.skipif(
        "CUDAExecutionProvider" not in ort.get_available_providers(),
        reason="ONNX Runtime has no CUDAExecutionProvider here",
    ),
]


@pytest.fixture(scope="module")
def cuda_server(model_repo):
    server = start_server(model_repo, "--device", "cuda")
    yield server
    assert server.stop() == 0


@pytest.mark.parametrize("mode", MODES)
def test_examples_on_cuda_match_cpu(cuda_server, model_repo, mode):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 64)).astype(np.float32)
    session = ort.InferenceSession(
        str(model_repo / "mlp" / "2" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    want = session.run(None, {"x": x})[0]
    got = infer(mode, client_for(mode, cuda_server), "mlp", {"x": x}, ["logits"])
    np.testing.assert_allclose(got.as_numpy("logits"), want, rtol=1e-4, atol=1e-5)
    config = as_json(mode, client_for(mode, cuda_server).get_model_config, "mlp")
    assert config["instance_group"][0]["kind"] == "KIND_GPU"


@pytest.mark.parametrize("mode", MODES)
def test_every_datatype_on_cuda(cuda_server, mode):
    inputs = all_inputs((3, 5))
    outputs = ["OUT_" + name[3:] for name in inputs]
    check_outputs(infer(mode, client_for(mode, cuda_server), "identity", inputs, outputs), inputs)


def test_cuda_sessions_bind_numeric_models_and_run_string_models_unbound(tmp_path):
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    numeric = ort.InferenceSession(str(identity(tmp_path, datatypes=["FP32"])), providers=providers)
    runner = ModelRunner(numeric, 0)
    assert runner.cuda and runner.io_binding
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(runner.run({"IN_FP32": x}, ["OUT_FP32"])[0], x)
    texts = ModelRunner(ort.InferenceSession(str(strings(tmp_path)), providers=providers), 0)
    assert texts.cuda and not texts.io_binding
    t = np.array([["a", "b"]], dtype=object)
    s, y, u = texts.run({"x": x[:1, :2], "t": t}, ["s", "y", "u"])
    assert s.tolist() == [["0", "1"]] and u.tolist() == t.tolist()


def test_cuda_sessions_ask_cudnn_for_its_heuristic_choice(model_repo):
    path = model_repo / "mlp" / "2" / "model.onnx"
    session = ort.InferenceSession(str(path), providers=resolve_providers("cuda"))
    options = session.get_provider_options()["CUDAExecutionProvider"]
    assert options["cudnn_conv_algo_search"] == "HEURISTIC"


def test_the_process_executor_runs_models_on_cuda(model_repo):
    # Provider options reach a model process as JSON lists; restored, the model stays on CUDA.
    server = start_server(model_repo, "--device", "cuda", "--executor", "process")
    try:
        config = as_json("grpc", client_for("grpc", server).get_model_config, "mlp")
        assert config["instance_group"][0]["kind"] == "KIND_GPU"
        x = np.ones((2, 64), np.float32)
        got = infer("grpc", client_for("grpc", server), "mlp", {"x": x}, ["logits"])
        assert got.as_numpy("logits").shape[0] == 2
    finally:
        assert server.stop() == 0


def test_raw_ort_times_the_copy_of_a_batch_to_the_gpu(model_repo):
    path = model_repo / "mlp" / "2" / "model.onnx"
    session = ort.InferenceSession(str(path), providers=resolve_providers("cuda"))
    assert measure_batch(session, 8, 0.05, 0.01)["to_device_p50_ms"] > 0
