"""The process executor: model processes that crash, start again, and end with the server."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from benchmarks.server_usage import TICKS_PER_S, process_cpu_s
from server.process_runtime import ProcessRuntime
from server.settings import RuntimeConfig
from tests.conftest import start_server
from tests.onnx_models import identity, slow, tile

pytestmark = pytest.mark.integration


BUSY_S = 3 / TICKS_PER_S  # CPU time a model process gains once it is running a slow run


def model_processes(server_pid: int) -> list[int]:
    """PIDs of the model processes the server started."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == server_pid and b"server.model_process" in cmdline:
            found.append(int(entry.name))
    return sorted(found)


def infer_slow(http: str) -> float | str:
    item = httpclient.InferInput("x", [1, 1], "FP32")
    item.set_data_from_numpy(np.array([[2.5]], dtype=np.float32))
    client = httpclient.InferenceServerClient(http, network_timeout=60)
    try:
        return float(client.infer("slow", [item]).as_numpy("y").item())
    except InferenceServerException as error:
        return f"{error.status()} {error.message()}"
    finally:
        client.close()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    slow(tmp_path, "slow", steps=120)  # runs of about half a second or more
    (tmp_path / "slow" / "config.toml").write_text(
        "[batching]\nenabled = false\n[runtime]\nintra_op_threads = 1\ninstances = 2\n"
    )
    identity(tmp_path, "identity", ["BYTES"])
    return tmp_path


def test_one_process_per_instance_and_none_left_after_shutdown(repo):
    server = start_server(repo, "--executor", "process")
    try:
        children = model_processes(server.process.pid)
        assert len(children) == 3  # slow ×2 instances, identity ×1
    finally:
        assert server.stop() == 0
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in children):
        assert time.monotonic() < deadline, "model processes outlived the server"
        time.sleep(0.05)


def test_a_killed_model_process_fails_its_batch_and_comes_back(repo):
    server = start_server(repo, "--executor", "process")
    try:
        before = set(model_processes(server.process.pid))
        used = {pid: process_cpu_s(pid) for pid in before}
        with ThreadPoolExecutor(2) as pool:
            running = [pool.submit(infer_slow, server.http) for _ in range(2)]
            deadline = time.monotonic() + 60
            while sum(process_cpu_s(pid) - used[pid] >= BUSY_S for pid in before) < 2:
                assert time.monotonic() < deadline, "the slow runs never started"
                time.sleep(0.01)  # until both of slow's model processes are busy running it
            for pid in before:
                os.kill(pid, signal.SIGKILL)
            outcomes = [f.result(60) for f in running]
        for outcome in outcomes:
            assert isinstance(outcome, str) and outcome.startswith("500 ")
            assert "model process exited" in outcome and "SIGKILL" in outcome
        deadline = time.monotonic() + 60
        while True:  # the processes come back; the model answers again
            if infer_slow(server.http) == 2.5:
                break
            assert time.monotonic() < deadline, "the model never came back"
            time.sleep(0.2)
        after = set(model_processes(server.process.pid))
        assert len(after) == 3 and not after & before
        strings = httpclient.InferInput("IN_BYTES", [1, 2], "BYTES")
        strings.set_data_from_numpy(np.array([["a", "é"]], dtype=np.object_))
        client = httpclient.InferenceServerClient(server.http)
        result = client.infer("identity", [strings])
        client.close()
        assert result.as_numpy("OUT_BYTES").tolist() == [[b"a", "é".encode()]]
    finally:
        assert server.stop() == 0
    assert "Traceback" not in "".join(server.output), "".join(server.output)[-3000:]


def test_corrupt_model_is_refused_naming_the_file(tmp_path):
    folder = tmp_path / "broken" / "1"
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(b"not an onnx file")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "server",
            "serve",
            "--model-repository",
            str(tmp_path),
            "--http-port",
            "0",
            "--grpc-port",
            "0",
            "--executor",
            "process",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert f"{folder / 'model.onnx'}: ONNX Runtime cannot load it" in done.stderr
    assert "Traceback" not in done.stderr


def test_run_sync_before_and_after_the_loop_takes_the_socket(tmp_path):
    """Warm-up runs over the blocking socket; health re-checks from a thread go via the loop.
    An 8 MB input grows the shared arena."""
    identity(tmp_path, "identity", ["FP32"])
    path = tmp_path / "identity" / "1" / "model.onnx"
    runtime = ProcessRuntime(path, RuntimeConfig(), "cpu", None, 1, "identity")
    small = np.arange(6, dtype=np.float32).reshape(2, 3)
    large = np.random.default_rng(0).random((1, 2_000_000), dtype=np.float32)

    async def through_the_loop() -> list[np.ndarray]:
        await runtime.attach()
        try:
            return [
                (await asyncio.to_thread(runtime.run_sync, {"IN_FP32": x}, ["OUT_FP32"]))[0]
                for x in (small, large)
            ]
        finally:
            runtime.close()

    try:
        assert np.array_equal(runtime.run_sync({"IN_FP32": small}, ["OUT_FP32"])[0], small)
        got = asyncio.run(through_the_loop())
    finally:
        runtime.close()
    assert np.array_equal(got[0], small) and np.array_equal(got[1], large)


def test_outputs_larger_than_the_arena_travel_over_the_socket(tmp_path):
    """A 400 kB input gives a 25.6 MB output: the first answer overflows the shared arena and
    comes over the socket, after which the arena grows and the next one fits."""
    tile(tmp_path, "tile", repeats=64)
    path = tmp_path / "tile" / "1" / "model.onnx"
    runtime = ProcessRuntime(path, RuntimeConfig(), "cpu", None, 1, "tile")
    try:
        arena = runtime._processes[0].arena
        first = np.random.default_rng(1).random((1, 100_000), dtype=np.float32)
        got = runtime.run_sync({"x": first}, ["y"])[0]
        assert np.array_equal(got, np.tile(first, (1, 64)))
        small_arena = arena.size
        second = first + 1
        got = runtime.run_sync({"x": second}, ["y"])[0]
        assert np.array_equal(got, np.tile(second, (1, 64)))
        assert small_arena < got.nbytes <= arena.size  # did not fit at first; fits now
    finally:
        runtime.close()
