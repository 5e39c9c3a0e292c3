"""The suite's servers and points: what runs against what, and which floor each served point
is compared with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .loadgen import Point
from .models import RESNETS

SMALL_MODELS = ("small_mlp", "breast_cancer")
LARGE_MODEL = "large_mlp"
RAW_ORT_MODELS = (*SMALL_MODELS, LARGE_MODEL)
GPU_MODELS = tuple(RESNETS)  # ResNet-50 FP32 and FP16: only with --device cuda
NO_BATCHING_CONFIG = "[batching]\nenabled = false\n"
SPINNING_CONFIG = "[runtime]\nallow_spinning = true\n"
ONE_THREAD_CONFIG = "[runtime]\nintra_op_threads = 1\n"  # the model leaves a core to the rest
NO_HANDOFF_CONFIG = ONE_THREAD_CONFIG + "handoff_after_us = 0\n"
OPEN_LOOP_FRACTION = 0.5
STREAM_CONCURRENCY = 256  # the compiled stream point: 4 streams of STREAM_MESSAGES (64)

ORTSERVE = "ortserve"
WORKER_COUNT = 2
WORKERS = f"ortserve --workers {WORKER_COUNT}"
NO_BATCHING = "ortserve batching off"
PROCESS = "ortserve --executor process"
NO_OP = "ortserve no-op model"  # the small models' no-op twins: ortserve's own cost per request
SPINNING = "ortserve spinning"  # the small models with ONNX Runtime's idle threads spinning
# large_mlp on one intra-op thread, so that its runs do not wait for a core: as on a GPU or a
# bigger host, what the loop's hand-off of each batch to the runtime thread is worth shows
ONE_THREAD = "ortserve one thread"
NO_HANDOFF = "ortserve one thread, no hand-off"
ORTSERVES: dict[str, tuple[str, tuple[str, ...]]] = {  # name: (repository, arguments)
    ORTSERVE: ("all", ()),
    WORKERS: ("small", ("--workers", str(WORKER_COUNT))),
    NO_BATCHING: ("no_batching", ()),
    PROCESS: ("all", ("--executor", "process")),
    NO_OP: ("noop", ()),
    SPINNING: ("spinning", ()),
    ONE_THREAD: ("one_thread", ()),
    NO_HANDOFF: ("no_handoff", ()),
}
THREAD_TRY = "intra-op thread"  # in ortserve's log line on each model's threads at load
FLOOR_GRPC, FLOOR_HTTP, FLOOR_GRPC_X2 = "floor_grpc", "floor_http", "floor_grpc ×2"
FLOOR_OF = {  # (served server, protocol) -> the floor it is compared with (streams: same mode)
    (ORTSERVE, "grpc"): FLOOR_GRPC,
    (ORTSERVE, "grpc-stream"): FLOOR_GRPC,
    (ORTSERVE, "http"): FLOOR_HTTP,
    (WORKERS, "grpc"): FLOOR_GRPC_X2,
    (WORKERS, "http"): FLOOR_HTTP,
    (NO_BATCHING, "grpc"): FLOOR_GRPC,
    (PROCESS, "grpc"): FLOOR_GRPC,
    (NO_OP, "grpc"): FLOOR_GRPC,
    (NO_OP, "http"): FLOOR_HTTP,
    (SPINNING, "grpc"): FLOOR_GRPC,
    (ONE_THREAD, "grpc"): FLOOR_GRPC,
    (NO_HANDOFF, "grpc"): FLOOR_GRPC,
}


@dataclass(frozen=True)
class Planned:
    """A point to run against one server; ``open_fraction`` makes it open loop at that
    fraction of the same server's closed-loop gRPC c64 throughput, measured just before."""

    server: str
    point: Point
    open_fraction: float | None = None

    def key(self) -> tuple[Any, ...]:
        """What tells this point's repeats from every other point's; stream points also
        name their mode (the Python one for latency, the compiled one for throughput)."""
        p = self.point
        load = f"open{self.open_fraction}" if self.open_fraction else p.concurrency
        encoding = p.encoding if p.protocol == "http" else "raw"
        key: tuple[Any, ...] = (self.server, p.model, p.protocol, encoding, load, p.rows)
        return (*key, p.mode) if p.protocol == "grpc-stream" else key


def plan(quick: bool, device: str = "cpu") -> list[Planned]:
    """The standard points, each served point next to its floor; with ``device`` "cuda" also
    one-image ResNet-50 requests (FP32 and FP16) at c64, with and without ``--workers 2``,
    and at c1."""
    items: list[Planned] = []
    if device == "cuda":
        for model in GPU_MODELS:
            items += _pair(ORTSERVE, FLOOR_GRPC, Point("grpc", model, 64))
            items.append(Planned(WORKERS, Point("grpc", model, 64)))
            items.append(Planned(ORTSERVE, Point("grpc", model, 1)))
    concurrencies = (1, 64) if quick else (1, 16, 64)
    for model in SMALL_MODELS:
        for c in concurrencies:
            items += _pair(ORTSERVE, FLOOR_GRPC, Point("grpc", model, c))
            if c == 1:  # ONNX Runtime's threads spinning: latency at c1 (c64 below)
                items.append(Planned(SPINNING, Point("grpc", model, c)))
        items.append(Planned(NO_OP, Point("grpc", model, 64)))  # next to its floor point
        items.append(Planned(SPINNING, Point("grpc", model, 64)))  # throughput against CPU
        items += _pair(ORTSERVE, FLOOR_HTTP, Point("http", model, 64, encoding="binary"))
        items.append(Planned(NO_OP, Point("http", model, 64, encoding="binary")))
        # streams: Python c64 for per-message latency, compiled c256 (4 × 64) for throughput
        items += _pair(ORTSERVE, FLOOR_GRPC, Point("grpc-stream", model, 64, mode="python"))
        items += _pair(ORTSERVE, FLOOR_GRPC, Point("grpc-stream", model, STREAM_CONCURRENCY))
        items += _pair(WORKERS, FLOOR_GRPC_X2, Point("grpc", model, 64))
        items.append(Planned(WORKERS, Point("http", model, 64, encoding="binary")))
        items.append(Planned(ORTSERVE, Point("grpc", model, 64), OPEN_LOOP_FRACTION))
        items.append(Planned(PROCESS, Point("grpc", model, 64)))
    items += _pair(ORTSERVE, FLOOR_GRPC, Point("grpc", LARGE_MODEL, 64))
    items.append(Planned(ONE_THREAD, Point("grpc", LARGE_MODEL, 64)))  # next to its floor
    items.append(Planned(NO_HANDOFF, Point("grpc", LARGE_MODEL, 64)))
    items.append(Planned(PROCESS, Point("grpc", LARGE_MODEL, 64)))
    items.append(Planned(PROCESS, Point("grpc", LARGE_MODEL, 16, rows=16)))
    items.append(Planned(NO_BATCHING, Point("grpc", LARGE_MODEL, 64)))
    items += _pair(ORTSERVE, FLOOR_GRPC, Point("grpc", LARGE_MODEL, 16, rows=16))
    items.append(Planned(ORTSERVE, Point("grpc", LARGE_MODEL, 64), OPEN_LOOP_FRACTION))
    if not quick:  # nothing may be lost at the top load either
        for model in (SMALL_MODELS[0], LARGE_MODEL):
            items.append(Planned(ORTSERVE, Point("grpc", model, 256)))
        items.append(Planned(ORTSERVE, Point("http", SMALL_MODELS[0], 256, encoding="binary")))
    return items


def _pair(served: str, floor: str, point: Point) -> list[Planned]:
    return [Planned(served, point), Planned(floor, point)]
