"""ONNX Runtime's session options and providers as plain values, shared by both executors,
the model processes and the thread try."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import onnxruntime as ort

OPTIMIZATION = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
CUDA_PROVIDER = "CUDAExecutionProvider"


def session_options(options: dict[str, Any]) -> ort.SessionOptions:
    """SessionOptions from the plain settings both executors share."""
    result = ort.SessionOptions()
    result.graph_optimization_level = OPTIMIZATION[options["graph_optimization"]]
    result.intra_op_num_threads = options["intra_op_threads"]
    result.inter_op_num_threads = options["inter_op_threads"]
    result.log_severity_level = 3
    spin = "1" if options["allow_spinning"] else "0"
    result.add_session_config_entry("session.intra_op.allow_spinning", spin)
    result.add_session_config_entry("session.inter_op.allow_spinning", spin)
    return result


def wants_cuda(providers: Sequence[Any]) -> bool:
    """Whether ``providers`` (names, or ``(name, options)`` pairs) ask for, or got, CUDA."""
    return any((p if isinstance(p, str) else p[0]) == CUDA_PROVIDER for p in providers)
