"""The loop-only counters and histograms read like prometheus-client's own."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from server.metrics import Metrics


def families(metrics: Metrics) -> dict:
    return {f.name: f for f in text_string_to_metric_families(metrics.render().decode())}


def test_histogram_buckets_are_cumulative_with_le_inclusive() -> None:
    metrics = Metrics()
    child = metrics.batch_size.labels("m", "1")
    for rows in (1, 1, 2, 3, 8, 2000):
        child.observe(rows)
    samples = {
        (s.name, s.labels.get("le")): s.value
        for s in families(metrics)["ortserve_batch_size"].samples
        if s.labels.get("model") == "m"
    }
    assert samples[("ortserve_batch_size_bucket", "1.0")] == 2
    assert samples[("ortserve_batch_size_bucket", "2.0")] == 3
    assert samples[("ortserve_batch_size_bucket", "4.0")] == 4
    assert samples[("ortserve_batch_size_bucket", "8.0")] == 5
    assert samples[("ortserve_batch_size_bucket", "1024.0")] == 5
    assert samples[("ortserve_batch_size_bucket", "+Inf")] == 6
    assert samples[("ortserve_batch_size_count", None)] == 6
    assert samples[("ortserve_batch_size_sum", None)] == 2015


def test_counter_per_label_set_and_in_flight_gauge_from_a_function() -> None:
    metrics = Metrics()
    metrics.requests.labels("m", "grpc", "ok").inc()
    metrics.requests.labels("m", "grpc", "ok").inc()
    metrics.requests.labels("m", "http", "InvalidInput").inc()
    metrics.in_flight.set_function(lambda: 3)
    found = families(metrics)
    values = {
        (s.labels["protocol"], s.labels["outcome"]): s.value
        for s in found["ortserve_requests"].samples
    }
    assert values == {("grpc", "ok"): 2, ("http", "InvalidInput"): 1}
    assert found["ortserve_requests_in_flight"].samples[0].value == 3
