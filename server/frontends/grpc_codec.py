"""ModelInferRequest / ModelInferResponse <-> InferRequest / InferResponse.

Raw input contents decode zero-copy (`np.frombuffer` over the message's bytes); typed
contents are converted and range-checked. Outputs always go in ``raw_output_contents``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._proto import grpc_service_pb2 as pb
from ..datatypes import (
    DATATYPES,
    DataType,
    array_from_raw,
    array_to_raw,
    checked_shape,
    datatype,
    element_count,
)
from ..errors import InvalidInput
from ..types import Array, InferRequest, InferResponse
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
    check_unique([item.name for item in items], "input")
    if raw:
        if any(item.HasField("contents") for item in items):
            raise InvalidInput("contents must not be set when raw_input_contents is used")
        if len(raw) < len(items):
            raise InvalidInput(f'unable to find data for input "{items[len(raw)].name}"')
        if len(raw) > len(items):
            raise InvalidInput(f"{len(raw)} raw_input_contents entries for {len(items)} inputs")
    inputs: dict[str, Array] = {}
    for index, item in enumerate(items):
        tensor = f'model "{message.model_name}": input "{item.name}"'
        if "shared_memory_region" in item.parameters:
            raise InvalidInput(f"{tensor}: shared memory is not supported")
        dt = datatype(item.datatype, tensor)
        shape = checked_shape(list(item.shape), tensor)
        if raw:
            inputs[item.name] = array_from_raw(raw[index], dt, shape, tensor)
        else:
            inputs[item.name] = array_from_contents(item.contents, dt, shape, tensor)
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
    return InferRequest(
        model_name=message.model_name,
        model_version=message.model_version,
        inputs=inputs,
        outputs=outputs,
        id=message.id,
        parameters=parameters_to_dict(message.parameters),
    )


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


def encode_response(response: InferResponse) -> Any:
    """A ModelInferResponse with every output's data in ``raw_output_contents``."""
    message = pb.ModelInferResponse(
        model_name=response.model_name,
        model_version=response.model_version,
        id=response.id,
    )
    for key, value in response.parameters.items():
        message.parameters[key].string_param = str(value)
    for name, array in response.outputs.items():
        dt = response.datatypes[name]
        message.outputs.add(name=name, datatype=dt.name, shape=array.shape)
        message.raw_output_contents.append(bytes(array_to_raw(array, dt)))
    return message
