"""A model process: one ONNX Runtime session serving batches sent by the server process.

Started by ``process_handle`` as ``python -m server.model_process SOCKET_FD ARENA_FD``. The
first frame it reads says which model to load and how (the first process of a model version
also tries its intra-op threads, ``thread_choice``); it answers with the model's inputs and
outputs and the threads it runs on (or the error), then runs one batch per frame until the
socket closes. Running the model outside the server process keeps ONNX Runtime's Python-side
work off the server's GIL, which the event loop needs for every request.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from . import model_ipc
from .batch_run import nonfinite_of, run_batch
from .ort_options import session_options, wants_cuda
from .thread_choice import choose_threads
from .types import Array

log = logging.getLogger(__name__)


@functools.cache
def preload_cuda_libraries() -> None:
    """Load CUDA and cuDNN once per process before the first CUDA session, from NVIDIA's pip
    packages or the default library paths, as ONNX Runtime's GPU build asks of a pip install
    (without them its CUDA provider fails to load and the session lands on the CPU). What it
    could not load is logged; a CPU build of ONNX Runtime does nothing here."""
    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return
    said = io.StringIO()
    try:
        with contextlib.redirect_stdout(said):
            preload()
    except Exception as error:  # a broken install shows up again when the session loads
        log.warning("ONNX Runtime could not preload the CUDA libraries: %s", error)
    for line in said.getvalue().splitlines():
        if line.strip():
            log.warning("ONNX Runtime, loading CUDA libraries: %s", line.strip())


def describe(args: list[Any]) -> list[list[Any]]:
    """NodeArgs as ``[name, type, shape]`` with symbolic dims as strings."""
    return [[a.name, a.type, [d if isinstance(d, int) else str(d) for d in a.shape]] for a in args]


class ModelRunner:
    """A loaded session and how to run it: on CUDA with IO binding, each input copied to the
    device once and each output back once. Both executors run models through it.

    A model with a string input or output runs without binding: ONNX Runtime binds only
    non-string inputs, and copying a bound string output back crashes the process (1.32).
    Its string kernels run on the CPU anyway. ``io_binding`` forces binding on or off; on a
    CPU session bound outputs stay in host memory.
    """

    def __init__(
        self, session: ort.InferenceSession, device_id: int, io_binding: bool | None = None
    ) -> None:
        self.session = session
        self.cuda = wants_cuda(session.get_providers())
        self.output_device = ("cuda", device_id) if self.cuda else ("cpu", 0)
        tensors = [*session.get_inputs(), *session.get_outputs()]
        self.has_strings = any(a.type == "tensor(string)" for a in tensors)
        wanted = self.cuda if io_binding is None else io_binding
        self.io_binding = wanted and not self.has_strings
        self.run_options = ort.RunOptions()

    def stop(self) -> None:
        """Make the run in progress, and every later one, fail at its next node (ONNX
        Runtime's terminate flag; safe from any thread)."""
        self.run_options.terminate = True

    def run(self, feeds: dict[str, Array], names: list[str]) -> list[Array]:
        if not self.io_binding:
            outputs: list[Array] = self.session.run(names, feeds, self.run_options)
            return outputs
        binding = self.session.io_binding()
        for name, array in feeds.items():
            binding.bind_cpu_input(name, np.ascontiguousarray(array))
        device, index = self.output_device
        for name in names:
            binding.bind_output(name, device, index)
        self.session.run_with_iobinding(binding, self.run_options)
        copied: list[Array] = binding.copy_outputs_to_cpu()
        return copied


def providers_from_wire(providers: list[Any]) -> list[Any]:
    """Providers as ONNX Runtime takes them: a ``(name, options)`` entry arrives over JSON
    as a list, which ONNX Runtime refuses (and then quietly falls back to the CPU)."""
    return [p if isinstance(p, str) else (p[0], p[1]) for p in providers]


def serve(sock: socket.socket, arena: model_ipc.Arena) -> int:
    hello = model_ipc.recv_frame(sock)
    if hello is None:
        return 0
    config = hello[0]
    providers = providers_from_wire(config["providers"])
    if wants_cuda(providers):
        preload_cuda_libraries()
    options = dict(config["options"])
    label = config["label"]
    session, said = None, ""
    if config["try_threads"]:  # the server's first model process; the others get its choice
        choice = choose_threads(
            Path(config["path"]), options, providers, config["max_batch_size"], label
        )
        options["intra_op_threads"] = choice.threads
        session, said = choice.session, choice.said
    try:
        if session is None:
            session = ort.InferenceSession(
                config["path"], session_options(options), providers=providers
            )
    except Exception as error:  # ORT raises its own pybind types for bad files
        model_ipc.send_frame(sock, {"error": str(error)})
        return 1
    runner = ModelRunner(session, config["device_id"])
    model_ipc.send_frame(
        sock,
        {
            "inputs": describe(session.get_inputs()),
            "outputs": describe(session.get_outputs()),
            "providers": session.get_providers(),
            "intra_op_threads": options["intra_op_threads"],
            "thread_choice": said,
        },
    )
    while (received := model_ipc.recv_frame(sock)) is not None:
        header, payload = received
        model_ipc.send_frame(sock, *run_frame(runner, label, arena, header, payload))
    return 0


def run_frame(
    runner: ModelRunner,
    label: str,
    arena: model_ipc.Arena,
    header: dict[str, Any],
    payload: model_ipc.Payload,
) -> tuple[dict[str, Any], model_ipc.Payload]:
    """Run one batch frame. The reply carries the batch's outputs once (the server cuts them
    per request), or, when the batch failed, each request's own outputs or error."""
    t0 = time.perf_counter_ns()
    arena.resize(header["arena"])
    feeds = dict(model_ipc.read(d, arena, payload, copy=False) for d in header["inputs"])
    input_ns = time.perf_counter_ns() - t0
    names = header["names"]
    ran = run_batch(runner.run, label, feeds, header["rows"], names)
    t1 = time.perf_counter_ns()
    writer = model_ipc.Writer(arena, header["outputs_at"])

    def put(arrays: list[Array]) -> list[model_ipc.Descriptor]:
        return [writer.put(n, a) for n, a in zip(names, arrays, strict=True)]

    alone = None  # each request's own outputs or error, when the batch failed
    if ran.alone is not None:
        alone = [part if isinstance(part, str) else put(part) for part in ran.alone]
    reply = {
        "outputs": None if ran.outputs is None else put(ran.outputs),
        "alone": alone,
        "nonfinite": nonfinite_of(ran, names) if header["check_finite"] else "",
        "ns": [input_ns, ran.infer_ns, time.perf_counter_ns() - t1],
        "overflow": writer.overflow,
    }
    return reply, writer.payload


def main(argv: list[str]) -> int:
    # the server decides when this process ends (by closing the socket), not a terminal's ^C
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sock = socket.socket(fileno=int(argv[1]))
    arena = model_ipc.Arena(int(argv[2]))
    try:
        return serve(sock, arena)
    except (ConnectionError, BrokenPipeError):
        return 0  # the server went away
    finally:
        sock.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
