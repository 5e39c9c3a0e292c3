"""Fallback for a model whose primary fails: a circuit breaker and a response cache.

The chain itself (primary, then ``[fallback] chain`` in order: the response cache for the
same input, a baseline model) runs in InferenceService; this module holds its parts.
"""

from __future__ import annotations

import collections
import hashlib
import time

from .settings import FallbackConfig
from .types import Array


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
