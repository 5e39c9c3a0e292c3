"""The load generator against a real ortserve and a real floor: every protocol and mode it
offers measures a point, and the record carries what the suite's report reads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.loadgen import Point, Target, run_point
from benchmarks.payloads import output_specs
from benchmarks.server_usage import session_parameters
from benchmarks.servers import Server, start_floor, start_ortserve
from benchmarks.suite_plan import THREAD_TRY
from tests.conftest import RunningServer
from tests.onnx_models import add_sub

pytestmark = pytest.mark.slow

MODEL = "breast_cancer"  # an example model the test repository ships
POINTS = [
    Point("grpc", MODEL, concurrency=4),
    Point("http", MODEL, concurrency=4),
    Point("grpc-stream", MODEL, concurrency=8, mode="python"),
    Point("grpc", MODEL, rate=100.0),  # open loop: the Python generator
]


@pytest.fixture(scope="module")
def floor() -> Iterator[Server]:
    outputs = [arg for spec in output_specs(MODEL) for arg in ("--output", str(spec))]
    running = start_floor("floor_grpc", "floor_grpc", ["--model", MODEL, *outputs])
    yield running
    running.stop()


def _check(record: dict[str, Any]) -> None:
    assert record["requests"] and record["throughput_req_s"] > 0
    assert record["server_cpu_us_per_req"] and record["server_cpu_us_per_req"] > 0
    assert 0 < record["generator_cpu_share"] < 4
    if Path("/proc/stat").exists():
        for key in ("host_steal_share", "host_idle_share"):
            assert 0.0 <= record[key] <= 1.0
    latency = record["latency_ms"]
    assert isinstance(latency, dict)
    if record["protocol"] != "grpc-stream" or record["mode"] == "python":  # as it ran
        assert 0 < latency["p50"] <= latency["p99"] <= latency["p99.9"]


@pytest.mark.parametrize(
    "point", POINTS, ids=lambda p: f"{p.protocol}-{p.mode}-{p.rate or p.concurrency}"
)
def test_a_point_against_ortserve_has_no_errors_and_a_full_record(
    server: RunningServer, point: Point
) -> None:
    target = Target("ortserve", server.grpc, server.http, (server.process.pid,))
    record = run_point(point, target, duration_s=1.0, warmup_s=0.3)
    _check(record)
    assert record["errors"] == 0 and record["server_errors"] == 0
    inside = record["server_stats"]  # from the server's statistics over the window
    assert inside is not None and inside["rows_per_run"] >= 1
    assert 0 < inside["compute_infer_us"] <= inside["request_us"]
    assert 0 <= inside["queue_us"] <= inside["request_us"]


def test_the_floor_answers_unary_and_stream_points(floor: Server) -> None:
    target = Target("floor_grpc", floor.grpc, None, floor.pids, is_floor=True, has_statistics=False)
    for point in (Point("grpc", MODEL, concurrency=4), Point("grpc-stream", MODEL, concurrency=8)):
        record = run_point(point, target, duration_s=1.0, warmup_s=0.3)
        _check(record)
        assert record["errors"] == 0 and record["server_stats"] is None


def test_the_suite_reads_the_session_options_a_model_runs_with(server: RunningServer) -> None:
    parameters = session_parameters(server.http, MODEL)
    assert int(parameters["intra_op_thread_count"]) >= 1  # chosen at load: a count, not 0
    assert parameters["ortserve_allow_spinning"] == "false"
    assert session_parameters(server.http, "no_such_model") == {}
    assert session_parameters(None, MODEL) == {}  # a floor with no HTTP address


def test_the_suite_keeps_ortserves_lines_on_how_each_models_threads_were_chosen(
    tmp_path: Path,
) -> None:
    add_sub(tmp_path)  # its config names no intra_op_threads: chosen at load
    running = start_ortserve("ortserve", tmp_path, "--intra-op-threads", "2")
    try:
        (line,) = running.lines(THREAD_TRY)
        assert 'model "add_sub" version 1: ' in line and "intra-op thread" in line
        assert "runs of 1 row: " in line  # the try's times, whatever it chose
    finally:
        assert running.stop() == [0]
