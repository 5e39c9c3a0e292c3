"""Every Prometheus metric of ortserve, defined once, in a registry of the server's own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


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
        self.requests = Counter(
            "ortserve_requests",
            "Inference requests answered",
            ["model", "protocol", "outcome"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "ortserve_request_duration_seconds",
            "Inference time from decoded request to outputs",
            ["model", "protocol"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_seconds = Histogram(
            "ortserve_queue_duration_seconds",
            "Time a request waited in its batcher's queue",
            ["model", "version"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.compute_seconds = Histogram(
            "ortserve_compute_duration_seconds",
            "Model run time per batch",
            ["model", "version"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
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
