"""Fallback for a model whose primary fails, is too slow, returns NaN/Inf, or whose circuit
breaker is open: the chain of ``[fallback]`` (the response cache for the same input, then a
baseline model), the circuit breaker and the response cache.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import InternalError, ModelNotReady, ServeError
from .settings import FallbackConfig
from .types import Array, InferRequest, InferResponse

if TYPE_CHECKING:
    from .model_store import ModelVersion

PRIMARY_ONLY = "ortserve_primary_only"  # internal: the primary attempt of a fallback chain


class CircuitBreaker:
    """Closed: requests go to the primary. Open after ``breaker_failures`` failures in a row
    or a failure rate over ``breaker_failure_rate`` in the last ``breaker_window`` requests;
    after ``breaker_cooldown_s`` it half-opens and lets ``breaker_trial_requests`` through:
    a success closes it, a failure opens it again."""

    def __init__(self, config: FallbackConfig) -> None:
        self.config = config
        self.state = "closed"
        self.consecutive_failures = 0
        self.window: collections.deque[bool] = collections.deque(maxlen=config.breaker_window)
        self.opened_at = 0.0
        self.trials_left = 0

    def allows(self) -> bool:
        """May this request try the primary?"""
        if self.state == "closed":
            return True
        if self.state == "open":
            if time.monotonic() - self.opened_at < self.config.breaker_cooldown_s:
                return False
            self.state, self.trials_left = "half_open", self.config.breaker_trial_requests
        if self.trials_left > 0:
            self.trials_left -= 1
            return True
        return False

    def success(self) -> None:
        self.consecutive_failures = 0
        self.window.append(True)
        if self.state == "half_open":
            self.state = "closed"
            self.window.clear()

    def failure(self) -> None:
        self.consecutive_failures += 1
        self.window.append(False)
        failed = self.window.count(False)
        full = len(self.window) == self.window.maxlen
        if (
            self.state == "half_open"
            or self.consecutive_failures >= self.config.breaker_failures
            or (full and failed / len(self.window) > self.config.breaker_failure_rate)
        ):
            self.state = "open"
            self.opened_at = time.monotonic()
            self.trials_left = 0


def input_key(model: str, version: int, inputs: dict[str, Array]) -> str:
    """The cache key of a request: model, version and a hash of the input bytes and shapes.

    Runs in a thread: hashing a large payload must not hold up the event loop.
    """
    digest = hashlib.sha256(f"{model}\0{version}".encode())
    for name in sorted(inputs):
        array = inputs[name]
        digest.update(f"\0{name}\0{array.dtype.str}\0{array.shape}\0".encode())
        if array.dtype.kind == "O":
            for value in array.reshape(-1):
                digest.update(str(value).encode() + b"\0")
        else:
            digest.update(array.reshape(-1).view("u1").data)
    return digest.hexdigest()


class ResponseCache:
    """LRU of outputs by input key, bounded by entries and bytes, entries expiring after TTL."""

    def __init__(self, config: FallbackConfig) -> None:
        self.config = config
        self.entries: collections.OrderedDict[str, tuple[float, dict[str, Array], int]] = (
            collections.OrderedDict()
        )
        self.bytes = 0

    def put(self, key: str, outputs: dict[str, Array]) -> None:
        size = sum(int(a.nbytes) for a in outputs.values())
        if size > self.config.cache_bytes:
            return
        self._drop(key)
        self.entries[key] = (time.monotonic(), {k: a.copy() for k, a in outputs.items()}, size)
        self.bytes += size
        while len(self.entries) > self.config.cache_entries or self.bytes > self.config.cache_bytes:
            self._drop(next(iter(self.entries)))

    def get(self, key: str) -> dict[str, Array] | None:
        found = self.entries.get(key)
        if found is None:
            return None
        stored_at, outputs, _ = found
        if time.monotonic() - stored_at > self.config.cache_ttl_s:
            self._drop(key)
            return None
        self.entries.move_to_end(key)
        return outputs

    def _drop(self, key: str) -> None:
        found = self.entries.pop(key, None)
        if found is not None:
            self.bytes -= found[2]


class Fallback:
    """One model's fallback: its config, circuit breaker and response cache."""

    def __init__(self, config: FallbackConfig) -> None:
        self.config = config
        self.breaker = CircuitBreaker(config)
        self.cache = ResponseCache(config) if "cache" in config.chain else None


class FallbackChain:
    """Runs a request of a model with a fallback: the primary (bounded by ``timeout_ms`` and
    the breaker), then each step of ``[fallback] chain`` until one answers."""

    def __init__(
        self,
        infer: Callable[[InferRequest], Awaitable[InferResponse]],
        on_answer: Callable[[ModelVersion, InferRequest, InferResponse, str], None],
    ) -> None:
        self._infer = infer
        self._on_answer = on_answer  # a fallback answered: count it, log it

    async def run(
        self, model: ModelVersion, request: InferRequest, on_done: Callable[[Any], None]
    ) -> None:
        """The primary, then the fallback chain: cache, baseline, in the configured order."""
        fallback = model.fallback
        assert fallback is not None
        config = fallback.config
        key = None
        if fallback.cache is not None:
            key = await asyncio.to_thread(input_key, model.name, model.version, request.inputs)
        cause = "circuit breaker open"
        if fallback.breaker.allows():
            primary = dataclasses.replace(
                request, parameters={**request.parameters, PRIMARY_ONLY: True}
            )
            try:
                response = await asyncio.wait_for(
                    self._infer(primary), config.timeout_ms / 1000 if config.timeout_ms else None
                )
            except TimeoutError:
                cause = f"primary took over {config.timeout_ms} ms"
            except InternalError as error:
                cause = str(error)
            except ServeError as error:  # the request's own fault or overload: no fallback
                on_done(error)
                return
            else:
                bad = _non_finite(response)
                if bad is None:
                    fallback.breaker.success()
                    if fallback.cache is not None and key is not None:
                        fallback.cache.put(key, response.outputs)
                    on_done(_routed(response, "primary"))
                    return
                cause = f'output "{bad}" holds NaN or Inf'
            fallback.breaker.failure()
        for step in config.chain:
            answer = await self._step(step, model, request, key)
            if answer is not None:
                self._on_answer(model, request, answer, step)
                on_done(answer)
                return
        on_done(ModelNotReady(f'model "{model.name}": {cause}, and no fallback could answer'))

    async def _step(
        self, step: str, model: ModelVersion, request: InferRequest, key: str | None
    ) -> InferResponse | None:
        fallback = model.fallback
        assert fallback is not None
        names = request.outputs or [spec.name for spec in model.signature.outputs]
        if step == "cache" and fallback.cache is not None and key is not None:
            outputs = fallback.cache.get(key)
            if outputs is None or any(name not in outputs for name in names):
                return None
            response = InferResponse(
                model_name=model.name,
                model_version=str(model.version),
                outputs={name: outputs[name] for name in names},
                datatypes={name: model.output_datatypes[name] for name in names},
                id=request.id,
            )
            return _routed(response, "cache")
        if step == "baseline":
            baseline = dataclasses.replace(
                request, model_name=fallback.config.baseline, model_version="", outputs=names
            )
            try:
                response = await self._infer(baseline)
            except ServeError:
                return None
            if _non_finite(response) is not None:
                return None
            response.model_name = model.name
            response.model_version = str(model.version)
            return _routed(response, "baseline")
        return None


def _routed(response: InferResponse, route: str) -> InferResponse:
    response.parameters["ortserve_route"] = route
    return response


def _non_finite(response: InferResponse) -> str | None:
    """The name of an output holding NaN or Inf, if any."""
    for name, array in response.outputs.items():
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            return name
    return None
