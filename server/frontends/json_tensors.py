"""JSON ``data`` of a V2 tensor -> a numpy array of its datatype and shape, range-checked."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..datatypes import DataType
from ..datatypes import element_count as count_of
from ..errors import InvalidInput
from ..types import Array

MAX_JSON_DEPTH = 100
JSON_FLOAT_LIMITS = {"FP16": np.float16, "FP32": np.float32}


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
