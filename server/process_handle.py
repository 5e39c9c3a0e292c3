"""ModelProcess: the server's end of one model process (``model_process``).

It starts the process and waits for its model to load, writes a batch's inputs into the shared
arena with a header for the socket, reads the answer back into a RunResult, and ends the
process by closing the socket. ``ProcessRuntime`` drives these on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import model_ipc
from .batch_run import Ran, RunResult, split
from .errors import ConfigError
from .runtime import BatchDone
from .types import Array

INITIAL_ARENA_BYTES = 4 * 2**20
MAX_ARENA_BYTES = 2**30  # larger batches travel over the socket


@dataclass(slots=True)
class Batch:
    """One batch for a model process: its requests' inputs and rows, the outputs wanted, and
    where its RunResult goes (``done``, on the event loop)."""

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
        self.batch: Batch | None = None
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

    def encode(self, batch: Batch) -> list[model_ipc.Payload]:
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

    def decode(self, header: dict[str, Any], payload: model_ipc.Payload, batch: Batch) -> RunResult:
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

    def run_blocking(self, batch: Batch) -> RunResult:
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
