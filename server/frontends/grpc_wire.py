"""ModelInferResponse bytes written directly in protobuf's wire format.

Building a ModelInferResponse message, filling it and serializing it costs more than the rest
of a small request's bookkeeping. The bytes of a response are mostly the same from one request
to the next: model name and version, and each output's name, datatype and shape. Those parts
are encoded once and kept; a response is then the cached parts, the request's id and one
length-prefixed field per output tensor, joined. Fields come in field-number order, as
protobuf writes them, so the bytes are the ones ``SerializeToString`` would give.
"""

from __future__ import annotations

from typing import Any

from .._proto import grpc_service_pb2 as pb
from ..datatypes import array_to_raw
from ..types import InferResponse

MAX_CACHED = 4096  # distinct (names, datatypes, shapes) kept before the cache starts over

# ModelInferResponse: model_name 1, model_version 2, id 3, parameters 4, outputs 5,
# raw_output_contents 6; InferOutputTensor: name 1, datatype 2, shape 3 (packed);
# ModelStreamInferResponse: error_message 1, infer_response 2. Tags are (field << 3) | 2.
_MODEL_NAME, _MODEL_VERSION, _ID, _OUTPUT, _RAW = b"\x0a", b"\x12", b"\x1a", b"\x2a", b"\x32"
_NAME, _DATATYPE, _SHAPE = b"\x0a", b"\x12", b"\x1a"
_STREAM_RESPONSE = b"\x12"
_SMALL = [bytes([n]) for n in range(128)]

_heads: dict[tuple[str, str], bytes] = {}
_output_parts: dict[tuple[Any, ...], bytes] = {}


def varint(value: int) -> bytes:
    """A non-negative integer in protobuf's base-128 varint encoding."""
    if value < 128:
        return _SMALL[value]
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: bytes, data: bytes) -> bytes:
    return tag + varint(len(data)) + data if data else b""


def _head(model_name: str, model_version: str) -> bytes:
    key = (model_name, model_version)
    head = _heads.get(key)
    if head is None:
        if len(_heads) >= MAX_CACHED:
            _heads.clear()
        head = _heads[key] = _field(_MODEL_NAME, model_name.encode()) + _field(
            _MODEL_VERSION, model_version.encode()
        )
    return head


def _outputs(key: tuple[Any, ...]) -> bytes:
    """The InferOutputTensor entries of ``key``: (name, datatype, shape) for each output."""
    part = _output_parts.get(key)
    if part is None:
        if len(_output_parts) >= MAX_CACHED:
            _output_parts.clear()
        entries = []
        for i in range(0, len(key), 3):
            name, datatype, shape = key[i : i + 3]
            dims = b"".join(varint(d) for d in shape)
            body = (
                _field(_NAME, name.encode())
                + _field(_DATATYPE, datatype.encode())
                + _field(_SHAPE, dims)
            )
            entries.append(_OUTPUT + varint(len(body)) + body)
        part = _output_parts[key] = b"".join(entries)
    return part


def encode_response(response: InferResponse) -> bytes:
    """The serialized ModelInferResponse of ``response``, outputs in raw_output_contents."""
    parts: list[bytes | memoryview] = [_head(response.model_name, response.model_version)]
    if response.id:
        parts.append(_field(_ID, response.id.encode()))
    if response.parameters:  # rare (fallback answers): protobuf writes the map entries
        message = pb.ModelInferResponse()
        for name, value in response.parameters.items():
            message.parameters[name].string_param = str(value)
        parts.append(message.SerializeToString())
    key: list[Any] = []
    contents: list[bytes | memoryview] = []
    datatypes = response.datatypes
    for name, array in response.outputs.items():
        dt = datatypes[name]
        key += (name, dt.name, array.shape)
        raw = array_to_raw(array, dt)
        contents += (_RAW + varint(len(raw)), raw)
    parts.append(_outputs(tuple(key)))
    return b"".join(parts + contents)


def stream_response(infer_response: bytes) -> bytes:
    """A ModelStreamInferResponse carrying the serialized ``infer_response``."""
    return _STREAM_RESPONSE + varint(len(infer_response)) + infer_response
