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
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from . import report
from .loadgen import Point, Skip, Target, run_point
from .models import ALL_MODELS, RESNETS, build_models
from .payloads import output_specs
from .raw_ort import default_max_batch
from .server_usage import session_parameters
from .servers import ROOT, Server, ServerFailed, start_floor, start_ortserve

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


class Servers:
    """Starts each server on first use and remembers the ones that failed."""

    def __init__(self, repos: dict[str, Path], device: str) -> None:
        self.repos = repos
        self.device = device
        self.running: dict[str, Server] = {}
        self.failed: dict[str, str] = {}
        self.sessions: dict[str, dict[str, dict[str, str]]] = {}  # ortserve's, per model
        self.thread_tries: dict[str, list[str]] = {}  # ortserve's log lines on them

    def target(self, name: str, model: str) -> Target:
        """The running server ``name`` (for ``model``, for floors); raises Skip."""
        key = name if name.startswith(ORTSERVE) else f"{name}:{model}"
        if key in self.failed:
            raise Skip(self.failed[key])
        server = self.running.get(key)
        if server is None:
            print(f"starting {key}", file=sys.stderr, flush=True)
            try:
                server = self.running[key] = self._start(name, model)
            except ServerFailed as error:
                self.failed[key] = f"server did not start: {error}"
                raise Skip(self.failed[key]) from None
            if name in ORTSERVES:  # under --workers, one worker's (each chooses its own)
                self.sessions[key] = {
                    m: session_parameters(server.http, m) for m in self._served(name)
                }
                self.thread_tries[key] = server.lines(THREAD_TRY)
        try:
            server.check_alive()
        except ServerFailed as error:
            self.failed[key] = str(error)
            raise Skip(str(error)) from None
        is_floor = not name.startswith(ORTSERVE)
        workers = WORKER_COUNT if name == WORKERS else 1  # each keeps its own statistics
        return Target(name, server.grpc, server.http, server.pids, is_floor, not is_floor, workers)

    def _served(self, name: str) -> list[str]:
        """The models ortserve ``name`` serves (its repository's folders)."""
        repo = self.repos[ORTSERVES[name][0]]
        return sorted(p.name for p in repo.iterdir() if p.is_dir())

    def _start(self, name: str, model: str) -> Server:
        if name in ORTSERVES:
            repo, extra = ORTSERVES[name]
            return start_ortserve(name, self.repos[repo], "--device", self.device, *extra)
        outputs = [arg for spec in output_specs(model) for arg in ("--output", str(spec))]
        args = ["--model", model, *outputs]
        if name == FLOOR_HTTP:
            return start_floor(name, "floor_http", args)
        return start_floor(name, "floor_grpc", args, processes=2 if name == FLOOR_GRPC_X2 else 1)

    def stop_all(self) -> dict[str, list[int]]:
        codes = {}
        for key, server in self.running.items():
            codes[key] = server.stop()
        self.running.clear()
        return codes


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


def medians(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per point, the repeat with the median throughput, plus every repeat's throughput."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault(tuple(record["key"]), []).append(record)
    out = []
    for group in groups.values():
        group.sort(key=lambda r: r["repeat"])
        ranked = sorted(group, key=lambda r: r["throughput_req_s"])
        chosen = dict(ranked[(len(ranked) - 1) // 2])
        chosen["repeats_req_s"] = [r["throughput_req_s"] for r in group]
        chosen["repeats_cpu_us_per_req"] = [r["server_cpu_us_per_req"] for r in group]
        chosen["repeats_index"] = [r["repeat"] for r in group]
        if len(group) > 1:
            spread = statistics.pstdev(chosen["repeats_req_s"]) / max(
                1e-9, chosen["throughput_req_s"]
            )
            chosen["repeats_spread"] = round(spread, 3)
        out.append(chosen)
    return out


def add_ratios(points: list[dict[str, Any]], raw_ort: dict[str, Any]) -> None:
    """served rows/s ÷ raw ORT best samples/s (not for no-op models: they run no model), and
    served req/s and server µs/req ÷ the matching floor's (a stream point's floor is the
    floor's stream point of the same mode). Compiled ortserve
    stream points also get their req/s and server µs/req ÷ the unary floor's at gRPC c64:
    the streaming targets are stated against that."""
    floors = _floors(points)
    for p in points:
        p["ratio_raw_ort"] = p["ratio_floor"] = p["cpu_ratio_floor"] = None
        if not p["server"].startswith(ORTSERVE):
            continue
        best = raw_ort.get(p["model"], {}).get("best_samples_per_s")
        if best and p["server"] != NO_OP:
            p["ratio_raw_ort"] = _ratio(p["throughput_rows_s"], best)
        floor = floors.get(_floor_key(FLOOR_OF.get((p["server"], p["protocol"])), p))
        if floor and not p["rate"]:
            p["ratio_floor"] = paired_ratio(p, floor, "req_s")
            p["cpu_ratio_floor"] = paired_ratio(p, floor, "cpu_us_per_req")
        if p["server"] == ORTSERVE and p["protocol"] == "grpc-stream" and p["mode"] == "compiled":
            unary = {**p, "protocol": "grpc", "concurrency": 64, "rows": 1}
            floor = floors.get(_floor_key(FLOOR_GRPC, unary))
            p["ratio_unary_floor"] = p["cpu_ratio_unary_floor"] = None
            if floor:
                p["ratio_unary_floor"] = paired_ratio(p, floor, "req_s")
                p["cpu_ratio_unary_floor"] = paired_ratio(p, floor, "cpu_us_per_req")


def add_host_ceilings(points: list[dict[str, Any]], raw_ort: dict[str, Any], cores: int) -> None:
    """What this host allows any server at a closed-loop point, from two measured costs: the
    model's CPU per row in raw ORT at its best batch, and the floor's server CPU per request
    at the same point. A request of R rows then costs at least R × model + floor of CPU, so
    ``cores`` cores serve at most cores × 1 s ÷ that many requests a second (every core on
    nothing else: no generator, no steal). Sets ``model_cpu_us_per_req`` (R × model),
    ``floor_cpu_us_per_req``, ``host_ceiling_rows_s``,
    ``ceiling_ratio_raw_ort`` (that ÷ raw ORT's best samples/s) and ``ratio_host_ceiling``
    (served rows/s ÷ it) on served points with a model and a floor; the floor's is its
    median repeat's CPU per request."""
    floors = _floors(points)
    for p in points:
        if not p["server"].startswith(ORTSERVE) or p["server"] == NO_OP or p["rate"]:
            continue
        raw = raw_ort.get(p["model"], {})
        model_us = raw.get("best_cpu_us_per_sample")
        floor = floors.get(_floor_key(FLOOR_OF.get((p["server"], p["protocol"])), p))
        floor_us = floor["server_cpu_us_per_req"] if floor else None
        if not model_us or not floor_us:
            continue
        rows = p["rows"]
        ceiling = cores * 1e6 * rows / (rows * model_us + floor_us)
        p["model_cpu_us_per_req"] = round(rows * model_us, 1)
        p["floor_cpu_us_per_req"] = floor_us
        p["host_ceiling_rows_s"] = round(ceiling, 1)
        p["ceiling_ratio_raw_ort"] = _ratio(ceiling, raw.get("best_samples_per_s"))
        p["ratio_host_ceiling"] = _ratio(p["throughput_rows_s"], ceiling)


def paired_ratio(point: dict[str, Any], reference: dict[str, Any], what: str) -> float | None:
    """The median over repeats of ``point``'s ÷ ``reference``'s ``what`` ("req_s" or
    "cpu_us_per_req") measured in the same repeat, a few seconds apart: the host's speed
    drifts between repeats, and a ratio of two medians picked from different repeats would
    carry that drift. Falls back to the ratio of the shown values when repeats do not pair."""
    ours = dict(zip(point.get("repeats_index", []), point.get(f"repeats_{what}", []), strict=True))
    theirs = reference.get("repeats_index", [])
    pairs = [
        value / other
        for index, other in zip(theirs, reference.get(f"repeats_{what}", []), strict=True)
        if (value := ours.get(index)) is not None and other
    ]
    if pairs:
        return float(f"{statistics.median(pairs):.3g}")
    shown = "throughput_req_s" if what == "req_s" else "server_cpu_us_per_req"
    return _ratio(point[shown], reference[shown])


def _floors(points: list[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The closed-loop floor points by ``_floor_key``."""
    return {
        _floor_key(p["server"], p): p
        for p in points
        if not p["server"].startswith(ORTSERVE) and not p["rate"]
    }


def _floor_key(server: str | None, p: dict[str, Any]) -> tuple[Any, ...]:
    """Which floor point a served point ``p`` is compared with (``server`` the floor's name):
    same model, protocol, load and rows, and for streams the same mode."""
    mode = p["mode"] if p["protocol"] == "grpc-stream" else None
    return (server, p["model"], p["protocol"], p["concurrency"], p["rows"], mode)


def _ratio(value: float | None, reference: float | None) -> float | None:
    """``value`` ÷ ``reference`` to 3 significant digits; None when either is missing."""
    if value is None or not reference:
        return None
    return float(f"{value / reference:.3g}")


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
        "machine": report.machine_description(),
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
    command = shlex.join(["python", "-m", "benchmarks.suite", *(argv or sys.argv[1:])])
    signal.signal(signal.SIGTERM, _terminate)
    results = run(args, command)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.out / "results.md").write_text(report.markdown(results))
    try:
        report.chart(results, args.out / "latency.png")
    except ImportError as error:
        print(f"no chart: {error}", file=sys.stderr)
    print(report.markdown(results))


if __name__ == "__main__":
    main()
