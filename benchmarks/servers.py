"""Servers under test as child processes: start on free ports, wait for the ready line,
stop with SIGTERM.

ortserve prints ``ortserve ready http=HOST:PORT grpc=HOST:PORT``; the floors print
``floor ready grpc=HOST:PORT`` or ``floor ready http=HOST:PORT``. A server that exits or
stays silent raises ServerFailed carrying the end of its output, so a caller can skip its
points with the reason.
"""

from __future__ import annotations

import collections
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
READY = re.compile(r"^(?:ortserve|floor) ready(?: http=(?P<http>\S+))?(?: grpc=(?P<grpc>\S+))?$")
START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 30.0
OUTPUT_LINES = 40


class ServerFailed(Exception):
    """A server did not start or is gone; the message says why."""


@dataclass
class Process:
    """One child process and the last lines it printed."""

    popen: subprocess.Popen[str]
    output: collections.deque[str] = field(
        default_factory=lambda: collections.deque(maxlen=OUTPUT_LINES)
    )
    ready: threading.Event = field(default_factory=threading.Event)
    http: str | None = None
    grpc: str | None = None

    def tail(self) -> str:
        return " | ".join(line for line in self.output if line)[-1500:]


@dataclass
class Server:
    """A running server of one or more processes sharing its addresses."""

    name: str
    processes: list[Process]

    @property
    def pids(self) -> tuple[int, ...]:
        return tuple(p.popen.pid for p in self.processes)

    @property
    def http(self) -> str | None:
        return self.processes[0].http

    @property
    def grpc(self) -> str | None:
        return self.processes[0].grpc

    def lines(self, containing: str) -> list[str]:
        """The lines of every process's recent output that contain ``containing``."""
        return [line for p in self.processes for line in p.output if containing in line]

    def check_alive(self) -> None:
        """Raise ServerFailed if any process has exited."""
        for process in self.processes:
            code = process.popen.poll()
            if code is not None:
                raise ServerFailed(f"{self.name} exited with code {code}: {process.tail()}")

    def stop(self) -> list[int]:
        """SIGTERM every process, wait (SIGKILL after a while); their exit codes."""
        for process in self.processes:
            if process.popen.poll() is None:
                process.popen.send_signal(signal.SIGTERM)
        codes = []
        for process in self.processes:
            try:
                codes.append(process.popen.wait(STOP_TIMEOUT_S))
            except subprocess.TimeoutExpired:
                process.popen.kill()
                codes.append(process.popen.wait())
        return codes


def launch(command: list[str], timeout_s: float = START_TIMEOUT_S) -> Process:
    """Start ``command`` and wait for its ready line; raises ServerFailed."""
    popen = subprocess.Popen(
        command,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    process = Process(popen)
    threading.Thread(target=_pump, args=(process,), daemon=True).start()
    deadline = time.monotonic() + timeout_s
    while not process.ready.wait(0.05):
        if popen.poll() is not None or time.monotonic() > deadline:
            if popen.poll() is None:
                popen.kill()
                popen.wait()
                raise ServerFailed(f"no ready line within {timeout_s:g}s: {process.tail()}")
            time.sleep(0.1)  # let the pump read the last lines
            raise ServerFailed(f"exited with code {popen.returncode}: {process.tail()}")
    return process


def _pump(process: Process) -> None:
    stdout = process.popen.stdout
    assert stdout is not None
    with stdout:  # closed at the end of the output: the process has gone
        for line in stdout:
            line = line.rstrip()
            process.output.append(line)
            if not process.ready.is_set() and (match := READY.match(line)):
                process.http, process.grpc = match["http"], match["grpc"]
                process.ready.set()


def start_ortserve(name: str, repository: Path, *args: str) -> Server:
    """``python -m server serve`` on free ports with ``args`` (e.g. ``--workers 2``)."""
    command = [sys.executable, "-m", "server", "serve", "--model-repository", str(repository)]
    # info: its start-up lines say how each model's intra-op threads were chosen
    command += ["--http-port", "0", "--grpc-port", "0", "--log-level", "info", *args]
    return _started(name, [command])


def start_floor(name: str, module: str, args: list[str], processes: int = 1) -> Server:
    """``processes`` copies of floor ``module`` (``floor_grpc``/``floor_http``); more than one
    share the first one's port through SO_REUSEPORT."""
    command = [sys.executable, "-m", f"benchmarks.{module}", *args]
    if processes == 1:
        return _started(name, [command])
    first = launch([*command, "--reuseport"])
    try:
        port = (first.grpc or first.http or "").rpartition(":")[2]
        rest = [launch([*command, "--reuseport", "--port", port]) for _ in range(processes - 1)]
    except ServerFailed:
        Server(name, [first]).stop()
        raise
    return Server(name, [first, *rest])


def _started(name: str, commands: list[list[str]]) -> Server:
    try:
        return Server(name, [launch(c) for c in commands])
    except ServerFailed as error:
        raise ServerFailed(f"{name}: {error}") from None
