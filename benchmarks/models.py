"""The benchmark model repository: two seeded MLPs plus copies of the example models.

``small_mlp``: FP32 ``x`` [batch, 256] -> 1024 -> 1024 -> 16 (Gemm + Relu) -> ``y``.
``large_mlp``: FP32 ``x`` [batch, 1024] -> 4096 -> 4096 -> 1024 -> ``y``.
``breast_cancer`` and ``mlp`` are copied from ``examples/models``.
``resnet50`` / ``resnet50_fp16`` (the GPU set): ResNet-50 v1.5 with seeded random weights, built
layer by layer (batch norm folded into the convolutions, as ONNX Runtime fuses it anyway), FP32
or FP16 throughout: ``input`` [batch, 3, 224, 224] -> ``logits`` [batch, 1000]. Built here so that
the same file runs on CPU in tests and on the GPU machine, with no torch needed.

``config_text``, when given, is written as each model's ``config.toml`` (merged key by key into
a config the model already ships), e.g. ``"[batching]\\nenabled = false\\n"``.

With ``noop`` every model is replaced by its no-op twin (``noop_model``): the same inputs,
outputs and config, but each output only a slice of the first input, cast, so that a run costs
next to nothing. Served, it measures what ortserve itself costs per request (decoding,
validation, batching, the hand-off to a runtime thread and back, encoding) apart from what the
model costs, on the same requests and answers as the real model.

Usage: ``python -m benchmarks.models DIR [--models small_mlp large_mlp] [--config-text TEXT]
[--noop]`` (``--models resnet50 resnet50_fp16`` for the GPU set)
"""

from __future__ import annotations

import argparse
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from server.datatypes import DATATYPES

from .config_text import write_config

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "models"
OPSET = 17
IR_VERSION = 9
MLP_LAYERS = {
    "small_mlp": (256, 1024, 1024, 16),
    "large_mlp": (1024, 4096, 4096, 1024),
}
COPIED = ("breast_cancer", "mlp")
RESNETS = {"resnet50": np.float32, "resnet50_fp16": np.float16}
ALL_MODELS = (*MLP_LAYERS, *COPIED)  # the CPU set; the GPU suite adds RESNETS
RESNET_STAGES = ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))  # width, blocks, stride


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
for _name, _dtype in RESNETS.items():
    _type = "FP16" if _dtype == np.float16 else "FP32"
    SIGNATURES[_name] = Signature(
        (Tensor("input", _type, (3, 224, 224)),), (Tensor("logits", _type, (1000,)),)
    )


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


def resnet50_model(dtype: type, seed: int) -> onnx.ModelProto:
    """ResNet-50 v1.5 (stride on the 3×3 convolution) in ``dtype``, random He-scaled weights;
    each block's last convolution is scaled down so that random activations stay finite in FP16."""
    rng = np.random.default_rng(seed)
    nodes: list[onnx.NodeProto] = []
    weights: list[onnx.TensorProto] = []

    def conv(x: str, cin: int, cout: int, k: int, stride: int = 1, scale: float = 1.0) -> str:
        name = f"conv{len(nodes)}"
        w = rng.standard_normal((cout, cin, k, k), dtype=np.float32)
        w *= scale * np.sqrt(2.0 / (cin * k * k))
        weights.append(numpy_helper.from_array(w.astype(dtype), f"{name}.w"))
        weights.append(numpy_helper.from_array(np.zeros(cout, dtype), f"{name}.b"))
        nodes.append(
            helper.make_node(
                "Conv",
                [x, f"{name}.w", f"{name}.b"],
                [name],
                kernel_shape=[k, k],
                strides=[stride, stride],
                pads=[k // 2] * 4,
            )
        )
        return name

    def op(kind: str, *inputs: str, **attributes: Any) -> str:
        name = f"{kind.lower()}{len(nodes)}"
        nodes.append(helper.make_node(kind, list(inputs), [name], **attributes))
        return name

    x = op("Relu", conv("input", 3, 64, 7, 2))
    x = op("MaxPool", x, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    channels = 64
    for width, blocks, stride in RESNET_STAGES:
        for block in range(blocks):
            step = stride if block == 0 else 1
            h = op("Relu", conv(x, channels, width, 1))
            h = op("Relu", conv(h, width, width, 3, step))
            h = conv(h, width, width * 4, 1, scale=0.2)
            shortcut = conv(x, channels, width * 4, 1, step) if block == 0 else x
            x = op("Relu", op("Add", h, shortcut))
            channels = width * 4
    x = op("Flatten", op("GlobalAveragePool", x))
    fc = rng.standard_normal((channels, 1000), dtype=np.float32) / np.sqrt(channels)
    weights.append(numpy_helper.from_array(fc.astype(dtype), "fc.w"))
    weights.append(numpy_helper.from_array(np.zeros(1000, dtype), "fc.b"))
    nodes.append(helper.make_node("Gemm", [x, "fc.w", "fc.b"], ["logits"]))
    onnx_type = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    graph = helper.make_graph(
        nodes,
        "resnet50",
        [helper.make_tensor_value_info("input", onnx_type, ["batch", 3, 224, 224])],
        [helper.make_tensor_value_info("logits", onnx_type, ["batch", 1000])],
        initializer=weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def noop_model(signature: Signature) -> onnx.ModelProto:
    """A graph with ``signature``'s inputs and outputs that does (almost) nothing: each output
    is the first columns of the first input (FP32, [batch, k]), reshaped to the output's dims
    and cast to its type, so its rows follow the input's rows. The other inputs go unused."""
    first = signature.inputs[0]
    if first.datatype != "FP32" or len(first.dims) != 1:
        raise ValueError(f"no-op twin needs an FP32 [batch, k] first input, not {first}")
    nodes = []
    constants = [
        numpy_helper.from_array(np.array([0], np.int64), "zero"),
        numpy_helper.from_array(np.array([1], np.int64), "one"),
    ]
    for index, out in enumerate(signature.outputs):
        width = int(np.prod(out.dims, dtype=np.int64))
        if width > first.dims[0]:
            raise ValueError(f"output {out.name} needs {width} columns, {first.name} has fewer")
        ends, shape = f"ends{index}", f"shape{index}"
        constants += [
            numpy_helper.from_array(np.array([width], np.int64), ends),
            numpy_helper.from_array(np.array([-1, *out.dims], np.int64), shape),
        ]
        sliced, reshaped = f"sliced{index}", f"reshaped{index}"
        nodes += [
            helper.make_node("Slice", [first.name, "zero", ends, "one"], [sliced]),
            helper.make_node("Reshape", [sliced, shape], [reshaped]),
            helper.make_node("Cast", [reshaped], [out.name], to=_onnx_type(out.datatype)),
        ]
    graph = helper.make_graph(
        nodes,
        "noop",
        [_value_info(t) for t in signature.inputs],
        [_value_info(t) for t in signature.outputs],
        initializer=constants,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def _onnx_type(datatype: str) -> int:
    return int(helper.np_dtype_to_tensor_dtype(DATATYPES[datatype].dtype))


def _value_info(tensor: Tensor) -> onnx.ValueInfoProto:
    dims: list[Any] = ["batch", *tensor.dims]
    return helper.make_tensor_value_info(tensor.name, _onnx_type(tensor.datatype), dims)


def build_models(
    root: Path | str,
    names: tuple[str, ...] = ALL_MODELS,
    config_text: str | None = None,
    noop: bool = False,
) -> Path:
    """Write the models ``names`` under ``root`` (created if needed) and return ``root``;
    with ``noop``, their no-op twins (``noop_model``) with the configs they ship."""
    root = Path(root)
    for seed, name in enumerate(names):
        folder = root / name
        if noop and name in SIGNATURES:
            _save(noop_model(SIGNATURES[name]), folder)
            shipped = EXAMPLES / name / "config.toml"
            if name in COPIED and shipped.exists():
                shutil.copyfile(shipped, folder / "config.toml")
        elif name in MLP_LAYERS:
            _save(mlp_model(MLP_LAYERS[name], seed), folder)
        elif name in COPIED:
            shutil.copytree(EXAMPLES / name, folder, dirs_exist_ok=True)
        elif name in RESNETS:
            _save(resnet50_model(RESNETS[name], seed), folder)
        else:
            known = ", ".join([*ALL_MODELS, *RESNETS])
            raise ValueError(f"unknown benchmark model {name!r} (known: {known})")
        if config_text is not None:
            write_config(folder / "config.toml", config_text)
    return root


def _save(model: onnx.ModelProto, folder: Path) -> None:
    """``model`` as version 1 of the model folder ``folder``."""
    (folder / "1").mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(folder / "1" / "model.onnx"))


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.models", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("root", type=Path, help="folder to write the model repository into")
    parser.add_argument(
        "--models", nargs="+", default=list(ALL_MODELS), choices=[*ALL_MODELS, *RESNETS]
    )
    parser.add_argument("--config-text", help="config.toml text written for every model")
    parser.add_argument("--noop", action="store_true", help="the models' no-op twins")
    args = parser.parse_args()
    build_models(args.root, tuple(args.models), args.config_text, args.noop)
    print(args.root)


if __name__ == "__main__":
    main()
