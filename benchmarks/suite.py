"""The whole benchmark in one command: raw ONNX Runtime, ortserve and the floor servers,
side by side, in the same run.

Builds the model repository in a temp folder, measures raw ORT for each model, starts every
server as a child process on free ports (on first use), runs the standard points ``--repeats``
times, keeps each point's median-throughput repeat, stops the servers with SIGTERM and writes
``results.json``, ``results.md`` and ``latency.png`` into ``--out``. A point whose server
lacks a feature (streaming answers UNIMPLEMENTED, ``--workers`` refused, a config key
unknown) is recorded as skipped with the reason.

Example: ``python -m benchmarks.suite --out benchmarks/results/dev --quick``
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import report
from .chart import chart
from .loadgen import Point, Skip, run_point
from .machine import machine_description
from .models import ALL_MODELS, build_models
from .ratios import add_host_ceilings, add_ratios, medians
from .raw_ort import default_max_batch
from .servers import ROOT
from .suite_plan import (
    GPU_MODELS,
    LARGE_MODEL,
    NO_BATCHING_CONFIG,
    NO_HANDOFF_CONFIG,
    ONE_THREAD_CONFIG,
    OPEN_LOOP_FRACTION,
    RAW_ORT_MODELS,
    SMALL_MODELS,
    SPINNING_CONFIG,
    Planned,
    plan,
)
from .suite_servers import Servers


def measure_raw_ort(
    repo: Path, quick: bool, device: str, only: tuple[str, ...] = ()
) -> dict[str, Any]:
    """raw_ort for every model (or those in ``only``), each in its own process."""
    results = {}
    for model in (*RAW_ORT_MODELS, *(GPU_MODELS if device == "cuda" else ())):
        if only and model not in only:
            continue
        args = [sys.executable, "-m", "benchmarks.raw_ort", "--device", device]
        path = repo / model / "1" / "model.onnx"
        args += ["--model", str(path)]
        if quick:
            sizes = [str(b) for b in (1, 4, 16, 64, 256) if b <= default_max_batch(path)]
            args += ["--seconds", "0.5", "--warmup-s", "0.2", "--batches", *sizes]
            args += ["--spaced-runs", "50"]
        print(f"raw ORT {model}", file=sys.stderr, flush=True)
        done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            results[model] = {"error": done.stderr[-1500:]}
        else:
            results[model] = json.loads(done.stdout)
    return results


def run_plan(
    items: list[Planned], servers: Servers, repeats: int, duration_s: float, warmup_s: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every item ``repeats`` times, in order; (records, skipped)."""
    records: list[dict[str, Any]] = []
    skipped: dict[tuple[Any, ...], dict[str, Any]] = {}
    total = len(items) * repeats
    for repeat in range(repeats):
        by_key: dict[tuple[Any, ...], dict[str, Any]] = {}
        for index, item in enumerate(items):
            step = f"[{repeat * len(items) + index + 1}/{total}]"
            try:
                point = _with_rate(item, by_key)
                target = servers.target(item.server, point.model)
                record = run_point(point, target, duration_s, warmup_s)
            except Skip as skip:
                skipped[item.key()] = _skip_record(item, str(skip))
                print(f"{step} {_name(item)}: skipped: {skip}", file=sys.stderr, flush=True)
                continue
            except Exception as error:  # a broken point must not end the suite
                skipped[item.key()] = _skip_record(item, f"failed: {error}")
                print(f"{step} {_name(item)}: failed: {error}", file=sys.stderr, flush=True)
                continue
            record |= {"repeat": repeat, "key": list(item.key()), "label": report.label(record)}
            record["open_fraction"] = item.open_fraction
            by_key[item.key()] = record
            records.append(record)
            print(f"{step} {_name(item)}: {report.one_line(record)}", file=sys.stderr, flush=True)
    return records, list(skipped.values())


def _with_rate(item: Planned, done: dict[tuple[Any, ...], dict[str, Any]]) -> Point:
    if item.open_fraction is None:
        return item.point
    reference = replace(item, open_fraction=None).key()
    measured = done.get(reference)
    if measured is None or not measured["throughput_req_s"]:
        raise Skip("no closed-loop throughput to set the open-loop rate from")
    return replace(item.point, rate=round(measured["throughput_req_s"] * item.open_fraction))


def _name(item: Planned) -> str:
    p = item.point
    load = f"open {item.open_fraction:.0%}" if item.open_fraction else f"c{p.concurrency}"
    mode = f" {p.mode}" if p.protocol == "grpc-stream" else ""
    return f"{item.server} {p.model} {p.protocol}{mode} {load} {p.rows}-row"


def _skip_record(item: Planned, reason: str) -> dict[str, Any]:
    return {
        "server": item.server,
        "model": item.point.model,
        "point": _name(item),
        "reason": reason,
    }


def build_repos(root: Path, no_batching_config: str, device: str = "cpu") -> dict[str, Path]:
    """Every model; the small ones (for ``--workers``); large_mlp with batching disabled; the
    small ones' no-op twins; the small ones with ONNX Runtime's threads spinning; large_mlp
    on one intra-op thread, with and without the hand-off. With ``device`` "cuda" the first
    two hold the ResNet-50s too."""
    gpu = GPU_MODELS if device == "cuda" else ()
    return {
        "all": build_models(root / "all", (*ALL_MODELS, *gpu)),
        "small": build_models(root / "small", (*SMALL_MODELS, *gpu)),
        "no_batching": build_models(root / "no_batching", (LARGE_MODEL,), no_batching_config),
        "noop": build_models(root / "noop", SMALL_MODELS, noop=True),
        "spinning": build_models(root / "spinning", SMALL_MODELS, SPINNING_CONFIG),
        "one_thread": build_models(root / "one_thread", (LARGE_MODEL,), ONE_THREAD_CONFIG),
        "no_handoff": build_models(root / "no_handoff", (LARGE_MODEL,), NO_HANDOFF_CONFIG),
    }


def run(args: argparse.Namespace, command: str) -> dict[str, Any]:
    repeats = args.repeats or (1 if args.quick else 3)
    duration_s = args.duration_s or (2.0 if args.quick else 5.0)
    warmup_s = 0.5 if args.quick else 1.0
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="ortserve-bench-") as folder:
        repos = build_repos(Path(folder), args.no_batching_config, args.device)
        only = tuple(args.models or ())
        raw_ort = measure_raw_ort(repos["all"], args.quick, args.device, only)
        items = [p for p in plan(args.quick, args.device) if not only or p.point.model in only]
        servers = Servers(repos, args.device)
        try:
            records, skipped = run_plan(items, servers, repeats, duration_s, warmup_s)
        finally:
            exit_codes = servers.stop_all()
    points = medians(records)
    add_ratios(points, raw_ort)
    add_host_ceilings(points, raw_ort, os.cpu_count() or 1)
    return {
        "machine": machine_description(),
        "command": command,
        "settings": {
            "quick": args.quick,
            "repeats": repeats,
            "duration_s": duration_s,
            "warmup_s": warmup_s,
            "device": args.device,
            "no_batching_config": args.no_batching_config,
            "open_loop_fraction": OPEN_LOOP_FRACTION,
        },
        "wall_s": round(time.time() - started, 1),
        "raw_ort": raw_ort,
        "points": points,
        "skipped": skipped,
        "runs": records,
        "server_exit_codes": exit_codes,
        "sessions": servers.sessions,
        "thread_tries": servers.thread_tries,
    }


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # so that the servers are stopped on the way out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.suite",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for the results")
    parser.add_argument("--quick", action="store_true", help="~2 s points, fewer of them")
    parser.add_argument("--repeats", type=int, help="runs per point (default 3, --quick 1)")
    parser.add_argument("--duration-s", type=float, help="per point (default 5, --quick 2)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument(
        "--models",
        nargs="+",
        choices=[*RAW_ORT_MODELS, *GPU_MODELS],
        help="only these models' points and raw ORT (e.g. the ResNet-50s on a short GPU slot)",
    )
    parser.add_argument(
        "--no-batching-config",
        default=NO_BATCHING_CONFIG,
        metavar="TOML",
        help="config.toml text of the 'ortserve batching off' server's model "
        f"(default {NO_BATCHING_CONFIG!r})",
    )
    args = parser.parse_args(argv)
    gpu_only = [m for m in args.models or () if m in GPU_MODELS]
    if gpu_only and args.device != "cuda":
        parser.error(f"{', '.join(gpu_only)}: the ResNet-50s run only with --device cuda")
    command = shlex.join(["python", "-m", "benchmarks.suite", *(argv or sys.argv[1:])])
    signal.signal(signal.SIGTERM, _terminate)
    results = run(args, command)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.out / "results.md").write_text(report.markdown(results))
    try:
        chart(results, args.out / "latency.png")
    except ImportError as error:
        print(f"no chart: {error}", file=sys.stderr)
    print(report.markdown(results))


if __name__ == "__main__":
    main()
