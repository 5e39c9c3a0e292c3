"""Loading a repository's models: one runtime, batcher and warm-up per model version.

Every version loads in a thread of its own, off the event loop; if any fails, those already
loaded are released and the error stands. A model with a fallback baseline is checked
against it (same inputs, same outputs) once all are loaded.
"""

from __future__ import annotations

import asyncio
import functools
import logging

from .batching import Batcher
from .errors import ConfigError
from .fallback import Fallback
from .health import record_run, warm_up
from .metrics import Metrics
from .model_store import ModelStore, ModelVersion
from .process_runtime import ProcessRuntime
from .repository import ModelSource, scan_repository
from .runtime import ModelRuntime, OrtRuntime
from .settings import Settings

log = logging.getLogger("ortserve")


def _load_version(
    source: ModelSource, version: int, settings: Settings, metrics: Metrics
) -> ModelVersion:
    config = source.config.runtime
    executor = ProcessRuntime if (config.executor or settings.executor) == "process" else OrtRuntime
    runtime: ModelRuntime = executor(
        source.versions[version],
        config,
        settings.device,
        source.config.batching.max_batch_size,
        settings.threads_per_model(),
        f'model "{source.name}" version {version}',
    )
    model = ModelVersion(source.name, version, runtime, source.config)
    batcher = model.batcher = Batcher(
        f'model "{source.name}" version {version}',
        runtime,
        runtime.signature,
        source.config.batching,
        model.stats,
        metrics.for_model(source.name, version),
        on_run=functools.partial(record_run, model),
        check_finite=source.config.health.check_finite,
    )
    warm_up(model)
    if not model.health.healthy:
        log.warning("%s version %d is not ready: %s", source.name, version, model.health.reason)
    labels = (source.name, str(version))
    metrics.model_ready.labels(*labels).set_function(lambda: float(model.is_healthy))
    metrics.queue_depth.labels(*labels).set_function(lambda: batcher.queue_depth)
    log.info(
        "loaded %s version %d on %s (max_batch_size %d)",
        source.name,
        version,
        runtime.device,
        runtime.signature.max_batch_size,
    )
    return model


async def load_models(settings: Settings, metrics: Metrics) -> ModelStore:
    """Every model version of the repository, loaded and warmed up off the event loop."""
    assert settings.model_repository is not None
    sources = await asyncio.to_thread(scan_repository, settings.model_repository)
    jobs = [
        asyncio.to_thread(_load_version, source, version, settings, metrics)
        for source in sources
        for version in source.versions
    ]
    results = await asyncio.gather(*jobs, return_exceptions=True)
    loaded = [r for r in results if isinstance(r, ModelVersion)]
    for error in results:
        if isinstance(error, BaseException):
            for model in loaded:
                model.runtime.close()
            raise error
    for model in loaded:
        await model.runtime.attach()
    store = ModelStore(loaded)
    for model in loaded:
        if model.config.fallback.is_enabled:
            _check_baseline(model, store)
            model.fallback = Fallback(model.config.fallback)
    return store


def _check_baseline(model: ModelVersion, store: ModelStore) -> None:
    """A baseline must exist, take the same inputs and give the same outputs."""
    name = model.config.fallback.baseline
    if not name:
        return
    where = f'model "{model.name}": fallback.baseline "{name}"'
    if name == model.name or name not in store.names():
        raise ConfigError(f"{where} is not another model of the repository")
    baseline = store.versions(name)[-1].signature
    mine = model.signature
    if (baseline.inputs, baseline.max_batch_size > 0) != (mine.inputs, mine.max_batch_size > 0):
        raise ConfigError(f"{where} does not take the same inputs")
    theirs = {(s.name, s.datatype.name) for s in baseline.outputs}
    if not {(s.name, s.datatype.name) for s in mine.outputs} <= theirs:
        raise ConfigError(f"{where} does not give the same outputs")
