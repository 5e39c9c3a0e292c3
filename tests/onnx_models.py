"""Small ONNX models made for the tests, each written as ``<repo>/<name>/<version>/model.onnx``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17

# V2 datatype -> ONNX element type, for every datatype the identity model carries.
ONNX_TYPES = {
    "BOOL": TensorProto.BOOL,
    "UINT8": TensorProto.UINT8,
    "UINT16": TensorProto.UINT16,
    "UINT32": TensorProto.UINT32,
    "UINT64": TensorProto.UINT64,
    "INT8": TensorProto.INT8,
    "INT16": TensorProto.INT16,
    "INT32": TensorProto.INT32,
    "INT64": TensorProto.INT64,
    "FP16": TensorProto.FLOAT16,
    "FP32": TensorProto.FLOAT,
    "FP64": TensorProto.DOUBLE,
    "BYTES": TensorProto.STRING,
}


def save(model: onnx.ModelProto, repo: Path, name: str, version: int = 1) -> Path:
    model.ir_version = 9
    onnx.checker.check_model(model)
    path = repo / name / str(version) / "model.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(path))
    return path


def _model(nodes: list, inputs: list, outputs: list, initializers: list | None = None):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=initializers or [])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def identity(repo: Path, name: str = "identity", datatypes: list[str] | None = None) -> Path:
    """``IN_<T>`` -> ``OUT_<T>`` unchanged, shape [batch, -1], for each datatype T (all)."""
    nodes, inputs, outputs = [], [], []
    for v2 in datatypes or list(ONNX_TYPES):
        onnx_type = ONNX_TYPES[v2]
        nodes.append(helper.make_node("Identity", [f"IN_{v2}"], [f"OUT_{v2}"]))
        inputs.append(helper.make_tensor_value_info(f"IN_{v2}", onnx_type, ["batch", "n"]))
        outputs.append(helper.make_tensor_value_info(f"OUT_{v2}", onnx_type, ["batch", "n"]))
    return save(_model(nodes, inputs, outputs), repo, name)


def add_sub(repo: Path, name: str = "add_sub", size: int = 16) -> Path:
    """Triton's "simple" model: OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1 (FP32)."""
    io = [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", size])
        for n in ("INPUT0", "INPUT1", "OUTPUT0", "OUTPUT1")
    ]
    nodes = [
        helper.make_node("Add", ["INPUT0", "INPUT1"], ["OUTPUT0"]),
        helper.make_node("Sub", ["INPUT0", "INPUT1"], ["OUTPUT1"]),
    ]
    return save(_model(nodes, io[:2], io[2:]), repo, name)


def scale(repo: Path, name: str, version: int, factor: float) -> Path:
    """y = x * factor, FP32 [batch, 4]; versions with different factors tell themselves apart."""
    const = numpy_helper.from_array(np.array(factor, dtype=np.float32), "factor")
    nodes = [helper.make_node("Mul", ["x", "factor"], ["y"])]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    return save(_model(nodes, [x], [y], [const]), repo, name, version)


def fixed_shape(repo: Path, name: str = "fixed") -> Path:
    """No batch dim: x FP32 [2, 3] -> y = x + 1, FP32 [2, 3]."""
    one = numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one")
    nodes = [helper.make_node("Add", ["x", "one"], ["y"])]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])
    return save(_model(nodes, [x], [y], [one]), repo, name)


def reciprocal(repo: Path, name: str = "reciprocal") -> Path:
    """y = 1 / x, FP32 [batch, -1]: x = 0 gives +Inf, -0 gives -Inf, NaN stays NaN."""
    nodes = [helper.make_node("Reciprocal", ["x"], ["y"])]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "n"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "n"])
    return save(_model(nodes, [x], [y]), repo, name)


def build_repository(repo: Path) -> Path:
    """The repository the integration tests serve (the examples are added beside these)."""
    identity(repo)
    identity(repo, "identity_typed", [t for t in ONNX_TYPES if t != "FP16"])
    add_sub(repo)
    fixed_shape(repo)
    reciprocal(repo)
    scale(repo, "scale", 1, 1.0)
    scale(repo, "scale", 2, 2.0)
    (repo / "add_sub" / "config.toml").write_text("[batching]\nmax_batch_size = 8\n")
    # 1/0 is Inf by design: the warm-up's zeros must not make it "not ready"
    (repo / "reciprocal" / "config.toml").write_text("[health]\ncheck_finite = false\n")
    return repo


def slow(repo: Path, name: str = "slow", size: int = 768, steps: int = 6) -> Path:
    """y = x + 0 * (a chain of ``steps`` size×size MatMuls): real compute, tens of ms.

    The matrix depends on the input, so ONNX Runtime cannot fold the work away at load.
    """
    shape = numpy_helper.from_array(np.array([size, size], dtype=np.int64), "shape")
    zero = numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero")
    small = numpy_helper.from_array(np.array(1e-3, dtype=np.float32), "small")
    nodes = [
        helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0),
        helper.make_node("Mul", ["total", "zero"], ["nothing"]),
        helper.make_node(
            "ConstantOfShape",
            ["shape"],
            ["ones"],
            value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0]),
        ),
        helper.make_node("Mul", ["ones", "small"], ["scaled"]),
        helper.make_node("Add", ["scaled", "nothing"], ["m0"]),
    ]
    for step in range(steps):
        nodes.append(helper.make_node("MatMul", [f"m{step}", "m0"], [f"m{step + 1}"]))
    nodes += [
        helper.make_node("ReduceSum", [f"m{steps}"], ["sum"], keepdims=0),
        helper.make_node("Mul", ["sum", "zero"], ["zeroed"]),
        helper.make_node("Add", ["x", "zeroed"], ["y"]),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1])
    return save(_model(nodes, [x], [y], [shape, zero, small]), repo, name)


def spin(repo: Path, name: str = "spin", size: int = 256) -> Path:
    """y = x, after max(x) rounds of a size×size MatMul: as slow as the caller asks (about
    1 ms a round at 256), instant for the zeros of the warm-up; one node per round, so a
    terminated run stops within a round."""
    weights = numpy_helper.from_array(np.full((size, size), 1e-3, dtype=np.float32), "w")
    start = numpy_helper.from_array(np.ones((size, size), dtype=np.float32), "start")
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("MatMul", ["m_in", "w"], ["m_out"]),
        ],
        "round",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("m_in", TensorProto.FLOAT, [size, size]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("m_out", TensorProto.FLOAT, [size, size]),
        ],
    )
    nodes = [
        helper.make_node("ReduceMax", ["x"], ["most"], keepdims=0),
        helper.make_node("Cast", ["most"], ["rounds"], to=TensorProto.INT64),
        helper.make_node("Loop", ["rounds", "", "start"], ["end"], body=body),
        helper.make_node("ReduceSum", ["end"], ["sum"], keepdims=0),
        helper.make_node("Mul", ["sum", "zero"], ["zeroed"]),
        helper.make_node("Add", ["x", "zeroed"], ["y"]),
    ]
    zero = numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1])
    return save(_model(nodes, [x], [y], [weights, start, zero]), repo, name)


def gather(repo: Path, name: str = "gather", size: int = 10) -> Path:
    """y = table[index] = 10 * index, INT64 index [batch, 1] into a table of ``size``: an
    index of ``size`` or more breaks the run."""
    table = numpy_helper.from_array(np.arange(size, dtype=np.float32) * 10, "table")
    nodes = [helper.make_node("Gather", ["table", "index"], ["y"])]
    index = helper.make_tensor_value_info("index", TensorProto.INT64, ["batch", 1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1])
    return save(_model(nodes, [index], [y], [table]), repo, name)


def negate(repo: Path, name: str = "negate") -> Path:
    """y = -x, FP32 [batch, -1]: the same signature as ``reciprocal``."""
    nodes = [helper.make_node("Neg", ["x"], ["y"])]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "n"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "n"])
    return save(_model(nodes, [x], [y]), repo, name)


def tile(repo: Path, name: str = "tile", repeats: int = 64) -> Path:
    """``y = x`` repeated ``repeats`` times along the last dim: outputs far larger than inputs."""
    times = numpy_helper.from_array(np.array([1, repeats], dtype=np.int64), "times")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "n"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "m"])
    return save(
        _model([helper.make_node("Tile", ["x", "times"], ["y"])], [x], [y], [times]), repo, name
    )


def strings(repo: Path, name: str = "strings") -> Path:
    """x (FP32) -> s = x as strings, y = x; t (strings) -> u = t."""
    nodes = [
        helper.make_node("Cast", ["x"], ["s"], to=TensorProto.STRING),
        helper.make_node("Identity", ["x"], ["y"]),
        helper.make_node("Identity", ["t"], ["u"]),
    ]
    info = helper.make_tensor_value_info
    inputs = [info("x", TensorProto.FLOAT, ["b", 2]), info("t", TensorProto.STRING, ["b", 2])]
    outputs = [
        info("s", TensorProto.STRING, ["b", 2]),
        info("y", TensorProto.FLOAT, ["b", 2]),
        info("u", TensorProto.STRING, ["b", 2]),
    ]
    return save(_model(nodes, inputs, outputs), repo, name)
