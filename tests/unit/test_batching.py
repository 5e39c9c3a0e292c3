"""The Batcher's scheduling with a real ONNX Runtime session, on a real event loop."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import uvloop

from server.batching import Batcher
from server.errors import DeadlineExceeded, Overloaded
from server.loop_load import LoopLoad
from server.metrics import Metrics
from server.pending import settle
from server.runtime import OrtRuntime
from server.settings import BatchingConfig, RuntimeConfig
from server.stats import ModelStats
from tests.onnx_models import identity, scale


@pytest.fixture
def runtimes(tmp_path: Path) -> Iterator[dict[str, OrtRuntime]]:
    scale(tmp_path, "scale", 1, 2.0)
    identity(tmp_path, "identity", ["FP32"])
    made = {
        name: OrtRuntime(tmp_path / name / "1" / "model.onnx", RuntimeConfig(), "cpu", None, 1)
        for name in ("scale", "identity")
    }
    yield made
    for runtime in made.values():
        runtime.close()


def make_batcher(runtime: OrtRuntime, **config: object) -> tuple[Batcher, ModelStats]:
    stats = ModelStats()
    batching = BatchingConfig(**config)  # type: ignore[arg-type]
    signature = runtime.signature
    if batching.max_batch_size is not None:  # as the server does when it loads the model
        signature = dataclasses.replace(signature, max_batch_size=batching.max_batch_size)
    batcher = Batcher("test", runtime, signature, batching, stats, Metrics().for_model("test", 1))
    return batcher, stats


def rows_of(value: float, rows: int, width: int = 4) -> dict[str, np.ndarray]:
    return {"x": np.full((rows, width), value, dtype=np.float32)}


async def submit_all(batcher: Batcher, requests: list[dict[str, np.ndarray]], name: str = "y"):
    """Queue every request in one loop iteration, so they can share model runs."""
    calls = [
        batcher.infer(inputs, [name], next(iter(inputs.values())).shape[0], None)
        for inputs in requests
    ]
    return await asyncio.gather(*calls, return_exceptions=True)


def sizes(stats: ModelStats) -> dict[int, int]:
    return {size: b.compute_infer.count for size, b in stats.batches.items()}


def test_requests_queued_together_share_one_run(runtimes):
    batcher, stats = make_batcher(runtimes["scale"])
    requests = [rows_of(k, 1 + k % 2) for k in range(5)]
    results = asyncio.run(submit_all(batcher, requests))
    for k, result in enumerate(results):
        np.testing.assert_array_equal(result["y"], requests[k]["x"] * 2)
    assert stats.execution_count == 1 and sizes(stats) == {7: 1}


def test_disabled_batching_runs_each_request_alone(runtimes):
    batcher, stats = make_batcher(runtimes["scale"], enabled=False)
    asyncio.run(submit_all(batcher, [rows_of(k, 2) for k in range(3)]))
    assert sizes(stats) == {2: 3}


def test_row_limit_keeps_requests_whole_and_in_order(runtimes):
    batcher, stats = make_batcher(runtimes["scale"], max_batch_size=4)
    results = asyncio.run(submit_all(batcher, [rows_of(1, 3), rows_of(2, 2), rows_of(3, 1)]))
    assert [r["y"].shape[0] for r in results] == [3, 2, 1]
    assert sizes(stats) == {3: 2}  # [3] then [2, 1]: the 2-row request is never split


def test_preferred_size_cuts_the_batch(runtimes):
    batcher, stats = make_batcher(runtimes["scale"], preferred_batch_sizes=(2,))
    asyncio.run(submit_all(batcher, [rows_of(k, 1) for k in range(3)]))
    assert sizes(stats) == {2: 1, 1: 1}


def test_different_non_batch_dims_never_share_a_run(runtimes):
    batcher, stats = make_batcher(runtimes["identity"])
    requests = [{"IN_FP32": np.full((1, 3 + k % 2), k, np.float32)} for k in range(5)]
    results = asyncio.run(submit_all(batcher, requests, "OUT_FP32"))
    for request, result in zip(requests, results, strict=True):
        np.testing.assert_array_equal(result["OUT_FP32"], request["IN_FP32"])
    assert sizes(stats) == {3: 1, 2: 1}


def test_full_queue_refuses_at_once(runtimes):
    batcher, _ = make_batcher(runtimes["scale"], max_queue_size=2, enabled=False)
    results = asyncio.run(submit_all(batcher, [rows_of(k, 1) for k in range(5)]))
    refused = [r for r in results if isinstance(r, Overloaded)]
    assert len(refused) == 2 and "queue is full" in str(refused[0])  # 1 runs, 2 wait


def test_deadline_passed_in_queue(runtimes):
    batcher, stats = make_batcher(runtimes["scale"], enabled=False)

    async def main():
        running = batcher.infer(rows_of(1, 1), ["y"], 1, None)
        late = batcher.infer(rows_of(2, 1), ["y"], 1, 0.0)
        return await asyncio.gather(running, late, return_exceptions=True)

    first, second = asyncio.run(main())
    np.testing.assert_array_equal(first["y"], np.full((1, 4), 2.0))
    assert isinstance(second, DeadlineExceeded) and "deadline" in str(second)
    assert stats.execution_count == 1


def test_delay_waits_for_company(runtimes):
    batcher, stats = make_batcher(runtimes["scale"], max_queue_delay_us=200_000)

    async def main():
        first = asyncio.ensure_future(batcher.infer(rows_of(1, 1), ["y"], 1, None))
        await asyncio.sleep(0.02)  # well inside the delay: the first one is still waiting
        second = batcher.infer(rows_of(2, 1), ["y"], 1, None)
        return await asyncio.gather(first, second)

    asyncio.run(main())
    assert sizes(stats) == {2: 1}


class Loaded(LoopLoad):
    """A LoopLoad judging the test's own thread as always busy (or never): real code, fixed
    clocks (the thread's CPU time advances exactly as fast as wall time, or not at all)."""

    def __init__(self, busy: bool) -> None:
        super().__init__(busy_clock=time.perf_counter_ns if busy else (lambda: 0), window_ns=0)
        self.is_busy()


def loaded_batcher(
    runtime: OrtRuntime, hold_us: int, busy: bool = True
) -> tuple[Batcher, ModelStats]:
    """A batcher with ``busy_hold_us = hold_us`` on a loop judged always busy (or never)."""
    stats = ModelStats()
    batching = BatchingConfig(busy_hold_us=hold_us)
    metrics = Metrics().for_model("test", 1)
    batcher = Batcher(
        "test", runtime, runtime.signature, batching, stats, metrics, loop_load=Loaded(busy)
    )
    return batcher, stats


def hold_scenario(runtime: OrtRuntime, busy: bool, hold_us: int = 2_000_000, third: bool = True):
    """Three lone requests 20 ms apart (the usual gap); then one runs while a second queues
    behind it, and (``third``) a third comes 20 ms after the first ends. Returns the batch
    sizes and how long the second request took."""
    batcher, stats = loaded_batcher(runtime, hold_us, busy)
    took: list[float] = []

    async def main():
        loop = asyncio.get_running_loop()
        for k in range(3):
            await asyncio.wait_for(batcher.infer(rows_of(k, 1), ["y"], 1, None), 5)
            await asyncio.sleep(0.02)
        futures = [loop.create_future() for _ in range(3 if third else 2)]
        started = time.perf_counter()

        def finish(k: int, outcome: object) -> None:
            if k == 1:
                took.append(time.perf_counter() - started)
            futures[k].set_result(outcome)

        batcher.submit(rows_of(1, 1), ["y"], 1, None, functools.partial(finish, 0))
        await asyncio.sleep(0)  # the dispatch ran: the first request is in the runtime
        batcher.submit(rows_of(2, 1), ["y"], 1, None, functools.partial(finish, 1))
        await futures[0]
        if third:
            await asyncio.sleep(0.02)
            batcher.submit(rows_of(3, 1), ["y"], 1, None, functools.partial(finish, 2))
        return await asyncio.wait_for(asyncio.gather(*futures), 5)

    results = asyncio.run(main())
    for k, result in enumerate(results):
        np.testing.assert_array_equal(result["y"], np.full((1, 4), 2.0 * (k + 1)))
    return sizes(stats), took[0]


def test_busy_loop_holds_the_batch_after_a_run_for_company(runtimes):
    batches, _ = hold_scenario(runtimes["scale"], busy=True)
    assert batches == {1: 4, 2: 1}


def test_a_held_batch_goes_once_requests_stop_coming(runtimes):
    batches, took = hold_scenario(runtimes["scale"], busy=True, third=False)
    assert batches == {1: 5}
    assert took < 1.0  # about three 20 ms gaps, not the 2 s hold


def test_loop_with_time_to_spare_runs_at_once(runtimes):
    assert hold_scenario(runtimes["scale"], busy=False)[0] == {1: 6}


def test_hold_zero_never_holds(runtimes):
    assert hold_scenario(runtimes["scale"], busy=True, hold_us=0)[0] == {1: 6}


def test_a_lone_caller_never_waits_on_a_busy_loop(runtimes):
    batcher, stats = loaded_batcher(runtimes["scale"], 10_000_000)

    async def main():
        for k in range(5):  # one after another: each finds the instance free and alone
            result = await asyncio.wait_for(batcher.infer(rows_of(k, 1), ["y"], 1, None), 5)
            np.testing.assert_array_equal(result["y"], np.full((1, 4), 2.0 * k))

    asyncio.run(main())
    assert sizes(stats) == {1: 5}


def test_a_hold_under_uvloop_rechecks_by_the_millisecond_not_every_iteration(runtimes):
    """uvloop runs a timer under half a millisecond at the next loop iteration: a held batch
    re-armed for the few hundred µs its quiet check asks would spin the loop it relieves."""
    batcher, stats = loaded_batcher(runtimes["scale"], 2_000_000)
    checks = 0
    on_delay = batcher._on_delay

    def counted() -> None:
        nonlocal checks
        checks += 1
        on_delay()

    batcher._on_delay = counted  # type: ignore[method-assign]

    async def main() -> float:
        first = batcher.infer(rows_of(0, 1), ["y"], 1, None)
        second = batcher.infer(rows_of(1, 1), ["y"], 1, None)
        await asyncio.gather(first, second)  # a run with company: the next batch may hold
        started = time.perf_counter()
        held = []
        for k in range(300):  # arrivals microseconds apart: quiet checks due in µs
            held.append(asyncio.ensure_future(batcher.infer(rows_of(k, 1), ["y"], 1, None)))
            await asyncio.sleep(0)
        spent_ms = (time.perf_counter() - started) * 1000
        await asyncio.wait_for(asyncio.gather(*held), 5)
        return spent_ms

    spent_ms = uvloop.run(main())
    assert sum(size * count for size, count in sizes(stats).items()) == 302
    assert checks <= spent_ms + 3  # at most one re-check per millisecond (300 iterations ran)


def test_withdrawn_and_expired_requests_leave_the_target_count(runtimes):
    """A batch waiting for company goes the moment the requests still queued reach its
    target, and not before, whatever left the queue meanwhile."""
    batcher, stats = make_batcher(
        runtimes["scale"], max_queue_delay_us=30_000_000, preferred_batch_sizes=(4,)
    )
    kept = (0, 3, 4, 5)  # 1 and 2 leave the queue

    async def main():
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in range(6)]

        def submit(k: int, timeout_s: float | None = None):
            done = functools.partial(settle, futures[k])
            return batcher.submit(rows_of(k, 1), ["y"], 1, timeout_s, done)

        submit(0)
        expiring = submit(1, 0.01)
        withdrawn = submit(2)
        await asyncio.sleep(0.05)  # 3 rows queued, under the target of 4; then one expires
        withdrawn.withdraw()
        submit(3)
        submit(4)
        await asyncio.sleep(0.01)
        assert expiring.is_done and stats.execution_count == 0  # 3 rows still queued
        assert isinstance(futures[1].exception(), DeadlineExceeded) and futures[2].cancelled()
        submit(5)  # the fourth row: the batch goes at once
        return await asyncio.wait_for(asyncio.gather(*(futures[k] for k in kept)), 5)

    started = time.perf_counter()
    results = asyncio.run(main())
    assert time.perf_counter() - started < 5  # not the 30 s delay
    for k, result in zip(kept, results, strict=True):
        np.testing.assert_array_equal(result["y"], np.full((1, 4), 2.0 * k))
    assert sizes(stats) == {4: 1}
