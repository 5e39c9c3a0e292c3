"""The benchmark's model set: the ResNet-50s the GPU suite serves, and where the suite uses them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from benchmarks.models import RESNETS, SIGNATURES, build_models
from benchmarks.suite import GPU_MODELS, plan


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RESNETS))
def test_resnet50_runs_with_a_batch_dim_and_finite_outputs(tmp_path: Path, name: str) -> None:
    build_models(tmp_path, (name,))
    session = ort.InferenceSession(
        str(tmp_path / name / "1" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    dtype = RESNETS[name]
    (spec,) = SIGNATURES[name].inputs
    assert spec.dims == (3, 224, 224) and spec.datatype == (
        "FP16" if dtype == np.float16 else "FP32"
    )
    x = np.random.default_rng(0).standard_normal((3, 3, 224, 224)).astype(dtype)
    (logits,) = session.run(None, {"input": x})
    assert logits.shape == (3, 1000) and logits.dtype == dtype
    assert np.isfinite(logits).all() and np.abs(logits).max() > 0
    (alone,) = session.run(None, {"input": x[1:2]})
    np.testing.assert_allclose(alone[0], logits[1], rtol=0.05, atol=0.05)  # rows independent


def test_only_the_gpu_suite_serves_the_resnets() -> None:
    cuda = {(p.server, p.point.model, p.point.concurrency) for p in plan(False, "cuda")}
    for model in GPU_MODELS:
        assert {("ortserve", model, 64), ("floor_grpc", model, 64)} <= cuda
        assert {("ortserve --workers 2", model, 64), ("ortserve", model, 1)} <= cuda
    assert not {p.point.model for p in plan(False, "cpu")} & set(GPU_MODELS)
