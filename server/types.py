"""The plain data that flows through the server: requests, responses and model signatures."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .datatypes import DataType

Array = np.ndarray[Any, Any]


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One input or output as the model declares it; -1 marks a variable dim.

    ``shape`` excludes the batch dim when the model batches.
    """

    name: str
    datatype: DataType
    shape: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ModelSignature:
    """What a model version takes and gives; ``max_batch_size`` 0 means it does not batch."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    max_batch_size: int

    def full_shape(self, spec: TensorSpec) -> list[int]:
        """The shape clients see in metadata: a leading -1 when the model batches."""
        return [-1, *spec.shape] if self.max_batch_size > 0 else list(spec.shape)


@dataclass(slots=True)
class InferRequest:
    """A decoded request: inputs by name, requested outputs (None = all) in request order."""

    model_name: str
    model_version: str
    inputs: dict[str, Array]
    outputs: list[str] | None = None
    id: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    timeout_s: float | None = None  # the caller's deadline, from now
    protocol: str = ""  # "grpc" or "http", for metrics


@dataclass(slots=True)
class InferResponse:
    """Outputs by name, in the order they go back to the client."""

    model_name: str
    model_version: str
    outputs: dict[str, Array]
    datatypes: dict[str, DataType]
    id: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
