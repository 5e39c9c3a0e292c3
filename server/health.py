"""Model-aware health: a model version is ready when it is loaded and a check inference
produced every declared output with the declared datatype and rank, all finite, and, when it
ships golden examples (``[health]`` inputs and outputs), outputs matching them.

While serving, a version whose runs keep failing or giving non-finite outputs
(``failures_to_unready`` in a row) becomes not ready with the reason; a not-ready version is
checked again every ``recheck_interval_s`` and is ready again once it passes.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from .errors import ConfigError
from .model_store import ModelVersion
from .types import Array, ModelSignature


def warm_up_inputs(signature: ModelSignature) -> dict[str, Array]:
    """Zero-valued inputs of one row (variable dims 1) for every input of ``signature``."""
    feeds: dict[str, Array] = {}
    for spec in signature.inputs:
        shape = tuple(1 if d == -1 else d for d in signature.full_shape(spec))
        if spec.datatype.name == "BYTES":
            feeds[spec.name] = np.full(shape, "", dtype=np.object_)
        else:
            feeds[spec.name] = np.zeros(shape, dtype=spec.datatype.dtype)
    return feeds


def _golden(model: ModelVersion, name: str) -> dict[str, Array]:
    folder = model.runtime.path.parent
    path = (folder / name).resolve()
    if not path.is_relative_to(folder.resolve()):
        raise ConfigError(f"{folder / name}: leads outside the model version folder")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError) as error:
        raise ConfigError(f"{path}: cannot read golden examples: {error}") from None


def check(model: ModelVersion) -> tuple[str | None, bool]:
    """Run the check inference in the calling thread: (reason it failed or None, fatal?).

    A fatal failure (the run fails, outputs of the wrong kind) means the model cannot serve;
    otherwise it can serve but is not ready (non-finite outputs, golden mismatch).
    """
    config = model.config.health
    signature = model.signature
    names = [spec.name for spec in signature.outputs]
    feeds = warm_up_inputs(signature)
    expected: dict[str, Array] = {}
    if config.inputs is not None and config.outputs is not None:
        feeds = _golden(model, config.inputs)
        expected = _golden(model, config.outputs)
    try:
        outputs = model.runtime.run_sync(feeds, names)
    except Exception as error:
        return f"check inference failed: {error}", True
    for spec, array in zip(signature.outputs, outputs, strict=True):
        got = "BYTES" if array.dtype.kind in "OSU" else str(array.dtype)
        want = "BYTES" if spec.datatype.name == "BYTES" else str(spec.datatype.dtype)
        if got != want:
            return f'output "{spec.name}" has dtype {got}, expected {spec.datatype.name}', True
        if array.ndim != len(signature.full_shape(spec)):
            return (
                f'output "{spec.name}" has rank {array.ndim}, '
                f"expected {len(signature.full_shape(spec))}"
            ), True
        if config.check_finite and array.dtype.kind == "f" and not np.isfinite(array).all():
            return f'output "{spec.name}" holds NaN or Inf', False
        if spec.name in expected and not _matches(array, expected[spec.name], config):
            return f'output "{spec.name}" does not match its golden example', False
    return None, False


def _matches(got: Array, want: Array, config: Any) -> bool:
    if got.shape != want.shape:
        return False
    if got.dtype.kind == "f":
        return bool(np.allclose(got, want, rtol=config.rtol, atol=config.atol))
    return bool(np.array_equal(got, want))


def warm_up(model: ModelVersion) -> None:
    """The check at load time: raises ConfigError when the model cannot serve at all."""
    reason, fatal = check(model)
    if fatal:
        raise ConfigError(f'model "{model.name}" version {model.version}: {reason}')
    model.is_ready = True
    set_checked(model, reason)


def set_checked(model: ModelVersion, reason: str | None) -> bool:
    """Record a check's result; True when readiness changed."""
    health = model.health
    was = health.healthy
    health.healthy = reason is None
    health.reason = reason or ""
    health.checked_at = time.monotonic()
    if reason is None:
        health.consecutive_failures = 0
    return was != health.healthy


def record_run(model: ModelVersion, failure: str | None) -> bool:
    """Record a live batch's result; True when readiness changed."""
    health = model.health
    if failure is None:
        health.consecutive_failures = 0
        return False
    health.consecutive_failures += 1
    if health.healthy and health.consecutive_failures >= model.config.health.failures_to_unready:
        health.healthy = False
        health.reason = f"{health.consecutive_failures} failed runs in a row, last: {failure}"
        health.checked_at = time.monotonic()
        return True
    return False


def due_for_check(model: ModelVersion) -> bool:
    health = model.health
    interval = model.config.health.recheck_interval_s
    return not health.healthy and time.monotonic() - health.checked_at >= interval
