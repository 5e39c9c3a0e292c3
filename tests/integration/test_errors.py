"""Bad requests get clear errors: the status code of the protocol and a message naming the
model, the input and the problem; never a 500, a hang or a crash."""

from __future__ import annotations

import gzip
import socket
import zlib

import grpc
import numpy as np
import orjson
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from tests.integration.raw_http import post_json, request

pytestmark = pytest.mark.integration

ADD_SUB = "/v2/models/add_sub/infer"


def fp32_input(name: str, shape: list[int], data: list[float] | None = None) -> dict:
    count = int(np.prod(shape))
    return {
        "name": name,
        "datatype": "FP32",
        "shape": shape,
        "data": data if data is not None else [1.0] * count,
    }


def good_inputs(rows: int = 1) -> list[dict]:
    return [fp32_input("INPUT0", [rows, 16]), fp32_input("INPUT1", [rows, 16])]


@pytest.fixture
def stub(server):
    with grpc.insecure_channel(server.grpc) as channel:
        yield service_pb2_grpc.GRPCInferenceServiceStub(channel)


def grpc_request(inputs: dict[str, np.ndarray], model: str = "add_sub", **kwargs):
    message = service_pb2.ModelInferRequest(model_name=model, **kwargs)
    for name, array in inputs.items():
        message.inputs.add(name=name, datatype="FP32", shape=array.shape)
        message.raw_input_contents.append(array.tobytes())
    return message


def grpc_error(stub, message) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as error:
        stub.ModelInfer(message)
    return error.value


ONE = np.ones((1, 16), dtype=np.float32)

# (name, JSON inputs, gRPC inputs, words the message must contain)
INVALID = [
    ("missing input", [fp32_input("INPUT0", [1, 16])], {"INPUT0": ONE}, ["INPUT1", "missing"]),
    (
        "unknown input",
        [*good_inputs(), fp32_input("EXTRA", [1, 16])],
        {"INPUT0": ONE, "INPUT1": ONE, "EXTRA": ONE},
        ["EXTRA", "unknown"],
    ),
    (
        "wrong rank",
        [fp32_input("INPUT0", [16]), fp32_input("INPUT1", [1, 16])],
        {"INPUT0": np.ones(16, np.float32), "INPUT1": ONE},
        ["INPUT0", "rank"],
    ),
    (
        "wrong dim",
        [fp32_input("INPUT0", [1, 15]), fp32_input("INPUT1", [1, 16])],
        {"INPUT0": np.ones((1, 15), np.float32), "INPUT1": ONE},
        ["INPUT0", "[-1, 16]", "[1, 15]"],
    ),
    (
        "batch over max",
        good_inputs(rows=9),
        {"INPUT0": np.ones((9, 16), np.float32), "INPUT1": np.ones((9, 16), np.float32)},
        ["INPUT0", "max_batch_size 8"],
    ),
]


@pytest.mark.parametrize("case", INVALID, ids=[c[0] for c in INVALID])
def test_invalid_input_http(server, case):
    _, inputs, _, words = case
    status, reply = post_json(server, ADD_SUB, {"inputs": inputs})
    assert status == 400
    for word in words:
        assert word in reply["error"]


@pytest.mark.parametrize("case", INVALID, ids=[c[0] for c in INVALID])
def test_invalid_input_grpc(stub, case):
    _, _, inputs, words = case
    error = grpc_error(stub, grpc_request(inputs))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    for word in words:
        assert word in error.details()


def test_wrong_datatype_both_protocols(server, stub):
    inputs = good_inputs()
    inputs[1] = {**inputs[1], "datatype": "FP64"}
    status, reply = post_json(server, ADD_SUB, {"inputs": inputs})
    assert status == 400 and 'input "INPUT1": expected FP32, got FP64' in reply["error"]
    message = grpc_request({"INPUT0": ONE})
    message.inputs.add(name="INPUT1", datatype="FP64", shape=[1, 16])
    message.raw_input_contents.append(np.ones((1, 16)).tobytes())
    error = grpc_error(stub, message)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert 'input "INPUT1": expected FP32, got FP64' in error.details()


def test_element_count_mismatch_json(server):
    inputs = [fp32_input("INPUT0", [1, 16], [1.0] * 15), fp32_input("INPUT1", [1, 16])]
    status, reply = post_json(server, ADD_SUB, {"inputs": inputs})
    assert status == 400 and "INPUT0" in reply["error"] and "16" in reply["error"]


def test_raw_byte_length_mismatch_grpc(stub):
    message = grpc_request({"INPUT0": ONE, "INPUT1": ONE})
    message.raw_input_contents[1] = ONE.tobytes()[:-4]
    error = grpc_error(stub, message)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "INPUT1" in error.details() and "64" in error.details() and "60" in error.details()


def test_binary_size_mismatch_http(server):
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "INPUT0",
                    "datatype": "FP32",
                    "shape": [1, 16],
                    "parameters": {"binary_data_size": 60},
                },
                fp32_input("INPUT1", [1, 16]),
            ]
        }
    )
    status, _, body = request(
        server,
        "POST",
        ADD_SUB,
        header + ONE.tobytes()[:60],
        {"Inference-Header-Content-Length": str(len(header))},
    )
    assert status == 400 and b"INPUT0" in body and b"64" in body and b"60" in body


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'{"inputs": 3}', b""])
def test_malformed_json(server, body):
    status, headers, reply = request(server, "POST", ADD_SUB, body)
    assert status == 400
    assert headers["content-type"] == "application/json" and "error" in orjson.loads(reply)


def test_malformed_protobuf(server):
    with grpc.insecure_channel(server.grpc) as channel:
        call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        with pytest.raises(grpc.RpcError) as error:
            call(b"\xff\xff\xff\xff not a protobuf")
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "ModelInferRequest" in error.value.details()


@pytest.mark.parametrize(
    "path",
    [
        "/v2/models/nope",
        "/v2/models/nope/config",
        "/v2/models/add_sub/versions/3",
    ],
)
def test_unknown_model_or_version_http(server, path):
    status, _, body = request(server, "GET", path)
    assert status == 404
    assert b"nope" in body or b"version 3" in body


def test_unknown_model_infer_both_protocols(server, stub):
    status, reply = post_json(server, "/v2/models/nope/infer", {"inputs": good_inputs()})
    assert status == 404 and '"nope"' in reply["error"]
    error = grpc_error(stub, grpc_request({"INPUT0": ONE, "INPUT1": ONE}, model="nope"))
    assert error.code() == grpc.StatusCode.NOT_FOUND and '"nope"' in error.details()
    error = grpc_error(stub, grpc_request({"INPUT0": ONE, "INPUT1": ONE}, model_version="7"))
    assert error.code() == grpc.StatusCode.NOT_FOUND and "version 7" in error.details()
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelMetadata(service_pb2.ModelMetadataRequest(name="nope"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_non_numeric_version(server, stub):
    status, _ = post_json(server, "/v2/models/add_sub/versions/abc/infer", {"inputs": []})
    assert status == 400
    error = grpc_error(stub, grpc_request({"INPUT0": ONE}, model_version="abc"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_tritonclient_sees_the_errors(server):
    """The stock client surfaces our status and message unchanged."""
    for module, url in ((httpclient, server.http), (grpcclient, server.grpc)):
        client = module.InferenceServerClient(url)
        item = module.InferInput("INPUT0", [1, 16], "FP32")
        item.set_data_from_numpy(ONE)
        with pytest.raises(InferenceServerException) as error:
            client.infer("add_sub", [item])
        assert "INPUT1" in error.value.message()
        assert error.value.status() in ("400", "StatusCode.INVALID_ARGUMENT")


def test_body_over_limit_is_413_without_reading_it(server):
    """A declared length over the limit is refused before the body is read."""
    host, port = server.http.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(
            f"POST {ADD_SUB} HTTP/1.1\r\nHost: x\r\nContent-Length: {65 * 2**20}\r\n\r\n".encode()
        )
        reply = b""
        while b"}" not in reply:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 413") and b"limit" in reply


def test_grpc_message_over_limit(server):
    big = np.zeros((1, 17 * 2**20), dtype=np.float32)  # 68 MiB > 64 MiB
    with grpc.insecure_channel(
        server.grpc, options=[("grpc.max_send_message_length", 2**31 - 1)]
    ) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        error = grpc_error(stub, grpc_request({"INPUT0": big, "INPUT1": big}))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_request_body(server, encoding):
    body = orjson.dumps({"inputs": good_inputs()})
    packed = gzip.compress(body) if encoding == "gzip" else zlib.compress(body)
    status, _, reply = request(server, "POST", ADD_SUB, packed, {"Content-Encoding": encoding})
    assert status == 200 and orjson.loads(reply)["outputs"][0]["data"] == [2.0] * 16


def test_zip_bomb_is_refused(server):
    packed = gzip.compress(b" " * (65 * 2**20))
    status, _, reply = request(server, "POST", ADD_SUB, packed, {"Content-Encoding": "gzip"})
    assert status == 413 and b"limit" in reply


class TestNonFiniteOutputs:
    """JSON cannot carry NaN or Inf: binary where the client reads it, else an error."""

    X = np.array([[0.0, -0.0, np.nan, 2.0]], dtype=np.float32)
    EXPECTED = np.array([[np.inf, -np.inf, np.nan, 0.5]], dtype=np.float32)

    def test_json_request_gets_error_naming_output(self, server):
        doc = {
            "inputs": [
                {"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [0.0, -0.0, 1.0, 2.0]}
            ]
        }
        status, reply = post_json(server, "/v2/models/reciprocal/infer", doc)
        assert status == 400 and 'output "y"' in reply["error"]

    def test_explicit_json_output_gets_error(self, server):
        client = httpclient.InferenceServerClient(server.http)
        item = httpclient.InferInput("x", [1, 4], "FP32")
        item.set_data_from_numpy(self.X, binary_data=True)
        output = httpclient.InferRequestedOutput("y", binary_data=False)
        with pytest.raises(InferenceServerException) as error:
            client.infer("reciprocal", [item], outputs=[output])
        assert 'output "y"' in error.value.message()

    @pytest.mark.parametrize("module", [httpclient, grpcclient])
    def test_binary_clients_get_exact_values(self, server, module):
        client = module.InferenceServerClient(server.http if module is httpclient else server.grpc)
        item = module.InferInput("x", [1, 4], "FP32")
        item.set_data_from_numpy(self.X)
        got = client.infer("reciprocal", [item]).as_numpy("y")
        np.testing.assert_array_equal(got, self.EXPECTED)
        assert np.signbit(got[0, 1])
