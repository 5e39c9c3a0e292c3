"""Closed-loop HTTP load with ``wrk`` (compiled, one thread, one request in flight per
connection).

A generated Lua script POSTs the prepared infer body (JSON, or binary extension with its
``Inference-Header-Content-Length`` header) and, in ``done()``, prints one JSON line: requests,
duration, error responses (wrk counts status >= 400), socket errors (connect, read, write,
timeout) and latency percentiles from wrk's histogram. wrk has no warm-up option, so a
separate short run warms up first. wrk takes whole seconds: durations are rounded.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

RESULT_TAG = "wrk-result "
GRACE_S = 30.0  # past its duration, wrk is killed
SCRIPT = """\
local file = assert(io.open(BODY_PATH, "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
HEADERS
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'TAG{"requests": %d, "duration_us": %d, "status_errors": %d, "socket_errors": %d, '
    .. '"p50_us": %d, "p90_us": %d, "p99_us": %d, "p99.9_us": %d}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9)))
end
"""


@dataclass
class Run:
    """One wrk run: counts, percentiles (ms) and wrk's own CPU."""

    requests: int
    transport_errors: int
    duration_s: float
    latency_ms: dict[str, float | None]
    generator_cpu_s: float
    generator_wall_s: float


def available() -> bool:
    return shutil.which("wrk") is not None


def lua_script(body_path: Path, headers: dict[str, str]) -> str:
    """The wrk script POSTing the file ``body_path`` with ``headers``."""
    lines = [f"wrk.headers[{_lua(k)}] = {_lua(v)}" for k, v in headers.items()]
    return (
        SCRIPT.replace("BODY_PATH", _lua(str(body_path)))
        .replace("HEADERS", "\n".join(lines))
        .replace("TAG", RESULT_TAG)
    )


def _lua(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def run(
    url: str,
    body: bytes,
    headers: dict[str, str],
    connections: int,
    duration_s: float,
    warmup_s: float,
    on_measure: Callable[[], None] = lambda: None,
) -> Run:
    """Warm up, call ``on_measure``, then run wrk for ``duration_s`` against ``url``.
    Raises RuntimeError if wrk fails or prints no result."""
    with tempfile.TemporaryDirectory(prefix="wrk-") as folder:
        body_path, script = Path(folder, "body"), Path(folder, "post.lua")
        body_path.write_bytes(body)
        script.write_text(lua_script(body_path, headers))
        if warmup_s > 0:
            _wrk(url, script, connections, warmup_s)
        on_measure()
        output, cpu_s, wall_s = _wrk(url, script, connections, duration_s)
    lines = [line for line in output.splitlines() if line.startswith(RESULT_TAG)]
    if not lines:
        raise RuntimeError(f"wrk printed no result: {output[-2000:]}")
    result = json.loads(lines[-1][len(RESULT_TAG) :])
    return Run(
        requests=result["requests"],
        transport_errors=result["status_errors"] + result["socket_errors"],
        duration_s=result["duration_us"] / 1e6,
        latency_ms={
            key: round(result[f"{key}_us"] / 1e3, 3) for key in ("p50", "p90", "p99", "p99.9")
        },
        generator_cpu_s=cpu_s,
        generator_wall_s=wall_s,
    )


def _wrk(url: str, script: Path, connections: int, duration_s: float) -> tuple[str, float, float]:
    seconds = max(1, round(duration_s))  # wrk takes whole seconds only
    args = ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s"]
    args += ["--timeout", "10s", "-s", str(script), url]
    started = time.perf_counter()
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    watchdog = threading.Timer(seconds + GRACE_S, process.kill)
    watchdog.start()
    assert process.stdout is not None
    output = process.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(process.pid, 0)
    watchdog.cancel()
    process.returncode = os.waitstatus_to_exitcode(status)
    process.stdout.close()
    if process.returncode != 0:
        raise RuntimeError(f"wrk exited {process.returncode}: {output[-2000:]}")
    return output, usage.ru_utime + usage.ru_stime, time.perf_counter() - started
