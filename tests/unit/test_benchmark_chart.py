"""The suite's latency chart: one panel per model, and series that can be told apart."""

from __future__ import annotations

import importlib.util

import pytest

from benchmarks.chart import _series, chart, series_style

needs_matplotlib = pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None,
    reason="matplotlib comes with the bench extra (pip install -e '.[bench]')",
)


def point(model: str, server: str, label: str, req_s: float, p50: float | None, rows: int = 1):
    p99 = None if p50 is None else p50 * 2
    return {
        "model": model,
        "server": server,
        "label": label,
        "rows": rows,
        "rate": None,
        "throughput_req_s": req_s,
        "latency_ms": {"p50": p50, "p99": p99},
    }


@needs_matplotlib
def test_no_two_of_twenty_series_share_a_colour_and_no_two_of_220_a_look():
    styles = [series_style(i) for i in range(220)]
    assert len({s["color"] for s in styles[:20]}) == 20
    assert len({(s["color"], s["marker"]) for s in styles}) == 220


def test_series_group_by_server_protocol_and_rows_and_skip_points_without_latency():
    points = [
        point("m", "ortserve", "grpc c1", 100, 1.0),
        point("m", "ortserve", "grpc c64", 900, 9.0),
        point("m", "ortserve", "grpc c16 ×16 rows", 50, 20.0, rows=16),
        point("m", "ortserve", "grpc-stream c256 (4 streams × 64)", 5000, None),
        point("other", "ortserve", "grpc c1", 100, 1.0),
    ]
    series = _series({"points": points}, "m")
    assert sorted(series) == ["ortserve grpc", "ortserve grpc ×16 rows"]
    assert [p["throughput_req_s"] for p in series["ortserve grpc"]] == [100, 900]


@needs_matplotlib
def test_chart_writes_a_png(tmp_path):
    points = [point(m, f"server{i}", "grpc c1", 100 + i, 1.0 + i) for m in "ab" for i in range(14)]
    path = tmp_path / "latency.png"
    chart({"points": points}, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000
