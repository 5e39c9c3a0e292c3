"""A request in a batcher's hands (``Pending``) or on a task of its own (``OnTask``), and how
its outcome reaches its caller."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .batch_run import Outputs
from .types import Array

if TYPE_CHECKING:
    from .batching import Batcher

log = logging.getLogger(__name__)
Outcome = Outputs | BaseException
WITHDRAWN = asyncio.CancelledError("the caller withdrew the request")


@dataclass(slots=True, eq=False)
class Pending:
    """One request waiting for, or in, a model run; ``is_done`` once ``on_done`` was called."""

    inputs: dict[str, Array]
    output_names: list[str]
    rows: int
    key: tuple[tuple[int, ...], ...]
    on_done: Callable[[Outcome], object]
    enqueued_ns: int
    batcher: Batcher
    dispatched_ns: int = 0
    timer: asyncio.TimerHandle | None = None
    is_done: bool = False

    def withdraw(self) -> None:
        """The caller went away: leave the queue (a running batch finishes without it)."""
        self.batcher.withdraw(self)

    def finish(self, outcome: Outcome) -> None:
        """Hand ``outcome`` to ``on_done`` unless that already happened."""
        if self.is_done:
            return
        self.is_done = True
        try:
            self.on_done(outcome)
        except Exception:  # one caller's bug must not cost its batch-mates their answers
            log.exception("a request's completion callback failed")


class Started(Protocol):
    """What a caller holds of a request it started: whether it is done, and how to withdraw."""

    @property
    def is_done(self) -> bool: ...

    def withdraw(self) -> None: ...


@dataclass(slots=True, eq=False)
class OnTask:
    """A request served by a task of its own (the fallback chain). Withdrawing it cancels the
    task, and with it whatever request that task has queued; ``on_done`` is then never called."""

    task: asyncio.Task[None]

    @property
    def is_done(self) -> bool:
        return self.task.done()

    def withdraw(self) -> None:
        self.task.cancel()


def settle(future: asyncio.Future[Any], outcome: Any) -> None:
    """Complete ``future`` with an ``on_done`` outcome (an exception, WITHDRAWN, or a value)."""
    if future.done():
        return
    if outcome is WITHDRAWN:
        future.cancel()
    elif isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
