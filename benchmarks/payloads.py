"""V2 request and response payloads for the benchmark models, built once before a run.

Requests look like tritonclient's: gRPC ``ModelInferRequest`` with ``raw_input_contents``;
HTTP JSON (flat ``data``) or the binary tensor extension (``binary_data_size`` plus the raw
tail, ``binary_data_output`` true). Responses are what a real server returns for the model,
for the floor servers to send back without doing any work.

An output spec reads ``NAME:DATATYPE:DIMS`` with DIMS comma-separated and ``-1`` for the
request's row count, e.g. ``y:FP32:-1,16`` or ``label:INT64:-1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import orjson

from server._proto import grpc_service_pb2 as pb

from .models import SIGNATURES

DTYPES = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}
BINARY_HEADER = "Inference-Header-Content-Length"
GRPC_SERVICE = "inference.GRPCInferenceService"
INFER_PATH = f"/{GRPC_SERVICE}/ModelInfer"
STREAM_PATH = f"/{GRPC_SERVICE}/ModelStreamInfer"
ID_FIELD = 3  # ModelInferRequest.id and ModelInferResponse.id
STREAM_RESPONSE_FIELD = 2  # ModelStreamInferResponse.infer_response


@dataclass(frozen=True)
class OutputSpec:
    """One output a floor server returns; ``-1`` dims take the request's row count."""

    name: str
    datatype: str
    dims: tuple[int, ...]

    def shape(self, rows: int) -> list[int]:
        return [rows if d == -1 else d for d in self.dims]

    def __str__(self) -> str:
        return f"{self.name}:{self.datatype}:{','.join(map(str, self.dims))}"


def parse_output_spec(text: str) -> OutputSpec:
    """``NAME:DATATYPE:DIMS`` as an OutputSpec; raises ValueError when malformed."""
    name, datatype, dims = text.split(":")
    if datatype not in DTYPES:
        raise ValueError(f"{text!r}: datatype must be one of {', '.join(DTYPES)}")
    return OutputSpec(name, datatype, tuple(int(d) for d in dims.split(",") if d))


def output_specs(model: str) -> list[OutputSpec]:
    """The outputs of benchmark model ``model``, batch dim as ``-1``."""
    return [OutputSpec(t.name, t.datatype, (-1, *t.dims)) for t in SIGNATURES[model].outputs]


def _inputs(model: str, rows: int, seed: int) -> list[tuple[str, str, list[int], np.ndarray]]:
    rng = np.random.default_rng(seed)
    out: list[tuple[str, str, list[int], np.ndarray]] = []
    for t in SIGNATURES[model].inputs:
        shape = [rows, *t.dims]
        out.append(
            (t.name, t.datatype, shape, rng.standard_normal(shape).astype(DTYPES[t.datatype]))
        )
    return out


def grpc_request(model: str, rows: int, seed: int = 0) -> bytes:
    """A serialized ModelInferRequest for ``rows`` rows of random data."""
    message = pb.ModelInferRequest(model_name=model)
    for name, datatype, shape, array in _inputs(model, rows, seed):
        message.inputs.add(name=name, datatype=datatype, shape=shape)
        message.raw_input_contents.append(array.tobytes())
    data: bytes = message.SerializeToString()
    return data


def http_request(
    model: str, rows: int, binary: bool, seed: int = 0
) -> tuple[bytes, dict[str, str]]:
    """An infer body and its extra headers, JSON or binary extension."""
    tail: list[bytes] = []
    entries = [
        _http_tensor(name, datatype, shape, array, binary, tail)
        for name, datatype, shape, array in _inputs(model, rows, seed)
    ]
    doc: dict[str, object] = {"inputs": entries}
    if not binary:
        return orjson.dumps(doc), {}
    doc["parameters"] = {"binary_data_output": True}
    header = orjson.dumps(doc)
    return header + b"".join(tail), {BINARY_HEADER: str(len(header))}


def _http_tensor(
    name: str, datatype: str, shape: list[int], array: np.ndarray, binary: bool, tail: list[bytes]
) -> dict[str, object]:
    """One tensor of an HTTP body: data inline as JSON, or its bytes appended to ``tail``."""
    entry: dict[str, object] = {"name": name, "datatype": datatype, "shape": shape}
    if binary:
        entry["parameters"] = {"binary_data_size": array.nbytes}
        tail.append(array.tobytes())
    else:
        entry["data"] = array.reshape(-1).tolist()
    return entry


def grpc_response(model: str, outputs: list[OutputSpec], rows: int) -> bytes:
    """A serialized ModelInferResponse of zero-valued outputs for ``rows`` rows."""
    message = pb.ModelInferResponse(model_name=model, model_version="1")
    for spec in outputs:
        shape = spec.shape(rows)
        message.outputs.add(name=spec.name, datatype=spec.datatype, shape=shape)
        message.raw_output_contents.append(np.zeros(shape, DTYPES[spec.datatype]).tobytes())
    data: bytes = message.SerializeToString()
    return data


def http_response(
    model: str, outputs: list[OutputSpec], rows: int, binary: bool
) -> tuple[bytes, dict[str, str]]:
    """A response body of zero-valued outputs and its headers, JSON or binary extension."""
    tail: list[bytes] = []
    entries = []
    for spec in outputs:
        shape = spec.shape(rows)
        array: np.ndarray = np.zeros(shape, DTYPES[spec.datatype])
        entries.append(_http_tensor(spec.name, spec.datatype, shape, array, binary, tail))
    header = orjson.dumps({"model_name": model, "model_version": "1", "outputs": entries})
    if not binary:
        return header, {"content-type": "application/json"}
    headers = {"content-type": "application/octet-stream", BINARY_HEADER: str(len(header))}
    return header + b"".join(tail), headers


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def length_delimited(field: int, data: bytes) -> bytes:
    """The protobuf wire encoding of bytes/string/message field ``field`` holding ``data``."""
    return _varint(field << 3 | 2) + _varint(len(data)) + data


def with_id(message: bytes, request_id: bytes) -> bytes:
    """A serialized ModelInferRequest/Response with its ``id`` set: protobuf parsers take
    the last value of a repeated scalar field, so appending the field is enough."""
    return message + length_delimited(ID_FIELD, request_id)


def stream_response_with_id(stream_response: bytes, request_id: bytes) -> bytes:
    """A serialized ModelStreamInferResponse whose ``infer_response.id`` is ``request_id``:
    a message field that appears twice is merged, so this appends a second infer_response
    holding only the id."""
    return stream_response + length_delimited(
        STREAM_RESPONSE_FIELD, length_delimited(ID_FIELD, request_id)
    )
