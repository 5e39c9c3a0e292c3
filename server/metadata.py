"""Server metadata, model metadata and model config as V2 / Triton JSON-shaped dicts.

Both front ends use these: HTTP sends them as JSON, gRPC parses them into its messages.
"""

from __future__ import annotations

from typing import Any

from . import __version__
from .model_store import ModelVersion
from .types import ModelSignature, TensorSpec

SERVER_NAME = "ortserve"
PLATFORM = "onnxruntime_onnx"
EXTENSIONS = ("binary_tensor_data", "model_configuration", "statistics")


def server_metadata() -> dict[str, Any]:
    return {"name": SERVER_NAME, "version": __version__, "extensions": list(EXTENSIONS)}


def model_metadata(model: ModelVersion, versions: list[ModelVersion]) -> dict[str, Any]:
    """V2 model metadata; ``versions`` are the model's loaded versions."""
    signature = model.signature

    def tensor(spec: TensorSpec) -> dict[str, Any]:
        return {
            "name": spec.name,
            "datatype": spec.datatype.name,
            "shape": signature.full_shape(spec),
        }

    return {
        "name": model.name,
        "versions": [str(v.version) for v in versions],
        "platform": PLATFORM,
        "inputs": [tensor(s) for s in signature.inputs],
        "outputs": [tensor(s) for s in signature.outputs],
    }


def session_parameters(settings: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The session options a model's sessions run with (intra-op threads as chosen at load):
    the thread counts under the names Triton's ONNX Runtime backend reads from a model config's
    parameters, the rest under ortserve's own."""
    return {
        "intra_op_thread_count": {"string_value": str(settings["intra_op_threads"])},
        "inter_op_thread_count": {"string_value": str(settings["inter_op_threads"])},
        "ortserve_allow_spinning": {"string_value": str(bool(settings["allow_spinning"])).lower()},
        "ortserve_graph_optimization": {"string_value": str(settings["graph_optimization"])},
    }


def model_config(model: ModelVersion) -> dict[str, Any]:
    """The Triton ModelConfig (proto field names, every primitive field filled)."""
    signature: ModelSignature = model.signature
    runtime = model.runtime

    def tensor(spec: TensorSpec) -> dict[str, Any]:
        return {
            "name": spec.name,
            "data_type": spec.datatype.config_enum,
            "dims": list(spec.shape),
            "is_shape_tensor": False,
        }

    config: dict[str, Any] = {
        "name": model.name,
        "platform": PLATFORM,
        "backend": "onnxruntime",
        "runtime": "",
        "version_policy": {"latest": {"num_versions": 1}},
        "max_batch_size": signature.max_batch_size,
        "input": [
            {**tensor(s), "format": "FORMAT_NONE", "optional": False} for s in signature.inputs
        ],
        "output": [{**tensor(s), "label_filename": ""} for s in signature.outputs],
        "instance_group": [
            {
                "name": f"{model.name}_0",
                "kind": "KIND_GPU" if runtime.device == "cuda" else "KIND_CPU",
                "count": model.config.runtime.instances,
                "gpus": [],
            }
        ],
        "default_model_filename": runtime.path.name,
        "parameters": session_parameters(runtime.settings),
        "model_transaction_policy": {"decoupled": False},
        "response_cache": {"enable": False},
    }
    batching = model.config.batching
    if batching.enabled and signature.max_batch_size > 0:
        config["dynamic_batching"] = {
            "preferred_batch_size": list(batching.preferred_batch_sizes),
            "max_queue_delay_microseconds": batching.max_queue_delay_us,
            "preserve_ordering": False,
            "priority_levels": 0,
            "default_priority_level": 0,
            "default_queue_policy": {
                "timeout_action": "REJECT",
                "default_timeout_microseconds": batching.timeout_ms * 1000,
                "allow_timeout_override": True,
                "max_queue_size": batching.max_queue_size,
            },
        }
    return config
