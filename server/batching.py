"""Batcher: one per loaded model version, turning many small requests into few model runs.

Requests queue on the event loop. Whenever a model instance is free, the batcher takes the
oldest request and every queued request with the same non-batch dims, whole, up to
``max_batch_size`` rows (cut back to a preferred size where one fits), and hands them to the
runtime (a thread, or a model process), which joins, runs and splits them. With
``max_queue_delay_us`` > 0 a batch smaller than its target waits that long for company; and
while the event loop is saturated (``loop_load``), the batch after a finished run waits up to
``busy_hold_us`` for company, so that the front end pays for fewer runs, but no longer than
requests keep arriving (``QUIET_GAPS`` usual gaps without one end the wait). A
full queue rejects at once (Overloaded); a request whose deadline passes while queued leaves
with DeadlineExceeded; a cancelled caller leaves the queue. If a batch fails, its requests
are run one by one so only the one that breaks the model fails.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from collections.abc import Callable

import numpy as np

from .batch_run import Outputs, RunResult
from .errors import DeadlineExceeded, InternalError, ModelNotReady, Overloaded
from .loop_load import LoopLoad, for_this_thread
from .metrics import ModelMetrics
from .pending import WITHDRAWN, Outcome, Pending, settle
from .runtime import ModelRuntime
from .settings import BatchingConfig
from .stats import ModelStats
from .types import Array, ModelSignature

log = logging.getLogger(__name__)
QUIET_GAPS = 3  # a held batch goes once no request came for this many usual gaps between them
# The shortest wait a held batch's timer is set for. uvloop keeps timers to the millisecond and
# runs one under half a millisecond at the next loop iteration, so a shorter re-check of a hold
# would spin the busy loop it is meant to relieve; a request that arrives meanwhile is checked
# against the batch's target anyway.
HOLD_RECHECK_S = 0.001


class Batcher:
    """The queue and scheduler of one model version; ``infer`` is its only entry."""

    def __init__(
        self,
        label: str,
        runtime: ModelRuntime,
        signature: ModelSignature,
        config: BatchingConfig,
        stats: ModelStats,
        metrics: ModelMetrics,
        on_run: Callable[[str | None], object] | None = None,
        check_finite: bool = False,
        loop_load: LoopLoad | None = None,
    ) -> None:
        self.label = label
        self._on_run = on_run  # told of each batch: None, or why it counts as a failure
        self._check_finite = check_finite
        self._runtime = runtime
        self._combine = config.enabled and signature.max_batch_size > 0
        self._max_rows = signature.max_batch_size
        self._delay_s = config.max_queue_delay_us / 1e6
        self._hold_s = config.busy_hold_us / 1e6 if self._combine else 0.0
        self._load = loop_load  # None: the loop thread's own (for_this_thread)
        self._concurrent = False  # the last run showed callers overlapping (see _finish)
        self._last_arrival = 0  # ns; with _gap_ns (a moving average) only when holds are on
        self._gap_ns = 0.0
        self._preferred = sorted(config.preferred_batch_sizes)
        self._target = self._preferred[-1] if self._preferred else self._max_rows
        self._max_queue = config.max_queue_size
        self._timeout_s = config.timeout_ms / 1000 if config.timeout_ms else None
        self._inputs = [spec.name for spec in signature.inputs]
        self._outputs = [spec.name for spec in signature.outputs]
        self._stats = stats
        self._metrics = metrics
        self._queue: deque[Pending] = deque()
        self._queued_rows = 0  # the rows of every request in _queue
        self._running: dict[int, list[Pending]] = {}  # the batches in a model run, by id
        self._free = runtime.instances
        self._delay_timer: asyncio.TimerHandle | None = None
        self._dispatch_scheduled = False

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    def submit(
        self,
        inputs: dict[str, Array],
        output_names: list[str],
        rows: int,
        timeout_s: float | None,
        on_done: Callable[[Outcome], object],
    ) -> Pending:
        """Queue one validated request; ``on_done`` later gets its outcome. Raises Overloaded."""
        if len(self._queue) >= self._max_queue + self._free:  # free instances take some now
            raise Overloaded(
                f"{self.label}: queue is full ({self._max_queue} requests waiting); retry later"
            )
        if self._timeout_s is not None and (timeout_s is None or self._timeout_s < timeout_s):
            timeout_s = self._timeout_s
        key = tuple([inputs[n].shape[1:] for n in self._inputs]) if self._combine else ()
        pending = Pending(inputs, output_names, rows, key, on_done, time.perf_counter_ns(), self)
        if timeout_s is not None:
            loop = asyncio.get_running_loop()
            pending.timer = loop.call_later(max(timeout_s, 0.0), self._expire, pending)
        self._queue.append(pending)
        self._queued_rows += rows
        if self._hold_s > 0:
            now = pending.enqueued_ns
            if self._last_arrival:
                gap = min(now - self._last_arrival, self._hold_s * 1e9)
                self._gap_ns += (gap - self._gap_ns) / 8 if self._gap_ns else gap
            self._last_arrival = now
        if not self._dispatch_scheduled and self._free > 0 and not self._waiting_below_target():
            # dispatch after this loop iteration: requests that arrive together batch together
            # (with no instance free, the run that frees one dispatches; a batch waiting for
            # company goes when its timer says, or now, if this request brings it to its target)
            self._dispatch_scheduled = True
            asyncio.get_running_loop().call_soon(self._scheduled_dispatch)
        return pending

    def _waiting_below_target(self) -> bool:
        """A batch is waiting for company (its timer is set) and the queue cannot fill it yet."""
        return self._delay_timer is not None and self._queued_rows < self._target

    async def infer(
        self, inputs: dict[str, Array], output_names: list[str], rows: int, timeout_s: float | None
    ) -> Outputs:
        """Queue one validated request and wait for its outputs."""
        future: asyncio.Future[Outputs] = asyncio.get_running_loop().create_future()
        pending = self.submit(inputs, output_names, rows, timeout_s, lambda o: settle(future, o))
        try:
            return await future
        except asyncio.CancelledError:
            pending.withdraw()
            raise

    def withdraw(self, pending: Pending) -> None:
        """Take ``pending`` out of the queue if it is still there; ``on_done`` gets WITHDRAWN."""
        if pending.is_done:
            return
        if pending.timer is not None:
            pending.timer.cancel()
        try:
            self._queue.remove(pending)
        except ValueError:
            pass  # already taken into a batch, which finishes without it
        else:
            self._queued_rows -= pending.rows
        pending.finish(WITHDRAWN)

    def abandon(self, reason: str) -> None:
        """Answer every request still queued or in a model run with ModelNotReady(reason)
        (shutdown, once the drain time is up); a run still going finishes unheard."""
        self._cancel_delay()
        left = list(self._queue)
        self._queue.clear()
        self._queued_rows = 0
        for batch in self._running.values():
            left += batch
        for pending in left:
            if pending.timer is not None:
                pending.timer.cancel()
            pending.finish(ModelNotReady(f"{self.label}: {reason}"))

    def _expire(self, pending: Pending) -> None:
        try:
            self._queue.remove(pending)
        except ValueError:
            return  # already running: let it finish
        self._queued_rows -= pending.rows
        waited_ms = (time.perf_counter_ns() - pending.enqueued_ns) / 1e6
        pending.finish(
            DeadlineExceeded(f"{self.label}: deadline passed after {waited_ms:.1f} ms in queue")
        )

    def _scheduled_dispatch(self) -> None:
        self._dispatch_scheduled = False
        self._dispatch()

    def _dispatch(self) -> None:
        every_output = len(self._outputs)
        while self._free > 0 and self._queue:
            holding = (
                self._concurrent
                and self._hold_s > 0
                and (self._load or for_this_thread()).is_busy()
            )
            if (self._delay_s > 0 or holding) and self._should_wait(holding):
                return
            batch = self._take()
            if not batch:
                return
            self._cancel_delay()  # a batch goes: whatever waited is in it or starts again
            self._free -= 1
            self._running[id(batch)] = batch
            now = time.perf_counter_ns()
            wants_all = True
            for pending in batch:
                pending.dispatched_ns = now
                if pending.timer is not None:
                    pending.timer.cancel()
                if len(pending.output_names) != every_output:  # names are valid and unique
                    wants_all = False
            if wants_all:
                names = self._outputs
            else:
                names = [n for n in self._outputs if any(n in p.output_names for p in batch)]
            self._runtime.submit_batch(
                [p.inputs for p in batch],
                [p.rows for p in batch],
                names,
                self._check_finite,
                functools.partial(self._finish, batch),
            )

    def _should_wait(self, holding: bool) -> bool:
        """Hold a small batch back while its oldest request is younger than the delay (> 0):
        ``max_queue_delay_us``, or ``busy_hold_us`` when ``holding`` for a saturated loop (and
        only while requests keep coming)."""
        if not self._combine:
            return False
        oldest = self._queue[0]
        now = time.perf_counter_ns()
        age_s = (now - oldest.enqueued_ns) / 1e9
        delay_s = max(self._delay_s, self._hold_s) if holding else self._delay_s
        if age_s >= delay_s:
            return False
        wait_s = delay_s - age_s
        if holding and age_s >= self._delay_s:
            quiet_s = (now - self._last_arrival) / 1e9
            patience_s = QUIET_GAPS * self._gap_ns / 1e9
            if quiet_s >= patience_s:
                return False  # the callers are waiting for answers, not sending more
            wait_s = max(min(wait_s, patience_s - quiet_s), HOLD_RECHECK_S)
        if self._queued_rows >= self._target:  # else no shape's rows can reach it
            rows = sum(p.rows for p in self._queue if p.key == oldest.key)
            if rows >= self._target:
                return False
        if self._delay_timer is None:
            loop = asyncio.get_running_loop()
            self._delay_timer = loop.call_later(wait_s, self._on_delay)
        return True

    def _on_delay(self) -> None:
        self._delay_timer = None
        self._dispatch()

    def _cancel_delay(self) -> None:
        if self._delay_timer is not None:
            self._delay_timer.cancel()
            self._delay_timer = None

    def _take(self) -> list[Pending]:
        """The oldest request and its compatible followers, whole, within the row limit.

        Requests whose caller has gone (withdrawn) are dropped on the way.
        """
        queue = self._queue
        while queue and queue[0].is_done:
            self._queued_rows -= queue.popleft().rows
        if not queue:
            return []
        first = queue.popleft()
        batch = [first]
        if not self._combine:
            self._queued_rows -= first.rows
            return batch
        rows = first.rows
        skipped: list[Pending] = []
        while queue and rows < self._max_rows:
            pending = queue.popleft()
            if pending.is_done:
                self._queued_rows -= pending.rows
                continue
            if pending.key == first.key and rows + pending.rows <= self._max_rows:
                batch.append(pending)
                rows += pending.rows
            else:
                skipped.append(pending)
                if pending.key == first.key:
                    break  # the next one of this shape does not fit: keep order
        if self._preferred:
            batch = self._cut_to_preferred(batch, skipped)
        self._queue.extendleft(reversed(skipped))
        self._queued_rows -= sum([p.rows for p in batch])
        return batch

    def _cut_to_preferred(self, batch: list[Pending], skipped: list[Pending]) -> list[Pending]:
        """Drop trailing requests back to the longest prefix of a preferred size, if any."""
        totals = np.cumsum([p.rows for p in batch])
        for end in range(len(batch), 0, -1):
            if int(totals[end - 1]) in self._preferred:
                skipped[:0] = batch[end:]
                return batch[:end]
        return batch

    def _finish(self, batch: list[Pending], run: RunResult | BaseException) -> None:
        self._free += 1
        del self._running[id(batch)]
        if isinstance(run, BaseException):  # not the model: the batching code itself
            log.error("%s: batch failed: %r", self.label, run)
            run = RunResult([f"{run!r}"] * len(batch), failed=f"{run!r}")
        waits = [p.dispatched_ns - p.enqueued_ns for p in batch]
        rows = sum([p.rows for p in batch])
        self._stats.record_batch(
            len(batch), rows, run.input_ns, run.infer_ns, run.output_ns, sum(waits)
        )
        metrics = self._metrics
        metrics.batch_size.observe(rows)
        metrics.compute_seconds.observe((run.input_ns + run.infer_ns + run.output_ns) / 1e9)
        metrics.queue_seconds.observe_ns(waits)
        if self._on_run is not None:
            if run.failed:
                self._on_run(f"{self.label}: model run failed: {run.failed}")
            elif run.nonfinite:
                self._on_run(f'output "{run.nonfinite}" held NaN or Inf')
            else:
                self._on_run(None)
        for pending, outcome in zip(batch, run.results, strict=True):
            if pending.is_done:
                continue  # the caller went away
            if isinstance(outcome, str):
                pending.finish(InternalError(f"{self.label}: model run failed: {outcome}"))
            else:
                pending.finish(outcome)
        # holding for a busy loop needs callers that overlap: a lone caller never waits
        self._concurrent = len(batch) > 1 or bool(self._queue)
        self._dispatch()
