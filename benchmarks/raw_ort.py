"""The ceiling: the model run in-process with ONNX Runtime, no server in the way.

For batch sizes 1, 2, 4, ... up to ``--max-batch`` (default 256; 64 for ``large_mlp`` and the
ResNet-50s), runs the model back to back for ``--seconds`` after a short warm-up and records
samples/s, batches/s, the p50/p99 latency of one run and the CPU time of the whole process
(every thread, ONNX Runtime's pool too) per sample. Inputs are numpy arrays, so on CUDA every
run copies them to the device and back; ``to_device_p50_ms`` times that input copy alone.
CPU provider with ONNX Runtime's default threads (``--intra-op-threads N`` and
``--no-spinning`` set them as a model's ``[runtime]`` does in ortserve), or ``--device cuda``
(CUDAExecutionProvider with its default, exhaustive cuDNN algorithm search: at one fixed batch
size that finds the fastest kernels, so the ceiling is the strictest one; the server asks
cuDNN's heuristic, since its batch sizes vary). Prints JSON.

Back-to-back runs are the best case: a server's runs come apart, with the front end's work
between them. So ``spaced`` also times batch-8 runs (``--spaced-batch``) back to back and then
each after ``SPACED_GAP_S`` of busy Python on the same thread. Where the spaced runs are much
slower (on the 2-core development VM, 2-8 times for the small models), a server's model runs
cost nearer the spaced figure than the back-to-back one. Both ways also record the CPU time
per sample (every thread, less the busy gaps).

Example: ``python -m benchmarks.raw_ort --model repo/small_mlp/1/model.onnx``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from server.datatypes import BY_ONNX
from server.ort_options import session_options as server_session_options

from .latency import percentiles_ms

LARGE_MODELS = ("large_mlp", "resnet50")  # also resnet50_fp16
SPACED_BATCH = 8
SPACED_GAP_S = 0.003


def providers(device: str) -> list[str]:
    """ONNX Runtime providers for ``cpu`` or ``cuda``; raises RuntimeError without CUDA."""
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise RuntimeError("this ONNX Runtime has no CUDAExecutionProvider")
    return ["CUDAExecutionProvider", "CPUExecutionProvider"]


def session_options(intra_op_threads: int, spinning: bool) -> ort.SessionOptions:
    """ONNX Runtime's session options with ``intra_op_threads`` (0: its default) and its idle
    threads spinning or not."""
    return server_session_options(
        {
            "graph_optimization": "all",  # ONNX Runtime's default, as ortserve's
            "intra_op_threads": intra_op_threads,
            "inter_op_threads": 0,
            "allow_spinning": spinning,
        }
    )


def feeds(session: ort.InferenceSession, batch: int) -> dict[str, np.ndarray]:
    """Random inputs of ``batch`` rows for every input of ``session``."""
    rng = np.random.default_rng(0)
    out = {}
    for arg in session.get_inputs():
        shape = [batch, *(d if isinstance(d, int) else 1 for d in arg.shape[1:])]
        datatype = BY_ONNX.get(arg.type)
        dtype = datatype.dtype if datatype is not None and datatype.itemsize else np.float32
        out[arg.name] = rng.standard_normal(shape).astype(dtype)
    return out


def measure_copy(inputs: dict[str, np.ndarray], device: str = "cuda", runs: int = 20) -> float:
    """p50 ms to copy ``inputs`` (a batch, as numpy arrays) into ``device`` memory with ONNX
    Runtime's own copy (as a server's IO binding copies a batch): how much of a GPU run at
    that batch size is the host-to-device copy."""
    times = []
    for _ in range(runs + 2):  # the first two allocate
        start = time.perf_counter()
        values = [ort.OrtValue.ortvalue_from_numpy(a, device, 0) for a in inputs.values()]
        times.append(time.perf_counter() - start)
        del values
    p50 = percentiles_ms(times[2:], 1.0)["p50"]
    return p50 if p50 is not None else 0.0  # None only without runs


def measure_batch(
    session: ort.InferenceSession, batch: int, seconds: float, warmup_s: float
) -> dict[str, Any]:
    """Run ``session`` on ``batch`` rows back to back for ``seconds``; on CUDA also time the
    copy of its inputs to the device (``to_device_p50_ms``, else None). ``cpu_us_per_sample``
    is the CPU time of the whole process (every thread) over the runs, per sample."""
    inputs = feeds(session, batch)
    deadline = time.perf_counter() + warmup_s
    while time.perf_counter() < deadline:
        session.run(None, inputs)
    latencies = []
    cpu_start = time.process_time()
    start = time.perf_counter()
    end = start + seconds
    now = start
    while now < end:
        session.run(None, inputs)
        done = time.perf_counter()
        latencies.append(done - now)
        now = done
    elapsed = now - start
    cpu_s = time.process_time() - cpu_start
    percentiles = percentiles_ms(latencies, 1.0)
    return {
        "batch": batch,
        "runs": len(latencies),
        "samples_per_s": round(batch * len(latencies) / elapsed, 1),
        "batches_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": percentiles["p50"],
        "p99_ms": percentiles["p99"],
        "cpu_us_per_sample": round(cpu_s * 1e6 / (batch * len(latencies)), 1),
        "to_device_p50_ms": (
            measure_copy(inputs) if "CUDAExecutionProvider" in session.get_providers() else None
        ),
    }


def measure_spaced(
    session: ort.InferenceSession, runs: int, batch: int = SPACED_BATCH, gap_s: float = SPACED_GAP_S
) -> dict[str, Any]:
    """p50 of ``runs`` runs of ``batch`` rows back to back, and of as many each after
    ``gap_s`` of busy Python on this thread (a busy front end between a server's runs).

    The CPU time per sample of each way counts every thread of the process over the whole
    stretch, less this thread's own busy gaps: what ONNX Runtime's threads do in a gap (spin,
    or go to sleep) is the price of that run."""
    inputs = feeds(session, batch)
    session.run(None, inputs)
    hot, spaced = [], []
    cpu_start = time.process_time()
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, inputs)
        hot.append(time.perf_counter() - start)
    hot_cpu_s = time.process_time() - cpu_start
    gaps_cpu_s = 0.0
    cpu_start = time.process_time()
    for _ in range(runs):
        gap_start = time.thread_time()
        until = time.perf_counter() + gap_s
        while time.perf_counter() < until:
            pass
        gaps_cpu_s += time.thread_time() - gap_start
        start = time.perf_counter()
        session.run(None, inputs)
        spaced.append(time.perf_counter() - start)
    spaced_cpu_s = time.process_time() - cpu_start - gaps_cpu_s
    hot_p50, spaced_p50 = percentiles_ms(hot, 1.0)["p50"], percentiles_ms(spaced, 1.0)["p50"]
    samples = batch * runs
    return {
        "batch": batch,
        "gap_ms": gap_s * 1e3,
        "runs": runs,
        "back_to_back_p50_ms": hot_p50,
        "spaced_p50_ms": spaced_p50,
        "spaced_ratio": round(spaced_p50 / hot_p50, 2) if hot_p50 and spaced_p50 else None,
        "back_to_back_cpu_us_per_sample": round(hot_cpu_s * 1e6 / samples, 1),
        "spaced_cpu_us_per_sample": round(max(spaced_cpu_s, 0.0) * 1e6 / samples, 1),
    }


def batch_sizes(max_batch: int) -> list[int]:
    sizes, size = [], 1
    while size <= max_batch:
        sizes.append(size)
        size *= 2
    return sizes


def measure_model(
    path: Path | str,
    max_batch: int,
    seconds: float = 2.0,
    warmup_s: float = 0.5,
    device: str = "cpu",
    sizes: list[int] | None = None,
    spaced_runs: int = 200,
    intra_op_threads: int = 0,
    spinning: bool = True,
    spaced_batch: int = SPACED_BATCH,
) -> dict[str, Any]:
    """Every batch size of one model, the best samples/s among them, and (``spaced_runs`` >
    0) back-to-back against spaced runs (``measure_spaced``). ``intra_op_threads`` 0 and
    ``spinning`` are ONNX Runtime's defaults; ortserve's are its threads per model and no
    spinning (``[runtime]``)."""
    session = ort.InferenceSession(
        str(path), session_options(intra_op_threads, spinning), providers=providers(device)
    )
    points = [measure_batch(session, b, seconds, warmup_s) for b in sizes or batch_sizes(max_batch)]
    best = max(points, key=lambda p: p["samples_per_s"])
    return {
        "model": str(path),
        "device": device,
        "providers": session.get_providers(),
        "intra_op_threads": intra_op_threads,
        "spinning": spinning,
        "points": points,
        "best_samples_per_s": best["samples_per_s"],
        "best_batch": best["batch"],
        "best_cpu_us_per_sample": best["cpu_us_per_sample"],
        "spaced": measure_spaced(session, spaced_runs, spaced_batch) if spaced_runs > 0 else None,
    }


def default_max_batch(path: Path | str) -> int:
    return 64 if any(name in str(path) for name in LARGE_MODELS) else 256


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.raw_ort",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, type=Path, help="an ONNX file")
    parser.add_argument(
        "--max-batch", type=int, help="default 256 (64 for large_mlp and the ResNet-50s)"
    )
    parser.add_argument(
        "--batches", type=int, nargs="+", help="exact batch sizes instead of 1, 2, 4, ..."
    )
    parser.add_argument("--seconds", type=float, default=2.0, help="per batch size")
    parser.add_argument("--warmup-s", type=float, default=0.5, help="per batch size")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument(
        "--spaced-runs", type=int, default=200, help="runs each way for `spaced` (0: none)"
    )
    parser.add_argument(
        "--spaced-batch", type=int, default=SPACED_BATCH, help="rows per `spaced` run"
    )
    parser.add_argument(
        "--intra-op-threads", type=int, default=0, help="0: ONNX Runtime's default (the cores)"
    )
    parser.add_argument(
        "--no-spinning",
        dest="spinning",
        action="store_false",
        help="idle ONNX Runtime threads sleep, as in ortserve by default",
    )
    args = parser.parse_args()
    max_batch = args.max_batch or default_max_batch(args.model)
    result = measure_model(
        args.model,
        max_batch,
        args.seconds,
        args.warmup_s,
        args.device,
        args.batches,
        args.spaced_runs,
        args.intra_op_threads,
        args.spinning,
        args.spaced_batch,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
