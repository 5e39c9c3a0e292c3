"""Start-up refusals name the file and the problem; SIGTERM stops the server cleanly."""

from __future__ import annotations

import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import IO

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.conftest import EXAMPLES, run_to_exit, start_server
from tests.integration.clients import client_for, infer
from tests.integration.raw_http import wait_in_flight
from tests.onnx_models import add_sub, scale, spin

pytestmark = pytest.mark.integration


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    scale(tmp_path / "repo", "scale", 1, 3.0)
    return tmp_path / "repo"


def refuses(
    repo: Path, *words: str, args: tuple[str, ...] = (), stdin: int | IO[bytes] | None = None
) -> str:
    result = run_to_exit(repo, *args, stdin=stdin)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "ortserve ready" not in result.stdout
    for word in words:
        assert word in result.stderr, result.stderr
    return result.stderr


def test_corrupt_onnx_file(repo):
    bad = repo / "broken" / "1" / "model.onnx"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"this is not an onnx model")
    refuses(repo, str(bad), "cannot load")


def test_unknown_config_key(repo):
    config = repo / "scale" / "config.toml"
    config.write_text("[batching]\nmax_batch_size = 4\nmax_bach_delay = 3\n")
    refuses(repo, str(config), "batching.max_bach_delay")


def test_unknown_config_section(repo):
    config = repo / "scale" / "config.toml"
    config.write_text("[runtim]\ndevice = 'cpu'\n")
    refuses(repo, str(config), '"runtim"')


def test_wrong_value_type(repo):
    config = repo / "scale" / "config.toml"
    config.write_text('[runtime]\ninstances = "two"\n')
    refuses(repo, str(config), "runtime.instances", "int")


def test_invalid_toml(repo):
    config = repo / "scale" / "config.toml"
    config.write_text("[runtime\n")
    refuses(repo, str(config), "TOML")


def test_bad_version_folder(repo):
    (repo / "scale" / "v2").mkdir()
    refuses(repo, str(repo / "scale" / "v2"), "positive integers")


def test_missing_repository(tmp_path):
    refuses(tmp_path / "nowhere", "not a directory")


def test_cuda_requested_without_cuda(repo):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has CUDA")
    refuses(repo, "CUDAExecutionProvider", args=("--device", "cuda"))


def test_batching_config_on_fixed_shape_model(tmp_path):
    from tests.onnx_models import fixed_shape

    fixed_shape(tmp_path)
    (tmp_path / "fixed" / "config.toml").write_text("[batching]\nmax_batch_size = 4\n")
    refuses(tmp_path, "max_batch_size 4", '"x"')


def test_folder_with_only_an_onnx_file(tmp_path):
    """A model folder holding only model.onnx serves it as version 1 with defaults."""
    add_sub(tmp_path / "staging")
    (tmp_path / "repo" / "add_sub").mkdir(parents=True)
    shutil.copy(
        tmp_path / "staging" / "add_sub" / "1" / "model.onnx",
        tmp_path / "repo" / "add_sub" / "model.onnx",
    )
    server = start_server(tmp_path / "repo")
    try:
        client = httpclient.InferenceServerClient(server.http)
        meta = client.get_model_metadata("add_sub")
        assert meta["versions"] == ["1"]
        assert meta["inputs"][0]["shape"] == [-1, 16]
    finally:
        assert server.stop() == 0


def test_settings_from_environment_and_toml(tmp_path, repo):
    settings = tmp_path / "ortserve.toml"
    settings.write_text(f'model_repository = "{repo}"\nhttp_port = 0\n')
    command = [sys.executable, "-m", "server", "serve", "--config", str(settings)]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=60,
        env={"ORTSERVE_GRPC_PORT": "not-a-port", "PATH": "/usr/bin"},
    )
    assert result.returncode == 2 and "ORTSERVE_GRPC_PORT" in result.stderr


def test_sigterm_exits_cleanly_with_code_0(repo):
    server = start_server(repo)
    client = httpclient.InferenceServerClient(server.http)
    item = httpclient.InferInput("x", [1, 4], "FP32")
    item.set_data_from_numpy(np.ones((1, 4), dtype=np.float32))
    assert client.infer("scale", [item]).as_numpy("y").tolist() == [[3.0] * 4]
    assert server.stop() == 0


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_what_the_drain_leaves_is_answered_503_and_its_run_cut_short(tmp_path, executor):
    spin(tmp_path, "spin")  # 100,000 rounds: over 30 s on this machine
    (tmp_path / "spin" / "config.toml").write_text(
        "[batching]\nenabled = false\n[runtime]\nintra_op_threads = 1\n"
    )
    server = start_server(tmp_path, "--drain-timeout-s", "1", "--executor", executor)
    long = np.full((1, 1), 100_000, dtype=np.float32)
    answers: queue.Queue[tuple[str, object]] = queue.Queue()

    def call(mode: str) -> None:
        try:
            result = infer(mode, client_for(mode, server), "spin", {"x": long})
            answers.put((mode, result.as_numpy("y")))
        except InferenceServerException as error:
            answers.put((mode, error))

    try:
        callers = [threading.Thread(target=call, args=("http-json",))]
        callers[0].start()
        wait_in_flight(server, 1)  # running: the two after it wait in the queue
        callers.append(threading.Thread(target=call, args=("grpc",)))
        callers[1].start()
        stream = grpcclient.InferenceServerClient(server.grpc)
        stream.start_stream(lambda result, error: answers.put(("stream", error or result)))
        item = grpcclient.InferInput("x", [1, 1], "FP32")
        item.set_data_from_numpy(long)
        stream.async_stream_infer("spin", [item])
        wait_in_flight(server, 3)
        server.process.send_signal(signal.SIGTERM)
        got = dict(answers.get(timeout=20) for _ in range(3))
        for caller in callers:
            caller.join(20)
        stream.stop_stream()
        assert server.process.wait(20) == 0  # the run left was cut short, not waited for
    finally:
        server.stop()
    assert got["http-json"].status() == "503"
    assert got["grpc"].status() == "StatusCode.UNAVAILABLE"  # a stream's error has no code
    for error in got.values():
        assert "shutting down: not answered within drain_timeout_s (1 s)" in error.message()
    assert "Traceback" not in "".join(server.output)


def test_a_body_still_arriving_when_the_drain_time_is_up_gets_503(repo):
    server = start_server(repo, "--drain-timeout-s", "0.5")  # under 1 s: uvicorn's own bound
    host, port = server.http.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=20) as client:
            client.sendall(
                b"POST /v2/models/scale/infer HTTP/1.1\r\nHost: x\r\n"
                b"Expect: 100-continue\r\nContent-Length: 100000\r\n\r\n"
            )
            # sent once the handler waits for the body
            assert client.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
            client.sendall(b"{")
            server.process.send_signal(signal.SIGTERM)
            answer = b""
            while chunk := client.recv(65536):
                answer += chunk
        assert server.process.wait(20) == 0  # before, no bound: it waited for the body
    finally:
        server.stop()
    assert answer.startswith(b"HTTP/1.1 503 ")
    assert b"server is shutting down: the request was not done within drain_timeout_s" in answer
    assert "Traceback" not in "".join(server.output)


def test_closing_stdin_stops_a_server_told_to_watch_it(repo):
    server = start_server(repo, "--stop-when-stdin-closes", stdin=subprocess.PIPE)
    client = httpclient.InferenceServerClient(server.http)
    item = httpclient.InferInput("x", [1, 4], "FP32")
    item.set_data_from_numpy(np.ones((1, 4), dtype=np.float32))
    assert client.infer("scale", [item]).as_numpy("y").tolist() == [[3.0] * 4]
    assert server.process.stdin is not None
    server.process.stdin.write("anything written is ignored\n")
    server.process.stdin.flush()
    assert client.is_server_ready()
    server.process.stdin.close()
    assert server.process.wait(30) == 0
    assert any("standard input closed: stopping" in line for line in server.output)
    server.stop()


def test_watching_stdin_needs_a_pipe(repo):
    args = ("--stop-when-stdin-closes",)
    refuses(repo, "standard input is not a pipe", args=args, stdin=subprocess.DEVNULL)
    with (repo / "scale" / "1" / "model.onnx").open("rb") as a_file:
        refuses(repo, "standard input is not a pipe", args=args, stdin=a_file)


def test_help_documents_every_command_and_flag():
    top = subprocess.run(
        [sys.executable, "-m", "server", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "serve" in top
    serve = subprocess.run(
        [sys.executable, "-m", "server", "serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for flag in (
        "--model-repository",
        "--host",
        "--http-port",
        "--grpc-port",
        "--config",
        "--device",
        "--max-request-bytes",
        "--drain-timeout-s",
        "--log-level",
        "ORTSERVE_",
    ):
        assert flag in serve


def test_serves_the_bundled_examples():
    server = start_server(EXAMPLES)
    try:
        assert httpclient.InferenceServerClient(server.http).is_server_ready()
    finally:
        assert server.stop() == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("mode", ["grpc", "http-binary"])
def test_requests_reaching_a_server_as_it_starts_listening_are_served(repo, mode):
    """Under ``--workers`` a restarted worker shares its ports with the others, so requests
    reach it from the moment it listens: none may be turned away as if it were stopping."""
    http_port, grpc_port = _free_port(), _free_port()
    urls = {"grpc": f"127.0.0.1:{grpc_port}", "http-binary": f"127.0.0.1:{http_port}"}
    x = np.ones((1, 4), dtype=np.float32)
    refusals: list[str] = []
    served = threading.Event()
    stop = threading.Event()

    def knock() -> None:  # a new connection each time, as new clients of a worker open
        while not stop.is_set():
            client = client_for(mode, SimpleNamespace(http=urls[mode], grpc=urls[mode]))
            try:
                result = infer(mode, client, "scale", {"x": x})
            except (OSError, InferenceServerException) as error:
                if "onnect" not in str(error):  # not yet listening: refused, which is fine
                    refusals.append(str(error))
                continue
            finally:
                client.close()
            assert result.as_numpy("y").tolist() == [[3.0] * 4]
            served.set()

    knocker = threading.Thread(target=knock, daemon=True)
    knocker.start()
    server = start_server(repo, "--http-port", str(http_port), "--grpc-port", str(grpc_port))
    try:
        assert served.wait(30)
    finally:
        stop.set()
        knocker.join(30)
        assert server.stop() == 0
    assert not refusals
