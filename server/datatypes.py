"""V2 datatypes: their numpy dtypes, ONNX names, config enums, and the raw byte encodings.

Raw tensors are row-major and little-endian. BYTES elements are each a 4-byte little-endian
length followed by that many bytes. Decoding fixed-size types is zero-copy (`np.frombuffer`).
"""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InvalidInput

# numpy refuses arrays whose byte size (even with a 0 dim, counted as 1) passes 2**63
MAX_ELEMENTS = 2**60 - 1
SMALL_RAW_BYTES = 65536
_NATIVE_IS_LITTLE = sys.byteorder == "little"


@dataclass(frozen=True, slots=True)
class DataType:
    name: str  # V2 name, e.g. "FP32"
    dtype: np.dtype[Any]
    onnx: str  # ONNX Runtime's type string, e.g. "tensor(float)"
    config_enum: str  # ModelConfig enum name, e.g. "TYPE_FP32"
    contents_field: str | None  # InferTensorContents field, None where raw only

    @property
    def itemsize(self) -> int:
        """Bytes per element, 0 for the variable-size BYTES."""
        return 0 if self.name == "BYTES" else self.dtype.itemsize


def _dt(name: str, dtype: Any, onnx: str, field: str | None, enum: str = "") -> DataType:
    return DataType(name, np.dtype(dtype), f"tensor({onnx})", enum or f"TYPE_{name}", field)


DATATYPES: dict[str, DataType] = {
    d.name: d
    for d in (
        _dt("BOOL", np.bool_, "bool", "bool_contents"),
        _dt("UINT8", np.uint8, "uint8", "uint_contents"),
        _dt("UINT16", np.uint16, "uint16", "uint_contents"),
        _dt("UINT32", np.uint32, "uint32", "uint_contents"),
        _dt("UINT64", np.uint64, "uint64", "uint64_contents"),
        _dt("INT8", np.int8, "int8", "int_contents"),
        _dt("INT16", np.int16, "int16", "int_contents"),
        _dt("INT32", np.int32, "int32", "int_contents"),
        _dt("INT64", np.int64, "int64", "int64_contents"),
        _dt("FP16", np.float16, "float16", None),
        _dt("FP32", np.float32, "float", "fp32_contents"),
        _dt("FP64", np.float64, "double", "fp64_contents"),
        _dt("BYTES", np.object_, "string", "bytes_contents", "TYPE_STRING"),
    )
}
BY_ONNX: dict[str, DataType] = {d.onnx: d for d in DATATYPES.values()}
BY_DTYPE: dict[np.dtype[Any], DataType] = {
    d.dtype: d for d in DATATYPES.values() if d.name != "BYTES"
}


def datatype(name: Any, tensor: str) -> DataType:
    """The DataType called ``name``; raises InvalidInput naming ``tensor`` if there is none."""
    try:
        return DATATYPES[name]
    except (KeyError, TypeError):
        raise InvalidInput(f'{tensor}: unknown datatype "{name}"') from None


def datatype_of(array: np.ndarray[Any, Any]) -> DataType:
    """The V2 datatype of a numpy array (object and bytes/str arrays are BYTES)."""
    if array.dtype.kind in "OSU":
        return DATATYPES["BYTES"]
    return BY_DTYPE[array.dtype]


def checked_shape(shape: Any, tensor: str) -> tuple[int, ...]:
    """A shape as a tuple of non-negative ints; raises InvalidInput otherwise."""
    if not isinstance(shape, list | tuple):
        raise InvalidInput(f"{tensor}: shape must be a list of non-negative integers")
    for dim in shape:
        if type(dim) is not int or dim < 0:
            raise InvalidInput(
                f"{tensor}: shape {list(shape)} must hold only non-negative integers"
            )
    return tuple(shape)


def element_count(shape: tuple[int, ...], tensor: str) -> int:
    """The number of elements of ``shape``; raises InvalidInput when it cannot exist."""
    count, extent = 1, 1
    for dim in shape:
        count *= dim
        extent *= max(dim, 1)
    if extent > MAX_ELEMENTS:
        raise InvalidInput(f"{tensor}: shape {list(shape)} is too large")
    return count


def array_from_raw(
    raw: bytes | bytearray | memoryview, dt: DataType, shape: tuple[int, ...], tensor: str
) -> np.ndarray[Any, Any]:
    """Decode raw little-endian bytes into an array of ``shape`` (zero-copy for fixed types)."""
    count = element_count(shape, tensor)
    if dt.name == "BYTES":
        return deserialize_bytes(raw, count, tensor).reshape(shape)
    expected = count * dt.itemsize
    if len(raw) != expected:
        raise InvalidInput(
            f"{tensor}: expected {expected} bytes for {dt.name} shape {list(shape)}, got {len(raw)}"
        )
    return np.frombuffer(raw, dtype=dt.dtype).reshape(shape)


_LENGTH = struct.Struct("<I")


def deserialize_bytes(
    raw: bytes | bytearray | memoryview, count: int, tensor: str
) -> np.ndarray[Any, Any]:
    """Walk a BYTES buffer; it must hold exactly ``count`` elements and nothing more.

    Elements come back as str: ONNX Runtime's string tensors hold UTF-8 text, so an element
    that is not valid UTF-8 is refused here rather than mangled later.
    """
    view = memoryview(raw)
    end = len(view)
    if count > end // 4:
        raise InvalidInput(f"{tensor}: BYTES data of {end} bytes cannot hold {count} elements")
    out = np.empty(count, dtype=np.object_)
    offset = 0
    unpack = _LENGTH.unpack_from
    for i in range(count):
        if offset + 4 > end:
            raise InvalidInput(f"{tensor}: BYTES data ends before element {i} of {count}")
        (length,) = unpack(view, offset)
        offset += 4
        if offset + length > end:
            raise InvalidInput(
                f"{tensor}: BYTES element {i} declares {length} bytes, only {end - offset} remain"
            )
        try:
            out[i] = str(view[offset : offset + length], "utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(
                f"{tensor}: BYTES element {i} is not valid UTF-8 (ONNX string tensors hold text)"
            ) from None
        offset += length
    if offset != end:
        raise InvalidInput(
            f"{tensor}: BYTES data has {end - offset} bytes after its {count} elements"
        )
    return out


def as_bytes(value: Any) -> bytes:
    """One BYTES element as bytes (ONNX Runtime hands strings back as str)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    return bytes(value)


def serialize_bytes(array: np.ndarray[Any, Any]) -> bytes:
    """The length-prefixed BYTES encoding of every element, row-major."""
    parts: list[bytes] = []
    pack = _LENGTH.pack
    for value in array.reshape(-1):
        item = as_bytes(value)
        parts.append(pack(len(item)))
        parts.append(item)
    return b"".join(parts)


def array_to_raw(array: np.ndarray[Any, Any], dt: DataType) -> bytes | memoryview:
    """The raw bytes of an array in V2 layout (a view where the array allows it)."""
    if dt.name == "BYTES":
        return serialize_bytes(array)
    if array.nbytes <= SMALL_RAW_BYTES and _NATIVE_IS_LITTLE and array.dtype == dt.dtype:
        return array.tobytes()  # one call; a view costs more below this size
    array = np.ascontiguousarray(array, dtype=dt.dtype.newbyteorder("<"))
    return memoryview(array.reshape(-1).view(np.uint8))  # type: ignore[arg-type]
