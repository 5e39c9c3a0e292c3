"""Check a decoded request against the model's signature before it reaches the model.

Every error is an InvalidInput naming the model, the tensor, what was expected and what came.
"""

from __future__ import annotations

from typing import Any

from .datatypes import datatype_of
from .errors import InvalidInput
from .types import InferRequest, ModelSignature

SEQUENCE_PARAMETERS = ("sequence_id", "sequence_start", "sequence_end")


class RequestCheck:
    """``validate`` for one model, with what its signature implies worked out once.

    Calling it returns the output names to compute and the request's row count. A request
    that fits costs a few comparisons per input; one that does not goes through ``validate``,
    which raises the error naming the problem.
    """

    def __init__(self, signature: ModelSignature, model: str) -> None:
        self.signature = signature
        self.model = model
        self.batched = signature.max_batch_size > 0
        self.max_rows = signature.max_batch_size
        self.declared_outputs = [spec.name for spec in signature.outputs]
        self.known_outputs = frozenset(self.declared_outputs)
        self.inputs: list[tuple[str, Any, int, list[tuple[int, int]]]] = []
        for spec in signature.inputs:
            full = signature.full_shape(spec)
            fixed = [(i, d) for i, d in enumerate(full) if d != -1]
            dtype = None if spec.datatype.name == "BYTES" else spec.datatype.dtype
            self.inputs.append((spec.name, dtype, len(full), fixed))

    def __call__(self, request: InferRequest) -> tuple[list[str], int]:
        """(output names, rows) of a request that fits; raises InvalidInput otherwise."""
        inputs = request.inputs
        parameters = request.parameters
        if len(inputs) != len(self.inputs) or (
            parameters and any(key in parameters for key in SEQUENCE_PARAMETERS)
        ):
            return self._full(request)
        rows = -1
        for name, dtype, rank, fixed in self.inputs:
            array = inputs.get(name)
            if array is None:
                return self._full(request)
            shape = array.shape
            if len(shape) != rank:
                return self._full(request)
            if dtype is None:
                if array.dtype.kind not in "OSU":
                    return self._full(request)
            elif array.dtype != dtype:
                return self._full(request)
            for index, size in fixed:
                if shape[index] != size:
                    return self._full(request)
            if self.batched:
                if rows == -1:
                    rows = shape[0]
                    if rows > self.max_rows:
                        return self._full(request)
                elif shape[0] != rows:
                    return self._full(request)
        outputs = request.outputs
        if outputs is None:
            return self.declared_outputs, rows if self.batched else 1
        for name in outputs:
            if name not in self.known_outputs:
                return self._full(request)
        return outputs, rows if self.batched else 1

    def _full(self, request: InferRequest) -> tuple[list[str], int]:
        names = validate(request, self.signature, self.model)
        if not self.batched:
            return names, 1
        first = self.signature.inputs[0].name
        return names, int(request.inputs[first].shape[0])


def validate(request: InferRequest, signature: ModelSignature, model: str) -> list[str]:
    """Raise InvalidInput unless ``request`` fits; returns the output names to compute."""
    for key in SEQUENCE_PARAMETERS:
        if key in request.parameters:
            raise InvalidInput(f'model "{model}": parameter "{key}" needs a sequence model')
    expected = {spec.name for spec in signature.inputs}
    for name in request.inputs:
        if name not in expected:
            raise InvalidInput(
                f'model "{model}": unknown input "{name}" (inputs: {", ".join(sorted(expected))})'
            )
    batched = signature.max_batch_size > 0
    batch_size: tuple[str, int] | None = None
    for spec in signature.inputs:
        array = request.inputs.get(spec.name)
        if array is None:
            raise InvalidInput(f'model "{model}": missing input "{spec.name}"')
        where = f'model "{model}": input "{spec.name}"'
        got = datatype_of(array).name
        if got != spec.datatype.name:
            raise InvalidInput(f"{where}: expected {spec.datatype.name}, got {got}")
        full = signature.full_shape(spec)
        if array.ndim != len(full):
            raise InvalidInput(
                f"{where}: expected shape {full} (rank {len(full)}), "
                f"got {list(array.shape)} (rank {array.ndim})"
            )
        for want, have in zip(full, array.shape, strict=True):
            if want != -1 and want != have:
                raise InvalidInput(f"{where}: expected shape {full}, got {list(array.shape)}")
        if batched:
            rows = array.shape[0]
            if rows > signature.max_batch_size:
                raise InvalidInput(
                    f"{where}: batch of {rows} exceeds the model's "
                    f"max_batch_size {signature.max_batch_size}"
                )
            if batch_size is None:
                batch_size = (spec.name, rows)
            elif batch_size[1] != rows:
                raise InvalidInput(
                    f'{where}: batch of {rows} differs from input "{batch_size[0]}"\'s '
                    f"batch of {batch_size[1]}"
                )
    return _output_names(request, signature, model)


def _output_names(request: InferRequest, signature: ModelSignature, model: str) -> list[str]:
    declared = [spec.name for spec in signature.outputs]
    if request.outputs is None:
        return declared
    known = set(declared)
    for name in request.outputs:
        if name not in known:
            raise InvalidInput(
                f'model "{model}": unknown output "{name}" (outputs: {", ".join(declared)})'
            )
    return request.outputs


def check_unique(names: list[str], kind: str) -> None:
    """Raise InvalidInput when a tensor name appears twice in a request."""
    if len(set(names)) != len(names):
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise InvalidInput(f'{kind} "{name}" appears more than once in the request')
            seen.add(name)
