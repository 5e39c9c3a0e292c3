"""The host's CPU shares a benchmark point records (steal and idle, from /proc/stat)."""

from __future__ import annotations

import sys
import time

import pytest

from benchmarks.server_usage import HostTimes, host_times


def test_shares_are_the_steal_and_idle_parts_of_the_time_that_passed() -> None:
    before = HostTimes(total=1_000, idle=600, steal=10)
    after = HostTimes(total=1_400, idle=700, steal=90)
    steal, idle = after.shares_since(before)  # type: ignore[misc]
    assert steal == pytest.approx(80 / 400) and idle == pytest.approx(100 / 400)


def test_no_shares_when_no_time_passed() -> None:
    times = HostTimes(total=5, idle=1, steal=0)
    assert times.shares_since(times) is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/stat is Linux's")
def test_the_host_times_of_a_busy_moment_give_shares_between_0_and_1() -> None:
    before = host_times()
    assert before is not None
    end = time.monotonic() + 0.3
    while time.monotonic() < end:  # at least one core busy: not all of it idle
        pass
    after = host_times()
    assert after is not None and after.total > before.total
    shares = after.shares_since(before)
    assert shares is not None
    steal, idle = shares
    assert 0.0 <= steal <= 1.0 and 0.0 <= idle < 1.0
