"""How busy the event loop's thread is: the share of wall time it spent on a CPU lately.

The batcher asks after each model run. When the loop's thread is on a CPU nearly all the time,
the front end (reading, decoding, answering requests) is what limits throughput, and every
model run costs it a hand-off to a runtime thread or model process and back. Holding the next
batch a little (``[batching] busy_hold_us``) then makes fewer, larger runs and leaves the loop
more time for requests. When the loop has time to spare, holding would only add latency, so
the batcher runs at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

WINDOW_NS = 10_000_000  # the share is measured over windows at least this long
BUSY_FROM = 0.8  # the loop counts as busy once its share reaches this ...
IDLE_BELOW = 0.65  # ... and as not busy again once it drops below this


class LoopLoad:
    """The CPU share of the thread that calls ``is_busy`` (the event loop's), with hysteresis.

    Each call costs a clock read; at most once per window it also reads the thread's CPU time.
    A window with no call in it (an idle loop) counts in the next one, so a loop that was idle
    is never taken for busy.
    """

    def __init__(
        self,
        wall: Callable[[], int] = time.perf_counter_ns,
        cpu: Callable[[], int] = time.thread_time_ns,
        window_ns: int = WINDOW_NS,
    ) -> None:
        self._wall = wall
        self._cpu = cpu
        self._window_ns = window_ns
        self._since: int | None = None  # start of the window (the first call starts one)
        self._cpu_since = 0
        self.share = 0.0  # the last full window's
        self.busy = False

    def is_busy(self) -> bool:
        """Whether the calling thread spent most of the last window on a CPU."""
        now = self._wall()
        if self._since is None:
            self._since, self._cpu_since = now, self._cpu()
            return self.busy
        elapsed = now - self._since
        if elapsed < self._window_ns or elapsed <= 0:
            return self.busy
        cpu = self._cpu()
        self.share = (cpu - self._cpu_since) / elapsed
        self._since, self._cpu_since = now, cpu
        self.busy = self.share >= (IDLE_BELOW if self.busy else BUSY_FROM)
        return self.busy
