"""The suite's figures from its points: each point's median repeat, served ÷ raw ORT and
÷ floor (paired per repeat), and the host ceiling at the compute-bound points."""

from __future__ import annotations

import statistics
from typing import Any

from .suite_plan import FLOOR_GRPC, FLOOR_OF, NO_OP, ORTSERVE


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
