"""InferenceService: the one path both front ends call, from decoded request to outputs."""

from __future__ import annotations

import asyncio
import logging

from .errors import ModelNotReady
from .model_store import ModelStore, ModelVersion
from .types import InferRequest, InferResponse
from .validation import validate

log = logging.getLogger(__name__)


class InferenceService:
    """Looks models up, validates requests, runs them, and tracks work in flight."""

    def __init__(self, store: ModelStore) -> None:
        self.store = store
        self.is_accepting = False
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def is_ready(self) -> bool:
        return self.is_accepting and self.store.is_ready()

    def model(self, name: str, version: str = "") -> ModelVersion:
        """The model version a request names; raises the lookup errors of ModelStore."""
        if not self.is_accepting:
            raise ModelNotReady("server is shutting down")
        return self.store.get(name, version)

    async def infer(self, request: InferRequest) -> InferResponse:
        """Validate and run ``request``; raises ServeError subclasses for every failure."""
        model = self.model(request.model_name, request.model_version)
        output_names = validate(request, model.signature, model.name)
        self._in_flight += 1
        self._idle.clear()
        try:
            outputs = await model.runtime.run(request.inputs, output_names)
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()
        datatypes = {spec.name: spec.datatype for spec in model.signature.outputs}
        return InferResponse(
            model_name=model.name,
            model_version=str(model.version),
            outputs=dict(zip(output_names, outputs, strict=True)),
            datatypes={name: datatypes[name] for name in output_names},
            id=request.id,
        )

    async def drain(self, timeout_s: float) -> bool:
        """Stop accepting work and wait for runs in flight; False if time ran out."""
        self.is_accepting = False
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
            return True
        except TimeoutError:
            log.warning(
                "drain: %d model runs still in flight after %ss", self._in_flight, timeout_s
            )
            return False
