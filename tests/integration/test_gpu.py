"""The inference tests on CUDA (``device = "cuda"``); they skip where CUDA is absent."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from tests.conftest import start_server
from tests.integration.clients import MODES, as_json, client_for, infer
from tests.integration.test_datatypes import all_inputs, check_outputs

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
