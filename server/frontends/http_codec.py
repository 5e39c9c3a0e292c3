"""HTTP request bodies -> InferRequest: V2 JSON plus the binary tensor extension.

A body is JSON, optionally followed by raw tensors whose JSON part is
``Inference-Header-Content-Length`` bytes long. JSON ``data`` becomes arrays in
``json_tensors``; answers are written by ``http_response``, binary or JSON as the request
asks (``OutputChoice``).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from math import prod
from typing import Any

import numpy as np
import orjson

from ..datatypes import DATATYPES, array_from_raw, checked_shape, datatype
from ..errors import InvalidInput, PayloadTooLarge
from ..types import Array, InferRequest
from ..validation import check_unique
from .json_tensors import array_from_json


@dataclass(slots=True)
class OutputChoice:
    """How the client wants outputs encoded: per-output and request-level ``binary`` wishes."""

    per_output: dict[str, bool | None] = field(default_factory=dict)
    request_level: bool | None = None
    uses_binary: bool = False  # the request itself used the binary extension

    def wants_binary(self, name: str) -> bool | None:
        wish = self.per_output.get(name)
        return self.request_level if wish is None else wish


def decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """Undo ``Content-Encoding`` gzip or deflate, refusing output over ``limit`` bytes."""
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise InvalidInput(f'unsupported Content-Encoding "{encoding}" (gzip, deflate)')
    inflater = zlib.decompressobj(zlib.MAX_WBITS | (16 if encoding == "gzip" else 0))
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as error:
        raise InvalidInput(f"body is not valid {encoding} data: {error}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"decompressed body exceeds the {limit}-byte limit")
    if not inflater.eof:
        raise InvalidInput(f"body is truncated {encoding} data")
    return out


def _is_decimal(text: str) -> bool:
    return text.isascii() and text.isdigit()


def decode_request(
    body: bytes, header_length: str | None, model: str, version: str
) -> tuple[InferRequest, OutputChoice]:
    """Parse an infer body; raises InvalidInput naming the tensor and the problem."""
    json_end = len(body)
    if header_length is not None:
        if not _is_decimal(header_length) or int(header_length) > len(body):
            raise InvalidInput(
                f'Inference-Header-Content-Length "{header_length[:32]}" must be an integer '
                f"from 0 to the body length {len(body)}"
            )
        json_end = int(header_length)
    try:
        doc = orjson.loads(memoryview(body)[:json_end])
    except orjson.JSONDecodeError as error:
        raise InvalidInput(f"malformed JSON: {error}") from None
    if not isinstance(doc, dict):
        raise InvalidInput("request body must be a JSON object")
    tail = memoryview(body)[json_end:]
    fast = _binary_inputs(doc.get("inputs"), tail)
    inputs, offset = fast or _decode_inputs(doc.get("inputs"), tail, model)
    if offset != len(tail):
        raise InvalidInput(
            f"unexpected additional input data: {len(tail) - offset} bytes after the inputs"
        )
    parameters = _object(doc.get("parameters"), "request parameters")
    choice = OutputChoice(
        request_level=_optional_bool(parameters.get("binary_data_output"), "binary_data_output"),
        uses_binary=header_length is not None,
    )
    outputs = _decode_outputs(doc.get("outputs"), choice)
    request_id = doc.get("id", "")
    if not isinstance(request_id, str):
        raise InvalidInput('"id" must be a string')
    request = InferRequest(model, version, inputs, outputs, request_id, parameters)
    return request, choice


def _object(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} must be a JSON object")
    return value


def _optional_bool(value: Any, what: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise InvalidInput(f'"{what}" must be true or false')


def _binary_inputs(items: Any, tail: memoryview) -> tuple[dict[str, Array], int] | None:
    """The inputs when every one is a well-formed binary tensor of a fixed-size type (the
    common case, decoded with few checks); None sends the request through ``_decode_inputs``,
    which checks everything and names what is wrong."""
    if type(items) is not list:
        return None
    inputs: dict[str, Array] = {}
    offset = 0
    for item in items:
        if type(item) is not dict or "data" in item:
            return None
        name, datatype, shape = item.get("name"), item.get("datatype"), item.get("shape")
        params = item.get("parameters")
        dt = DATATYPES.get(datatype) if type(datatype) is str else None
        if (
            type(name) is not str
            or name in inputs
            or dt is None
            or not dt.itemsize
            or type(shape) is not list
            or not shape
            or type(params) is not dict
            or len(params) != 1
        ):
            return None
        size = params.get("binary_data_size")
        for dim in shape:
            if type(dim) is not int or dim <= 0:
                return None
        if type(size) is not int or size != prod(shape) * dt.itemsize:
            return None
        end = offset + size
        if end > len(tail):
            return None
        inputs[name] = np.frombuffer(tail[offset:end], dt.dtype).reshape(shape)
        offset = end
    return inputs, offset


def _decode_inputs(items: Any, tail: memoryview, model: str) -> tuple[dict[str, Array], int]:
    if not isinstance(items, list):
        raise InvalidInput('"inputs" must be a JSON array of input tensors')
    inputs: dict[str, Array] = {}
    offset = 0
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise InvalidInput('each entry of "inputs" must be an object with a "name"')
        name = item["name"]
        tensor = f'model "{model}": input "{name}"'
        if name in inputs:
            raise InvalidInput(f"{tensor} appears more than once in the request")
        dt = datatype(item.get("datatype"), tensor)
        shape = checked_shape(item.get("shape"), tensor)
        params = _object(item.get("parameters"), f"{tensor} parameters")
        if "shared_memory_region" in params:
            raise InvalidInput(f"{tensor}: shared memory is not supported")
        size = params.get("binary_data_size")
        has_data = "data" in item
        if has_data == (size is not None):
            raise InvalidInput(
                f'{tensor}: set exactly one of "data" or parameters.binary_data_size'
            )
        if has_data:
            inputs[name] = array_from_json(item["data"], dt, shape, tensor)
            continue
        if type(size) is not int or size < 0:
            raise InvalidInput(f"{tensor}: binary_data_size must be a non-negative integer")
        if offset + size > len(tail):
            raise InvalidInput(
                f"unexpected size for {tensor}: expecting {size} bytes, "
                f"{len(tail) - offset} remain in the body"
            )
        inputs[name] = array_from_raw(tail[offset : offset + size], dt, shape, tensor)
        offset += size
    return inputs, offset


def _decode_outputs(items: Any, choice: OutputChoice) -> list[str] | None:
    if items is None:
        return None
    if not isinstance(items, list):
        raise InvalidInput('"outputs" must be a JSON array')
    names: list[str] = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise InvalidInput('each entry of "outputs" must be an object with a "name"')
        name = item["name"]
        params = _object(item.get("parameters"), f'output "{name}" parameters')
        if "classification" in params:
            raise InvalidInput(f'output "{name}": classification is not supported')
        if "shared_memory_region" in params:
            raise InvalidInput(f'output "{name}": shared memory is not supported')
        choice.per_output[name] = _optional_bool(params.get("binary_data"), "binary_data")
        names.append(name)
    check_unique(names, "output")
    return names
