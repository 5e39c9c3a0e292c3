"""ModelInferRequest / ModelInferResponse <-> InferRequest / InferResponse.

Raw input contents decode zero-copy (`np.frombuffer` over the message's bytes); typed
contents are converted and range-checked. Responses are written by ``grpc_wire``.
"""

from __future__ import annotations

from math import prod
from typing import Any

import numpy as np

from ..datatypes import (
    DATATYPES,
    DataType,
    array_from_raw,
    checked_shape,
    datatype,
    element_count,
)
from ..errors import InvalidInput
from ..types import Array, InferRequest
from ..validation import check_unique

CONTENT_FIELDS = sorted({d.contents_field for d in DATATYPES.values() if d.contents_field})


def parameters_to_dict(params: Any) -> dict[str, Any]:
    """A protobuf map<string, InferParameter> as plain Python values."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        choice = value.WhichOneof("parameter_choice")
        out[key] = getattr(value, choice) if choice else None
    return out


def decode_request(message: Any) -> InferRequest:
    """Decode a ModelInferRequest; raises InvalidInput naming the tensor and the problem."""
    raw = message.raw_input_contents
    items = message.inputs
    count = len(items)
    if count > 1:
        check_unique([item.name for item in items], "input")
    if raw and len(raw) != count:
        _check_raw(raw, items)
    inputs: dict[str, Array] = {}
    for index in range(count):  # the container is walked once: each item costs a wrapper
        item = items[index]
        name = item.name
        if raw and item.HasField("contents"):
            _check_raw(raw, items)
        if item.parameters and "shared_memory_region" in item.parameters:
            raise InvalidInput(f"{_tensor(message, name)}: shared memory is not supported")
        dt = DATATYPES.get(item.datatype)
        shape = tuple(item.shape[:])  # a slice first: iterating the container is slower
        if raw:
            data = raw[index]
            size = dt.itemsize if dt is not None else 0
            if size and shape and min(shape) > 0 and len(data) == prod(shape) * size:
                inputs[name] = np.ndarray(shape, dt.dtype, data)  # type: ignore[union-attr]
                continue
        inputs[name] = _decode_input(message, item, raw[index] if raw else None)
    outputs = None
    if message.outputs:
        outputs = []
        for out in message.outputs:
            if "classification" in out.parameters:
                raise InvalidInput(f'output "{out.name}": classification is not supported')
            if "shared_memory_region" in out.parameters:
                raise InvalidInput(f'output "{out.name}": shared memory is not supported')
            outputs.append(out.name)
        check_unique(outputs, "output")
    parameters = parameters_to_dict(message.parameters) if message.parameters else {}
    return InferRequest(
        message.model_name, message.model_version, inputs, outputs, message.id, parameters
    )


def _check_raw(raw: Any, items: Any) -> None:
    """Raise InvalidInput for raw contents that do not match the inputs one to one."""
    for item in items:
        if item.HasField("contents"):
            raise InvalidInput("contents must not be set when raw_input_contents is used")
    if len(raw) < len(items):
        raise InvalidInput(f'unable to find data for input "{items[len(raw)].name}"')
    if len(raw) > len(items):
        raise InvalidInput(f"{len(raw)} raw_input_contents entries for {len(items)} inputs")


def _tensor(message: Any, name: str) -> str:
    return f'model "{message.model_name}": input "{name}"'


def _decode_input(message: Any, item: Any, data: bytes | None) -> Array:
    """One input the fast path of ``decode_request`` did not take, checked in full."""
    tensor = _tensor(message, item.name)
    dt = datatype(item.datatype, tensor)
    shape = checked_shape(list(item.shape), tensor)
    if data is not None:
        return array_from_raw(data, dt, shape, tensor)
    return array_from_contents(item.contents, dt, shape, tensor)


def array_from_contents(contents: Any, dt: DataType, shape: tuple[int, ...], tensor: str) -> Array:
    """Typed InferTensorContents as an array of ``shape`` and ``dt``'s dtype."""
    count = element_count(shape, tensor)
    if dt.contents_field is None:
        raise InvalidInput(f"{tensor}: {dt.name} data must come in raw_input_contents")
    for other in CONTENT_FIELDS:
        if other != dt.contents_field and len(getattr(contents, other)):
            raise InvalidInput(
                f"{tensor}: {dt.name} data belongs in {dt.contents_field}, not {other}"
            )
    values = getattr(contents, dt.contents_field)
    if len(values) != count:
        raise InvalidInput(
            f"{tensor}: shape {list(shape)} needs {count} elements, "
            f"{dt.contents_field} has {len(values)}"
        )
    if dt.name == "BYTES":
        out = np.empty(count, dtype=np.object_)
        try:
            out[:] = [bytes(v).decode() for v in values]
        except UnicodeDecodeError:
            raise InvalidInput(f"{tensor}: a BYTES element is not valid UTF-8") from None
        return out.reshape(shape)
    if dt.dtype.kind in "iu" and dt.dtype.itemsize < 4 and count:
        wide = np.asarray(values, dtype=np.int64)
        info = np.iinfo(dt.dtype)
        if wide.min() < info.min or wide.max() > info.max:
            raise InvalidInput(f"{tensor}: a value is out of range for {dt.name}")
    return np.asarray(values, dtype=dt.dtype).reshape(shape)
