"""ONNX Runtime's session options and providers, shared by both executors, the model processes
and the thread try: options from plain values, the providers a device gets, and a check that a
session got them."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import onnxruntime as ort

from .errors import ConfigError

log = logging.getLogger(__name__)

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


def resolve_providers(device: str, conv_algo_search: str = "heuristic") -> list[Any]:
    """ONNX Runtime providers for ``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""
    available = ort.get_available_providers()
    has_cuda = CUDA_PROVIDER in available
    if device == "cpu" or (device == "auto" and not has_cuda):
        return ["CPUExecutionProvider"]
    if not has_cuda:
        raise ConfigError(
            f'device "{device}": this ONNX Runtime has no {CUDA_PROVIDER} '
            f"(available: {', '.join(available)}); install onnxruntime-gpu"
        )
    return [cuda_provider(device, conv_algo_search), "CPUExecutionProvider"]


def cuda_provider(device: str, conv_algo_search: str) -> tuple[str, dict[str, Any]]:
    """The CUDAExecutionProvider entry for ``cuda``/``cuda:N`` (or ``auto``: GPU 0)."""
    options = {"device_id": device_id(device), "cudnn_conv_algo_search": conv_algo_search.upper()}
    return (CUDA_PROVIDER, options)


def check_providers(device: str, wanted: list[Any], got: list[str], path: Path) -> None:
    """A session asked for CUDA that ONNX Runtime put on the CPU instead (its CUDA libraries
    failed to load, say): an error when the device was ``cuda``, a warning for ``auto``."""
    if not wants_cuda(wanted) or wants_cuda(got):
        return
    message = (
        f"{path}: ONNX Runtime could not run it on CUDA and fell back to {', '.join(got)}; "
        "its log above says why"
    )
    if device == "auto":
        log.warning("%s (device auto: serving it on the CPU)", message)
        return
    raise ConfigError(f'device "{device}": {message}')


def device_id(device: str) -> int:
    """The GPU index of ``cuda:N`` (0 for any other device)."""
    return int(device.partition(":")[2] or 0)
