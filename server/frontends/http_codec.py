"""HTTP bodies <-> InferRequest / InferResponse: V2 JSON plus the binary tensor extension.

A body is JSON, optionally followed by raw tensors whose JSON part is
``Inference-Header-Content-Length`` bytes long. Outputs go back binary when the request
asks for it (per output ``binary_data``, else ``binary_data_output``), otherwise as JSON.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from math import prod
from typing import Any

import numpy as np
import orjson

from ..datatypes import (
    DATATYPES,
    DataType,
    array_from_raw,
    array_to_raw,
    checked_shape,
    datatype,
)
from ..datatypes import element_count as count_of
from ..errors import InvalidInput, PayloadTooLarge
from ..types import Array, InferRequest, InferResponse
from ..validation import check_unique

MAX_JSON_DEPTH = 100
JSON_FLOAT_LIMITS = {"FP16": np.float16, "FP32": np.float32}


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


def _flatten_strings(data: Any, tensor: str, depth: int = 0) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    if depth >= MAX_JSON_DEPTH:
        raise InvalidInput(f"{tensor}: data nested deeper than {MAX_JSON_DEPTH}")
    flat: list[Any] = []
    for item in data:
        flat.extend(_flatten_strings(item, tensor, depth + 1) if isinstance(item, list) else [item])
    return flat


def array_from_json(data: Any, dt: DataType, shape: tuple[int, ...], tensor: str) -> Array:
    """A JSON ``data`` array (flat or nested) as an array of ``shape``, range-checked."""
    count = count_of(shape, tensor)
    if dt.name == "BYTES":
        flat = _flatten_strings(data, tensor)
        if not all(isinstance(v, str) for v in flat):
            raise InvalidInput(f"{tensor}: BYTES data must be JSON strings")
        _check_count(len(flat), count, shape, tensor)
        out = np.empty(count, dtype=np.object_)
        out[:] = flat
        return out.reshape(shape)
    try:
        values = np.asarray(data)
    except (ValueError, TypeError, OverflowError):
        raise InvalidInput(f"{tensor}: data is not a regular array of numbers") from None
    if values.ndim > MAX_JSON_DEPTH:
        raise InvalidInput(f"{tensor}: data nested deeper than {MAX_JSON_DEPTH}")
    _check_count(values.size, count, shape, tensor)
    if count == 0:
        return np.zeros(shape, dtype=dt.dtype)
    kind = values.dtype.kind
    if dt.name == "BOOL":
        if kind != "b":
            raise InvalidInput(f"{tensor}: BOOL data must be true or false")
    elif dt.dtype.kind in "iu":
        if kind not in "iu":
            values = _exact_integers(data, values.shape, dt, tensor)
        info = np.iinfo(dt.dtype)
        low, high = int(values.min()), int(values.max())
        if low < info.min or high > info.max:
            bad = low if low < info.min else high
            raise InvalidInput(f"{tensor}: value {bad} is out of range for {dt.name}")
    elif kind not in "iuf" or kind == "b":
        raise InvalidInput(f"{tensor}: {dt.name} data must be numbers")
    with np.errstate(over="ignore"):  # overflow becomes Inf, refused just below
        result = values.astype(dt.dtype).reshape(shape)
    if dt.name in JSON_FLOAT_LIMITS and np.isinf(result).any():
        raise InvalidInput(f"{tensor}: a value is out of range for {dt.name}")
    return result


def _exact_integers(data: Any, shape: tuple[int, ...], dt: DataType, tensor: str) -> Array:
    """Integers numpy widened to float (e.g. UINT64 values over 2**63), kept exact."""
    flat = np.asarray(data, dtype=np.object_).reshape(-1)
    if not all(type(v) is int for v in flat):
        raise InvalidInput(f"{tensor}: {dt.name} data must be integers")
    low, high = min(flat, default=0), max(flat, default=0)
    info = np.iinfo(dt.dtype)
    if low < info.min or high > info.max:
        bad = low if low < info.min else high
        raise InvalidInput(f"{tensor}: value {bad} is out of range for {dt.name}")
    return np.array(flat.tolist(), dtype=dt.dtype).reshape(shape)


def _check_count(got: int, want: int, shape: tuple[int, ...], tensor: str) -> None:
    if got != want:
        raise InvalidInput(f"{tensor}: shape {list(shape)} needs {want} elements, data has {got}")


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
