"""What a benchmark ran on: CPU, cores, memory, kernel, software versions, commit, date."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _command_output(args: list[str]) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine_description() -> dict[str, Any]:
    """CPU model, cores, memory, software versions, date."""
    cpu = ""
    for line in _command_output(["lscpu"]).splitlines():
        if line.startswith("Model name:"):
            cpu = line.split(":", 1)[1].strip()
    memory_gib = None
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                memory_gib = round(int(line.split()[1]) / 2**20, 1)
    return {
        "cpu": cpu or platform.processor(),
        "cores": os.cpu_count(),
        "memory_gib": memory_gib,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "onnxruntime": _version("onnxruntime") or _version("onnxruntime-gpu"),
        "grpcio": _version("grpcio"),
        "numpy": _version("numpy"),
        "h2load": _command_output(["h2load", "--version"]) or None,
        "wrk": _command_output(["wrk", "-v"]).partition(" Copyright")[0] or None,
        "git_commit": _command_output(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
