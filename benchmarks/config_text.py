"""A model's ``config.toml`` with TOML text merged into it, key by key (the text wins)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any


def write_config(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, merged into the TOML already there (``text`` wins)."""
    if not path.exists():
        path.write_text(text)
        return
    merged = _merge(tomllib.loads(path.read_text()), tomllib.loads(text))
    path.write_text(_toml(merged))


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _toml(table: dict[str, Any], prefix: str = "") -> str:
    """TOML text for a table of scalars, arrays of scalars and nested tables."""
    lines = [f"{k} = {_value(v)}" for k, v in table.items() if not isinstance(v, dict)]
    for key, value in table.items():
        if isinstance(value, dict):
            lines += ["", f"[{prefix}{key}]", _toml(value, f"{prefix}{key}.")]
    return "\n".join(lines).strip() + "\n"


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return repr(value)
