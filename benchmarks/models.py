"""The benchmark model repository: two seeded MLPs plus copies of the example models.

``small_mlp``: FP32 ``x`` [batch, 256] -> 1024 -> 1024 -> 16 (Gemm + Relu) -> ``y``.
``large_mlp``: FP32 ``x`` [batch, 1024] -> 4096 -> 4096 -> 1024 -> ``y``.
``breast_cancer`` and ``mlp`` are copied from ``examples/models``.

``config_text``, when given, is written as each model's ``config.toml`` (merged key by key into
a config the model already ships), e.g. ``"[batching]\\nenabled = false\\n"``.

Usage: ``python -m benchmarks.models DIR [--models small_mlp large_mlp] [--config-text TEXT]``
"""

from __future__ import annotations

import argparse
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "models"
OPSET = 17
IR_VERSION = 9
MLP_LAYERS = {
    "small_mlp": (256, 1024, 1024, 16),
    "large_mlp": (1024, 4096, 4096, 1024),
}
COPIED = ("breast_cancer", "mlp")
ALL_MODELS = (*MLP_LAYERS, *COPIED)


@dataclass(frozen=True)
class Tensor:
    """One input or output: name, V2 datatype, dims after the batch dim."""

    name: str
    datatype: str
    dims: tuple[int, ...]


@dataclass(frozen=True)
class Signature:
    """What a benchmark model takes and returns (every model here batches on dim 0)."""

    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]


SIGNATURES = {
    name: Signature((Tensor("x", "FP32", (sizes[0],)),), (Tensor("y", "FP32", (sizes[-1],)),))
    for name, sizes in MLP_LAYERS.items()
}
SIGNATURES["breast_cancer"] = Signature(
    (Tensor("input", "FP32", (30,)),),
    (Tensor("label", "INT64", ()), Tensor("probabilities", "FP32", (2,))),
)
SIGNATURES["mlp"] = Signature((Tensor("x", "FP32", (64,)),), (Tensor("logits", "FP32", (10,)),))


def mlp_model(sizes: tuple[int, ...], seed: int) -> onnx.ModelProto:
    """A Gemm + Relu network ``sizes[0] -> ... -> sizes[-1]`` with a symbolic batch dim."""
    rng = np.random.default_rng(seed)
    nodes, weights = [], []
    current = "x"
    for layer, (fan_in, fan_out) in enumerate(zip(sizes, sizes[1:], strict=False)):
        w = (rng.standard_normal((fan_in, fan_out)) / np.sqrt(fan_in)).astype(np.float32)
        b = (rng.standard_normal(fan_out) * 0.01).astype(np.float32)
        weights += [
            numpy_helper.from_array(w, f"w{layer}"),
            numpy_helper.from_array(b, f"b{layer}"),
        ]
        last = layer == len(sizes) - 2
        gemm_out = "y" if last else f"h{layer}"
        nodes.append(helper.make_node("Gemm", [current, f"w{layer}", f"b{layer}"], [gemm_out]))
        if not last:
            nodes.append(helper.make_node("Relu", [gemm_out], [f"r{layer}"]))
            current = f"r{layer}"
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", sizes[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", sizes[-1]])],
        initializer=weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def build_models(
    root: Path | str, names: tuple[str, ...] = ALL_MODELS, config_text: str | None = None
) -> Path:
    """Write the models ``names`` under ``root`` (created if needed) and return ``root``."""
    root = Path(root)
    for seed, name in enumerate(names):
        folder = root / name
        if name in MLP_LAYERS:
            (folder / "1").mkdir(parents=True, exist_ok=True)
            onnx.save_model(mlp_model(MLP_LAYERS[name], seed), str(folder / "1" / "model.onnx"))
        elif name in COPIED:
            shutil.copytree(EXAMPLES / name, folder, dirs_exist_ok=True)
        else:
            raise ValueError(f"unknown benchmark model {name!r} (known: {', '.join(ALL_MODELS)})")
        if config_text is not None:
            write_config(folder / "config.toml", config_text)
    return root


def write_config(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, merged into the TOML already there (``text`` wins)."""
    if not path.exists():
        path.write_text(text)
        return
    merged = _merge(tomllib.loads(path.read_text()), tomllib.loads(text))
    path.write_text(_toml(merged))


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _toml(table: dict[str, Any], prefix: str = "") -> str:
    """TOML text for a table of scalars, arrays of scalars and nested tables."""
    lines = [f"{k} = {_value(v)}" for k, v in table.items() if not isinstance(v, dict)]
    for key, value in table.items():
        if isinstance(value, dict):
            lines += ["", f"[{prefix}{key}]", _toml(value, f"{prefix}{key}.")]
    return "\n".join(lines).strip() + "\n"


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return repr(value)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.models", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("root", type=Path, help="folder to write the model repository into")
    parser.add_argument("--models", nargs="+", default=list(ALL_MODELS), choices=ALL_MODELS)
    parser.add_argument("--config-text", help="config.toml text written for every model")
    args = parser.parse_args()
    build_models(args.root, tuple(args.models), args.config_text)
    print(args.root)


if __name__ == "__main__":
    main()
