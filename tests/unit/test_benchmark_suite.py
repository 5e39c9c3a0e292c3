"""The suite's plan and ratios: the no-op model's points sit next to the floors they are
compared with, every served point gets its req/s and CPU ratios to its floor, and the
compute-bound points the host's ceiling."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from benchmarks import suite
from benchmarks.models import build_models
from benchmarks.ratios import add_host_ceilings, add_ratios
from benchmarks.report import threads_line
from benchmarks.report_limits import ceiling_lines
from benchmarks.suite_plan import (
    FLOOR_GRPC,
    FLOOR_HTTP,
    NO_OP,
    ORTSERVE,
    SMALL_MODELS,
    SPINNING,
    SPINNING_CONFIG,
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


def test_the_host_ceiling_adds_the_models_cpu_per_row_to_the_floors_per_request() -> None:
    large = {"model": "large_mlp"}
    floor = _point(FLOOR_GRPC, [2000], [500], **large)
    served = _point(ORTSERVE, [800], [1900], **large)
    floor16 = _point(FLOOR_GRPC, [1800], [600], rows=16, concurrency=16, **large)
    served16 = _point(ORTSERVE, [130], [13000], rows=16, concurrency=16, **large)
    served16["throughput_rows_s"] = 2080
    alone = _point(ORTSERVE, [1200], [1400], concurrency=256, **large)  # no floor at c256
    opened = _point(ORTSERVE, [400], [3000], rate=420, **large)
    points = [floor, served, floor16, served16, alone, opened]
    raw = {"large_mlp": {"best_samples_per_s": 2600, "best_cpu_us_per_sample": 750.0}}
    add_host_ceilings(points, raw, cores=2)
    # 2 cores: 2e6 µs ÷ (750 + 500) µs per one-row request = 1,600 rows/s
    assert served["host_ceiling_rows_s"] == 1600.0
    assert served["model_cpu_us_per_req"] == 750.0 and served["floor_cpu_us_per_req"] == 500
    assert served["ceiling_ratio_raw_ort"] == 0.615  # 1,600 ÷ 2,600
    assert served["ratio_host_ceiling"] == 0.5  # 800 ÷ 1,600
    # 16 rows: 2e6 × 16 ÷ (16 × 750 + 600) = 2,539.7 rows/s
    assert served16["host_ceiling_rows_s"] == 2539.7
    assert served16["ceiling_ratio_raw_ort"] == 0.977
    assert served16["ratio_host_ceiling"] == 0.819  # 2,080 ÷ 2,539.7
    for point in (floor, alone, opened):
        assert "host_ceiling_rows_s" not in point
    noop = _point(NO_OP, [1500], [700])
    small_floor = _point(FLOOR_GRPC, [2500], [450])
    add_host_ceilings([small_floor, noop], {"small_mlp": raw["large_mlp"]}, cores=2)
    assert "host_ceiling_rows_s" not in noop  # it runs no model
    old = _point(ORTSERVE, [800], [1900], **large)
    add_host_ceilings([floor, old], {"large_mlp": {"best_samples_per_s": 2600}}, cores=2)
    assert "host_ceiling_rows_s" not in old  # raw ORT recorded without CPU time


def test_the_report_shows_the_ceiling_only_where_the_model_costs_more_than_the_floor() -> None:
    bound = _point(
        ORTSERVE,
        [800],
        [1684],
        model="large_mlp",
        label="grpc c64",
        encoding="binary",
        model_cpu_us_per_req=750.0,
        floor_cpu_us_per_req=500.0,
        host_ceiling_rows_s=1600.0,
        ceiling_ratio_raw_ort=0.615,
        ratio_host_ceiling=0.5,
    )
    front_bound = {**bound, "model": "small_mlp", "model_cpu_us_per_req": 40.0}
    lines = ceiling_lines([bound, front_bound, {**bound, "host_ceiling_rows_s": None}])
    row = "| large_mlp | ortserve | grpc c64 | 750 | 500 | 1,600 | 0.61 | 800 | 0.50 |"
    assert lines[-1] == row
    assert not any("small_mlp" in line for line in lines)
    assert ceiling_lines([front_bound]) == []


def test_spinning_is_measured_at_c1_and_c64_with_the_models_own_config_kept(
    tmp_path: Path,
) -> None:
    items = plan(False)
    for model in SMALL_MODELS:
        loads = sorted(
            i.point.concurrency
            for i in items
            if i.server == SPINNING and i.point.model == model and i.point.protocol == "grpc"
        )
        assert loads == [1, 64], model
    build_models(tmp_path, SMALL_MODELS, SPINNING_CONFIG)
    for model in SMALL_MODELS:
        config = tomllib.loads((tmp_path / model / "config.toml").read_text())
        assert config["runtime"]["allow_spinning"] is True
    breast = tomllib.loads((tmp_path / "breast_cancer" / "config.toml").read_text())
    assert breast["batching"]["max_batch_size"] == 256  # the example's own settings stay


def test_the_report_names_the_threads_each_servers_models_ran_on() -> None:
    sessions = {
        ORTSERVE: {
            "large_mlp": {"intra_op_thread_count": "2"},
            "small_mlp": {"intra_op_thread_count": "1"},
        },
        NO_OP: {"small_mlp": {}},  # a server that did not say
        FLOOR_GRPC: {},
    }
    (line,) = threads_line(sessions)
    assert line.endswith(": ortserve: large_mlp 2, small_mlp 1; ortserve no-op model: small_mlp ?")
    assert threads_line({}) == []  # results of a suite that did not record them


def test_the_resnets_without_cuda_stop_the_suite_before_it_builds_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        suite.main(["--out", str(tmp_path / "out"), "--models", "small_mlp", "resnet50"])
    assert stopped.value.code == 2
    assert "resnet50: the ResNet-50s run only with --device cuda" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
