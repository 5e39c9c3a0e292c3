"""LoopLoad: the event loop thread's CPU share, with hysteresis, from the clocks it is given."""

from __future__ import annotations

import threading
import time

from server.loop_load import (
    BUSY_FROM,
    IDLE_BELOW,
    WINDOW_NS,
    LoopLoad,
    RunnableClock,
    for_this_thread,
)


class Clocks:
    """A wall clock and a thread CPU clock that the test advances by hand."""

    def __init__(self) -> None:
        self.wall = 0
        self.cpu = 0

    def advance(self, wall_ns: int, cpu_share: float) -> None:
        self.wall += wall_ns
        self.cpu += int(wall_ns * cpu_share)


def load_with(clocks: Clocks) -> LoopLoad:
    load = LoopLoad(wall=lambda: clocks.wall, busy_clock=lambda: clocks.cpu)
    assert not load.is_busy()  # the first call only starts a window
    return load


def test_busy_from_threshold_and_not_busy_again_below_the_lower_one():
    clocks = Clocks()
    load = load_with(clocks)
    shares = [0.5, BUSY_FROM - 0.01, BUSY_FROM, 0.7, IDLE_BELOW, IDLE_BELOW - 0.01, 0.7]
    seen = []
    for share in shares:
        clocks.advance(WINDOW_NS, share)
        seen.append(load.is_busy())
    assert seen == [False, False, True, True, True, False, False]
    assert abs(load.share - 0.7) < 1e-6


def test_the_share_changes_only_once_a_window_has_passed():
    clocks = Clocks()
    load = load_with(clocks)
    clocks.advance(WINDOW_NS, 1.0)
    assert load.is_busy()
    clocks.advance(WINDOW_NS // 2, 0.0)  # half a window of idleness: not judged yet
    assert load.is_busy()
    clocks.advance(WINDOW_NS, 0.0)  # the whole window since the last judgement: idle
    assert not load.is_busy()


def test_a_long_idle_gap_counts_against_a_busy_loop():
    clocks = Clocks()
    load = load_with(clocks)
    clocks.advance(WINDOW_NS, 1.0)
    assert load.is_busy()
    clocks.advance(WINDOW_NS // 2, 1.0)
    clocks.advance(100 * WINDOW_NS, 0.0)  # nobody asked for a while: the loop was idle
    assert not load.is_busy()


def test_real_clocks_see_a_thread_spinning_and_a_thread_sleeping():
    load = LoopLoad(window_ns=20_000_000)
    load.is_busy()
    end = time.perf_counter() + 0.05
    while time.perf_counter() < end:
        pass
    load.is_busy()
    spun = load.share
    time.sleep(0.05)
    load.is_busy()
    slept = load.share
    assert slept < 0.5 and spun > slept + 0.3  # a host stealing CPU lowers the spin's share


def test_runnable_clock_counts_this_thread_only():
    clock = RunnableClock()
    before = clock()
    end = time.perf_counter() + 0.03
    while time.perf_counter() < end:
        pass
    spun = clock() - before
    idle = threading.Thread(target=time.sleep, args=(0.03,))
    before = clock()
    idle.start()
    idle.join()  # this thread sleeps meanwhile
    waited = clock() - before
    clock.close()
    assert spun >= 10_000_000 > waited  # a host stealing CPU may cut the spin's share


def test_each_thread_has_one_shared_load():
    mine = for_this_thread()
    assert for_this_thread() is mine
    theirs: list[LoopLoad] = []
    other = threading.Thread(target=lambda: theirs.append(for_this_thread()))
    other.start()
    other.join()
    assert theirs[0] is not mine
