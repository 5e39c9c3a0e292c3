"""How many intra-op threads a model that names none gets: tried at load, kept where they pay."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from server import thread_choice
from server.process_runtime import ProcessRuntime
from server.runtime import OrtRuntime, model_session_settings
from server.settings import RuntimeConfig
from server.thread_choice import (
    Timing,
    choose_threads,
    keeps_threads,
    probe_inputs,
    probe_sizes,
    threads_pay,
)
from tests.onnx_models import add_sub, fixed_shape, slow, strings

CPU = ["CPUExecutionProvider"]
CUDA = [("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"]


def _settings(threads: int, spinning: bool = False) -> dict[str, object]:
    return {
        "graph_optimization": "all",
        "intra_op_threads": threads,
        "inter_op_threads": 0,
        "allow_spinning": spinning,
    }


@pytest.fixture
def threads_never_pay(monkeypatch: pytest.MonkeyPatch) -> None:
    """The try runs as at load, on real sessions, but no timing can make N threads pay, so
    what a test sees does not hang on this machine's noise."""
    monkeypatch.setattr(thread_choice, "MIN_SPEEDUP", float("inf"))
    monkeypatch.setattr(thread_choice, "LONG_RUN_S", float("inf"))


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per ONNX Runtime session loaded in this process from now on."""
    loaded: list[int] = []

    class Counted(ort.InferenceSession):  # type: ignore[misc]
        def __init__(self, *args: object, **kwargs: object) -> None:
            loaded.append(1)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", Counted)
    return loaded


@pytest.mark.parametrize(
    ("min_speedup", "min_saving_s", "max_batch_size", "logged"),
    [
        # one row does not pay: 8 rows are not tried
        (float("inf"), thread_choice.MIN_SAVING_S, 8, "1 intra-op thread (runs of 1 row: "),
        (0.0, float("-inf"), None, "2 intra-op threads (runs of 1 row: "),
    ],
    ids=["threads-do-not-pay", "threads-pay"],
)
def test_the_try_keeps_the_threads_only_where_they_pay_and_says_so(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    min_speedup: float,
    min_saving_s: float,
    max_batch_size: int | None,
    logged: str,
) -> None:
    monkeypatch.setattr(thread_choice, "MIN_SPEEDUP", min_speedup)  # the outcome, fixed
    monkeypatch.setattr(thread_choice, "MIN_SAVING_S", min_saving_s)
    monkeypatch.setattr(thread_choice, "LONG_RUN_S", float("inf"))
    path = add_sub(tmp_path)
    chosen = choose_threads(path, _settings(2), CPU, max_batch_size, "add_sub")
    assert chosen.threads == int(logged[0]) and chosen.session is not None
    line = chosen.said
    assert line.startswith(f"add_sub: {logged}")
    assert "ms on 2 threads" in line and line.endswith("ms on one)")
    assert ("; runs of 32 rows: " in line) == (chosen.threads == 2)  # PROBE_ROWS


def test_a_model_whose_runs_are_long_keeps_its_threads_untried(tmp_path: Path) -> None:
    path = slow(tmp_path, steps=24)  # 24 MatMuls of 768 x 768: far over LONG_RUN_S
    chosen = choose_threads(path, _settings(2), CPU, None, "slow")
    assert chosen.threads == 2  # and no one-thread session was tried:
    assert chosen.said.startswith("slow: 2 intra-op threads, not tried on one (runs of 32 rows: ")


@pytest.mark.parametrize(
    ("settings", "providers"),
    [
        (_settings(2), CUDA),  # kernels on the GPU: threads only feed it
        (_settings(2, spinning=True), CPU),  # spinning threads wake at no cost
        (_settings(1), CPU),
    ],
    ids=["cuda", "spinning", "one-already"],
)
@pytest.mark.usefixtures("threads_never_pay")  # a try would give one thread
def test_no_try_where_it_cannot_tell_or_nothing_is_to_gain(
    tmp_path: Path, settings: dict[str, object], providers: list[object]
) -> None:
    path = add_sub(tmp_path)
    assert choose_threads(path, settings, providers, 8).threads == settings["intra_op_threads"]


@pytest.mark.usefixtures("threads_never_pay")
def test_big_files_and_string_inputs_are_not_tried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert choose_threads(strings(tmp_path), _settings(2), CPU, 8).threads == 2
    monkeypatch.setattr(thread_choice, "MAX_PROBE_FILE_BYTES", 10)
    assert choose_threads(add_sub(tmp_path), _settings(2), CPU, 8).threads == 2


def test_threads_pay_only_when_they_are_much_faster() -> None:
    assert threads_pay(many_s=0.010, one_s=0.0125)  # 1.25 x
    assert not threads_pay(many_s=0.010, one_s=0.012)
    assert not threads_pay(many_s=0.010, one_s=0.008)  # one thread faster: the wake-up cost
    assert threads_pay(many_s=200e-6, one_s=260e-6)  # 1.3 x, 60 us saved
    assert not threads_pay(many_s=150e-6, one_s=195e-6)  # 1.3 x, 45 us saved
    assert not threads_pay(many_s=10e-6, one_s=15e-6)  # 1.5 x of a few microseconds: noise


def test_threads_are_kept_only_where_they_pay_for_one_row_and_for_a_batch() -> None:
    pays, does_not = (0.010, 0.020), (0.010, 0.011)
    assert keeps_threads([Timing(1, *pays), Timing(32, *pays)])
    assert not keeps_threads([Timing(1, *does_not), Timing(32, *pays)])  # small_mlp's case
    assert not keeps_threads([Timing(1, *pays), Timing(32, *does_not)])
    assert not keeps_threads([])


def test_probe_sizes_are_one_row_and_a_batch_where_the_batch_dim_varies(tmp_path: Path) -> None:
    batched = ort.InferenceSession(str(add_sub(tmp_path)), providers=CPU)
    assert [(n, f["INPUT0"].shape) for n, f in probe_sizes(batched, 32)] == [
        (1, (1, 16)),
        (32, (32, 16)),
    ]
    fixed = ort.InferenceSession(str(fixed_shape(tmp_path)), providers=CPU)
    assert [(n, f["x"].shape) for n, f in probe_sizes(fixed, 32)] == [(1, (2, 3))]
    assert probe_sizes(ort.InferenceSession(str(strings(tmp_path)), providers=CPU), 4) == []


def test_probe_inputs_fill_the_batch_dim_and_keep_fixed_shapes(tmp_path: Path) -> None:
    batched = ort.InferenceSession(str(add_sub(tmp_path)), providers=CPU)
    assert {n: a.shape for n, a in probe_inputs(batched, 32).items()} == {  # type: ignore[union-attr]
        "INPUT0": (32, 16),
        "INPUT1": (32, 16),
    }
    fixed = ort.InferenceSession(str(fixed_shape(tmp_path)), providers=CPU)
    assert probe_inputs(fixed, 32)["x"].shape == (2, 3)  # type: ignore[index]
    assert probe_inputs(ort.InferenceSession(str(strings(tmp_path)), providers=CPU), 4) is None


@pytest.mark.usefixtures("threads_never_pay")
def test_a_models_own_thread_count_is_used_as_given(tmp_path: Path) -> None:
    path = add_sub(tmp_path)
    own = RuntimeConfig(intra_op_threads=2)
    assert model_session_settings(path, own, 2, CPU, 8, "")[0]["intra_op_threads"] == 2
    assert model_session_settings(path, RuntimeConfig(), 2, CPU, 8, "")[0]["intra_op_threads"] == 1


@pytest.mark.usefixtures("threads_never_pay")  # in this process; a model process times for real
@pytest.mark.parametrize("executor", [OrtRuntime, ProcessRuntime])
def test_both_executors_run_the_model_on_the_threads_chosen_and_log_the_try(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, executor: type[OrtRuntime | ProcessRuntime]
) -> None:
    path = add_sub(tmp_path)  # runs of microseconds: under MIN_SAVING_S whatever the host does
    feeds = {"INPUT0": np.ones((2, 16), np.float32), "INPUT1": np.ones((2, 16), np.float32)}
    with caplog.at_level(logging.INFO):
        runtime = executor(path, RuntimeConfig(instances=2), "cpu", 8, 2, "add_sub")
    try:
        assert runtime.settings["intra_op_threads"] == 1
        np.testing.assert_array_equal(runtime.run_sync(feeds, ["OUTPUT0"])[0], 2 * feeds["INPUT0"])
    finally:
        runtime.close()
    (line,) = [r.getMessage() for r in caplog.records if "intra-op thread" in r.getMessage()]
    assert line.startswith("add_sub: 1 intra-op thread (runs of 1 row: ")


def test_the_first_model_process_tries_and_the_others_start_on_its_choice(
    tmp_path: Path, loads: list[int]
) -> None:
    path = add_sub(tmp_path)
    runtime = ProcessRuntime(path, RuntimeConfig(instances=3), "cpu", 8, 2, "add_sub")

    async def killed_and_back() -> dict[str, object]:
        await runtime.attach()
        try:
            first = runtime._processes[0]
            os.kill(first.process.pid, signal.SIGKILL)
            while first in runtime._processes or len(runtime._processes) < 3:
                await asyncio.sleep(0.05)
            return runtime._processes[-1].info
        finally:
            runtime.close()  # while the loop its sockets are on still runs

    try:
        infos = [process.info for process in runtime._processes]
        assert [i["intra_op_threads"] for i in infos] == [1, 1, 1]
        assert infos[0]["thread_choice"].startswith("add_sub: 1 intra-op thread (runs of 1 row")
        assert [i["thread_choice"] for i in infos[1:]] == ["", ""]  # not tried again
        again = asyncio.run(asyncio.wait_for(killed_and_back(), timeout=60))
        assert (again["intra_op_threads"], again["thread_choice"]) == (1, "")  # nor on a restart
    finally:
        runtime.close()
    assert loads == []  # the server process never loaded the model


def test_a_model_process_keeps_a_models_own_thread_count_untried(tmp_path: Path) -> None:
    runtime = ProcessRuntime(add_sub(tmp_path), RuntimeConfig(intra_op_threads=2), "cpu", 8, 2)
    try:
        assert runtime.settings["intra_op_threads"] == 2
        assert [p.info["intra_op_threads"] for p in runtime._processes] == [2]
        assert runtime._processes[0].info["thread_choice"] == ""
    finally:
        runtime.close()


@pytest.mark.usefixtures("threads_never_pay")
@pytest.mark.parametrize("instances", [1, 2])
def test_the_session_the_try_loaded_is_served_not_loaded_again(
    tmp_path: Path, loads: list[int], instances: int
) -> None:
    path = add_sub(tmp_path)
    runtime = OrtRuntime(path, RuntimeConfig(instances=instances), "cpu", 8, default_threads=2)
    try:
        feeds = {"INPUT0": np.ones((2, 16), np.float32), "INPUT1": np.ones((2, 16), np.float32)}
        for _ in range(2 * instances):
            np.testing.assert_array_equal(
                runtime.run_sync(feeds, ["OUTPUT0"])[0], 2 * feeds["INPUT0"]
            )
    finally:
        runtime.close()
    assert len(loads) == 2 + instances - 1  # the try's two; then only the further instances


def test_a_choice_not_tried_hands_no_session_back(tmp_path: Path) -> None:
    assert choose_threads(add_sub(tmp_path), _settings(2), CUDA, 8).session is None
