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
import contextlib
import itertools
import logging
import signal
import socket
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, cast

from . import model_ipc
from .batch_run import Ran, RunResult, split
from .errors import ConfigError
from .ort_options import wants_cuda
from .runtime import (
    BatchDone,
    check_providers,
    device_id,
    read_signature,
    resolve_providers,
    session_settings,
)
from .settings import RuntimeConfig
from .thread_choice import one_try_at_a_time, worth_trying
from .types import Array

log = logging.getLogger(__name__)

INITIAL_ARENA_BYTES = 4 * 2**20
MAX_ARENA_BYTES = 2**30  # larger batches travel over the socket
RESTART_DELAYS_S = (0.1, 0.5, 1.0, 2.0, 5.0)


class NodeArg(NamedTuple):
    """An input or output as a model process describes it (what ``read_signature`` reads)."""

    name: str
    type: str
    shape: list[int | str]


@dataclass(slots=True)
class _Batch:
    feeds_list: Sequence[dict[str, Array]]
    rows: Sequence[int]
    names: list[str]
    check_finite: bool
    done: BatchDone


class ModelProcess:
    """One model process: its socket, its arena, and the batch it is running."""

    def __init__(
        self,
        hello: dict[str, Any],
        path: Path,
        loading: threading.Lock | None = None,
    ) -> None:
        """Start the process and wait for it to load the model. It starts its interpreter
        first; only the load (sending ``hello``, reading the answer) holds ``loading``."""
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.arena = model_ipc.Arena.create(INITIAL_ARENA_BYTES)
        self._wanted = INITIAL_ARENA_BYTES
        try:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "server.model_process",
                    str(child.fileno()),
                    str(self.arena.fd),
                ],
                pass_fds=(child.fileno(), self.arena.fd),
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a terminal's ^C goes to the server, which drains
            )
        finally:
            child.close()
        self.sock = parent
        self.transport: asyncio.BaseTransport | None = None
        self.batch: _Batch | None = None
        try:
            with loading or contextlib.nullcontext():
                model_ipc.send_frame(parent, hello)
                reply = model_ipc.recv_frame(parent)
        except OSError:
            reply = None
        if reply is None or "error" in reply[0]:
            self.close()
            if reply is None:
                raise ConfigError(
                    f"{path}: the model process exited while loading it "
                    f"({describe_exit(self.process)})"
                )
            raise ConfigError(f"{path}: ONNX Runtime cannot load it: {reply[0]['error']}")
        self.info = reply[0]

    def encode(self, batch: _Batch) -> list[model_ipc.Payload]:
        """The frame of ``batch``, its inputs written into the arena where they fit."""
        first = batch.feeds_list[0]
        needed = sum(f[name].nbytes for f in batch.feeds_list for name in first)
        needed += model_ipc.ALIGN * (len(first) + 1)
        wanted = max(self._wanted, 2 * needed)
        if wanted > self.arena.size and self.arena.size < MAX_ARENA_BYTES:
            size = self.arena.size
            while size < wanted and size < MAX_ARENA_BYTES:
                size *= 2
            self.arena.resize(min(size, MAX_ARENA_BYTES), grow_file=True)
        writer = model_ipc.Writer(self.arena)
        inputs = [writer.put_joined(name, [f[name] for f in batch.feeds_list]) for name in first]
        header = {
            "arena": self.arena.size,
            "inputs": inputs,
            "rows": batch.rows,
            "names": batch.names,
            "check_finite": batch.check_finite,
            "outputs_at": model_ipc.aligned(writer.offset),
        }
        return model_ipc.frame(header, writer.payload)

    def decode(
        self, header: dict[str, Any], payload: model_ipc.Payload, batch: _Batch
    ) -> RunResult:
        """The RunResult of a reply, cut per request; outputs are copied out of the arena
        (once per output of the batch)."""
        arena = self.arena

        def arrays(descriptors: list[Any]) -> list[Array]:
            return [model_ipc.read(d, arena, payload, copy=True)[1] for d in descriptors]

        if header["outputs"] is not None:
            ran = Ran(arrays(header["outputs"]))
        else:
            alone = [p if isinstance(p, str) else arrays(p) for p in header["alone"]]
            ran = Ran(None, alone)
        result = split(ran, batch.rows, batch.names, False)
        result.nonfinite = header["nonfinite"]
        result.input_ns, result.infer_ns, output_ns = header["ns"]
        result.output_ns += output_ns
        if header["overflow"]:  # outputs did not fit: make room for next time
            self._wanted = 2 * (header["overflow"] + self.arena.size)
        return result

    def run_blocking(self, batch: _Batch) -> RunResult:
        """Run ``batch`` over the blocking socket (before the event loop takes it over)."""
        self.sock.sendall(b"".join(self.encode(batch)))
        reply = model_ipc.recv_frame(self.sock)
        if reply is None:
            raise RuntimeError(f"the model process exited ({describe_exit(self.process)})")
        return self.decode(*reply, batch)

    def close(self, timeout_s: float = 5.0) -> None:
        """Close the socket (the model process then exits) and reap the process."""
        with contextlib.suppress(OSError):  # reaches every copy of the socket, even the loop's
            self.sock.shutdown(socket.SHUT_RDWR)
        if self.transport is not None:
            self.transport.close()
        self.sock.close()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.arena.close()


def describe_exit(process: subprocess.Popen[bytes]) -> str:
    code = process.poll()
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


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
        self._waiting: deque[_Batch] = deque()
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
        self._waiting.append(_Batch(feeds_list, rows, names, check_finite, done))
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
                batch = _Batch([feeds], [1], names, False, done.set_result)
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

    def close(self) -> None:
        """End every model process (their sockets close; they exit)."""
        self._closed = True
        for task in self._restarts:
            task.cancel()
        for process in self._processes:
            process.close()
        self._processes.clear()
        self._idle.clear()
