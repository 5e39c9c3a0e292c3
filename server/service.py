"""InferenceService: the one path both front ends call, from decoded request to outputs."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from typing import Any

from .auth import TokenCheck
from .errors import InternalError, InvalidInput, ModelNotReady, ServeError
from .fallback import PRIMARY_ONLY, FallbackChain
from .metrics import Metrics
from .model_store import ModelStore, ModelVersion
from .pending import WITHDRAWN, OnTask, Started, settle
from .pending import Outcome as BatchOutcome
from .prediction_log import PredictionLog, Record
from .types import Array, InferRequest, InferResponse

Outcome = InferResponse | ServeError

log = logging.getLogger(__name__)


class InferenceService:
    """Looks models up, validates requests, hands them to batchers, tracks work in flight."""

    def __init__(
        self,
        store: ModelStore,
        metrics: Metrics,
        prediction_log: PredictionLog | None = None,
        auth: TokenCheck | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.prediction_log = prediction_log
        self.auth = auth
        self.is_accepting = False
        self._in_flight = 0
        metrics.in_flight.set_function(lambda: self._in_flight)
        self._idle = asyncio.Event()
        self._idle.set()
        self._metric_children: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        self._fallback_tasks: set[asyncio.Task[None]] = set()
        self._fallback_chain = FallbackChain(self.infer, self._answered_by_fallback)

    def authenticate(self, authorization: str | None) -> None:
        """Raise Unauthenticated when a token is required and ``authorization`` is not it."""
        if self.auth is not None:
            self.auth.check(authorization)

    def is_ready(self) -> bool:
        return self.is_accepting and self.store.is_ready()

    def model(self, name: str, version: str = "") -> ModelVersion:
        """The model version a request names; raises the lookup errors of ModelStore."""
        if not self.is_accepting:
            raise ModelNotReady("server is shutting down")
        return self.store.get(name, version)

    def submit(self, request: InferRequest, on_done: Callable[[Outcome], None]) -> Started | None:
        """Start ``request``; ``on_done`` later gets its InferResponse or ServeError, on the loop.

        Errors found at once (unknown model, invalid input, full queue) reach ``on_done``
        before this returns None. A caller that goes away calls ``withdraw()`` on what this
        returns (its Pending in the batcher, or its fallback chain's task); ``on_done`` is then
        never called.
        """
        started = time.perf_counter_ns()
        try:
            model = self.model(request.model_name, request.model_version)
        except ServeError as error:
            on_done(error)
            return None
        if model.fallback is not None and not request.parameters.get(PRIMARY_ONLY):
            task = asyncio.ensure_future(self._fallback_chain.run(model, request, on_done))
            self._fallback_tasks.add(task)
            task.add_done_callback(self._fallback_tasks.discard)
            return OnTask(task)
        try:
            output_names, rows = model.check_request(request)
            assert model.batcher is not None
            pending = model.batcher.submit(
                request.inputs,
                output_names,
                rows,
                _timeout_s(request),
                functools.partial(
                    self._complete, model, request, output_names, rows, started, on_done
                ),
            )
        except ServeError as error:
            self._record(model, request.protocol, type(error).__name__, 0, 0)
            self._log(model, request, started, error, None)
            on_done(error)
            return None
        self._enter()
        return pending

    def _answered_by_fallback(
        self, model: ModelVersion, request: InferRequest, answer: InferResponse, route: str
    ) -> None:
        self.metrics.fallbacks.labels(model.name, route).inc()
        if self.prediction_log is not None and model.config.logging.enabled:
            self._log(model, request, time.perf_counter_ns(), None, answer.outputs, route)

    def _complete(
        self,
        model: ModelVersion,
        request: InferRequest,
        output_names: list[str],
        rows: int,
        started: int,
        on_done: Callable[[Outcome], None],
        outcome: BatchOutcome,
    ) -> None:
        self._leave()
        elapsed = time.perf_counter_ns() - started
        if outcome is WITHDRAWN:
            self._record(model, request.protocol, "cancelled", rows, elapsed)
            return
        if isinstance(outcome, BaseException):
            error = outcome
            if not isinstance(error, ServeError):
                log.error("model %s: %r", model.name, error)
                error = InternalError(f'model "{model.name}": {error!r}')
            self._record(model, request.protocol, type(error).__name__, rows, elapsed)
            self._log(model, request, started, error, None)
            on_done(error)
            return
        self._record(model, request.protocol, "ok", rows, elapsed)
        datatypes = model.output_datatypes
        if output_names is model.check_request.declared_outputs and len(outcome) == len(datatypes):
            selected = outcome  # every output, in declared order: the batch's own dict
        else:
            selected = {name: outcome[name] for name in output_names}
            datatypes = {name: datatypes[name] for name in output_names}
        self._log(model, request, started, None, selected)
        on_done(InferResponse(model.name, model.version_text, selected, datatypes, request.id))

    def _log(
        self,
        model: ModelVersion,
        request: InferRequest,
        started: int,
        error: ServeError | None,
        outputs: dict[str, Array] | None,
        route: str = "primary",
    ) -> None:
        """Hand the prediction to the prediction log (when there is one); never waits."""
        log_config = model.config.logging
        if self.prediction_log is None or not log_config.enabled:
            return
        self.prediction_log.put(
            Record(
                timestamp=time.time(),
                request_id=request.id,
                model=model.name,
                version=str(model.version),
                route=route,
                latency_ms=(time.perf_counter_ns() - started) / 1e6,
                status="ok" if error is None else error.grpc_code,
                protocol=request.protocol,
                inputs=None if log_config.inputs == "none" else request.inputs,
                input_policy=log_config.inputs,
                outputs=outputs if log_config.outputs else None,
                error="" if error is None else str(error),
            )
        )

    @property
    def must_wait_for_log(self) -> bool:
        """True when the prediction log is full and new requests must wait for room."""
        return self.prediction_log is not None and self.prediction_log.is_full

    async def wait_for_log(self) -> None:
        """Wait (bounded) for room in the prediction log; raises Overloaded when there is none."""
        if self.prediction_log is not None:
            await self.prediction_log.admit()

    async def infer(self, request: InferRequest) -> InferResponse:
        """Validate and run ``request``; raises ServeError subclasses for every failure."""
        if self.must_wait_for_log:
            await self.wait_for_log()
        answer: asyncio.Future[InferResponse] = asyncio.get_running_loop().create_future()
        pending = self.submit(request, functools.partial(settle, answer))
        try:
            return await answer
        except asyncio.CancelledError:
            if pending is not None:
                pending.withdraw()  # recorded as cancelled; a running batch finishes without it
            raise

    def _record(self, model: ModelVersion, protocol: str, outcome: str, rows: int, ns: int) -> None:
        key = (model.name, protocol, outcome)
        children = self._metric_children.get(key)
        if children is None:
            children = self._metric_children[key] = (
                self.metrics.requests.labels(*key),
                self.metrics.request_seconds.labels(model.name, protocol),
            )
        children[0].inc()
        if outcome == "ok":
            children[1].observe(ns / 1e9)
            model.stats.record_request(True, rows, ns)
        elif outcome != "cancelled":
            model.stats.record_request(False, 0, ns)

    def statistics(self, name: str = "", version: str = "") -> dict[str, Any]:
        """The V2 statistics response for every version, one model, or one version."""
        if not name:
            versions = self.store.all_versions()
        elif version:
            versions = [self.store.get(name, version)]
        else:
            versions = self.store.versions(name)
        return {"model_stats": [v.stats.as_dict(v.name, v.version) for v in versions]}

    def status(self, name: str | None = None) -> dict[str, Any]:
        """Why the server, or one model, is ready or not: every version's health."""
        versions = self.store.versions(name) if name else self.store.all_versions()
        entries = [
            {
                "name": v.name,
                "version": str(v.version),
                "ready": self.is_accepting and v.is_healthy,
                "loaded": v.is_ready,
                **v.health.as_dict(),
            }
            for v in versions
        ]
        ready = self.is_accepting and all(e["ready"] for e in entries)
        doc: dict[str, Any] = {"ready": ready, "models": entries}
        if not self.is_accepting:
            doc["reason"] = "server is shutting down"
        return doc

    def _enter(self) -> None:
        if self._in_flight == 0:
            self._idle.clear()
        self._in_flight += 1

    def _leave(self) -> None:
        self._in_flight -= 1
        if self._in_flight == 0:
            self._idle.set()

    def abandon(self, reason: str) -> None:
        """Answer every request still in a batcher with ModelNotReady (503 / UNAVAILABLE)
        naming ``reason``: the drain time is up, and the server stops without their runs."""
        for model in self.store.all_versions():
            if model.batcher is not None:
                model.batcher.abandon(reason)

    async def drain(self, timeout_s: float) -> bool:
        """Stop accepting work and wait for requests in flight; False if time ran out."""
        self.is_accepting = False
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
            return True
        except TimeoutError:
            log.warning("drain: %d requests still in flight after %ss", self._in_flight, timeout_s)
            return False


def _timeout_s(request: InferRequest) -> float | None:
    """The tighter of the caller's deadline and the request's ``timeout`` parameter (µs)."""
    timeout = request.parameters.get("timeout")
    if timeout is None:
        return request.timeout_s
    if type(timeout) is not int or timeout < 0:
        raise InvalidInput('parameter "timeout" must be a non-negative integer (microseconds)')
    if timeout == 0:
        return request.timeout_s
    seconds = timeout / 1e6
    return seconds if request.timeout_s is None else min(seconds, request.timeout_s)
