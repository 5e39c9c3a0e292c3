"""Garbage at both ports: malformed protobuf and JSON, huge and negative shapes, wrong byte
lengths, random bytes. Never a 500, never a crash; the server stays healthy, its memory bounded.
"""

from __future__ import annotations

import json
import random
import socket
import struct

import grpc
import numpy as np
import orjson
import pytest
from tritonclient.grpc import service_pb2

from tests.integration.raw_http import request

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SEED = 20261125
ROUNDS = 300


def dumps(doc: object) -> bytes:
    return json.dumps(doc).encode()  # stdlib: orjson refuses integers past 64 bits


def json_cases(rng: random.Random) -> list[bytes]:
    good = {"name": "INPUT0", "datatype": "FP32", "shape": [1, 16], "data": [1.0] * 16}
    shapes = [
        [-1, 16],
        [2**62, 2**62],
        [2**4, 2**60 + 2],
        [0, 2**63],
        [1.5, 16],
        ["a"],
        None,
        [1, 16, 1],
        [],
        [10**30],
    ]
    cases = [
        rng.randbytes(rng.randint(0, 200)),
        b"{" * rng.randint(1, 5000),
        b"[" * 100000 + b"]" * 100000,
        dumps({"inputs": [dict(good, shape=rng.choice(shapes))] * 2}),
        dumps({"inputs": [dict(good, datatype=rng.choice(["FP99", "", 7, None, "BF16"]))]}),
        dumps(
            {
                "inputs": [
                    dict(
                        good,
                        data=rng.choice(
                            [
                                [[1.0] * 16],
                                "x",
                                [None] * 16,
                                [[1, [2]]],
                                [1e39] * 16,
                            ]
                        ),
                    )
                ]
                * 2
            }
        ),
        dumps({"inputs": rng.choice([None, {}, 3, "x", [[]], [{"name": 5}]])}),
        dumps({"inputs": [good, good], "outputs": rng.choice([3, [{}], [{"name": "x"}]])}),
        dumps(
            {
                "inputs": [good, dict(good, name="INPUT1")],
                "parameters": rng.choice([3, {"timeout": -5}, {"sequence_id": 1}]),
            }
        ),
    ]
    return cases


def headers_cases(rng: random.Random) -> list[dict[str, str]]:
    return [
        {},
        {"Inference-Header-Content-Length": rng.choice(["-1", "abc", "99999999999", "²", "1"])},
        {"Content-Encoding": rng.choice(["gzip", "deflate", "br", "x"])},
    ]


def test_http_garbage_never_500(server):
    rng = random.Random(SEED)
    statuses: dict[int, int] = {}
    before = server.rss_kb()
    for _ in range(ROUNDS):
        body = rng.choice(json_cases(rng))
        headers = rng.choice(headers_cases(rng))
        path = rng.choice(
            [
                "/v2/models/add_sub/infer",
                "/v2/models/add_sub/versions/1/infer",
                "/v2/models/identity/infer",
                "/v2/models/%00/infer",
            ]
        )
        status, _, reply = request(server, "POST", path, body, headers)
        statuses[status] = statuses.get(status, 0) + 1
        assert status < 500, (status, reply[:200])
        assert "error" in orjson.loads(reply)
    assert set(statuses) <= {400, 404, 413, 501}
    assert request(server, "GET", "/v2/health/ready")[0] == 200
    assert server.rss_kb() - before < 200_000  # KiB: bounded, no leak per request


def test_raw_socket_garbage_at_both_ports(server):
    rng = random.Random(SEED + 1)
    for address in (server.http, server.grpc):
        host, port = address.rsplit(":", 1)
        for _ in range(50):
            with socket.create_connection((host, int(port)), timeout=5) as sock:
                try:
                    sock.sendall(rng.randbytes(rng.randint(1, 4096)))
                    sock.settimeout(1)
                    sock.recv(4096)
                except (TimeoutError, ConnectionError):
                    pass
    assert request(server, "GET", "/v2/health/ready")[0] == 200


def grpc_cases(rng: random.Random) -> list[bytes]:
    raw = np.ones((1, 16), np.float32).tobytes()
    message = service_pb2.ModelInferRequest(model_name="add_sub")
    for name in ("INPUT0", "INPUT1"):
        message.inputs.add(name=name, datatype="FP32", shape=[1, 16])
        message.raw_input_contents.append(raw)
    good = message.SerializeToString()
    wrong = service_pb2.ModelInferRequest()
    wrong.CopyFrom(message)
    wrong.inputs[0].shape[:] = rng.choice([[-1, 16], [2**62, 2**62], [0, 2**63 - 1], [1, 15]])
    short = service_pb2.ModelInferRequest()
    short.CopyFrom(message)
    short.raw_input_contents[1] = raw[: rng.randint(0, 63)]
    typed = service_pb2.ModelInferRequest()
    typed.CopyFrom(message)
    typed.inputs[0].contents.int_contents.extend([1] * 16)
    return [
        rng.randbytes(rng.randint(0, 300)),
        good[: rng.randint(0, len(good) - 1)],
        bytes(b ^ rng.randint(0, 255) if rng.random() < 0.05 else b for b in good),
        wrong.SerializeToString(),
        short.SerializeToString(),
        typed.SerializeToString(),
        struct.pack("<I", 2**31) + good,
    ]


def test_grpc_garbage_never_internal(server):
    rng = random.Random(SEED + 2)
    codes: dict[str, int] = {}
    with grpc.insecure_channel(server.grpc) as channel:
        call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        for _ in range(ROUNDS):
            try:
                call(rng.choice(grpc_cases(rng)), timeout=10)
                codes["OK"] = codes.get("OK", 0) + 1
            except grpc.RpcError as error:
                codes[error.code().name] = codes.get(error.code().name, 0) + 1
                assert error.code() not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), (
                    error.details()
                )
    assert set(codes) <= {"OK", "INVALID_ARGUMENT", "NOT_FOUND"}, codes
    assert codes.get("INVALID_ARGUMENT", 0) > ROUNDS // 2
