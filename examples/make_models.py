"""Build the example model repository served by ortserve.

Creates, under the output directory (default: ``examples/models``):

* ``breast_cancer/1/model.onnx`` -- a scikit-learn pipeline (StandardScaler followed by
  LogisticRegression) trained on the bundled breast-cancer data set and converted with
  skl2onnx. Input ``input`` (FP32, [-1, 30]); outputs ``label`` (INT64, [-1]) and
  ``probabilities`` (FP32, [-1, 2]). A ``config.toml`` next to it sets the batching limit.
* ``mlp/1/model.onnx`` and ``mlp/2/model.onnx`` -- a dense MLP built with ``onnx.helper``:
  input ``x`` (FP32, [batch, 64]), 64 -> 128 -> 128 -> 10 with ReLU, output ``logits``
  (FP32, [batch, 10]). The two versions differ only in their random seed; no config is
  written, so the server infers everything from the graph.

Every model is checked with ``onnx.checker`` and run once with onnxruntime.
Everything is seeded, so repeated runs produce the same weights.

Usage::

    python examples/make_models.py [--out examples/models]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType, Int64TensorType
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

DEFAULT_OUT = Path(__file__).resolve().parent / "models"
OPSET = 17
ML_OPSET = 3
IR_VERSION = 9

BREAST_CANCER_CONFIG = """\
# Tabular classifier: scikit-learn logistic regression on the breast-cancer data set.
[batching]
max_batch_size = 256
"""

MLP_SIZES = (64, 128, 128, 10)
MLP_SEEDS = {1: 0, 2: 1}  # model version -> random seed


def save_model(model: onnx.ModelProto, path: Path) -> None:
    """Check ``model`` and write it to ``path``, creating parent directories."""
    onnx.checker.check_model(model, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(path))


def run_model(path: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run the model at ``path`` with onnxruntime and return its outputs by name."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


# --- breast_cancer -------------------------------------------------------------------------


def train_breast_cancer() -> tuple[Pipeline, np.ndarray, np.ndarray]:
    """Fit a scaled logistic regression on the full breast-cancer data set."""
    data = load_breast_cancer()
    features = data.data.astype(np.float32)
    pipeline = Pipeline(
        [
            ("scaler", StandardScaler()),
            ("classifier", LogisticRegression(max_iter=1000, random_state=0)),
        ]
    )
    pipeline.fit(features, data.target)
    return pipeline, features, data.target


def convert_breast_cancer(pipeline: Pipeline) -> onnx.ModelProto:
    """Convert the pipeline to ONNX with plain tensor outputs (no ZipMap)."""
    model = convert_sklearn(
        pipeline,
        name="breast_cancer",
        initial_types=[("input", FloatTensorType([None, 30]))],
        final_types=[
            ("label", Int64TensorType([None])),
            ("probabilities", FloatTensorType([None, 2])),
        ],
        options={"zipmap": False},
        # Upper bounds: skl2onnx lowers them to the oldest opsets the graph needs.
        target_opset={"": OPSET, "ai.onnx.ml": ML_OPSET},
    )
    model.ir_version = IR_VERSION
    # skl2onnx emits the opset imports in no fixed order; sort them for reproducible bytes.
    opsets = sorted(model.opset_import, key=lambda opset: opset.domain)
    del model.opset_import[:]
    model.opset_import.extend(opsets)
    return model


def build_breast_cancer(out: Path) -> None:
    """Write breast_cancer/1/model.onnx and its config.toml, then check training accuracy."""
    pipeline, features, target = train_breast_cancer()
    path = out / "breast_cancer" / "1" / "model.onnx"
    save_model(convert_breast_cancer(pipeline), path)
    (out / "breast_cancer" / "config.toml").write_text(BREAST_CANCER_CONFIG)

    outputs = run_model(path, {"input": features})
    labels, probabilities = outputs["label"], outputs["probabilities"]
    assert labels.dtype == np.int64 and labels.shape == (len(features),)
    assert probabilities.dtype == np.float32 and probabilities.shape == (len(features), 2)
    accuracy = float(np.mean(labels == target))
    assert accuracy > 0.95, f"training accuracy too low: {accuracy:.4f}"
    print(f"{path}: training accuracy {accuracy:.4f} on {len(features)} rows")


# --- mlp -----------------------------------------------------------------------------------


def he_weights(rng: np.random.Generator, fan_in: int, fan_out: int) -> np.ndarray:
    """He-initialised weight matrix of shape [fan_in, fan_out]."""
    scale = np.sqrt(2.0 / fan_in)
    return (rng.standard_normal((fan_in, fan_out)) * scale).astype(np.float32)


def make_mlp(seed: int) -> onnx.ModelProto:
    """Build a Gemm/Relu MLP with He-initialised weights drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    nodes: list[onnx.NodeProto] = []
    initializers: list[onnx.TensorProto] = []
    current = "x"
    n_layers = len(MLP_SIZES) - 1
    for i, (fan_in, fan_out) in enumerate(zip(MLP_SIZES, MLP_SIZES[1:], strict=False)):
        weight, bias = f"fc{i}.weight", f"fc{i}.bias"
        initializers.append(numpy_helper.from_array(he_weights(rng, fan_in, fan_out), weight))
        initializers.append(numpy_helper.from_array(np.zeros(fan_out, np.float32), bias))
        last = i == n_layers - 1
        gemm_out = "logits" if last else f"fc{i}"
        nodes.append(helper.make_node("Gemm", [current, weight, bias], [gemm_out], f"fc{i}"))
        if not last:
            current = f"relu{i}"
            nodes.append(helper.make_node("Relu", [gemm_out], [current], f"relu{i}"))

    graph = helper.make_graph(
        nodes,
        "mlp",
        inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", MLP_SIZES[0]])],
        outputs=[
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", MLP_SIZES[-1]])
        ],
        initializer=initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="ortserve-examples"
    )
    model.ir_version = IR_VERSION
    return model


def build_mlp(out: Path) -> None:
    """Write every mlp version and run each on a few random rows."""
    rows = np.random.default_rng(42).standard_normal((4, MLP_SIZES[0])).astype(np.float32)
    for version, seed in MLP_SEEDS.items():
        path = out / "mlp" / str(version) / "model.onnx"
        save_model(make_mlp(seed), path)
        logits = run_model(path, {"x": rows})["logits"]
        assert logits.dtype == np.float32 and logits.shape == (len(rows), MLP_SIZES[-1])
        print(f"{path}: logits {logits.shape}, argmax {logits.argmax(axis=1).tolist()}")


# --- entry point ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="model repository directory to write (default: examples/models)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    out = parse_args(argv).out
    build_breast_cancer(out)
    build_mlp(out)
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote model repository {out} ({total / 1024:.1f} KiB)")


if __name__ == "__main__":
    main()
