"""ProcessRuntime: the ``process`` executor, each instance of a model version in its own process.

The event loop writes a batch's inputs into a shared arena and a small header onto a Unix
socket; the model process (``model_process``) runs it and answers the same way. The loop reads
answers with a protocol callback, so no thread of the server process ever waits for the
model and ONNX Runtime's Python-side work never competes for the server's GIL.

A model process that dies fails the batch it was running (those requests get 500 / INTERNAL)
and is started again; batches wait for it meanwhile. Closing the socket ends a model process.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import threading
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple, cast

from . import model_ipc
from .batch_run import RunResult
from .ort_options import check_providers, device_id, resolve_providers, wants_cuda
from .process_handle import Batch, ModelProcess, describe_exit
from .runtime import BatchDone, read_signature, session_settings
from .settings import RuntimeConfig
from .thread_choice import one_try_at_a_time, worth_trying
from .types import Array

log = logging.getLogger(__name__)

RESTART_DELAYS_S = (0.1, 0.5, 1.0, 2.0, 5.0)


class NodeArg(NamedTuple):
    """An input or output as a model process describes it (what ``read_signature`` reads)."""

    name: str
    type: str
    shape: list[int | str]


class _Reader(asyncio.Protocol):
    """The event loop's end of one model process's socket."""

    def __init__(self, runtime: ProcessRuntime, process: ModelProcess) -> None:
        self.runtime = runtime
        self.process = process
        self.frames = model_ipc.FrameBuffer()

    def data_received(self, data: bytes) -> None:
        for header, payload in self.frames.feed(data):
            self.runtime._on_reply(self.process, header, payload)

    def connection_lost(self, exc: Exception | None) -> None:
        self.runtime._on_lost(self.process)


class ProcessRuntime:
    """The model processes of one model version (``instances`` of them) and their queue."""

    def __init__(
        self,
        path: Path,
        config: RuntimeConfig,
        device: str,
        max_batch_size: int | None,
        default_threads: int = 0,
        label: str = "",
    ) -> None:
        self.path = path
        self.label = label or str(path)
        wanted = config.device or device
        self.providers = resolve_providers(wanted, config.cudnn_conv_algo_search)
        self.settings = session_settings(config, default_threads)
        self._hello: dict[str, Any] = {
            "path": str(path),
            "options": self.settings,
            "providers": self.providers,
            "device_id": device_id(wanted),
            "label": self.label,
            "try_threads": False,
            "max_batch_size": max_batch_size,
        }
        self.instances = config.instances
        self._processes: list[ModelProcess] = []
        self._idle: deque[ModelProcess] = deque()
        self._waiting: deque[Batch] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._blocking = threading.Lock()
        self._closed = False
        self._restarts: set[asyncio.Task[None]] = set()
        try:
            if not config.intra_op_threads and worth_trying(path, self.settings, self.providers):
                self._processes.append(self._first_trying_threads())
            while len(self._processes) < config.instances:
                self._processes.append(ModelProcess(self._hello, path))
            check_providers(wanted, self.providers, self._processes[0].info["providers"], path)
        except BaseException:
            self.close()
            raise
        info = self._processes[0].info
        self.signature = read_signature(
            [NodeArg(*a) for a in info["inputs"]],
            [NodeArg(*a) for a in info["outputs"]],
            max_batch_size,
            path,
        )
        self.device = "cuda" if wants_cuda(info["providers"]) else "cpu"

    def _first_trying_threads(self) -> ModelProcess:
        """The first model process, which tries the model's intra-op threads (``thread_choice``)
        while no other try runs; the others, and any started again, get what it chose."""
        first = ModelProcess({**self._hello, "try_threads": True}, self.path, one_try_at_a_time)
        self.settings["intra_op_threads"] = first.info["intra_op_threads"]
        if first.info["thread_choice"]:
            log.info("%s", first.info["thread_choice"])
        return first

    async def attach(self) -> None:
        """Hand the sockets to the running event loop; from now on batches go through it."""
        loop = asyncio.get_running_loop()
        with self._blocking:
            for process in self._processes:
                await self._connect(loop, process)
            self._loop = loop

    async def _connect(self, loop: asyncio.AbstractEventLoop, process: ModelProcess) -> None:
        process.transport, _ = await loop.create_unix_connection(
            lambda: _Reader(self, process), sock=process.sock
        )
        self._idle.append(process)

    def submit_batch(
        self,
        feeds_list: Sequence[dict[str, Array]],
        rows: Sequence[int],
        names: list[str],
        check_finite: bool,
        done: BatchDone,
    ) -> None:
        """Queue one batch (on the event loop); ``done`` gets its RunResult there."""
        self._waiting.append(Batch(feeds_list, rows, names, check_finite, done))
        self._pump()

    def _pump(self) -> None:
        while self._waiting and self._idle:
            process = self._idle.popleft()
            batch = self._waiting.popleft()
            try:
                transport = cast(asyncio.WriteTransport, process.transport)
                transport.writelines(process.encode(batch))
            except Exception as error:  # a tensor the wire cannot carry
                self._idle.appendleft(process)
                batch.done(error)
                continue
            process.batch = batch

    def _on_reply(self, process: ModelProcess, header: dict[str, Any], payload: bytes) -> None:
        batch, process.batch = process.batch, None
        self._idle.append(process)
        if batch is None:
            log.error("%s: an answer came with no batch running", self.label)
            return
        try:
            result: RunResult | BaseException = process.decode(header, payload, batch)
        except Exception as error:
            result = error
        batch.done(result)
        self._pump()

    def _on_lost(self, process: ModelProcess) -> None:
        if self._closed or process not in self._processes:
            return
        self._processes.remove(process)
        if process in self._idle:
            self._idle.remove(process)
        batch, process.batch = process.batch, None
        process.close()
        why = describe_exit(process.process)
        log.error("%s: the model process exited (%s); starting it again", self.label, why)
        if batch is not None:
            message = f"the model process exited while running this batch ({why})"
            batch.done(RunResult(results=[message] * len(batch.rows)))
        assert self._loop is not None
        task = self._loop.create_task(self._restart())
        self._restarts.add(task)
        task.add_done_callback(self._restarts.discard)

    async def _restart(self) -> None:
        loop = asyncio.get_running_loop()
        for attempt in itertools.count():
            await asyncio.sleep(RESTART_DELAYS_S[min(attempt, len(RESTART_DELAYS_S) - 1)])
            if self._closed:
                return
            try:
                process = await asyncio.to_thread(ModelProcess, self._hello, self.path)
            except Exception as error:
                log.error("%s: cannot start the model process again: %s", self.label, error)
                continue
            if self._closed:
                process.close()
                return
            self._processes.append(process)
            await self._connect(loop, process)
            log.info("%s: the model process is back", self.label)
            self._pump()
            return

    def run_sync(self, feeds: dict[str, Array], names: list[str]) -> list[Array]:
        """Run one request from a thread that is not the event loop's and wait for it."""
        done: concurrent.futures.Future[RunResult | BaseException] = concurrent.futures.Future()
        with self._blocking:
            loop = self._loop
            if loop is None:
                batch = Batch([feeds], [1], names, False, done.set_result)
                result: RunResult | BaseException = self._processes[0].run_blocking(batch)
        if loop is not None:
            loop.call_soon_threadsafe(
                self.submit_batch, [feeds], [1], names, False, done.set_result
            )
            result = done.result()
        if isinstance(result, BaseException):
            raise result
        outcome = result.results[0]
        if isinstance(outcome, str):
            raise RuntimeError(outcome)
        return [outcome[name] for name in names]

    def close(self, stop_runs: bool = False) -> None:
        """End every model process (their sockets close; they exit; with ``stop_runs`` one
        still running is killed at once)."""
        self._closed = True
        for task in self._restarts:
            task.cancel()
        for process in self._processes:
            if stop_runs:
                process.close(timeout_s=0.0)
            else:
                process.close()
        self._processes.clear()
        self._idle.clear()
