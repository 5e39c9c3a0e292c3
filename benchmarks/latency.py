"""Latency percentiles, the same four everywhere: p50, p90, p99, p99.9 in milliseconds."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p99.9": 99.9}


def percentiles_ms(samples: Sequence[float] | np.ndarray, unit_s: float) -> dict[str, float | None]:
    """p50/p90/p99/p99.9 in ms of ``samples`` measured in units of ``unit_s`` seconds
    (1e-6 for microseconds); ``None`` each when there are no samples."""
    values = np.asarray(samples, dtype=np.float64)
    if values.size == 0:
        return dict.fromkeys(PERCENTILES)
    found = np.percentile(values, list(PERCENTILES.values())) * (unit_s * 1e3)
    return {key: round(float(v), 3) for key, v in zip(PERCENTILES, found, strict=True)}
