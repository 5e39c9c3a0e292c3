"""How the report writes one cell: a number or "—", a ratio, and the order of points."""

from __future__ import annotations

from typing import Any


def fmt(value: Any, spec: str = "", suffix: str = "") -> str:
    """``value`` formatted by ``spec`` with ``suffix``; "—" for a value not measured."""
    if value is None:
        return "—"
    return f"{value:{spec}}{suffix}"


def ratio(value: float | None) -> str:
    """A ratio to two decimals (two significant digits below 0.1); "—" for none."""
    if value is None:
        return "—"
    return f"{value:.2f}" if value >= 0.1 else f"{value:.2g}"


def point_order(p: dict[str, Any]) -> tuple[Any, ...]:
    """The order of points in every table: by model, protocol, load, then server."""
    return (
        p["model"],
        p["protocol"],
        p["encoding"],
        p["rows"],
        bool(p["rate"]),
        p["concurrency"] or 0,
        p["mode"],
        p["server"],
    )
