"""How busy the event loop's thread is: the share of wall time it was runnable lately.

Runnable is on a CPU or waiting for one (Linux: ``/proc/thread-self/schedstat``; elsewhere the
thread's CPU time alone). Waiting counts because a loop that shares its cores with other
workers or the ONNX Runtime threads is saturated even when it is on a CPU only half the time.

The batcher asks after each model run. When the loop's thread is runnable nearly all the time,
the front end (reading, decoding, answering requests) is what limits throughput, and every
model run costs it a hand-off to a runtime thread or model process and back. Holding the next
batch a little (``[batching] busy_hold_us``) then makes fewer, larger runs and leaves the loop
more time for requests. When the loop has time to spare, holding would only add latency, so
the batcher runs at once.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

WINDOW_NS = 10_000_000  # the share is measured over windows at least this long
BUSY_FROM = 0.8  # the loop counts as busy once its share reaches this ...
IDLE_BELOW = 0.65  # ... and as not busy again once it drops below this


class RunnableClock:
    """Nanoseconds the thread that made it has been on a CPU or waiting for one.

    Make it on the thread to be measured: the file it reads is that thread's. Where there is no
    such file (or it stops answering), it counts the calling thread's CPU time instead.
    """

    def __init__(self) -> None:
        self._fd: int | None = None
        try:
            self._fd = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
            self()
        except (OSError, ValueError):
            self.close()

    def __call__(self) -> int:
        if self._fd is None:
            return time.thread_time_ns()
        on_cpu, waiting = os.pread(self._fd, 128, 0).split()[:2]
        return int(on_cpu) + int(waiting)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        self.close()


class LoopLoad:
    """The runnable share of the thread that calls ``is_busy`` (the event loop's), with
    hysteresis.

    Each call costs a clock read; at most once per window it also reads the thread's runnable
    time (``busy_clock``; by default a RunnableClock, made on the first call's thread).
    A window with no call in it (an idle loop) counts in the next one, so a loop that was idle
    is never taken for busy.
    """

    def __init__(
        self,
        wall: Callable[[], int] = time.perf_counter_ns,
        busy_clock: Callable[[], int] | None = None,
        window_ns: int = WINDOW_NS,
    ) -> None:
        self._wall = wall
        self._busy_clock = busy_clock
        self._window_ns = window_ns
        self._since: int | None = None  # start of the window (the first call starts one)
        self._busy_since = 0  # the busy clock at the window's start
        self.share = 0.0  # the last full window's
        self.busy = False

    def is_busy(self) -> bool:
        """Whether the calling thread was runnable most of the last window."""
        now = self._wall()
        if self._since is None:
            if self._busy_clock is None:
                self._busy_clock = RunnableClock()  # here: on the thread being measured
            self._since, self._busy_since = now, self._busy_clock()
            return self.busy
        elapsed = now - self._since
        if elapsed < self._window_ns or elapsed <= 0:
            return self.busy
        assert self._busy_clock is not None
        try:
            busy = self._busy_clock()
        except (OSError, ValueError):  # the thread it measured is gone: start again here
            self._busy_clock, self._since = RunnableClock(), None
            return self.busy
        self.share = (busy - self._busy_since) / elapsed
        self._since, self._busy_since = now, busy
        self.busy = self.share >= (IDLE_BELOW if self.busy else BUSY_FROM)
        return self.busy


_threads = threading.local()


def for_this_thread() -> LoopLoad:
    """The calling thread's LoopLoad: one per event loop thread, shared by all its batchers."""
    load: LoopLoad | None = getattr(_threads, "load", None)
    if load is None:
        load = _threads.load = LoopLoad()
    return load
