"""HTTP bodies: V2 JSON and the binary tensor extension, in both directions."""

from __future__ import annotations

import gzip
import json
import struct
import zlib
from typing import Any

import numpy as np
import pytest

from server.datatypes import DATATYPES, array_to_raw
from server.errors import InvalidInput, PayloadTooLarge
from server.frontends.http_codec import OutputChoice, decode_request, decompress
from server.frontends.http_response import encode_each_output, encode_response
from server.frontends.json_tensors import MAX_JSON_DEPTH
from server.types import InferResponse, ModelSignature, TensorSpec
from server.validation import validate

FP32 = DATATYPES["FP32"]


def _body(doc: dict[str, Any], *tail: bytes) -> tuple[bytes, str | None]:
    """A request body and its Inference-Header-Content-Length (None without a tail)."""
    header = json.dumps(doc).encode()
    if not tail:
        return header, None
    return header + b"".join(tail), str(len(header))


def _decode(doc: dict[str, Any], *tail: bytes) -> Any:
    body, header_length = _body(doc, *tail)
    return decode_request(body, header_length, "m", "")


def _json_input(name: str, data: Any, shape: list[Any], dtype: str = "FP32") -> dict[str, Any]:
    return {"name": name, "shape": shape, "datatype": dtype, "data": data}


def _binary_input(name: str, size: int, shape: list[int], dtype: str = "FP32") -> dict[str, Any]:
    params = {"binary_data_size": size}
    return {"name": name, "shape": shape, "datatype": dtype, "parameters": params}


def _fp32(*values: float) -> bytes:
    return np.array(values, dtype=np.float32).tobytes()


def _invalid(doc: dict[str, Any], *tail: bytes, match: str) -> str:
    with pytest.raises(InvalidInput, match=match) as caught:
        _decode(doc, *tail)
    return str(caught.value)


# Decoding: the happy paths


def test_decode_keeps_model_version_id_and_parameters() -> None:
    doc = {"id": "r1", "parameters": {"k": 1}, "inputs": [_json_input("x", [1], [1])]}
    request, _ = _decode(doc)
    assert (request.model_name, request.model_version, request.id) == ("m", "", "r1")
    assert request.parameters == {"k": 1}
    assert request.outputs is None


def test_nested_and_flat_json_data_decode_alike() -> None:
    flat, _ = _decode({"inputs": [_json_input("x", [1, 2, 3, 4, 5, 6], [2, 3])]})
    nested, _ = _decode({"inputs": [_json_input("x", [[1, 2, 3], [4, 5, 6]], [2, 3])]})
    assert flat.inputs["x"].dtype == np.float32
    assert flat.inputs["x"].shape == (2, 3)
    np.testing.assert_array_equal(flat.inputs["x"], nested.inputs["x"])


@pytest.mark.parametrize(
    ("dtype", "data"),
    [
        ("BOOL", [True, False]),
        ("UINT8", [0, 255]),
        ("UINT16", [0, 65535]),
        ("UINT32", [0, 2**32 - 1]),
        ("UINT64", [0, 2**64 - 1]),
        ("INT8", [-128, 127]),
        ("INT16", [-(2**15), 2**15 - 1]),
        ("INT32", [-(2**31), 2**31 - 1]),
        ("INT64", [-(2**63), 2**63 - 1]),
        ("FP16", [0.5, -2.0]),
        ("FP32", [0.25, -1.5]),
        ("FP64", [1e300, -1e-300]),
        ("BYTES", ["", "a\u0000b"]),
    ],
)
def test_json_data_of_every_datatype_keeps_its_values(dtype: str, data: list[Any]) -> None:
    request, _ = _decode({"inputs": [_json_input("x", data, [2], dtype)]})
    array = request.inputs["x"]
    assert array.dtype == DATATYPES[dtype].dtype
    assert array.tolist() == data


def test_binary_tail_with_header_length() -> None:
    doc = {"inputs": [_binary_input("x", 8, [2])]}
    request, choice = _decode(doc, _fp32(1.5, -2))
    assert request.inputs["x"].tolist() == [1.5, -2.0]
    assert choice.uses_binary


def test_binary_tail_is_split_in_input_order_skipping_json_inputs() -> None:
    doc = {
        "inputs": [
            _binary_input("a", 4, [1]),
            _json_input("b", [7, 8], [2], "INT32"),
            _binary_input("c", 8, [2]),
            _binary_input("d", 0, [0]),
        ]
    }
    request, _ = _decode(doc, _fp32(1), _fp32(2, 3))
    assert list(request.inputs) == ["a", "b", "c", "d"]
    assert request.inputs["a"].tolist() == [1.0]
    assert request.inputs["b"].tolist() == [7, 8]
    assert request.inputs["c"].tolist() == [2.0, 3.0]
    assert request.inputs["d"].shape == (0,)


def test_binary_bytes_input_is_walked() -> None:
    raw = struct.pack("<I", 2) + b"hi" + struct.pack("<I", 0)
    request, _ = _decode({"inputs": [_binary_input("s", len(raw), [2], "BYTES")]}, raw)
    assert request.inputs["s"].tolist() == ["hi", ""]


def test_header_length_equal_to_body_means_no_tail() -> None:
    body, _ = _body({"inputs": [_json_input("x", [1], [1])]})
    request, choice = decode_request(body, str(len(body)), "m", "")
    assert request.inputs["x"].tolist() == [1.0]
    assert choice.uses_binary


def test_output_wishes_are_recorded() -> None:
    doc = {
        "parameters": {"binary_data_output": False},
        "inputs": [_json_input("x", [1], [1])],
        "outputs": [{"name": "b", "parameters": {"binary_data": True}}, {"name": "a"}],
    }
    request, choice = _decode(doc)
    assert request.outputs == ["b", "a"]
    assert choice.per_output == {"b": True, "a": None}
    assert choice.request_level is False
    assert not choice.uses_binary


# Decoding: checklist 18 (shape dims)


@pytest.mark.parametrize(
    "shape", [[-5], [2, -1], [1.5], [2.0], ["2"], [True], [None], "2", None], ids=str
)
def test_bad_shape_names_the_input(shape: Any) -> None:
    _invalid({"inputs": [_json_input("x", [1], shape)]}, match='input "x"')


@pytest.mark.parametrize("shape", [[2**4, 2**60 + 2], [2**63], [2**32, 2**32]], ids=str)
def test_overflowing_shape_names_the_input(shape: list[int]) -> None:
    _invalid({"inputs": [_binary_input("x", 0, shape)]}, b"", match='input "x"')


@pytest.mark.parametrize("shape", [[0, 2**63], [0, 2**64 - 1]], ids=str)
def test_zero_element_shape_with_a_huge_dim_names_the_input(shape: list[int]) -> None:
    # Zero elements, but no array of that shape can exist: 400, not a numpy crash.
    _invalid({"inputs": [_json_input("x", [], shape)]}, match='input "x"')


# Decoding: checklist 19 (JSON data)


@pytest.mark.parametrize(
    ("data", "shape"), [([1, 2, 3], [2, 2]), ([1, 2, 3, 4, 5], [2, 2]), ([], [1]), ([1], [0])]
)
def test_json_element_count_must_match_shape(data: list[int], shape: list[int]) -> None:
    message = _invalid({"inputs": [_json_input("x", data, shape)]}, match='input "x"')
    assert "elements" in message


def test_ragged_nested_data_names_the_input() -> None:
    _invalid({"inputs": [_json_input("x", [[1, 2], [3]], [3])]}, match='input "x"')


@pytest.mark.parametrize(
    ("dtype", "data"),
    [
        ("UINT8", [300]),
        ("UINT8", [-1]),
        ("INT8", [128]),
        ("INT16", [-40000]),
        ("UINT32", [2**32]),
        ("INT32", [2**31]),
        ("INT64", [2**63]),
        ("UINT64", [2**64]),
        ("INT32", [1.5]),
        ("UINT8", [0.5]),
        ("INT32", [True]),
        ("FP32", ["1.0"]),
        ("FP32", [1, "a"]),
        ("FP64", [None]),
        ("FP32", [True]),
        ("FP32", [1e39]),
        ("FP16", [70000.0]),
        ("BOOL", [1]),
        ("BOOL", ["true"]),
        ("BYTES", [1]),
        ("BYTES", [None]),
    ],
    ids=str,
)
def test_json_value_wrong_for_the_type_names_the_input(dtype: str, data: list[Any]) -> None:
    _invalid({"inputs": [_json_input("x", data, [len(data)], dtype)]}, match='input "x"')


def test_out_of_range_message_names_the_value_and_type() -> None:
    doc = {"inputs": [_json_input("x", [1, 300], [2], "UINT8")]}
    _invalid(doc, match='input "x": value 300 is out of range for UINT8')


@pytest.mark.parametrize("dtype", ["FP32", "BYTES"])
def test_data_nested_deeper_than_the_cap_names_the_input(dtype: str) -> None:
    data: Any = "s" if dtype == "BYTES" else 1.0
    for _ in range(MAX_JSON_DEPTH + 1):
        data = [data]
    _invalid({"inputs": [_json_input("x", data, [1], dtype)]}, match='input "x"')


# Decoding: checklist 20 (binary sizes and the header length)


def test_binary_data_size_not_matching_the_shape_names_expected_and_actual() -> None:
    doc = {"inputs": [_binary_input("x", 12, [2])]}
    message = _invalid(doc, _fp32(1, 2, 3), match='input "x"')
    assert "expected 8 bytes" in message
    assert "got 12" in message


def test_tail_shorter_than_the_sizes_names_the_input() -> None:
    doc = {"inputs": [_binary_input("a", 4, [1]), _binary_input("b", 8, [2])]}
    _invalid(doc, _fp32(1), _fp32(2), match='input "b"')


def test_tail_longer_than_the_sizes_is_rejected() -> None:
    doc = {"inputs": [_binary_input("x", 4, [1])]}
    _invalid(doc, _fp32(1), b"\0", match="unexpected additional input data")


def test_binary_input_without_header_length_names_the_input() -> None:
    body = json.dumps({"inputs": [_binary_input("x", 4, [1])]}).encode()
    with pytest.raises(InvalidInput, match='input "x"'):
        decode_request(body, None, "m", "")


@pytest.mark.parametrize("size", [-1, 1.5, "4", True, None])
def test_bad_binary_data_size_names_the_input(size: Any) -> None:
    item = {"name": "x", "shape": [1], "datatype": "FP32"}
    item["parameters"] = {"binary_data_size": size, **({"k": 1} if size is None else {})}
    _invalid({"inputs": [item]}, _fp32(1), match='input "x"')


@pytest.mark.parametrize(
    "value", ["abc", "-1", "", " 10", "1e3", "0x10", "+10", "2147483649", "9" * 40, "10.0"]
)
def test_bad_header_length_is_invalid_input(value: str) -> None:
    body, _ = _body({"inputs": [_binary_input("x", 4, [1])]}, _fp32(1))
    with pytest.raises(InvalidInput, match="Inference-Header-Content-Length"):
        decode_request(body, value, "m", "")


def test_header_length_larger_than_body_is_invalid_input() -> None:
    body, _ = _body({"inputs": [_binary_input("x", 4, [1])]}, _fp32(1))
    with pytest.raises(InvalidInput, match=f"body length {len(body)}"):
        decode_request(body, str(len(body) + 1), "m", "")


@pytest.mark.parametrize("value", ["\u00b2", "\u00b9", "\u00b3"])
def test_header_length_with_latin1_superscript_digit_is_invalid_input(value: str) -> None:
    # HTTP header values arrive latin-1 decoded; str.isdigit() is true for these characters.
    body, _ = _body({"inputs": [_binary_input("x", 4, [1])]}, _fp32(1))
    with pytest.raises(InvalidInput, match="Inference-Header-Content-Length"):
        decode_request(body, value, "m", "")


def test_header_length_cutting_the_json_is_malformed_json() -> None:
    body, header_length = _body({"inputs": [_binary_input("x", 4, [1])]}, _fp32(1))
    assert header_length is not None
    with pytest.raises(InvalidInput, match="malformed JSON"):
        decode_request(body, str(int(header_length) - 1), "m", "")


# Decoding: checklist 21 (BYTES buffers)


@pytest.mark.parametrize(
    ("raw", "count"),
    [
        (struct.pack("<I", 9) + b"abc", 1),
        (struct.pack("<I", 1) + b"ab", 1),
        (struct.pack("<I", 1) + b"a", 2),
        (struct.pack("<I", 1) + b"a" + struct.pack("<I", 0), 1),
    ],
    ids=["past-end", "trailing", "too-few", "too-many"],
)
def test_bad_binary_bytes_buffer_names_the_input(raw: bytes, count: int) -> None:
    doc = {"inputs": [_binary_input("s", len(raw), [count], "BYTES")]}
    _invalid(doc, raw, match='input "s"')


# Decoding: checklist 23 (names)

SIGNATURE = ModelSignature(
    inputs=(TensorSpec("a", FP32, (2,)), TensorSpec("b", FP32, (2,))),
    outputs=(TensorSpec("y", FP32, (2,)),),
    max_batch_size=0,
)


def _decode_and_validate(doc: dict[str, Any]) -> None:
    request, _ = _decode(doc)
    validate(request, SIGNATURE, "m")


def test_missing_required_input_names_it() -> None:
    with pytest.raises(InvalidInput, match='"b"'):
        _decode_and_validate({"inputs": [_json_input("a", [1, 2], [2])]})


def test_unknown_input_names_it() -> None:
    doc = {"inputs": [_json_input(n, [1, 2], [2]) for n in ("a", "b", "zz")]}
    with pytest.raises(InvalidInput, match='unknown input "zz"'):
        _decode_and_validate(doc)


def test_unknown_output_names_it() -> None:
    doc = {"inputs": [_json_input(n, [1, 2], [2]) for n in ("a", "b")], "outputs": [{"name": "q"}]}
    with pytest.raises(InvalidInput, match='unknown output "q"'):
        _decode_and_validate(doc)


def test_duplicate_input_names_it() -> None:
    doc = {"inputs": [_json_input("a", [1], [1]), _json_input("a", [2], [1])]}
    _invalid(doc, match='input "a" appears more than once')


def test_duplicate_output_names_it() -> None:
    doc = {"inputs": [_json_input("a", [1], [1])], "outputs": [{"name": "y"}, {"name": "y"}]}
    _invalid(doc, match='output "y" appears more than once')


# Decoding: checklist 24 (document shape)


@pytest.mark.parametrize("body", [b"{", b"", b"not json", b'{"inputs": [}', b"\xff\xfe"], ids=repr)
def test_malformed_json_is_invalid_input(body: bytes) -> None:
    with pytest.raises(InvalidInput, match="malformed JSON"):
        decode_request(body, None, "m", "")


@pytest.mark.parametrize("body", [b"[]", b"1", b'"x"', b"null"])
def test_json_that_is_not_an_object_is_invalid_input(body: bytes) -> None:
    with pytest.raises(InvalidInput, match="JSON object"):
        decode_request(body, None, "m", "")


@pytest.mark.parametrize("inputs", [None, {}, "x", 1, {"name": "x"}])
def test_inputs_not_an_array_is_invalid_input(inputs: Any) -> None:
    doc = {} if inputs is None else {"inputs": inputs}
    _invalid(doc, match='"inputs" must be a JSON array')


@pytest.mark.parametrize("item", [1, "x", {}, {"name": 3}, None])
def test_input_entry_without_a_name_is_invalid_input(item: Any) -> None:
    _invalid({"inputs": [item]}, match='"inputs"')


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ({"inputs": [], "outputs": {}}, '"outputs" must be a JSON array'),
        ({"inputs": [], "outputs": [{"n": 1}]}, '"outputs"'),
        ({"inputs": [], "parameters": []}, "request parameters"),
        ({"inputs": [], "id": 5}, '"id"'),
        ({"inputs": [], "parameters": {"binary_data_output": 1}}, "binary_data_output"),
        ({"inputs": [], "outputs": [{"name": "y", "parameters": 3}]}, 'output "y"'),
        (
            {"inputs": [], "outputs": [{"name": "y", "parameters": {"binary_data": "yes"}}]},
            "binary_data",
        ),
    ],
    ids=["outputs-object", "output-no-name", "params-list", "id-int", "bdo-int", "op-int", "bd"],
)
def test_malformed_request_fields_are_invalid_input(doc: dict[str, Any], match: str) -> None:
    _invalid(doc, match=match)


@pytest.mark.parametrize("dtype", ["FP8", "fp32", "", None, "BF32"])
def test_unknown_datatype_names_the_input(dtype: Any) -> None:
    _invalid({"inputs": [_json_input("x", [1], [1], dtype)]}, match='input "x"')


@pytest.mark.parametrize("where", ["input", "output"])
def test_shared_memory_is_not_supported(where: str) -> None:
    params = {"shared_memory_region": "r", "shared_memory_byte_size": 4}
    if where == "input":
        doc = {"inputs": [{**_json_input("x", [1], [1]), "parameters": params}]}
    else:
        doc = {"inputs": [], "outputs": [{"name": "x", "parameters": params}]}
    _invalid(doc, match=f'{where} "x".*shared memory')


def test_classification_is_not_supported() -> None:
    doc = {"inputs": [], "outputs": [{"name": "y", "parameters": {"classification": 2}}]}
    _invalid(doc, match='output "y".*classification')


def test_input_parameters_not_an_object_names_the_input() -> None:
    _invalid({"inputs": [{**_json_input("x", [1], [1]), "parameters": [1]}]}, match='input "x"')


# Decoding: checklist 25 (one data source per input)


def test_input_with_both_data_and_binary_data_size_names_it() -> None:
    item = {**_json_input("x", [1], [1]), "parameters": {"binary_data_size": 4}}
    _invalid({"inputs": [item]}, _fp32(1), match='input "x".*exactly one')


def test_input_with_neither_data_nor_binary_data_size_names_it() -> None:
    _invalid({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32"}]}, match='input "x"')


# Content-Encoding


def test_decompress_identity_and_empty_pass_through() -> None:
    assert decompress(b"abc", "", 10) == b"abc"
    assert decompress(b"abc", "identity", 10) == b"abc"


@pytest.mark.parametrize(
    ("encoding", "compress"), [("gzip", gzip.compress), ("deflate", zlib.compress)]
)
def test_decompress_gzip_and_deflate(encoding: str, compress: Any) -> None:
    body = b'{"inputs": []}' + bytes(range(256)) * 10
    assert decompress(compress(body), encoding, len(body)) == body


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress", "GZIP", "gzip, deflate"])
def test_unknown_content_encoding_is_invalid_input(encoding: str) -> None:
    with pytest.raises(InvalidInput, match="Content-Encoding"):
        decompress(b"abc", encoding, 100)


@pytest.mark.parametrize(
    ("encoding", "compress"), [("gzip", gzip.compress), ("deflate", zlib.compress)]
)
def test_zip_bomb_over_the_limit_is_payload_too_large(encoding: str, compress: Any) -> None:
    bomb = compress(bytes(64 * 2**20))
    assert len(bomb) < 2**20
    with pytest.raises(PayloadTooLarge, match="1048576"):
        decompress(bomb, encoding, 2**20)


@pytest.mark.parametrize(
    ("encoding", "compress"), [("gzip", gzip.compress), ("deflate", zlib.compress)]
)
def test_body_of_exactly_the_limit_is_accepted(encoding: str, compress: Any) -> None:
    assert len(decompress(compress(bytes(1000)), encoding, 1000)) == 1000


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_corrupt_compressed_body_is_invalid_input(encoding: str) -> None:
    with pytest.raises(InvalidInput, match=encoding):
        decompress(b"definitely not compressed", encoding, 100)


@pytest.mark.parametrize(
    ("encoding", "compress"), [("gzip", gzip.compress), ("deflate", zlib.compress)]
)
def test_truncated_compressed_body_is_invalid_input(encoding: str, compress: Any) -> None:
    # A cut stream inflates to a prefix of the body; that prefix must not pass as the body.
    whole = compress(bytes(range(256)) * 20)
    with pytest.raises(InvalidInput, match=encoding):
        decompress(whole[: len(whole) // 2], encoding, 10_000)


# Encoding responses


def _response(outputs: dict[str, np.ndarray], response_id: str = "") -> InferResponse:
    datatypes = {
        name: DATATYPES["BYTES"]
        if a.dtype == object
        else next(d for d in DATATYPES.values() if d.dtype == a.dtype and d.name != "BYTES")
        for name, a in outputs.items()
    }
    return InferResponse("m", "3", outputs, datatypes, response_id)


def _split(body: bytes, header_length: int | None) -> tuple[dict[str, Any], bytes]:
    end = len(body) if header_length is None else header_length
    return json.loads(body[:end]), body[end:]


def _entries(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {o["name"]: o for o in doc["outputs"]}


def test_response_carries_model_version_and_id() -> None:
    body, header_length = encode_response(
        _response({"y": np.ones(2, np.float32)}, "r7"), OutputChoice()
    )
    doc, _ = _split(body, header_length)
    assert (doc["model_name"], doc["model_version"], doc["id"]) == ("m", "3", "r7")


@pytest.mark.parametrize("response_id", ["", "r7", 'quote " and ünïcode'])
@pytest.mark.parametrize(
    "outputs",
    [
        {"y": np.ones((1, 16), np.float32)},
        {"label": np.array([3], np.int64), "p": np.random.default_rng(0).random((1, 2))},
        {"empty": np.zeros((0, 4), np.float32), "y": np.ones(3, np.uint8)},
        {"scalar": np.array(1.5, np.float16)},
    ],
    ids=["one", "two", "with-empty", "scalar"],
)
def test_binary_bodies_are_the_same_from_the_cached_header(
    outputs: dict[str, np.ndarray], response_id: str
) -> None:
    response = _response(outputs, response_id)
    choice = OutputChoice(request_level=True, uses_binary=True)
    for _ in range(2):  # the second time from the cache
        assert encode_response(response, choice) == encode_each_output(response, choice)


def test_response_omits_an_empty_id() -> None:
    body, _ = encode_response(_response({"y": np.ones(2, np.float32)}), OutputChoice())
    assert "id" not in json.loads(body)


def test_no_preference_gives_json_and_no_header_length() -> None:
    array = np.arange(6, dtype=np.int32).reshape(2, 3)
    body, header_length = encode_response(_response({"y": array}), OutputChoice())
    assert header_length is None
    entry = json.loads(body)["outputs"][0]
    assert entry == {"name": "y", "datatype": "INT32", "shape": [2, 3], "data": list(range(6))}


@pytest.mark.parametrize(
    ("per_output", "request_level", "binary"),
    [
        (None, None, False),
        (None, True, True),
        (None, False, False),
        (True, None, True),
        (False, None, False),
        (True, False, True),
        (False, True, False),
    ],
)
def test_binary_choice_per_output_overrides_request_level(
    per_output: bool | None, request_level: bool | None, binary: bool
) -> None:
    choice = OutputChoice(per_output={"y": per_output}, request_level=request_level)
    body, header_length = encode_response(_response({"y": np.ones(2, np.float32)}), choice)
    doc, tail = _split(body, header_length)
    entry = doc["outputs"][0]
    if binary:
        assert entry["parameters"] == {"binary_data_size": 8}
        assert "data" not in entry
        assert header_length is not None
        assert tail == _fp32(1, 1)
    else:
        assert entry["data"] == [1.0, 1.0]
        assert "parameters" not in entry
        assert header_length is None


def test_binary_tail_follows_outputs_order_with_exact_sizes() -> None:
    outputs = {
        "c": np.array([1, 2, 3], dtype=np.int16),
        "a": np.array([4.5], dtype=np.float64),
        "j": np.array([7], dtype=np.int32),
        "b": np.array(["hi", ""], dtype=object),
        "z": np.zeros((0,), dtype=np.float32),
    }
    choice = OutputChoice(per_output={"j": False}, request_level=True)
    body, header_length = encode_response(_response(outputs), choice)
    doc, tail = _split(body, header_length)
    assert header_length is not None
    assert [o["name"] for o in doc["outputs"]] == list(outputs)
    offset = 0
    for entry in doc["outputs"]:
        name = entry["name"]
        if name == "j":
            assert entry["data"] == [7]
            continue
        size = entry["parameters"]["binary_data_size"]
        dt = DATATYPES[entry["datatype"]]
        assert tail[offset : offset + size] == bytes(array_to_raw(outputs[name], dt))
        offset += size
    assert offset == len(tail)


def test_only_zero_size_binary_outputs_give_no_header_length() -> None:
    choice = OutputChoice(request_level=True)
    body, header_length = encode_response(_response({"z": np.zeros(0, np.float32)}), choice)
    assert header_length is None
    assert json.loads(body)["outputs"][0]["parameters"] == {"binary_data_size": 0}


@pytest.mark.parametrize("shape", [(1, 0), (0, 3), (2, 0, 2)], ids=str)
def test_zero_element_binary_output_of_any_rank(shape: tuple[int, ...]) -> None:
    choice = OutputChoice(request_level=True)
    body, header_length = encode_response(_response({"z": np.zeros(shape, np.float32)}), choice)
    entry = json.loads(body)["outputs"][0]
    assert entry["shape"] == list(shape)
    assert entry["parameters"] == {"binary_data_size": 0}
    assert header_length is None


def test_bytes_and_bool_outputs_as_json() -> None:
    outputs = {"s": np.array(["a", "é", ""], dtype=object), "b": np.array([True, False])}
    body, _ = encode_response(_response(outputs), OutputChoice())
    entries = _entries(json.loads(body))
    assert entries["s"]["data"] == ["a", "é", ""]
    assert entries["b"]["data"] == [True, False]


def test_json_data_is_flat_even_for_non_contiguous_outputs() -> None:
    array = np.arange(6, dtype=np.int64).reshape(2, 3).T
    body, _ = encode_response(_response({"y": array}), OutputChoice())
    entry = json.loads(body)["outputs"][0]
    assert entry["shape"] == [3, 2]
    assert entry["data"] == array.reshape(-1).tolist()


def test_json_floats_parse_back_bit_exactly_to_float32() -> None:
    rng = np.random.default_rng(3)
    special = [0.1, 1 / 3, -0.0, 1e-45, 1.1754942e-38, 3.4028235e38, -3.4028235e38, 16777217.0]
    array = np.concatenate(
        [np.array(special, np.float32), rng.standard_normal(1000).astype(np.float32) * 1e10]
    )
    body, _ = encode_response(_response({"y": array}), OutputChoice())
    parsed = np.array(json.loads(body)["outputs"][0]["data"], dtype=np.float64).astype(np.float32)
    assert parsed.tobytes() == array.tobytes()


NON_FINITE = np.array([np.nan, np.inf, -np.inf, 1.0], dtype=np.float32)


def test_non_finite_output_goes_binary_when_client_used_binary_and_has_no_wish() -> None:
    choice = OutputChoice(uses_binary=True)
    body, header_length = encode_response(_response({"y": NON_FINITE}), choice)
    doc, tail = _split(body, header_length)
    assert doc["outputs"][0]["parameters"] == {"binary_data_size": 16}
    assert tail == NON_FINITE.tobytes()


@pytest.mark.parametrize(
    "choice",
    [
        OutputChoice(per_output={"y": False}, uses_binary=True),
        OutputChoice(request_level=False, uses_binary=True),
        OutputChoice(per_output={"y": False}, request_level=True),
        OutputChoice(),
        OutputChoice(per_output={"y": None}),
    ],
    ids=["per-output-false", "request-false", "per-output-over-request", "never-binary", "none"],
)
def test_non_finite_output_as_json_is_invalid_input_naming_it(choice: OutputChoice) -> None:
    with pytest.raises(InvalidInput, match='output "y".*NaN or Inf'):
        encode_response(_response({"y": NON_FINITE}), choice)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_each_non_finite_value_is_caught(value: float, dtype: Any) -> None:
    with pytest.raises(InvalidInput, match='output "y"'):
        encode_response(_response({"y": np.array([1, value], dtype=dtype)}), OutputChoice())
