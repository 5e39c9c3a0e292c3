"""``latency.png``: p50 and p99 latency against throughput for each server and protocol."""

from __future__ import annotations

from pathlib import Path
from typing import Any

MARKERS = "os^vD<>ph*X"  # 11: with 20 colours, no two of the first 220 series look alike


def series_style(index: int) -> dict[str, Any]:
    """The colour and marker of a panel's ``index``-th series: 20 colours (tab20's ten hues
    dark, then light) and 11 markers, so that no two of a panel's series share both."""
    import matplotlib

    shade = (2 * index + (index // 10) % 2) % 20
    return {"color": matplotlib.colormaps["tab20"](shade), "marker": MARKERS[index % len(MARKERS)]}


def chart(results: dict[str, Any], path: Path) -> None:
    """p50 (solid, filled) and p99 (dashed, hollow) latency against req/s, one panel per
    model, one colour and marker per server and protocol."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = sorted({p["model"] for p in results["points"]})
    if not models:
        return
    fig, axes = plt.subplots(len(models), 1, figsize=(11, 4.2 * len(models)), squeeze=False)
    for ax, model in zip(axes[:, 0], models, strict=True):
        for index, (name, items) in enumerate(sorted(_series(results, model).items())):
            items.sort(key=lambda p: p["throughput_req_s"])
            x = [p["throughput_req_s"] for p in items]
            style = series_style(index)
            ax.plot(x, [p["latency_ms"]["p50"] for p in items], "-", label=name, **style)
            ax.plot(x, [p["latency_ms"]["p99"] for p in items], "--", mfc="none", **style)
        ax.set_title(f"{model}: p50 (solid) and p99 (dashed) latency")
        ax.set_xlabel("throughput (req/s)")
        ax.set_ylabel("latency (ms)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _series(results: dict[str, Any], model: str) -> dict[str, list[dict[str, Any]]]:
    """Points of ``model`` grouped by server, protocol, open/closed loop and rows; points
    without latencies (compiled streams: h2load times whole streams) are left out."""
    series: dict[str, list[dict[str, Any]]] = {}
    for p in results["points"]:
        latency = p["latency_ms"]
        if p["model"] == model and latency["p50"] is not None and latency["p99"] is not None:
            name = f"{p['server']} {p['label'].split(' ')[0]}"
            name += " open loop" if p.get("rate") else ""
            name += f" ×{p['rows']} rows" if p["rows"] > 1 else ""
            series.setdefault(name, []).append(p)
    return series
