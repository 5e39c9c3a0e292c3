"""The thread executor's hand-off: after a long run, the loop waits (without the GIL) until a
runtime thread has taken the next batch, instead of keeping the thread from starting it."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from server.batch_run import RunResult
from server.runtime import OrtRuntime
from server.settings import RuntimeConfig
from tests.onnx_models import scale, slow


@pytest.fixture
def long_switches() -> Iterator[None]:
    """A switch interval of 1 s: a thread waiting for the GIL gets it only when the holder lets go
    of it, so whether the loop hands a batch over decides whether the thread can take it."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1.0)
    yield
    sys.setswitchinterval(before)


def load(tmp_path: Path, name: str, handoff_after_us: int = 2000) -> OrtRuntime:
    config = RuntimeConfig(handoff_after_us=handoff_after_us)
    return OrtRuntime(tmp_path / name / "1" / "model.onnx", config, "cpu", None, 1)


def submit(runtime: OrtRuntime, x: np.ndarray) -> asyncio.Future[RunResult | BaseException]:
    done: asyncio.Future[RunResult | BaseException] = asyncio.get_running_loop().create_future()
    runtime.submit_batch([{"x": x}], [len(x)], ["y"], False, done.set_result)
    return done


async def output(done: asyncio.Future[RunResult | BaseException]) -> np.ndarray:
    result = await done
    assert isinstance(result, RunResult), result
    outputs = result.results[0]
    assert isinstance(outputs, dict), outputs
    return outputs["y"]


def test_after_a_long_run_the_thread_has_the_batch_when_submit_returns(tmp_path, long_switches):
    scale(tmp_path, "scale", 1, 2.0)
    runtime = load(tmp_path, "scale", handoff_after_us=1)  # every run counts as long
    runtime.handoff_wait_s = 10.0  # no timing in this test: the wait ends when the batch is taken
    x = np.arange(8, dtype=np.float32).reshape(2, 4)

    async def main() -> None:
        np.testing.assert_array_equal(await output(submit(runtime, x)), x * 2)
        done = submit(runtime, x + 1)
        assert runtime._jobs.qsize() == 0  # taken by the thread before the loop went on
        np.testing.assert_array_equal(await output(done), (x + 1) * 2)

    try:
        asyncio.run(main())
    finally:
        runtime.close()


def test_after_short_runs_the_loop_goes_on_at_once(tmp_path, long_switches):
    scale(tmp_path, "scale", 1, 2.0)
    runtime = load(tmp_path, "scale")
    x = np.ones((3, 4), dtype=np.float32)

    async def main() -> None:
        for _ in range(3):  # a run of a tiny model takes far less than handoff_after_us
            np.testing.assert_array_equal(await output(submit(runtime, x)), x * 2)
        done = submit(runtime, x)
        assert runtime._jobs.qsize() == 1  # still waiting: the loop kept the GIL and went on
        np.testing.assert_array_equal(await output(done), x * 2)

    try:
        asyncio.run(main())
    finally:
        runtime.close()


def test_handoff_after_zero_never_hands_over(tmp_path, long_switches):
    slow(tmp_path)  # runs of tens of ms
    runtime = load(tmp_path, "slow", handoff_after_us=0)
    x = np.full((1, 1), 4.0, dtype=np.float32)

    async def main() -> None:
        np.testing.assert_array_equal(await output(submit(runtime, x)), x)
        done = submit(runtime, x)
        assert runtime._jobs.qsize() == 1
        np.testing.assert_array_equal(await output(done), x)

    try:
        asyncio.run(main())
    finally:
        runtime.close()


def test_a_busy_thread_only_delays_the_loop_by_the_wait(tmp_path):
    """With the one thread busy on a slow run, the next submit waits at most handoff_wait_s, and
    both batches still get their own answers."""
    slow(tmp_path)
    runtime = load(tmp_path, "slow", handoff_after_us=1)
    first = np.full((1, 1), 3.0, dtype=np.float32)
    second = np.full((2, 1), 5.0, dtype=np.float32)

    async def main() -> None:
        np.testing.assert_array_equal(await output(submit(runtime, first)), first)
        runtime.handoff_wait_s = 10.0  # until the thread has it, however slow the host
        running = submit(runtime, first)  # handed over: the thread is now in the slow run
        runtime.handoff_wait_s = 0.001
        queued = submit(runtime, second)  # no thread free: the wait runs out, the loop goes on
        assert runtime._jobs.qsize() == 1
        np.testing.assert_array_equal(await output(running), first)
        np.testing.assert_array_equal(await output(queued), second)

    try:
        asyncio.run(main())
    finally:
        runtime.close()
