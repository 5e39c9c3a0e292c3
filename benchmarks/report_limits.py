"""The report's sections on what limits a served point: where a request's time went inside
ortserve (its V2 statistics), and what the host allows at the compute-bound points."""

from __future__ import annotations

from typing import Any

from .report_cells import fmt, point_order, ratio


def inside_lines(points: list[dict[str, Any]]) -> list[str]:
    """Where a request's time went inside ortserve at each point with statistics."""
    inside = [p for p in sorted(points, key=point_order) if p.get("server_stats")]
    if not inside:
        return []
    lines = [
        "",
        "Inside ortserve, from its V2 statistics over each point's window (the median repeat): "
        "rows per model run, and the mean µs per request from the validated request to its "
        "answer (**request**), waiting for a run (**queue**), and in its run's input, model "
        "and output stages (each request is charged its run's times, as Triton does). The "
        "client's p50 minus **request** is the rest: transport, the gRPC or HTTP stack, "
        "decoding and encoding.",
        "",
        "| model | server | point | rows/run | request µs | queue µs | input µs | model µs "
        "| output µs | client p50 µs |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in inside:
        st = p["server_stats"]
        p50 = p["latency_ms"]["p50"]
        lines.append(
            f"| {p['model']} | {p['server']} | {p['label']} | {fmt(st['rows_per_run'])} | "
            f"{fmt(st['request_us'], ',.0f')} | {fmt(st['queue_us'], ',.0f')} | "
            f"{fmt(st['compute_input_us'], ',.0f')} | {fmt(st['compute_infer_us'], ',.0f')} | "
            f"{fmt(st['compute_output_us'], ',.0f')} | "
            f"{fmt(None if p50 is None else p50 * 1000, ',.0f')} |"
        )
    return lines


def ceiling_lines(points: list[dict[str, Any]]) -> list[str]:
    """The host's ceiling at each compute-bound served point (its model's CPU per request at
    least the floor's), where the front end's CPU takes from the model's."""
    bound = [
        p
        for p in sorted(points, key=point_order)
        if p.get("host_ceiling_rows_s") and p["model_cpu_us_per_req"] >= p["floor_cpu_us_per_req"]
    ]
    if not bound:
        return []
    lines = [
        "",
        "What this host allows at the compute-bound points: a request costs at least its rows "
        "× the model's CPU per row in raw ORT at its best batch (**model µs/req**, all ORT's "
        "threads) plus the floor's server CPU per request at the same point (**floor µs/req**), "
        "so all the host's cores, running nothing else (no generator, no steal), serve at most "
        "the **host ceiling**. A target above **ceiling ÷ raw ORT** is out of reach for any "
        "server on this host; **served ÷ ceiling** is how near ortserve comes.",
        "",
        "| model | server | point | model µs/req | floor µs/req | host ceiling rows/s "
        "| ceiling ÷ raw ORT | rows/s | served ÷ ceiling |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for p in bound:
        lines.append(
            f"| {p['model']} | {p['server']} | {p['label']} | "
            f"{fmt(p['model_cpu_us_per_req'], ',.0f')} | "
            f"{fmt(p['floor_cpu_us_per_req'], ',.0f')} | "
            f"{fmt(p['host_ceiling_rows_s'], ',.0f')} | "
            f"{ratio(p['ceiling_ratio_raw_ort'])} | {p['throughput_rows_s']:,.0f} | "
            f"{ratio(p['ratio_host_ceiling'])} |"
        )
    return lines
