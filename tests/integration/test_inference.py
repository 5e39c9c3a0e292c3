"""Both protocols, every example model: outputs equal in-process ONNX Runtime's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from tests.integration.clients import MODES, as_json, client_for, infer

pytestmark = pytest.mark.integration
ORT_TO_V2 = {"tensor(float)": "FP32", "tensor(int64)": "INT64"}


def reference(model_repo: Path, name: str, version: int, feeds: dict[str, np.ndarray]) -> dict:
    session = ort.InferenceSession(str(model_repo / name / str(version) / "model.onnx"))
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


EXAMPLES = {
    "breast_cancer": (1, {"input": (30,)}),
    "mlp": (2, {"x": (64,)}),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("model", EXAMPLES)
@pytest.mark.parametrize("rows", [1, 7])
def test_outputs_equal_in_process_ort(server, model_repo, mode, model, rows):
    version, shapes = EXAMPLES[model]
    rng = np.random.default_rng(rows)
    feeds = {
        name: rng.normal(size=(rows, *shape)).astype(np.float32) for name, shape in shapes.items()
    }
    expected = reference(model_repo, model, version, feeds)
    result = infer(mode, client_for(mode, server), model, feeds, outputs=list(expected))
    response = result.get_response()
    version_seen = (
        response["model_version"] if isinstance(response, dict) else response.model_version
    )
    assert version_seen == str(version)
    for name, want in expected.items():
        got = result.as_numpy(name)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("model", EXAMPLES)
def test_metadata_equals_onnx_signature(server, model_repo, mode, model):
    version, _ = EXAMPLES[model]
    session = ort.InferenceSession(str(model_repo / model / str(version) / "model.onnx"))
    meta = as_json(mode, client_for(mode, server).get_model_metadata, model)
    assert meta["name"] == model
    assert meta["platform"] == "onnxruntime_onnx"

    def shape(dims):  # what V2 shows for an ONNX shape: symbolic dims are -1
        return [d if isinstance(d, int) else -1 for d in dims]

    for side, args in (("inputs", session.get_inputs()), ("outputs", session.get_outputs())):
        got = [(t["name"], t["datatype"], [int(d) for d in t["shape"]]) for t in meta[side]]
        want = [(a.name, ORT_TO_V2[a.type], shape(a.shape)) for a in args]
        assert got == want


@pytest.mark.parametrize("mode", MODES)
def test_config_dims_match_metadata(server, mode):
    client = client_for(mode, server)
    for model in ("breast_cancer", "mlp", "fixed"):
        meta = as_json(mode, client.get_model_metadata, model)
        config = as_json(mode, client.get_model_config, model)
        batch = int(config.get("max_batch_size", 0))
        for side, key in (("inputs", "input"), ("outputs", "output")):
            for tensor, entry in zip(meta[side], config[key], strict=True):
                dims = [int(d) for d in entry.get("dims", [])]
                assert [int(d) for d in tensor["shape"]] == ([-1, *dims] if batch else dims)


@pytest.mark.parametrize("mode", MODES)
def test_version_selection(server, mode):
    client = client_for(mode, server)
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    latest = infer(mode, client, "scale", {"x": x})
    np.testing.assert_array_equal(latest.as_numpy("y"), x * 2)
    first = infer(mode, client, "scale", {"x": x}, version="1")
    np.testing.assert_array_equal(first.as_numpy("y"), x)
    meta = as_json(mode, client.get_model_metadata, "scale")
    assert meta["versions"] == ["1", "2"]
    assert client.is_model_ready("scale", "1") and client.is_model_ready("scale", "2")
    assert not client.is_model_ready("scale", "3")


@pytest.mark.parametrize("mode", MODES)
def test_requested_output_subset_in_request_order(server, mode):
    client = client_for(mode, server)
    a = np.ones((2, 16), dtype=np.float32)
    b = np.full((2, 16), 3, dtype=np.float32)
    result = infer(mode, client, "add_sub", {"INPUT0": a, "INPUT1": b}, outputs=["OUTPUT1"])
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), a - b)
    assert result.as_numpy("OUTPUT0") is None
    both = infer(mode, client, "add_sub", {"INPUT0": a, "INPUT1": b}, ["OUTPUT1", "OUTPUT0"])
    response = both.get_response(as_json=True) if mode == "grpc" else both.get_response()
    assert [o["name"] for o in response["outputs"]] == ["OUTPUT1", "OUTPUT0"]


@pytest.mark.parametrize("mode", MODES)
def test_fixed_shape_model_without_batching(server, mode):
    client = client_for(mode, server)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(infer(mode, client, "fixed", {"x": x}).as_numpy("y"), x + 1)
    config = as_json(mode, client.get_model_config, "fixed")
    assert int(config.get("max_batch_size", 0)) == 0


@pytest.mark.parametrize("mode", MODES)
def test_health_and_server_metadata(server, mode):
    client = client_for(mode, server)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("mlp")
    assert not client.is_model_ready("no_such_model")
    meta = as_json(mode, client.get_server_metadata)
    assert meta["name"] == "ortserve"
    assert "binary_tensor_data" in meta["extensions"]
