"""``--workers N``: several server processes on one pair of ports under one parent."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from benchmarks.server_usage import total, worker_counts
from tests.conftest import run_to_exit, start_server
from tests.integration.clients import MODES, client_for, infer, slow_input
from tests.integration.raw_http import in_flight
from tests.onnx_models import add_sub, scale, slow

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def children(pid: int) -> set[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return {int(p) for p in text.split()}


def gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] == "Z"
    except FileNotFoundError:
        return True


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


def test_the_ready_line_waits_for_a_worker_restarted_before_it_was_ready(tmp_path):
    scale(tmp_path, "doubles", 1, 2.0)
    folder = tmp_path / "doubles" / "1"
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    np.savez(folder / "golden_in.npz", x=x)
    np.savez(folder / "golden_out.npz", y=x * 3)  # wrong: every worker serves, none is ready
    (tmp_path / "doubles" / "config.toml").write_text(
        '[health]\ninputs = "golden_in.npz"\noutputs = "golden_out.npz"\nrecheck_interval_s = 0.2\n'
    )
    server = start_server(tmp_path, "--workers", "2", wait_for="serving")
    try:
        workers = children(server.process.pid)
        victim = sorted(workers)[0]
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: sum("loaded doubles" in line for line in server.output) == 3)
        assert not any(line.startswith("ortserve ready") for line in server.output)
        np.savez(folder / "golden_out.npz", y=x * 2)  # now the checks pass, in every worker
        wait_for(lambda: any(line.startswith("ortserve ready") for line in server.output), 30)
        assert client_for("http-json", server).is_server_ready()
    finally:
        assert server.stop() == 0


def test_workers_drain_and_stop_when_the_parent_is_killed(tmp_path):
    add_sub(tmp_path)
    slow(tmp_path, "slow", steps=120)  # about 1 s a run: polls reach its worker in time
    (tmp_path / "slow" / "config.toml").write_text("[runtime]\nintra_op_threads = 1\n")
    server = start_server(tmp_path, "--workers", "2")
    workers = children(server.process.pid)
    answers: list[object] = []

    def call() -> None:
        try:
            result = client_for("grpc", server).infer("slow", slow_input(grpcclient))
            answers.append(result.as_numpy("y"))
        except Exception as error:  # noqa: BLE001 (the assertion below names it)
            answers.append(error)

    try:
        caller = threading.Thread(target=call)
        caller.start()
        wait_for(lambda: in_flight(server) >= 1, timeout=10)  # each read may reach either worker
        server.process.kill()  # no SIGTERM to forward: only the workers' stdin pipes close
        server.process.wait()
        caller.join(30)
        assert len(answers) == 1 and not isinstance(answers[0], Exception), answers
        np.testing.assert_array_equal(answers[0], np.ones((1, 1), np.float32))
        wait_for(lambda: all(gone(pid) for pid in workers), timeout=30)
        assert sum("standard input closed: stopping" in line for line in server.output) == 2
        for address in (server.http, server.grpc):  # no worker is left holding a port
            host, port = address.rsplit(":", 1)
            with socket.socket() as sock:
                # a listener still holding the port refuses this bind; the closed connections'
                # TIME_WAIT entries (the workers closed them) do not
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((host, int(port)))
    finally:
        server.process.kill()
        for pid in workers:  # after a failed check: none may go on serving (or writing)
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)
        server.stop()
