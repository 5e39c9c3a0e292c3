"""What a benchmark point records of the host (steal and idle CPU shares, from /proc/stat) and
of the server's own statistics (where a request's time went)."""

from __future__ import annotations

import sys
import time

import pytest

from benchmarks.report_limits import inside_lines
from benchmarks.server_usage import (
    ANSWERED_BY,
    STAGES,
    HostTimes,
    InferCounts,
    UsageWindow,
    breakdown,
    host_times,
    total,
)
from server.frontends import http_app


def test_shares_are_the_steal_and_idle_parts_of_the_time_that_passed() -> None:
    before = HostTimes(total=1_000, idle=600, steal=10)
    after = HostTimes(total=1_400, idle=700, steal=90)
    steal, idle = after.shares_since(before)  # type: ignore[misc]
    assert steal == pytest.approx(80 / 400) and idle == pytest.approx(100 / 400)


def test_no_shares_when_no_time_passed() -> None:
    times = HostTimes(total=5, idle=1, steal=0)
    assert times.shares_since(times) is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/stat is Linux's")
def test_the_host_times_of_a_busy_moment_give_shares_between_0_and_1() -> None:
    before = host_times()
    assert before is not None
    end = time.monotonic() + 0.3
    while time.monotonic() < end:  # at least one core busy: not all of it idle
        pass
    after = host_times()
    assert after is not None and after.total > before.total
    shares = after.shares_since(before)
    assert shares is not None
    steal, idle = shares
    assert 0.0 <= steal <= 1.0 and 0.0 <= idle < 1.0


def _counts(rows: int, runs: int, **stages: tuple[int, int]) -> InferCounts:
    return InferCounts(
        success=stages["success"][0],
        fail=0,
        rows=rows,
        runs=runs,
        stages=tuple(stages[name] for name in STAGES),
    )


def test_the_breakdown_is_per_request_means_between_two_reads() -> None:
    before = _counts(
        100,
        10,
        success=(100, 50_000_000),
        queue=(100, 1_000_000),
        compute_input=(100, 2_000_000),
        compute_infer=(100, 30_000_000),
        compute_output=(100, 500_000),
    )
    # 400 requests, 800 rows, in 20 runs: 40 rows per run
    after = _counts(
        900,
        30,
        success=(500, 450_000_000),  # 400 ms more: 1,000 µs each
        queue=(500, 81_000_000),  # 200 µs each
        compute_input=(500, 6_000_000),  # 10 µs
        compute_infer=(500, 270_000_000),  # 600 µs
        compute_output=(500, 4_500_000),  # 10 µs
    )
    assert breakdown(before, after) == {
        "rows_per_run": 40.0,
        "request_us": 1000.0,
        "queue_us": 200.0,
        "compute_input_us": 10.0,
        "compute_infer_us": 600.0,
        "compute_output_us": 10.0,
    }
    assert breakdown(after, after) is None  # no run finished in between


def test_the_report_shows_the_breakdown_next_to_the_client_latency() -> None:
    point = {
        "model": "m",
        "server": "ortserve",
        "label": "grpc c64",
        "protocol": "grpc",
        "encoding": "binary",
        "rows": 1,
        "rate": None,
        "concurrency": 64,
        "mode": "compiled",
        "latency_ms": {"p50": 1.5},
        "server_stats": {
            "rows_per_run": 40.0,
            "request_us": 1000.0,
            "queue_us": 200.0,
            "compute_input_us": 10.0,
            "compute_infer_us": 600.0,
            "compute_output_us": None,
        },
    }
    floor = {**point, "server": "floor_grpc", "server_stats": None}
    lines = inside_lines([point, floor])
    assert lines[-1] == "| m | ortserve | grpc c64 | 40.0 | 1,000 | 200 | 10 | 600 | — | 1,500 |"
    assert not any("floor_grpc" in line for line in lines)
    assert inside_lines([floor]) == []


def _worker(success: int, fail: int) -> InferCounts:
    zero = tuple((success, 1000 * success) for _ in STAGES)
    return InferCounts(success=success, fail=fail, rows=success, runs=success, stages=zero)


def test_the_workers_counts_add_up_and_need_the_same_workers_at_both_ends() -> None:
    assert total([_worker(10, 1), _worker(5, 2)]) == _worker(15, 3)
    window = UsageWindow((), None, "m", 1.0, workers=2)
    window.counts = [
        {11: _worker(10, 1), 12: _worker(5, 0)},
        {11: _worker(30, 1), 12: _worker(9, 2)},
    ]
    assert window.server_errors() == 2  # worker 12 failed two in the window
    assert window.server_breakdown() == breakdown(_worker(15, 1), _worker(39, 3))
    window.counts[1] = {11: _worker(30, 1), 13: _worker(1, 0)}  # 12 restarted as 13
    assert window.server_errors() is None and window.server_breakdown() is None
    window.counts = [{11: _worker(10, 1), 12: _worker(5, 0)}, None]  # a worker not reached
    assert window.server_errors() is None


def test_the_load_generator_reads_the_header_ortserve_names_its_process_in() -> None:
    assert ANSWERED_BY == http_app.ANSWERED_BY
