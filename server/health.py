"""Warm-up: a model version is ready once an inference on inputs made from its schema
produced every declared output with the declared datatype and rank."""

from __future__ import annotations

import numpy as np

from .errors import ConfigError
from .model_store import ModelVersion
from .types import Array, ModelSignature


def warm_up_inputs(signature: ModelSignature) -> dict[str, Array]:
    """Zero-valued inputs of one row (variable dims 1) for every input of ``signature``."""
    feeds: dict[str, Array] = {}
    for spec in signature.inputs:
        shape = tuple(1 if d == -1 else d for d in signature.full_shape(spec))
        if spec.datatype.name == "BYTES":
            feeds[spec.name] = np.full(shape, "", dtype=np.object_)
        else:
            feeds[spec.name] = np.zeros(shape, dtype=spec.datatype.dtype)
    return feeds


def warm_up(model: ModelVersion) -> None:
    """Run the model once in the calling thread; raises ConfigError naming what went wrong."""
    signature = model.signature
    where = f'model "{model.name}" version {model.version}'
    names = [spec.name for spec in signature.outputs]
    try:
        outputs = model.runtime.run_sync(warm_up_inputs(signature), names)
    except Exception as error:
        raise ConfigError(f"{where}: warm-up inference failed: {error}") from None
    for spec, array in zip(signature.outputs, outputs, strict=True):
        got = "BYTES" if array.dtype.kind in "OSU" else str(array.dtype)
        want = "BYTES" if spec.datatype.name == "BYTES" else str(spec.datatype.dtype)
        if got != want:
            raise ConfigError(
                f'{where}: warm-up output "{spec.name}" has dtype {got}, '
                f"expected {spec.datatype.name}"
            )
        if array.ndim != len(signature.full_shape(spec)):
            raise ConfigError(
                f'{where}: warm-up output "{spec.name}" has rank {array.ndim}, '
                f"expected {len(signature.full_shape(spec))}"
            )
    model.is_ready = True
