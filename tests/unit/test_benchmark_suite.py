"""The suite's plan and ratios: the no-op model's points sit next to the floors they are
compared with, and every served point gets its req/s and CPU ratios to its floor."""

from __future__ import annotations

from typing import Any

from benchmarks.suite import (
    FLOOR_GRPC,
    FLOOR_HTTP,
    NO_OP,
    ORTSERVE,
    SMALL_MODELS,
    add_ratios,
    plan,
)


def _point(server: str, req_s: list[float], cpu: list[float], **fields: Any) -> dict[str, Any]:
    point = {
        "server": server,
        "model": "small_mlp",
        "protocol": "grpc",
        "concurrency": 64,
        "rows": 1,
        "mode": "compiled",
        "rate": None,
        "throughput_req_s": sorted(req_s)[len(req_s) // 2],
        "throughput_rows_s": sorted(req_s)[len(req_s) // 2],
        "server_cpu_us_per_req": sorted(cpu)[len(cpu) // 2],
        "repeats_index": list(range(len(req_s))),
        "repeats_req_s": req_s,
        "repeats_cpu_us_per_req": cpu,
    }
    return point | fields


def test_the_no_op_model_is_measured_next_to_each_small_models_floors() -> None:
    items = plan(False)
    for model in SMALL_MODELS:
        for protocol, floor in (("grpc", FLOOR_GRPC), ("http", FLOOR_HTTP)):
            at = [
                i
                for i, item in enumerate(items)
                if item.server == NO_OP
                and item.point.model == model
                and item.point.protocol == protocol
                and item.point.concurrency == 64
            ]
            assert len(at) == 1, (model, protocol)
            before = items[at[0] - 1]
            assert (before.server, before.point) == (floor, items[at[0]].point)


def test_served_points_get_paired_req_s_and_cpu_ratios_and_no_op_no_raw_ratio() -> None:
    floor = _point(FLOOR_GRPC, [3000, 2000, 4000], [400, 500, 300])
    served = _point(ORTSERVE, [1800, 1500, 2000], [700, 700, 600])
    noop = _point(NO_OP, [2400, 1800, 3600], [480, 600, 330])
    http = _point(ORTSERVE, [5000], [250], protocol="http", encoding="binary")
    points = [floor, served, noop, http]
    add_ratios(points, {"small_mlp": {"best_samples_per_s": 40000}})
    assert served["ratio_floor"] == 0.6  # repeat by repeat: 0.6, 0.75, 0.5
    assert served["cpu_ratio_floor"] == 1.75  # 1.75, 1.4, 2.0
    assert served["ratio_raw_ort"] == 0.045
    assert noop["ratio_floor"] == 0.9 and noop["cpu_ratio_floor"] == 1.2
    assert noop["ratio_raw_ort"] is None  # it runs no model: nothing to compare with ORT's
    assert http["ratio_floor"] is None and http["cpu_ratio_floor"] is None  # no HTTP floor
    assert floor["ratio_floor"] is None and floor["cpu_ratio_floor"] is None
