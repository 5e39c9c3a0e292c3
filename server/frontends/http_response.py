"""InferResponse -> an HTTP body: V2 JSON, with outputs as binary tensors where the client
asks for them (per output ``binary_data``, else ``binary_data_output``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from ..datatypes import DataType, array_to_raw
from ..errors import InvalidInput
from ..types import Array, InferResponse
from .http_codec import OutputChoice


def encode_response(response: InferResponse, choice: OutputChoice) -> tuple[bytes, int | None]:
    """The response body and, when it carries binary tensors, the JSON header's length."""
    fast = _binary_response(response, choice)
    return fast if fast is not None else encode_each_output(response, choice)


def encode_each_output(response: InferResponse, choice: OutputChoice) -> tuple[bytes, int | None]:
    """``encode_response`` for any response: each output binary or JSON as the client asks."""
    outputs: list[dict[str, Any]] = []
    tail: list[bytes | memoryview] = []
    for name, array in response.outputs.items():
        dt = response.datatypes[name]
        entry: dict[str, Any] = {"name": name, "datatype": dt.name, "shape": list(array.shape)}
        if _as_binary(name, array, dt, choice):
            raw = array_to_raw(array, dt)
            entry["parameters"] = {"binary_data_size": len(raw)}
            tail.append(raw)
        elif dt.name == "BYTES":
            entry["data"] = [
                v if isinstance(v, str) else bytes(v).decode() for v in array.reshape(-1)
            ]
        else:
            entry["data"] = np.ascontiguousarray(array.reshape(-1))
        outputs.append(entry)
    doc: dict[str, Any] = {
        "model_name": response.model_name,
        "model_version": response.model_version,
        "outputs": outputs,
    }
    if response.id:
        doc["id"] = response.id
    if response.parameters:
        doc["parameters"] = response.parameters
    header = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    if not any(len(raw) for raw in tail):
        return header, None
    return b"".join([header, *tail]), len(header)


_binary_headers: dict[tuple[Any, ...], bytes] = {}
MAX_CACHED_HEADERS = 4096


def _binary_response(
    response: InferResponse, choice: OutputChoice
) -> tuple[bytes, int | None] | None:
    """The body when every output goes binary and has a fixed-size type (the common case for
    clients of the binary extension): the JSON header, but for the id, is the same for the
    same model, outputs and shapes, so it is written once and kept. None: not that case."""
    if response.parameters:
        return None
    key: list[Any] = [response.model_name, response.model_version]
    tail: list[bytes | memoryview] = []
    size = 0
    for name, array in response.outputs.items():
        dt = response.datatypes[name]
        if dt.name == "BYTES" or not choice.wants_binary(name):
            return None
        raw = array_to_raw(array, dt)
        size += len(raw)
        tail.append(raw)
        key += (name, dt.name, array.shape)
    if not size:
        return None
    cache_key = tuple(key)
    head = _binary_headers.get(cache_key)
    if head is None:
        if len(_binary_headers) >= MAX_CACHED_HEADERS:
            _binary_headers.clear()
        outputs = [
            {
                "name": name,
                "datatype": response.datatypes[name].name,
                "shape": list(array.shape),
                "parameters": {"binary_data_size": len(raw)},
            }
            for (name, array), raw in zip(response.outputs.items(), tail, strict=True)
        ]
        doc = {
            "model_name": response.model_name,
            "model_version": response.model_version,
            "outputs": outputs,
        }
        head = _binary_headers[cache_key] = orjson.dumps(doc)[:-1]  # without its closing "}"
    if response.id:
        header = b"".join((head, b',"id":', orjson.dumps(response.id), b"}"))
    else:
        header = head + b"}"
    return b"".join([header, *tail]), len(header)


def _as_binary(name: str, array: Array, dt: DataType, choice: OutputChoice) -> bool:
    wish = choice.wants_binary(name)
    if wish:
        return True
    if dt.dtype.kind != "f" or bool(np.isfinite(array).all()):
        return False
    if wish is None and choice.uses_binary:
        return True  # JSON cannot carry NaN or Inf; this client reads binary tensors
    raise InvalidInput(
        f'output "{name}" holds NaN or Inf, which JSON cannot carry: '
        "request it with binary_data true"
    )
