"""Which HTTP inference requests still have a client waiting for their answer.

ASGI tells an app that its client has gone only through ``receive()``, which the infer
handler no longer calls once it has read the body. Awaiting it beside every request would
cost each one a task. Instead, every ``WATCH_AFTER_S`` while requests wait, each one that has
waited that long gets a task awaiting ``receive()``. When that says ``http.disconnect``, the
request's own task is cancelled: the request leaves its batcher's queue (or its running batch
finishes without it), as a cancelled gRPC call does, and nobody is answered. A request answered
within ``WATCH_AFTER_S`` costs two dictionary updates.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, TypeVar

T = TypeVar("T")
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
WATCH_AFTER_S = 0.05  # a request waiting this long gets its client watched


class DisconnectWatch:
    """The waiting requests of one HTTP front end, by the task that serves each."""

    def __init__(self, after_s: float = WATCH_AFTER_S) -> None:
        self._after_s = after_s
        self._waiting: dict[asyncio.Task[Any], tuple[float, Receive]] = {}  # oldest first
        self._watchers: dict[asyncio.Task[Any], asyncio.Task[None]] = {}
        self._gone: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        """How many requests it holds: those waiting, watched or not."""
        return len(self._waiting) + len(self._watchers)

    async def await_answer(self, receive: Receive, answer: Awaitable[T]) -> T | None:
        """``answer``'s result, or None if the client disconnected while it was awaited (it
        was then cancelled); ``receive`` is the request's. Call it from the request's task."""
        task = asyncio.current_task()
        assert task is not None
        loop = task.get_loop()
        self._waiting[task] = (loop.time(), receive)
        if self._timer is None:
            self._timer = loop.call_later(self._after_s, self._sweep)
        try:
            return await answer
        except asyncio.CancelledError:
            if task not in self._gone:
                raise
            task.uncancel()
            return None
        finally:
            if self._waiting.pop(task, None) is None:
                watcher = self._watchers.pop(task, None)
                if watcher is not None:
                    watcher.cancel()
                self._gone.discard(task)

    def _sweep(self) -> None:
        self._timer = None
        if not self._waiting:
            return
        loop = asyncio.get_running_loop()
        cutoff = loop.time() - self._after_s
        due = []
        for task, (entered, receive) in self._waiting.items():
            if entered > cutoff:
                break  # the rest came later
            due.append((task, receive))
        for task, receive in due:
            del self._waiting[task]
            self._watchers[task] = loop.create_task(self._watch(task, receive))
        if self._waiting:
            self._timer = loop.call_later(self._after_s, self._sweep)

    async def _watch(self, task: asyncio.Task[Any], receive: Receive) -> None:
        try:
            message = await receive()
        except Exception:  # a server whose receive() fails here: stop watching
            return
        if message.get("type") == "http.disconnect" and task in self._watchers:
            self._gone.add(task)
            task.cancel()
