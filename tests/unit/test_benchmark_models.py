"""The benchmark's model set: the ResNet-50s the GPU suite serves and where the suite uses
them, the no-op twins of the small models, and raw ORT's spaced runs and CPU time."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from benchmarks.models import RESNETS, SIGNATURES, build_models
from benchmarks.raw_ort import (
    feeds,
    measure_batch,
    measure_copy,
    measure_model,
    measure_spaced,
    session_options,
)
from benchmarks.suite_plan import GPU_MODELS, plan


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


@pytest.mark.parametrize("name", ["small_mlp", "breast_cancer"])
def test_a_noop_twin_takes_and_gives_what_its_model_does(tmp_path: Path, name: str) -> None:
    build_models(tmp_path / "real", (name,))
    build_models(tmp_path / "noop", (name,), noop=True)
    real, noop = (
        ort.InferenceSession(str(tmp_path / kind / name / "1" / "model.onnx"))
        for kind in ("real", "noop")
    )
    for ours, theirs in (
        (noop.get_inputs(), real.get_inputs()),
        (noop.get_outputs(), real.get_outputs()),
    ):
        assert [(a.name, a.type, a.shape[1:]) for a in ours] == [
            (a.name, a.type, a.shape[1:]) for a in theirs
        ]
    (spec,) = SIGNATURES[name].inputs
    x = np.random.default_rng(1).random((5, *spec.dims)).astype(np.float32)
    got = noop.run(None, {spec.name: x})
    want = real.run(None, {spec.name: x})
    assert [(g.shape, g.dtype) for g in got] == [(w.shape, w.dtype) for w in want]
    alone = noop.run(None, {spec.name: x[2:3]})
    for whole, row in zip(got, alone, strict=True):
        np.testing.assert_array_equal(whole[2:3], row)  # each row's answer is its own
    assert (tmp_path / "noop" / name / "config.toml").exists() == (name == "breast_cancer")


def test_spaced_runs_are_timed_both_ways(tmp_path: Path) -> None:
    build_models(tmp_path, ("breast_cancer",), noop=True)
    session = ort.InferenceSession(str(tmp_path / "breast_cancer" / "1" / "model.onnx"))
    spaced = measure_spaced(session, runs=20, gap_s=0.001)
    assert spaced["batch"] == 8 and spaced["runs"] == 20 and spaced["gap_ms"] == 1.0
    assert spaced["back_to_back_p50_ms"] > 0 and spaced["spaced_p50_ms"] > 0
    assert spaced["spaced_ratio"] == round(
        spaced["spaced_p50_ms"] / spaced["back_to_back_p50_ms"], 2
    )
    assert spaced["back_to_back_cpu_us_per_sample"] > 0 and spaced["spaced_cpu_us_per_sample"] > 0


def test_raw_ort_spaced_cpu_leaves_out_the_busy_gaps(tmp_path: Path) -> None:
    build_models(tmp_path, ("small_mlp",))
    path = tmp_path / "small_mlp" / "1" / "model.onnx"
    session = ort.InferenceSession(
        str(path), session_options(1, spinning=False), providers=["CPUExecutionProvider"]
    )
    spaced = measure_spaced(session, runs=10, gap_s=0.02)
    per_run_us = spaced["spaced_cpu_us_per_sample"] * spaced["batch"]
    assert 0 < per_run_us < 10_000  # a gap alone is 20,000 µs of this thread's CPU


def test_raw_ort_sets_threads_and_spinning_as_asked(tmp_path: Path) -> None:
    options = session_options(1, spinning=False)
    assert options.intra_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert session_options(0, spinning=True).intra_op_num_threads == 0  # ORT's default
    assert (
        session_options(0, True).get_session_config_entry("session.intra_op.allow_spinning") == "1"
    )
    build_models(tmp_path, ("small_mlp",))
    result = measure_model(
        tmp_path / "small_mlp" / "1" / "model.onnx",
        4,
        seconds=0.05,
        warmup_s=0.01,
        sizes=[4],
        spaced_runs=5,
        intra_op_threads=1,
        spinning=False,
        spaced_batch=4,
    )
    assert result["intra_op_threads"] == 1 and result["spinning"] is False
    assert result["best_batch"] == 4 and result["spaced"]["batch"] == 4


def test_raw_ort_times_the_input_copy_only_where_there_is_a_device(tmp_path: Path) -> None:
    build_models(tmp_path, ("small_mlp",))
    path = tmp_path / "small_mlp" / "1" / "model.onnx"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert measure_batch(session, 4, 0.05, 0.01)["to_device_p50_ms"] is None  # no GPU: no copy
    assert measure_copy(feeds(session, 4), "cpu", runs=3) >= 0  # the same timing, on host memory


def test_raw_ort_counts_the_cpu_of_every_thread_per_sample(tmp_path: Path) -> None:
    build_models(tmp_path, ("small_mlp",))
    path = tmp_path / "small_mlp" / "1" / "model.onnx"
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    start_cpu = time.process_time()
    point = measure_batch(session, 64, 0.3, 0.05)
    cpu_s = time.process_time() - start_cpu
    measured_s = point["cpu_us_per_sample"] * 64 * point["runs"] / 1e6
    assert 0 < measured_s <= cpu_s * 1.01 + 1e-3  # the measured runs, not the warm-up
    assert measured_s <= 0.35 * 2 * 1.01  # at most both ORT threads busy the whole window
