"""Turn suite results into ``results.md`` (machine, tables) and, with ``chart``,
``latency.png``.

``python -m benchmarks.report DIR`` redraws both from ``DIR/results.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .chart import chart
from .report_cells import fmt, point_order, ratio
from .report_limits import ceiling_lines, inside_lines


def label(record: dict[str, Any]) -> str:
    """A point's short name: ``grpc c64``, ``http-binary c64``, ``grpc open 900/s ×16``;
    stream points say how they ran: ``grpc-stream c64 (python)``, ``grpc-stream c256
    (4 streams × 64)`` (compiled)."""
    protocol = record["protocol"]
    if protocol == "http":
        protocol += "-" + record["encoding"]
    load = f"open {record['rate']:g}/s" if record.get("rate") else f"c{record['concurrency']}"
    rows = f" ×{record['rows']} rows" if record["rows"] > 1 else ""
    return f"{protocol} {load}{rows}{_stream_shape(record)}"


def _stream_shape(record: dict[str, Any]) -> str:
    """`` (python)`` or `` (S streams × K)`` for a stream point, else nothing."""
    if record["protocol"] != "grpc-stream":
        return ""
    messages = record.get("stream_messages")
    if record["mode"] != "compiled" or not messages:
        return f" ({record['mode']})"
    streams = max(1, record["concurrency"] // messages)
    return f" ({streams} stream{'s' if streams > 1 else ''} × {messages})"


def one_line(record: dict[str, Any]) -> str:
    latency = record["latency_ms"]
    return (
        f"{record['throughput_req_s']:.0f} req/s, p50 {fmt(latency['p50'])} ms, "
        f"p99 {fmt(latency['p99'])} ms, errors {record['errors']}, "
        f"server {record['server_cpu_us_per_req']} µs/req, "
        f"generator CPU {record['generator_cpu_share']:.0%}, host steal, idle {_host(record)}"
    )


def _host(record: dict[str, Any]) -> str:
    """The host's steal and idle shares of a point ("—" for records made without them)."""
    steal, idle = record.get("host_steal_share"), record.get("host_idle_share")
    if steal is None or idle is None:
        return "—"
    return f"{steal:.0%}, {idle:.0%}"


def _spaced(spaced: dict[str, Any] | None) -> str:
    if not spaced:
        return "—"
    return (
        f"{spaced['back_to_back_p50_ms']}, {spaced['spaced_p50_ms']} "
        f"({fmt(spaced['spaced_ratio'], '.1f')} ×)"
    )


def threads_line(sessions: dict[str, dict[str, dict[str, str]]]) -> list[str]:
    """The intra-op threads each ortserve server's models ran on, as its model config said."""
    parts = [
        f"{server}: "
        + ", ".join(f"{m} {p.get('intra_op_thread_count', '?')}" for m, p in models.items())
        for server, models in sessions.items()
        if models
    ]
    if not parts:
        return []
    return [
        "- Intra-op threads per model (each server's model config after start-up; chosen at "
        "load where the config names none; under `--workers`, one worker's): " + "; ".join(parts)
    ]


def markdown(results: dict[str, Any]) -> str:
    """The whole report as Markdown."""
    m, s = results["machine"], results["settings"]
    lines = [
        "# ortserve benchmark",
        "",
        f"- Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}",
        f"- Software: Python {m['python']}, onnxruntime {m['onnxruntime']}, "
        f"grpcio {m['grpcio']}, {m['h2load'] or 'no h2load'}, {m['wrk'] or 'no wrk'}",
        f"- Date: {m['date']}, commit {m['git_commit'] or '?'}",
        f"- Command: `{results['command']}`",
        *threads_line(results.get("sessions", {})),
        f"- {s['repeats']} repeat(s) per point of {s['duration_s']:g} s after "
        f"{s['warmup_s']:g} s warm-up; the repeat with the median throughput is shown. "
        f"Device {s['device']}. Suite wall time {results['wall_s']:g} s.",
    ]
    lines += _raw_ort_lines(results["raw_ort"])
    lines += _served_lines(results["points"])
    notes = [p for p in results["points"] if p.get("note")]
    if notes:
        lines += ["", "Notes:", ""]
        lines += [f"- {p['model']} {p['server']} {p['label']}: {p['note']}" for p in notes]
    if results["skipped"]:
        lines += ["", "## Skipped", "", "| point | reason |", "|---|---|"]
        for skip in results["skipped"]:
            reason = skip["reason"].replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {skip['point']} | {reason} |")
    lines += ["", "![latency against throughput](latency.png)", ""]
    return "\n".join(lines)


def _raw_ort_lines(raw_ort: dict[str, Any]) -> list[str]:
    """The raw ONNX Runtime table: the ceiling."""
    lines = [
        "",
        "## Raw ONNX Runtime (in-process, the ceiling)",
        "",
        "**spaced**: batch-8 runs back to back, then each after 3 ms of busy Python on the "
        "same thread; p50 ms of each and how many times slower the spaced ones were. A "
        "server's runs come spaced like that, so they cost nearer the spaced figure than the "
        "back-to-back runs the ceiling is measured with. **best batch to GPU** (CUDA only): "
        "the p50 ms of copying the best batch's inputs from numpy to the device, a part of "
        "each of its runs. **CPU µs/sample**: the process's CPU time (all ORT's threads) per "
        "sample at the best batch.",
        "",
        "| model | best batch | best samples/s | CPU µs/sample | batch 1 samples/s "
        "| batch 1 p50 ms | spaced: back to back, after gap (× slower) | best batch to GPU ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for model, raw in raw_ort.items():
        if "error" in raw:
            lines.append(f"| {model} | failed: {raw['error'][-200:]} | | | | | | |")
            continue
        first = raw["points"][0]
        best = next(p for p in raw["points"] if p["batch"] == raw["best_batch"])
        lines.append(
            f"| {model} | {raw['best_batch']} | {raw['best_samples_per_s']:,.0f} | "
            f"{fmt(best.get('cpu_us_per_sample'), ',.1f')} | {first['samples_per_s']:,.0f} | "
            f"{first['p50_ms']} | {_spaced(raw.get('spaced'))} | "
            f"{fmt(best.get('to_device_p50_ms'))} |"
        )
    return lines


def _served_lines(points: list[dict[str, Any]]) -> list[str]:
    """The served points' table, then the tables made from the same points."""
    lines = [
        "",
        "## Served",
        "",
        "req/s and rows/s served; latency in ms; server CPU per request from /proc; generator "
        "CPU as a share of one core; the host's CPU time stolen by the hypervisor and left idle "
        "in the window, as shares of all its cores. **÷ raw ORT** = rows/s ÷ raw ORT's best "
        "samples/s; **÷ floor** = req/s ÷ the floor server's req/s at the same point (for a "
        "stream point, the floor's stream point of the same mode), taken in each repeat "
        "between the two points measured next to each other, and the median of those ratios "
        "shown (so the host's drift between repeats cancels; the req/s shown are each point's "
        "median repeat); **CPU ÷ floor** the same for server µs/req. "
        "*ortserve no-op model* serves the small models' no-op twins (same requests and "
        "answers, next to no compute): what ortserve itself costs, apart from the model. "
        "*ortserve spinning* serves the small models with `[runtime] allow_spinning = true`: "
        "ONNX Runtime's idle threads spin instead of sleeping (faster hand-offs, more CPU). "
        "*ortserve one thread* serves large_mlp on one intra-op thread (its runs leave a core "
        "to the front end, as a GPU's would); *ortserve one thread, no hand-off* the same with "
        "`[runtime] handoff_after_us = 0`: the event loop then keeps the GIL after a submit "
        "instead of handing the batch to the runtime thread. "
        "Compiled stream points count messages "
        "(K per stream) and have no latency (—): h2load times whole streams.",
        "",
        "| model | server | point | mode | req/s | rows/s | p50 | p99 | errors | server µs/req "
        "| gen CPU | host steal, idle | ÷ raw ORT | ÷ floor | CPU ÷ floor |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in sorted(points, key=point_order):
        lat = p["latency_ms"]
        errors = fmt(p["errors"]) + (f" (+{p['dropped']} dropped)" if p["dropped"] else "")
        lines.append(
            f"| {p['model']} | {p['server']} | {p['label']} | {p['mode']} | "
            f"{p['throughput_req_s']:,.0f} | {p['throughput_rows_s']:,.0f} | "
            f"{fmt(lat['p50'], '.2f')} | {fmt(lat['p99'], '.2f')} | {errors} | "
            f"{fmt(p['server_cpu_us_per_req'], ',.0f')} | {p['generator_cpu_share']:.0%} | "
            f"{_host(p)} | {ratio(p['ratio_raw_ort'])} | {ratio(p['ratio_floor'])} | "
            f"{ratio(p.get('cpu_ratio_floor'))} |"
        )
    lines += _streaming_lines(points)
    lines += inside_lines(points)
    lines += ceiling_lines(points)
    return lines


def _streaming_lines(points: list[dict[str, Any]]) -> list[str]:
    """A small table: each compiled ortserve stream point against the unary floor (gRPC
    c64), the reference the streaming targets are stated against; nothing without one."""
    streamed = [p for p in sorted(points, key=point_order) if "ratio_unary_floor" in p]
    if not streamed:
        return []
    lines = [
        "",
        "Streaming against the **unary** floor (floor_grpc, gRPC c64, same run; medians of "
        "the per-repeat ratios). Targets: "
        "streamed requests cost ≤ 0.5 × the unary floor's server CPU per request and reach "
        "≥ 1.5 × its throughput.",
        "",
        "| model | server | point | req/s | ÷ unary floor req/s | server µs/req "
        "| ÷ unary floor µs/req |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for p in streamed:
        lines.append(
            f"| {p['model']} | {p['server']} | {p['label']} | {p['throughput_req_s']:,.0f} | "
            f"{ratio(p['ratio_unary_floor'])} | {fmt(p['server_cpu_us_per_req'], ',.0f')} | "
            f"{ratio(p['cpu_ratio_unary_floor'])} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__)
    parser.add_argument("folder", type=Path, help="a suite --out folder with results.json")
    args = parser.parse_args()
    results = json.loads((args.folder / "results.json").read_text())
    (args.folder / "results.md").write_text(markdown(results))
    chart(results, args.folder / "latency.png")
    print(args.folder / "results.md")


if __name__ == "__main__":
    main()
