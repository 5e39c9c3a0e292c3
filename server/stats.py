"""Per model version statistics in the shape of the V2 statistics extension.

Counters are cumulative since load and only grow. Durations are nanoseconds. A request that
shares a batch is charged that batch's compute times, as Triton does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Duration:
    count: int = 0
    ns: int = 0

    def add(self, ns: int, count: int = 1) -> None:
        self.count += count
        self.ns += ns

    def as_dict(self) -> dict[str, int]:
        return {"count": self.count, "ns": self.ns}


@dataclass(slots=True)
class BatchStats:
    compute_input: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    compute_output: Duration = field(default_factory=Duration)


STAGES = (
    "success",
    "fail",
    "queue",
    "compute_input",
    "compute_infer",
    "compute_output",
    "cache_hit",
    "cache_miss",
)


@dataclass(slots=True)
class ModelStats:
    """What one model version has done since it was loaded."""

    inference_count: int = 0  # successful inferences, counted per row
    execution_count: int = 0  # model runs (a batch counts once)
    last_inference_ms: int = 0
    stages: dict[str, Duration] = field(
        default_factory=lambda: {stage: Duration() for stage in STAGES}
    )
    batches: dict[int, BatchStats] = field(default_factory=dict)

    def record_request(self, ok: bool, rows: int, ns: int) -> None:
        self.stages["success" if ok else "fail"].add(ns)
        if ok:
            self.inference_count += rows

    def record_batch(
        self,
        requests: int,
        rows: int,
        input_ns: int,
        infer_ns: int,
        output_ns: int,
        queue_ns: int = 0,
    ) -> None:
        """One model run of ``rows`` rows serving ``requests`` requests, which waited
        ``queue_ns`` in all before it."""
        self.execution_count += 1
        self.last_inference_ms = int(time.time() * 1000)
        self.stages["compute_input"].add(input_ns * requests, requests)
        self.stages["compute_infer"].add(infer_ns * requests, requests)
        self.stages["compute_output"].add(output_ns * requests, requests)
        self.stages["queue"].add(queue_ns, requests)
        batch = self.batches.get(rows)
        if batch is None:
            batch = self.batches[rows] = BatchStats()
        batch.compute_input.add(input_ns)
        batch.compute_infer.add(infer_ns)
        batch.compute_output.add(output_ns)

    def as_dict(self, name: str, version: int) -> dict[str, Any]:
        """The V2 ``model_stats`` entry for this version."""
        return {
            "name": name,
            "version": str(version),
            "last_inference": self.last_inference_ms,
            "inference_count": self.inference_count,
            "execution_count": self.execution_count,
            "inference_stats": {k: v.as_dict() for k, v in self.stages.items()},
            "response_stats": {},
            "batch_stats": [
                {
                    "batch_size": size,
                    "compute_input": b.compute_input.as_dict(),
                    "compute_infer": b.compute_infer.as_dict(),
                    "compute_output": b.compute_output.as_dict(),
                }
                for size, b in sorted(self.batches.items())
            ],
            "memory_usage": [],
        }
