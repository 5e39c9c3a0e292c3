"""One batch's run and split: rows back per request, failures alone, NaN and Inf found."""

from __future__ import annotations

import numpy as np
import pytest

from server.batch_run import Ran, concatenate, nonfinite_output, run_batch, split


def doubled(feeds: dict[str, np.ndarray], names: list[str]) -> list[np.ndarray]:
    """A model stand-in that refuses negative inputs, as a graph with a check would."""
    x = feeds["x"]
    if (x < 0).any():
        raise ValueError("negative input")
    return [x * 2 for _ in names]


def test_outputs_are_cut_back_per_request() -> None:
    parts = [{"x": np.full((rows, 2), rows, np.float32)} for rows in (1, 3, 2)]
    ran = run_batch(doubled, "m", concatenate(parts), [1, 3, 2], ["y"])
    result = split(ran, [1, 3, 2], ["y"], True)
    assert [r["y"].shape[0] for r in result.results] == [1, 3, 2]  # type: ignore[index]
    for part, got in zip(parts, result.results, strict=True):
        np.testing.assert_array_equal(got["y"], part["x"] * 2)  # type: ignore[index]
    assert result.failed == "" and result.nonfinite == ""


def test_a_failing_batch_is_run_again_alone_and_only_the_bad_request_fails() -> None:
    parts = [{"x": np.full((1, 2), v, np.float32)} for v in (1.0, -1.0, 3.0)]
    ran = run_batch(doubled, "m", concatenate(parts), [1, 1, 1], ["y"])
    assert ran.outputs is None and ran.alone is not None
    result = split(ran, [1, 1, 1], ["y"], True)
    assert result.results[1] == "negative input" and result.failed == "negative input"
    np.testing.assert_array_equal(result.results[2]["y"], [[6.0, 6.0]])  # type: ignore[index]


def test_a_lone_failing_request_fails_without_a_retry() -> None:
    ran = run_batch(doubled, "m", {"x": -np.ones((2, 2), np.float32)}, [2], ["y"])
    assert split(ran, [2], ["y"], False).results == ["negative input"]


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize(
    ("values", "bad"),
    [
        ([1.0, 2.0], False),
        ([np.nan, 1.0], True),
        ([np.inf, -np.inf], True),
        ([-np.inf, 1.0], True),
        ([np.nan] * 3, True),
        (["max", "max"], False),  # the sum overflows; every value is finite
        (["max", "max", np.inf], True),
    ],
)
def test_nonfinite_outputs_are_named(values: list, bad: bool, dtype: type) -> None:
    big = np.finfo(dtype).max
    out = np.array([[big if v == "max" else v for v in values]] * 2, dtype)
    assert nonfinite_output(["y", "n"], [np.zeros(2, np.int64), out]) == ("n" if bad else "")
    assert nonfinite_output(["n"], [out[:, ::-1]]) == ("n" if bad else "")  # not contiguous


def test_split_notes_nonfinite_only_when_asked() -> None:
    ran = Ran([np.array([[np.nan]], np.float32)])
    assert split(ran, [1], ["y"], True).nonfinite == "y"
    assert split(ran, [1], ["y"], False).nonfinite == ""
