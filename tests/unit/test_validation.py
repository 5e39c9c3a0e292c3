"""Requests checked against a model signature, and how the model store picks a version."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from server.datatypes import DATATYPES
from server.errors import InvalidInput, ModelNotFound, ModelNotReady
from server.model_store import ModelStore, ModelVersion
from server.runtime import OrtRuntime
from server.settings import ModelConfig, RuntimeConfig
from server.types import InferRequest, ModelSignature, TensorSpec
from server.validation import RequestCheck, check_unique, validate
from tests.onnx_models import scale

FP32, INT64, BYTES = DATATYPES["FP32"], DATATYPES["INT64"], DATATYPES["BYTES"]

BATCHED = ModelSignature(
    inputs=(TensorSpec("a", FP32, (3,)), TensorSpec("b", INT64, (-1,))),
    outputs=(TensorSpec("y", FP32, (3,)), TensorSpec("z", INT64, (-1,))),
    max_batch_size=4,
)
FIXED = ModelSignature(
    inputs=(TensorSpec("x", FP32, (2, 3)), TensorSpec("s", BYTES, (-1,))),
    outputs=(TensorSpec("y", FP32, (2, 3)),),
    max_batch_size=0,
)


def _batched(rows_a: int = 2, rows_b: int = 2, **extra: np.ndarray) -> dict[str, np.ndarray]:
    inputs = {
        "a": np.zeros((rows_a, 3), np.float32),
        "b": np.zeros((rows_b, 5), np.int64),
    }
    inputs.update(extra)
    return inputs


def _check(
    inputs: dict[str, np.ndarray],
    signature: ModelSignature = BATCHED,
    outputs: list[str] | None = None,
    **parameters: object,
) -> list[str]:
    """validate()'s answer, checked against RequestCheck's: the same names or the same error."""
    request = InferRequest("m", "", inputs, outputs, parameters=dict(parameters))
    check = RequestCheck(signature, "m")
    try:
        names = validate(request, signature, "m")
    except InvalidInput as error:
        with pytest.raises(InvalidInput) as caught:
            check(request)
        assert str(caught.value) == str(error)
        raise
    rows = inputs[signature.inputs[0].name].shape[0] if signature.max_batch_size else 1
    assert check(request) == (names, rows)
    return names


def _invalid(match: str, *args: object, **kwargs: object) -> str:
    with pytest.raises(InvalidInput, match=match) as caught:
        _check(*args, **kwargs)  # type: ignore[arg-type]
    return str(caught.value)


# Requests that fit


def test_valid_request_gets_every_declared_output() -> None:
    assert _check(_batched()) == ["y", "z"]


def test_requested_outputs_come_back_in_request_order() -> None:
    assert _check(_batched(), outputs=["z", "y"]) == ["z", "y"]
    assert _check(_batched(), outputs=["z"]) == ["z"]


@pytest.mark.parametrize("rows", [0, 1, 4])
def test_batch_up_to_max_batch_size_is_accepted(rows: int) -> None:
    assert _check(_batched(rows, rows)) == ["y", "z"]


def test_variable_dim_takes_any_size() -> None:
    for size in (0, 1, 100):
        inputs = _batched()
        inputs["b"] = np.zeros((2, size), np.int64)
        _check(inputs)


def test_non_batching_model_takes_its_exact_shape() -> None:
    inputs = {"x": np.zeros((2, 3), np.float32), "s": np.array(["a", "b"], dtype=object)}
    assert _check(inputs, FIXED) == ["y"]


def test_other_parameters_are_accepted() -> None:
    _check(_batched(), priority=1, timeout=1000, binary_data_output=True, custom="x")


# Requests that do not


def test_missing_input_names_model_and_input() -> None:
    _invalid('model "m": missing input "b"', {"a": np.zeros((1, 3), np.float32)})


def test_unknown_input_names_it_and_lists_the_inputs() -> None:
    message = _invalid('model "m": unknown input "c"', _batched(c=np.zeros(1, np.float32)))
    assert "a, b" in message


@pytest.mark.parametrize(
    ("array", "got"),
    [
        (np.zeros((2, 3), np.float64), "FP64"),
        (np.zeros((2, 3), np.float16), "FP16"),
        (np.zeros((2, 3), np.int32), "INT32"),
        (np.zeros((2, 3), dtype=object), "BYTES"),
        (np.zeros((2, 3), np.bool_), "BOOL"),
    ],
)
def test_wrong_datatype_says_expected_and_got(array: np.ndarray, got: str) -> None:
    inputs = _batched()
    inputs["a"] = array
    _invalid(f'model "m": input "a": expected FP32, got {got}', inputs)


@pytest.mark.parametrize("shape", [(3,), (2, 3, 1), ()], ids=str)
def test_wrong_rank_names_the_input_and_both_shapes(shape: tuple[int, ...]) -> None:
    inputs = _batched()
    inputs["a"] = np.zeros(shape, np.float32)
    message = _invalid('input "a": expected shape \\[-1, 3\\] \\(rank 2\\)', inputs)
    assert f"got {list(shape)} (rank {len(shape)})" in message


@pytest.mark.parametrize("size", [0, 2, 4])
def test_wrong_fixed_dim_names_the_input(size: int) -> None:
    inputs = _batched()
    inputs["a"] = np.zeros((2, size), np.float32)
    _invalid(f'input "a": expected shape \\[-1, 3\\], got \\[2, {size}\\]', inputs)


def test_batch_over_max_batch_size_names_input_and_limit() -> None:
    _invalid('input "a": batch of 5 exceeds the model\'s max_batch_size 4', _batched(5, 5))


def test_inconsistent_batch_sizes_name_both_inputs() -> None:
    message = _invalid('input "b": batch of 3', _batched(2, 3))
    assert 'input "a"' in message
    assert "batch of 2" in message


def test_unknown_requested_output_names_it() -> None:
    message = _invalid('model "m": unknown output "w"', _batched(), outputs=["y", "w"])
    assert "y, z" in message


@pytest.mark.parametrize("key", ["sequence_id", "sequence_start", "sequence_end"])
def test_sequence_parameters_are_rejected(key: str) -> None:
    _invalid(f'model "m": parameter "{key}" needs a sequence model', _batched(), **{key: 1})


@pytest.mark.parametrize("shape", [(1, 2, 3), (3, 2), (2, 4), (6,), (2, 3, 1)], ids=str)
def test_non_batching_model_rejects_other_shapes(shape: tuple[int, ...]) -> None:
    inputs = {"x": np.zeros(shape, np.float32), "s": np.array(["a"], dtype=object)}
    _invalid('input "x": expected shape \\[2, 3\\]', inputs, FIXED)


def test_non_batching_model_has_no_batch_limit() -> None:
    signature = ModelSignature((TensorSpec("x", FP32, (-1,)),), (), 0)
    _check({"x": np.zeros(10_000, np.float32)}, signature)


def test_check_unique_names_the_repeated_name() -> None:
    check_unique(["a", "b"], "input")
    with pytest.raises(InvalidInput, match='output "b" appears more than once'):
        check_unique(["a", "b", "c", "b"], "output")


# The model store's version rules


@pytest.fixture(scope="module")
def runtimes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[int, OrtRuntime]]:
    repo = tmp_path_factory.mktemp("models")
    made = {
        v: OrtRuntime(scale(repo, "s", v, float(v)), RuntimeConfig(), "cpu", None)
        for v in (1, 2, 3)
    }
    yield made
    for runtime in made.values():
        runtime.close()


def _store(runtimes: dict[int, OrtRuntime], ready: dict[int, bool]) -> ModelStore:
    return ModelStore(
        [
            ModelVersion("s", v, runtimes[v], ModelConfig(), is_ready=is_ready)
            for v, is_ready in ready.items()
        ]
    )


def test_unspecified_version_is_the_highest_ready(runtimes: dict[int, OrtRuntime]) -> None:
    assert _store(runtimes, {1: True, 2: True, 3: True}).get("s").version == 3
    assert _store(runtimes, {3: False, 1: True, 2: True}).get("s", "").version == 2
    assert _store(runtimes, {1: True, 2: False, 3: False}).get("s").version == 1


def test_unspecified_version_with_none_ready_is_not_found(
    runtimes: dict[int, OrtRuntime],
) -> None:
    with pytest.raises(ModelNotFound, match='model "s" has no ready version'):
        _store(runtimes, {1: False, 2: False}).get("s")


@pytest.mark.parametrize("version", ["1", "2", "3"])
def test_named_ready_version_is_served(runtimes: dict[int, OrtRuntime], version: str) -> None:
    found = _store(runtimes, {1: True, 2: True, 3: True}).get("s", version)
    assert found.version == int(version)
    assert found.runtime is runtimes[int(version)]


@pytest.mark.parametrize("version", ["abc", "-1", "1.0", " 1", "1 ", "+1", "0x1", "\u00b9", "１"])
def test_malformed_version_is_invalid_input(runtimes: dict[int, OrtRuntime], version: str) -> None:
    with pytest.raises(InvalidInput, match='model "s"'):
        _store(runtimes, {1: True}).get("s", version)


@pytest.mark.parametrize("version", ["4", "0", "99999999999999999999"])
def test_missing_version_is_not_found(runtimes: dict[int, OrtRuntime], version: str) -> None:
    with pytest.raises(ModelNotFound, match=f'model "s" has no version {version}'):
        _store(runtimes, {1: True, 2: True}).get("s", version)


def test_unknown_model_is_not_found(runtimes: dict[int, OrtRuntime]) -> None:
    store = _store(runtimes, {1: True})
    with pytest.raises(ModelNotFound, match='unknown model "t"'):
        store.get("t")
    with pytest.raises(ModelNotFound, match='unknown model "t"'):
        store.get("t", "1")
    with pytest.raises(ModelNotFound, match='unknown model "t"'):
        store.versions("t")


def test_version_not_ready_is_model_not_ready(runtimes: dict[int, OrtRuntime]) -> None:
    with pytest.raises(ModelNotReady, match='model "s" version 2 is not ready'):
        _store(runtimes, {1: True, 2: False}).get("s", "2")


def test_store_lists_names_and_versions_in_order(runtimes: dict[int, OrtRuntime]) -> None:
    store = ModelStore(
        [
            ModelVersion("s", 3, runtimes[3], ModelConfig(), is_ready=True),
            ModelVersion("b", 2, runtimes[2], ModelConfig(), is_ready=True),
            ModelVersion("s", 1, runtimes[1], ModelConfig(), is_ready=False),
        ]
    )
    assert store.names() == ["b", "s"]
    assert [v.version for v in store.versions("s")] == [1, 3]
    assert len(store.all_versions()) == 3
    for version in store.all_versions():
        version.health.healthy = True  # as a passing check sets it
    assert not store.is_ready()
    store.versions("s")[0].is_ready = True
    assert store.is_ready()
    store.versions("b")[0].health.healthy = False  # loaded, serving, but failing its checks
    assert not store.is_ready()


def test_real_signature_validates_a_request(runtimes: dict[int, OrtRuntime]) -> None:
    version = _store(runtimes, {1: True}).get("s")
    signature = version.signature
    assert signature.max_batch_size > 0
    assert [(s.name, s.datatype.name, s.shape) for s in signature.inputs] == [("x", "FP32", (4,))]
    request = InferRequest("s", "", {"x": np.ones((2, 4), np.float32)})
    assert validate(request, signature, "s") == ["y"]
    bad = InferRequest("s", "", {"x": np.ones((2, 5), np.float32)})
    with pytest.raises(InvalidInput, match='input "x"'):
        validate(bad, signature, "s")
