"""Raw tensor encodings of every V2 datatype, and the shape checks in front of them."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from server.datatypes import (
    DATATYPES,
    array_from_raw,
    array_to_raw,
    checked_shape,
    datatype,
    datatype_of,
    element_count,
)
from server.errors import InvalidInput

FIXED = [name for name in DATATYPES if name != "BYTES"]
SHAPES = [(2, 3), (5,), (), (0,), (3, 0, 2)]
BYTES = DATATYPES["BYTES"]


def _random(name: str, shape: tuple[int, ...]) -> np.ndarray:
    rng = np.random.default_rng(7)
    dtype = DATATYPES[name].dtype
    if name == "BOOL":
        return rng.integers(0, 2, shape).astype(np.bool_)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
    return rng.standard_normal(shape).astype(dtype)


def _pack(*elements: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(e)) + e for e in elements)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name", FIXED)
def test_fixed_size_round_trip_is_bit_exact(name: str, shape: tuple[int, ...]) -> None:
    array = _random(name, shape)
    dt = DATATYPES[name]
    raw = bytes(array_to_raw(array, dt))
    assert len(raw) == array.size * dt.itemsize
    back = array_from_raw(raw, dt, shape, "t")
    assert back.dtype == dt.dtype
    assert back.shape == shape
    assert back.tobytes() == array.tobytes()


@pytest.mark.parametrize("name", ["FP16", "FP32", "FP64"])
def test_float_special_values_round_trip(name: str) -> None:
    dt = DATATYPES[name]
    array = np.array([np.nan, np.inf, -np.inf, -0.0], dtype=dt.dtype)
    back = array_from_raw(bytes(array_to_raw(array, dt)), dt, (4,), "t")
    assert back.tobytes() == array.tobytes()


def test_raw_is_little_endian_even_for_big_endian_arrays() -> None:
    array = np.array([1, 2], dtype=">i4")
    assert bytes(array_to_raw(array, DATATYPES["INT32"])) == b"\x01\0\0\0\x02\0\0\0"


def test_raw_of_a_non_contiguous_array_is_row_major() -> None:
    array = np.arange(6, dtype=np.int8).reshape(2, 3).T
    assert bytes(array_to_raw(array, DATATYPES["INT8"])) == bytes([0, 3, 1, 4, 2, 5])


def test_bool_raw_is_zero_or_one_and_any_non_zero_byte_is_true() -> None:
    dt = DATATYPES["BOOL"]
    assert bytes(array_to_raw(np.array([True, False]), dt)) == b"\x01\x00"
    assert array_from_raw(b"\x00\x07", dt, (2,), "t").tolist() == [False, True]


def test_fixed_size_decode_is_zero_copy() -> None:
    raw = bytes(8)
    array = array_from_raw(raw, DATATYPES["FP32"], (2,), "t")
    assert not array.flags.writeable
    assert not array.flags.owndata


@pytest.mark.parametrize(
    ("elements", "shape"),
    [
        (["", "", ""], (3,)),
        (["a\x00b", "\x00", ""], (3,)),
        (["x" * 2**20], (1,)),
        (["é", "日本", "ok"], (1, 3)),
        (["scalar"], ()),
        ([], (0,)),
        ([], (2, 0)),
    ],
    ids=["empty-strings", "embedded-nul", "one-mib", "unicode", "scalar", "empty", "empty-2d"],
)
def test_bytes_round_trip(elements: list[str], shape: tuple[int, ...]) -> None:
    array = np.array(elements, dtype=np.object_).reshape(shape)
    raw = array_to_raw(array, BYTES)
    assert raw == _pack(*(e.encode() for e in elements))
    back = array_from_raw(raw, BYTES, shape, "t")
    assert back.dtype == np.object_
    assert back.shape == shape
    assert back.reshape(-1).tolist() == elements


def test_bytes_serializes_bytes_and_str_elements_alike() -> None:
    array = np.array([b"ab", "cd", np.bytes_(b"ef")], dtype=np.object_)
    assert array_to_raw(array, BYTES) == _pack(b"ab", b"cd", b"ef")


def test_empty_bytes_tensor_serializes_to_nothing() -> None:
    assert array_to_raw(np.empty((0, 3), dtype=np.object_), BYTES) == b""


@pytest.mark.parametrize(
    ("raw", "count"),
    [
        (struct.pack("<I", 10) + b"abc", 1),  # length prefix runs past the end
        (_pack(b"ab") + b"\x01\x00", 1),  # a truncated length prefix
        (_pack(b"ab", b"cd") + b"x", 2),  # trailing byte
        (_pack(b"ab", b"cd"), 1),  # more elements than the shape holds
        (_pack(b"ab"), 2),  # fewer elements than the shape needs
        (b"", 1),  # nothing at all
        (_pack(b"\xff\xfe"), 1),  # not UTF-8
    ],
    ids=["past-end", "short-prefix", "trailing", "too-many", "too-few", "empty", "not-utf8"],
)
def test_bad_bytes_buffer_is_invalid_input_naming_the_tensor(raw: bytes, count: int) -> None:
    with pytest.raises(InvalidInput, match='input "words"'):
        array_from_raw(raw, BYTES, (count,), 'input "words"')


def test_bytes_length_past_the_end_says_how_much_remains() -> None:
    with pytest.raises(InvalidInput, match="declares 10 bytes, only 3 remain"):
        array_from_raw(struct.pack("<I", 10) + b"abc", BYTES, (1,), "t")


def test_bytes_with_huge_count_fails_before_allocating() -> None:
    with pytest.raises(InvalidInput, match="cannot hold"):
        array_from_raw(_pack(b"a"), BYTES, (2**40,), "t")


@pytest.mark.parametrize("name", FIXED)
def test_byte_length_mismatch_names_expected_and_actual_bytes(name: str) -> None:
    dt = DATATYPES[name]
    expected = 6 * dt.itemsize
    with pytest.raises(InvalidInput) as caught:
        array_from_raw(bytes(expected + 1), dt, (2, 3), 'input "x"')
    message = str(caught.value)
    assert 'input "x"' in message
    assert f"expected {expected} bytes" in message
    assert f"got {expected + 1}" in message


@pytest.mark.parametrize("shape", [[-1], [2, -5], [1.0], [2.5], [True], [False, 2], ["3"], [None]])
def test_checked_shape_rejects_non_integer_and_negative_dims(shape: list[object]) -> None:
    with pytest.raises(InvalidInput, match='input "x"'):
        checked_shape(shape, 'input "x"')


@pytest.mark.parametrize("shape", [None, "2,3", 3, {"a": 1}])
def test_checked_shape_rejects_non_lists(shape: object) -> None:
    with pytest.raises(InvalidInput, match='input "x"'):
        checked_shape(shape, 'input "x"')


@pytest.mark.parametrize("shape", [[], [0], [1, 2, 3], (4, 5)])
def test_checked_shape_accepts_non_negative_ints(shape: list[int]) -> None:
    assert checked_shape(shape, "t") == tuple(shape)


@pytest.mark.parametrize(
    ("shape", "count"),
    [((), 1), ((0,), 0), ((2, 3), 6), ((3, 0, 2**40), 0), ((2**20, 2**20), 2**40)],
)
def test_element_count(shape: tuple[int, ...], count: int) -> None:
    assert element_count(shape, "t") == count


@pytest.mark.parametrize("shape", [(2**4, 2**60 + 2), (2**63,), (2**32, 2**32), (2**63 - 1, 2)])
def test_element_count_rejects_overflow(shape: tuple[int, ...]) -> None:
    with pytest.raises(InvalidInput, match='input "x".*too large'):
        element_count(shape, 'input "x"')


@pytest.mark.parametrize("name", ["FP32", "BYTES"])
def test_array_from_raw_rejects_overflowing_shape(name: str) -> None:
    with pytest.raises(InvalidInput, match='input "x"'):
        array_from_raw(b"", DATATYPES[name], (2**4, 2**60 + 2), 'input "x"')


@pytest.mark.parametrize("shape", [(0, 2**63 - 1), (0, 2**63), (2**62, 0), (0, 2**64)], ids=str)
@pytest.mark.parametrize("name", ["FP32", "BYTES"])
def test_zero_element_shape_with_a_huge_dim_is_invalid_input(
    name: str, shape: tuple[int, ...]
) -> None:
    # Zero elements, but numpy cannot make an array of this shape: a client error, not a 500.
    with pytest.raises(InvalidInput, match='input "x"'):
        array_from_raw(b"", DATATYPES[name], shape, 'input "x"')


@pytest.mark.parametrize("name", [None, "", "fp32", "FLOAT", "STRING", ["FP32"]])
def test_unknown_datatype_names_the_tensor(name: object) -> None:
    with pytest.raises(InvalidInput, match='input "x"'):
        datatype(name, 'input "x"')  # type: ignore[arg-type]


@pytest.mark.parametrize("name", list(DATATYPES))
def test_datatype_of_inverts_the_table(name: str) -> None:
    array = np.array(["a"], dtype=np.object_) if name == "BYTES" else _random(name, (1,))
    assert datatype_of(array).name == name


@pytest.mark.parametrize("array", [np.array([b"a"]), np.array(["a"]), np.array([], dtype=object)])
def test_string_arrays_are_bytes(array: np.ndarray) -> None:
    assert datatype_of(array).name == "BYTES"


# Spec section 0: V2 name -> (bytes per element, typed contents field, config enum).
SPEC_TABLE = {
    "BOOL": (1, "bool_contents", "TYPE_BOOL"),
    "UINT8": (1, "uint_contents", "TYPE_UINT8"),
    "UINT16": (2, "uint_contents", "TYPE_UINT16"),
    "UINT32": (4, "uint_contents", "TYPE_UINT32"),
    "UINT64": (8, "uint64_contents", "TYPE_UINT64"),
    "INT8": (1, "int_contents", "TYPE_INT8"),
    "INT16": (2, "int_contents", "TYPE_INT16"),
    "INT32": (4, "int_contents", "TYPE_INT32"),
    "INT64": (8, "int64_contents", "TYPE_INT64"),
    "FP16": (2, None, "TYPE_FP16"),
    "FP32": (4, "fp32_contents", "TYPE_FP32"),
    "FP64": (8, "fp64_contents", "TYPE_FP64"),
    "BYTES": (0, "bytes_contents", "TYPE_STRING"),
}
# BF16 is in the spec's table too, but ONNX Runtime's Python API cannot hand bfloat16 tensors
# to numpy, so ortserve does not serve it yet: a BF16 request is an unknown datatype.


@pytest.mark.parametrize("name", list(SPEC_TABLE))
def test_datatype_matches_the_spec_table(name: str) -> None:
    assert name in DATATYPES, f"{name} is in the spec's datatype table but not served"
    dt = DATATYPES[name]
    assert (dt.itemsize, dt.contents_field, dt.config_enum) == SPEC_TABLE[name]


def test_bf16_is_refused_as_unknown() -> None:
    with pytest.raises(InvalidInput, match="BF16"):
        datatype("BF16", 'input "x"')


def test_no_datatype_beyond_the_spec_table() -> None:
    assert set(DATATYPES) <= set(SPEC_TABLE)


def test_config_enum_of_bytes_is_type_string() -> None:
    assert BYTES.config_enum == "TYPE_STRING"
    assert {d.config_enum for d in DATATYPES.values()} >= {"TYPE_FP32", "TYPE_BOOL"}
