"""ModelInferRequest / ModelInferResponse <-> InferRequest / InferResponse."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import pytest

from server._proto import grpc_service_pb2 as pb
from server.datatypes import DATATYPES, array_to_raw
from server.errors import InvalidInput
from server.frontends.grpc_codec import decode_request, parameters_to_dict
from server.frontends.grpc_wire import encode_response, stream_response, varint
from server.types import InferResponse

TYPED = [name for name, d in DATATYPES.items() if d.contents_field]
RAW_ONLY = [name for name, d in DATATYPES.items() if not d.contents_field]


def _values(name: str, count: int = 4) -> np.ndarray:
    """Values spanning the type's range, as the dtype the server decodes to."""
    dtype = DATATYPES[name].dtype
    if name == "BOOL":
        return np.array([True, False, True, True][:count])
    if name == "BYTES":
        return np.array(["", "a\x00b", "é", "x" * 100][:count], dtype=object)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.array([info.min, info.max, 0, 1][:count], dtype=dtype)
    return np.array([np.finfo(dtype).max, -0.5, np.inf, np.nan][:count], dtype=dtype)


def _request(*inputs: tuple[str, str, list[int]], raw: list[bytes] | None = None) -> Any:
    message = pb.ModelInferRequest(model_name="m", model_version="2", id="r")
    for name, datatype, shape in inputs:
        message.inputs.add(name=name, datatype=datatype, shape=shape)
    message.raw_input_contents.extend(raw or [])
    return message


def _typed(name: str, datatype: str, shape: list[int], field: str, values: list[Any]) -> Any:
    message = _request((name, datatype, shape))
    getattr(message.inputs[0].contents, field).extend(values)
    return message


def _invalid(message: Any, match: str) -> str:
    with pytest.raises(InvalidInput, match=match) as caught:
        decode_request(message)
    return str(caught.value)


# Raw contents


@pytest.mark.parametrize("name", list(DATATYPES))
def test_raw_contents_round_trip_every_datatype(name: str) -> None:
    array = _values(name).reshape(2, 2)
    raw = bytes(array_to_raw(array, DATATYPES[name]))
    request = decode_request(_request(("x", name, [2, 2]), raw=[raw]))
    got = request.inputs["x"]
    assert got.shape == (2, 2)
    assert got.dtype == DATATYPES[name].dtype
    if name == "BYTES":
        assert got.tolist() == array.tolist()
    else:
        assert got.tobytes() == array.tobytes()


def test_raw_decode_is_zero_copy_and_read_only() -> None:
    request = decode_request(_request(("x", "FP32", [2]), raw=[bytes(8)]))
    assert not request.inputs["x"].flags.writeable


def test_request_fields_are_copied() -> None:
    message = _request(("a", "INT32", [1]), ("b", "INT8", [0]), raw=[bytes(4), b""])
    message.outputs.add(name="y")
    message.outputs.add(name="x")
    request = decode_request(message)
    assert (request.model_name, request.model_version, request.id) == ("m", "2", "r")
    assert list(request.inputs) == ["a", "b"]
    assert request.inputs["b"].shape == (0,)
    assert request.outputs == ["y", "x"]


def test_no_requested_outputs_means_all() -> None:
    assert decode_request(_request(("a", "INT32", [1]), raw=[bytes(4)])).outputs is None


def test_raw_length_mismatch_names_input_expected_and_actual() -> None:
    message = _invalid(_request(("x", "FP32", [2, 3]), raw=[bytes(20)]), 'input "x"')
    assert "expected 24 bytes" in message
    assert "got 20" in message


def test_bad_raw_bytes_buffer_names_the_input() -> None:
    raw = struct.pack("<I", 5) + b"ab"
    _invalid(_request(("s", "BYTES", [1]), raw=[raw]), 'input "s"')


def test_fewer_raw_entries_than_inputs_names_the_missing_input() -> None:
    message = _request(("a", "FP32", [1]), ("b", "FP32", [1]), raw=[bytes(4)])
    _invalid(message, 'unable to find data for input "b"')


def test_more_raw_entries_than_inputs_is_invalid_input() -> None:
    _invalid(_request(("a", "FP32", [1]), raw=[bytes(4), bytes(4)]), "2 raw_input_contents")


def test_raw_entries_without_inputs_is_invalid_input() -> None:
    _invalid(_request(raw=[bytes(4)]), "raw_input_contents")


@pytest.mark.parametrize("set_contents", ["values", "empty"])
def test_mixing_raw_and_typed_contents_is_invalid_input(set_contents: str) -> None:
    message = _request(("a", "FP32", [1]), ("b", "FP32", [1]), raw=[bytes(4), bytes(4)])
    if set_contents == "values":
        message.inputs[1].contents.fp32_contents.append(1.0)
    else:
        message.inputs[1].contents.SetInParent()
    _invalid(message, "contents must not be set")


# Typed contents


@pytest.mark.parametrize("name", TYPED)
def test_typed_contents_round_trip_every_datatype(name: str) -> None:
    dt = DATATYPES[name]
    values = _values(name)
    items = [v.encode() for v in values] if name == "BYTES" else values.tolist()
    request = decode_request(_typed("x", name, [2, 2], dt.contents_field, items))
    got = request.inputs["x"]
    assert got.dtype == dt.dtype
    assert got.shape == (2, 2)
    if name == "BYTES":
        assert got.reshape(-1).tolist() == values.tolist()
    else:
        assert got.reshape(-1).tobytes() == values.tobytes()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("INT8", 128),
        ("INT8", -129),
        ("INT16", 2**15),
        ("INT16", -(2**15) - 1),
        ("UINT8", 256),
        ("UINT16", 2**16),
    ],
)
def test_narrow_typed_contents_are_range_checked(name: str, value: int) -> None:
    field = DATATYPES[name].contents_field
    _invalid(_typed("x", name, [2], field, [0, value]), f'input "x".*out of range for {name}')


@pytest.mark.parametrize(
    ("name", "field", "values"),
    [
        ("FP32", "int_contents", [1, 2]),
        ("INT32", "fp32_contents", [1.0, 2.0]),
        ("INT64", "int_contents", [1, 2]),
        ("UINT8", "int_contents", [1, 2]),
        ("BOOL", "uint_contents", [1, 0]),
        ("BYTES", "int_contents", [1, 2]),
        ("FP64", "fp32_contents", [1.0, 2.0]),
    ],
)
def test_wrong_typed_field_names_the_input(name: str, field: str, values: list[Any]) -> None:
    message = _invalid(_typed("x", name, [2], field, values), 'input "x"')
    assert field in message


def test_data_in_the_right_and_a_wrong_field_names_the_input() -> None:
    message = _typed("x", "FP32", [2], "fp32_contents", [1.0, 2.0])
    message.inputs[0].contents.int64_contents.append(1)
    _invalid(message, 'input "x".*int64_contents')


@pytest.mark.parametrize("name", RAW_ONLY)
def test_raw_only_datatype_in_typed_contents_names_the_input(name: str) -> None:
    _invalid(_typed("x", name, [1], "fp32_contents", [1.0]), f'input "x": {name}.*raw')


@pytest.mark.parametrize(("shape", "count"), [([2, 2], 3), ([2, 2], 5), ([3], 0), ([], 2)])
def test_typed_count_mismatch_names_the_input(shape: list[int], count: int) -> None:
    message = _typed("x", "FP32", shape, "fp32_contents", [1.0] * count)
    _invalid(message, 'input "x".*needs')


def test_typed_zero_element_input_needs_no_contents() -> None:
    request = decode_request(_request(("x", "FP32", [3, 0])))
    assert request.inputs["x"].shape == (3, 0)


def test_typed_scalar_shape() -> None:
    request = decode_request(_typed("x", "INT64", [], "int64_contents", [-5]))
    assert request.inputs["x"].shape == ()
    assert request.inputs["x"].item() == -5


def test_typed_bytes_not_utf8_names_the_input() -> None:
    _invalid(_typed("s", "BYTES", [1], "bytes_contents", [b"\xff"]), 'input "s"')


# Names, shapes, parameters


def test_duplicate_input_is_invalid_input() -> None:
    message = _request(("a", "FP32", [1]), ("a", "FP32", [1]), raw=[bytes(4), bytes(4)])
    _invalid(message, 'input "a" appears more than once')


def test_duplicate_output_is_invalid_input() -> None:
    message = _request(("a", "FP32", [1]), raw=[bytes(4)])
    message.outputs.add(name="y")
    message.outputs.add(name="y")
    _invalid(message, 'output "y" appears more than once')


@pytest.mark.parametrize("shape", [[-1], [2, -3], [-(2**63)]], ids=str)
def test_negative_dim_names_the_input(shape: list[int]) -> None:
    _invalid(_request(("x", "FP32", shape), raw=[b""]), 'input "x"')


@pytest.mark.parametrize(
    "shape", [[2**4, 2**60 + 2], [2**62, 4], [0, 2**63 - 1], [2**63 - 1, 0]], ids=str
)
def test_overflowing_shape_names_the_input(shape: list[int]) -> None:
    _invalid(_request(("x", "FP32", shape), raw=[b""]), 'input "x"')


def test_unknown_datatype_names_the_input() -> None:
    _invalid(_request(("x", "FLOAT", [1]), raw=[bytes(4)]), 'input "x"')


def test_shared_memory_input_is_invalid_input() -> None:
    message = _request(("x", "FP32", [1]), raw=[bytes(4)])
    message.inputs[0].parameters["shared_memory_region"].string_param = "r"
    _invalid(message, 'input "x".*shared memory')


@pytest.mark.parametrize("key", ["shared_memory_region", "classification"])
def test_unsupported_output_parameters_name_the_output(key: str) -> None:
    message = _request(("x", "FP32", [1]), raw=[bytes(4)])
    message.outputs.add(name="y").parameters[key].int64_param = 1
    _invalid(message, 'output "y"')


def test_parameters_of_all_five_kinds() -> None:
    message = _request(("x", "FP32", [1]), raw=[bytes(4)])
    params = message.parameters
    params["b"].bool_param = True
    params["i"].int64_param = -(2**63)
    params["s"].string_param = "text"
    params["d"].double_param = 0.25
    params["u"].uint64_param = 2**64 - 1
    params["unset"].SetInParent()
    assert decode_request(message).parameters == {
        "b": True,
        "i": -(2**63),
        "s": "text",
        "d": 0.25,
        "u": 2**64 - 1,
        "unset": None,
    }


def test_parameters_to_dict_of_an_empty_map() -> None:
    assert parameters_to_dict(pb.ModelInferRequest().parameters) == {}


def test_false_and_zero_parameters_are_kept() -> None:
    message = pb.ModelInferRequest()
    message.parameters["b"].bool_param = False
    message.parameters["i"].int64_param = 0
    assert parameters_to_dict(message.parameters) == {"b": False, "i": 0}


# Responses


def _response(outputs: dict[str, np.ndarray]) -> InferResponse:
    datatypes = {
        name: DATATYPES["BYTES"]
        if a.dtype == object
        else next(d for d in DATATYPES.values() if d.dtype == a.dtype and d.name != "BYTES")
        for name, a in outputs.items()
    }
    return InferResponse("m", "4", outputs, datatypes, "r9")


def _encoded(response: InferResponse) -> Any:
    return pb.ModelInferResponse.FromString(encode_response(response))


def _reference(response: InferResponse) -> bytes:
    """What protobuf itself writes for ``response``."""
    message = pb.ModelInferResponse(
        model_name=response.model_name, model_version=response.model_version, id=response.id
    )
    for key, value in response.parameters.items():
        message.parameters[key].string_param = str(value)
    for name, array in response.outputs.items():
        dt = response.datatypes[name]
        message.outputs.add(name=name, datatype=dt.name, shape=array.shape)
        message.raw_output_contents.append(bytes(array_to_raw(array, dt)))
    data: bytes = message.SerializeToString()
    return data


def test_response_fields_are_filled() -> None:
    message = _encoded(_response({"y": np.ones(1, np.float32)}))
    assert (message.model_name, message.model_version, message.id) == ("m", "4", "r9")


def test_every_output_goes_raw_including_zero_byte_ones() -> None:
    outputs = {
        "a": np.arange(6, dtype=np.float32).reshape(2, 3),
        "empty": np.zeros((2, 0), dtype=np.float32),
        "s": np.array(["x", ""], dtype=object),
        "none": np.zeros((0,), dtype=np.int64),
        "b": np.array([[True], [False]]),
        "h": np.array([1.5], dtype=np.float16),
    }
    message = _encoded(_response(outputs))
    assert [o.name for o in message.outputs] == list(outputs)
    assert len(message.raw_output_contents) == len(outputs)
    for entry, raw, (name, array) in zip(
        message.outputs, message.raw_output_contents, outputs.items(), strict=True
    ):
        assert not entry.HasField("contents"), name
        assert list(entry.shape) == list(array.shape)
        assert entry.datatype == _response({name: array}).datatypes[name].name
        assert raw == bytes(array_to_raw(array, DATATYPES[entry.datatype]))
    assert message.raw_output_contents[1] == b""
    assert message.raw_output_contents[3] == b""


@pytest.mark.parametrize("name", list(DATATYPES))
def test_response_raw_decodes_back_through_the_request_path(name: str) -> None:
    array = _values(name).reshape(4, 1)
    out = _encoded(_response({"y": array}))
    back = decode_request(
        _request(
            ("y", out.outputs[0].datatype, list(out.outputs[0].shape)),
            raw=[out.raw_output_contents[0]],
        )
    )
    if name == "BYTES":
        assert back.inputs["y"].tolist() == array.tolist()
    else:
        assert back.inputs["y"].tobytes() == array.tobytes()


@pytest.mark.parametrize(
    "response",
    [
        InferResponse("m", "4", {"y": np.ones((1, 2), np.float32)}, {"y": DATATYPES["FP32"]}, "r9"),
        InferResponse("m", "", {"y": np.ones((3,), np.int64)}, {"y": DATATYPES["INT64"]}),
        InferResponse(
            "ünïcode-model" * 20,
            "12",
            {"scalar": np.array(7, np.int32), "wide": np.zeros((2, 300, 1), np.float64)},
            {"scalar": DATATYPES["INT32"], "wide": DATATYPES["FP64"]},
            "i" * 200,
        ),
        InferResponse(
            "m", "1", {"big": np.ones((1, 70000), np.uint8)}, {"big": DATATYPES["UINT8"]}
        ),
        InferResponse(
            "m", "1", {"s": np.array(["a", "bc"], dtype=object)}, {"s": DATATYPES["BYTES"]}
        ),
    ],
)
def test_response_bytes_are_protobufs_own(response: InferResponse) -> None:
    for _ in range(2):  # the second time from the cache
        assert encode_response(response) == _reference(response)


def test_response_parameters_survive() -> None:
    response = InferResponse(
        "m", "1", {"y": np.ones((1, 2), np.float32)}, {"y": DATATYPES["FP32"]}, "r"
    )
    response.parameters["ortserve_route"] = "cache"
    message = _encoded(response)
    assert message.parameters["ortserve_route"].string_param == "cache"
    assert message == pb.ModelInferResponse.FromString(_reference(response))


def test_stream_response_wraps_the_answer() -> None:
    inner = encode_response(_response({"y": np.ones((1, 40), np.float32)}))
    parsed = pb.ModelStreamInferResponse.FromString(stream_response(inner))
    assert parsed.infer_response == pb.ModelInferResponse.FromString(inner)
    assert parsed.error_message == ""


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 16383, 16384, 2**31, 2**63 - 1])
def test_varint_matches_protobuf(value: int) -> None:
    assert pb.InferParameter(uint64_param=value).SerializeToString() == b"\x28" + varint(value)
