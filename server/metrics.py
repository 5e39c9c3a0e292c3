"""Every Prometheus metric of ortserve, defined once, in a registry of the server's own.

The per-request and per-batch metrics are updated on the event loop only, so they are plain
counters read at scrape time (``LoopCounter``, ``LoopHistogram``) rather than
prometheus-client's locked ones: the hot path pays a list increment, not a lock per bucket.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

LATENCY_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class _CounterChild:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class _HistogramChild:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def observe_ns(self, values_ns: Sequence[int]) -> None:
        """Observe each of ``values_ns`` nanoseconds, in seconds."""
        counts, bounds = self.counts, self.bounds
        for ns in values_ns:
            counts[bisect_left(bounds, ns / 1e9)] += 1
        self.sum += sum(values_ns) / 1e9


class _LoopFamily(Collector):
    """Children by label values, created on first use; collected at scrape time."""

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = list(labelnames)
        self._children: dict[tuple[str, ...], Any] = {}
        registry.register(self)

    def labels(self, *values: str) -> Any:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._child()
        return child

    def _child(self) -> Any:
        raise NotImplementedError


class LoopCounter(_LoopFamily):
    """A labelled counter updated only from the event loop."""

    def _child(self) -> _CounterChild:
        return _CounterChild()

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in list(self._children.items()):
            family.add_metric(list(values), child.value)
        yield family


class LoopHistogram(_LoopFamily):
    """A labelled histogram updated only from the event loop."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        self.bounds = tuple(float(b) for b in buckets)
        super().__init__(name, documentation, labelnames, registry)

    def _child(self) -> _HistogramChild:
        return _HistogramChild(self.bounds)

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        edges = [floatToGoString(b) for b in self.bounds] + ["+Inf"]  # type: ignore[no-untyped-call]
        for values, child in list(self._children.items()):
            cumulative = list(accumulate(child.counts))
            family.add_metric(list(values), list(zip(edges, cumulative, strict=True)), child.sum)
        yield family


@dataclass(frozen=True, slots=True)
class ModelMetrics:
    """The metric children of one model version, bound once so the hot path skips lookups."""

    queue_seconds: Any
    batch_size: Any
    compute_seconds: Any


class Metrics:
    """The server's metrics; ``render()`` is the body of ``GET /metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = LoopCounter(
            "ortserve_requests",
            "Inference requests answered",
            ["model", "protocol", "outcome"],
            registry=self.registry,
        )
        self.request_seconds = LoopHistogram(
            "ortserve_request_duration_seconds",
            "Inference time from decoded request to outputs",
            ["model", "protocol"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_seconds = LoopHistogram(
            "ortserve_queue_duration_seconds",
            "Time a request waited in its batcher's queue",
            ["model", "version"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.compute_seconds = LoopHistogram(
            "ortserve_compute_duration_seconds",
            "Model run time per batch",
            ["model", "version"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = LoopHistogram(
            "ortserve_batch_size",
            "Rows per model run",
            ["model", "version"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "ortserve_requests_in_flight",
            "Inference requests being served",
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "ortserve_queue_depth",
            "Requests waiting in a batcher's queue",
            ["model", "version"],
            registry=self.registry,
        )
        self.fallbacks = Counter(
            "ortserve_fallbacks",
            "Answers given by a fallback instead of the primary",
            ["model", "route"],
            registry=self.registry,
        )
        self.prediction_log_depth = Gauge(
            "ortserve_prediction_log_depth",
            "Prediction records waiting to be written",
            registry=self.registry,
        )
        self.prediction_log_dropped = Gauge(
            "ortserve_prediction_log_dropped",
            "Prediction records dropped (queue full, drop)",
            registry=self.registry,
        )
        self.model_ready = Gauge(
            "ortserve_model_ready",
            "1 when the model version is ready",
            ["model", "version"],
            registry=self.registry,
        )

    def for_model(self, name: str, version: int) -> ModelMetrics:
        labels = (name, str(version))
        return ModelMetrics(
            queue_seconds=self.queue_seconds.labels(*labels),
            batch_size=self.batch_size.labels(*labels),
            compute_seconds=self.compute_seconds.labels(*labels),
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
