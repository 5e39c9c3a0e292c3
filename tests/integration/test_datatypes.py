"""Every V2 datatype round-trips bit-exactly through an identity model, on every path."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from tritonclient.grpc import service_pb2, service_pb2_grpc

from server.datatypes import deserialize_bytes
from tests.integration.clients import MODES, client_for, infer
from tests.onnx_models import ONNX_TYPES

pytestmark = pytest.mark.integration


def random_tensor(datatype: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    if datatype == "BOOL":
        return rng.integers(0, 2, size=shape).astype(bool)
    if datatype == "BYTES":
        words = ["", "a", "héllo", "embedded\x00nul", "x" * 50]
        out = np.empty(shape, dtype=np.object_)
        out[...] = rng.choice(words, size=shape)
        return np.vectorize(str, otypes=[np.object_])(out) if out.size else out
    dtype = {"FP16": np.float16, "FP32": np.float32, "FP64": np.float64}.get(datatype)
    if dtype is not None:
        return rng.normal(size=shape).astype(dtype)
    dtype = np.dtype(datatype.lower())
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


def all_inputs(shape: tuple[int, ...], seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {f"IN_{t}": random_tensor(t, shape, rng) for t in ONNX_TYPES}


def check_outputs(result, inputs: dict[str, np.ndarray]) -> None:
    for name, sent in inputs.items():
        got = result.as_numpy("OUT_" + name[3:])
        if sent.dtype == np.object_:
            got = np.array(
                [v.decode() if isinstance(v, bytes) else v for v in got.reshape(-1)],
                dtype=np.object_,
            ).reshape(got.shape)
        else:
            assert got.dtype == sent.dtype, name
        assert got.shape == sent.shape, name
        np.testing.assert_array_equal(got, sent, err_msg=name)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", [(3, 5), (1, 1), (0, 4), (2, 0)])
def test_every_datatype_round_trips(server, mode, shape):
    inputs = all_inputs(shape)
    outputs = ["OUT_" + name[3:] for name in inputs]  # named, so JSON mode gets JSON outputs
    result = infer(mode, client_for(mode, server), "identity", inputs, outputs)
    check_outputs(result, inputs)


def test_uint64_extremes_over_json(server):
    inputs = all_inputs((1, 3))
    inputs["IN_UINT64"] = np.array([[0, 2**63, 2**64 - 1]], dtype=np.uint64)
    inputs["IN_INT64"] = np.array([[-(2**63), 0, 2**63 - 1]], dtype=np.int64)
    outputs = ["OUT_" + name[3:] for name in inputs]
    result = infer("http-json", client_for("http-json", server), "identity", inputs, outputs)
    check_outputs(result, inputs)


def typed_contents(array: np.ndarray, datatype: str) -> service_pb2.InferTensorContents:
    field = {
        "BOOL": "bool_contents",
        "UINT8": "uint_contents",
        "UINT16": "uint_contents",
        "UINT32": "uint_contents",
        "UINT64": "uint64_contents",
        "INT8": "int_contents",
        "INT16": "int_contents",
        "INT32": "int_contents",
        "INT64": "int64_contents",
        "FP32": "fp32_contents",
        "FP64": "fp64_contents",
        "BYTES": "bytes_contents",
    }[datatype]
    flat = array.reshape(-1).tolist()
    if datatype == "BYTES":
        flat = [v.encode() for v in flat]
    contents = service_pb2.InferTensorContents()
    getattr(contents, field).extend(flat)
    return contents


def test_grpc_typed_contents_round_trip(server):
    """KServe-style clients send typed contents; outputs still come back raw."""
    inputs = all_inputs((2, 3), seed=1)
    del inputs["IN_FP16"]  # FP16 has no typed field
    request = service_pb2.ModelInferRequest(model_name="identity_typed")
    for name, array in inputs.items():
        tensor = request.inputs.add(name=name, datatype=name[3:], shape=array.shape)
        tensor.contents.CopyFrom(typed_contents(array, name[3:]))
    with grpc.insecure_channel(server.grpc) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        response = stub.ModelInfer(request)
    assert len(response.raw_output_contents) == len(response.outputs) == len(inputs)
    assert not any(out.HasField("contents") for out in response.outputs)
    for out, raw in zip(response.outputs, response.raw_output_contents, strict=True):
        sent = inputs["IN_" + out.name[4:]]
        if out.datatype == "BYTES":
            got = deserialize_bytes(raw, sent.size, out.name).reshape(sent.shape)
        else:
            got = np.frombuffer(raw, dtype=sent.dtype).reshape(tuple(out.shape))
        np.testing.assert_array_equal(got, sent, err_msg=out.name)


def test_fp16_cannot_travel_typed(server):
    request = service_pb2.ModelInferRequest(model_name="identity")
    request.inputs.add(name="IN_FP16", datatype="FP16", shape=[1, 1])
    request.inputs[0].contents.fp32_contents.append(1.0)
    with grpc.insecure_channel(server.grpc) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as error:
            stub.ModelInfer(request)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "IN_FP16" in error.value.details() and "raw" in error.value.details()
