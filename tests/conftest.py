"""Shared fixtures: a model repository in a temp folder and a real ortserve on port 0."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest

from tests.onnx_models import build_repository

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "models"
LINE = re.compile(r"^ortserve (ready|serving) http=(\S+) grpc=(\S+)$")
START_TIMEOUT_S = 60


@dataclass
class RunningServer:
    """An ``ortserve serve`` child process and the addresses from its ready line."""

    process: subprocess.Popen[str]
    http: str
    grpc: str
    output: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    def rss_kb(self) -> int:
        """The server process's resident memory, in KiB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM the server and return its exit code once it is gone."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        if self.reader is not None:
            self.reader.join(timeout)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return code


def start_server(
    repo: Path,
    *args: str,
    env: dict[str, str] | None = None,
    wait_for: str = "ready",
    stdin: int | None = None,
) -> RunningServer:
    """Start ortserve on free ports and wait for its ready line (never a sleep).

    ``wait_for="serving"`` waits only for the front ends, for servers whose models are
    expected not to be ready.
    """
    command = [sys.executable, "-m", "server", "serve", "--model-repository", str(repo)]
    command += ["--http-port", "0", "--grpc-port", "0", *args]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
        stdin=stdin,
    )
    output: list[str] = []
    found: list[re.Match[str]] = []
    done = threading.Event()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            match = LINE.match(line.strip())
            if match and match[1] == wait_for and not found:
                found.append(match)
                done.set()
        done.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    if not done.wait(START_TIMEOUT_S) or not found:
        process.kill()
        process.wait()
        reader.join()
        assert process.stdout is not None
        process.stdout.close()
        raise RuntimeError("ortserve did not become ready:\n" + "".join(output))
    return RunningServer(process, found[0][2], found[0][3], output, reader)


def run_to_exit(
    repo: Path, *args: str, timeout: float = 60, stdin: int | IO[bytes] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``ortserve serve`` expecting it to stop by itself (start-up refusals)."""
    command = [sys.executable, "-m", "server", "serve", "--model-repository", str(repo)]
    command += ["--http-port", "0", "--grpc-port", "0", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, stdin=stdin)


@pytest.fixture(scope="session")
def model_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = build_repository(tmp_path_factory.mktemp("models"))
    for model in EXAMPLES.iterdir():
        shutil.copytree(model, repo / model.name)
    return repo


@pytest.fixture(scope="session", params=["thread", "process"])
def server(model_repo: Path, request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    """ortserve on the shared repository, once with each executor."""
    running = start_server(model_repo, "--executor", request.param)
    yield running
    assert running.stop() == 0, "".join(running.output)
