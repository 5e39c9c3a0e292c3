"""Check a decoded request against the model's signature before it reaches the model.

Every error is an InvalidInput naming the model, the tensor, what was expected and what came.
"""

from __future__ import annotations

from .datatypes import datatype_of
from .errors import InvalidInput
from .types import InferRequest, ModelSignature

SEQUENCE_PARAMETERS = ("sequence_id", "sequence_start", "sequence_end")


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
