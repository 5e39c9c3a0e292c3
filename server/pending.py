"""A request in a batcher's hands (``Pending``), and how its outcome reaches its caller."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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
