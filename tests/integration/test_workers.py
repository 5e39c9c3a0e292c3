"""``--workers N``: several server processes on one pair of ports under one parent."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from benchmarks.server_usage import total, worker_counts
from tests.conftest import run_to_exit, start_server
from tests.integration.clients import MODES, client_for, infer
from tests.onnx_models import add_sub

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def children(pid: int) -> set[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return {int(p) for p in text.split()}


def wait_for(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def check_inference(server) -> None:
    a = np.arange(32, dtype=np.float32).reshape(2, 16)
    for mode in MODES:
        result = infer(mode, client_for(mode, server), "add_sub", {"INPUT0": a, "INPUT1": a})
        np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a * 2)


def test_two_workers_serve_restart_and_stop(tmp_path):
    add_sub(tmp_path)
    server = start_server(tmp_path, "--workers", "2")
    try:
        assert sum(line.startswith("ortserve ready") for line in server.output) == 1
        workers = children(server.process.pid)
        assert len(workers) == 2
        for _ in range(10):  # new connections each time: the kernel spreads them
            check_inference(server)
        counts = worker_counts(server.http, "add_sub", 2)  # what the suite reads
        assert counts is not None and set(counts) == workers
        assert total(counts.values()).success == 10 * len(MODES)
        victim = sorted(workers)[0]
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: len(children(server.process.pid) - {victim}) == 2)
        wait_for(lambda: sum("loaded add_sub" in line for line in server.output) == 3)
        wait_for(lambda: client_for("http-json", server).is_server_ready())
        for _ in range(10):
            check_inference(server)
    finally:
        assert server.stop() == 0
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or pid == victim


def test_a_worker_that_cannot_start_stops_the_parent(tmp_path):
    add_sub(tmp_path)
    (tmp_path / "add_sub" / "config.toml").write_text("[batching]\nbogus = 1\n")
    result = run_to_exit(tmp_path, "--workers", "2")
    assert result.returncode == 2
    assert "bogus" in result.stderr and "ortserve ready" not in result.stdout
    assert "Traceback" not in result.stderr and "never retrieved" not in result.stderr
