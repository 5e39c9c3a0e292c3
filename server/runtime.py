"""OrtRuntime: ONNX Runtime sessions for one model version, run in threads of the server.

This is the ``thread`` executor, the default (``process_runtime`` is the ``process`` one).
Each of the ``instances`` sessions is used by one thread at a time. The event loop joins a
batch's inputs and puts it on a queue; a runtime thread runs it and hands the outputs back
with ``call_soon_threadsafe``; the loop cuts them per request. The thread holds the GIL only to
enter and leave ONNX Runtime: every GIL-holding moment of that thread is one the event loop
waits for. The model's signature is read from the graph and tightened by config.

The hand-off: a runtime thread woken for a batch needs the GIL before it can start the run,
and a busy loop keeps it until it next waits for I/O or Python's switch interval (5 ms) forces
it out. Right after a submit the loop is at its busiest (it answers the batch just finished),
so a compute-bound model's thread could sit idle for milliseconds between its runs. Where the
last run took ``[runtime] handoff_after_us`` or more, the loop therefore steps aside after a
submit: it waits, without the GIL, until a runtime thread has taken the batch (at most
``HANDOFF_WAIT_S``), which costs it about 0.1 ms. Short runs keep the wait: there the loop's
time is what bounds throughput, and a later start only lets a batch grow.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import onnxruntime as ort

from .batch_run import Ran, RunResult, concatenate, run_batch, split
from .datatypes import BY_ONNX
from .errors import ConfigError
from .model_process import ModelRunner, preload_cuda_libraries
from .ort_options import (
    check_providers,
    device_id,
    resolve_providers,
    session_options,
    wants_cuda,
)
from .settings import RuntimeConfig
from .thread_choice import choose_threads
from .types import Array, ModelSignature, TensorSpec

log = logging.getLogger(__name__)
BatchDone = Callable[[RunResult | BaseException], None]

DEFAULT_MAX_BATCH_SIZE = 256
HANDOFF_WAIT_S = 0.001  # the longest the loop waits for a runtime thread to take a batch


class ModelRuntime(Protocol):
    """What the rest of the server uses of a runtime, whichever executor it is."""

    path: Path
    signature: ModelSignature
    device: str
    instances: int
    settings: dict[str, Any]  # the session options its sessions were made with

    async def attach(self) -> None: ...

    def submit_batch(
        self,
        feeds_list: Sequence[dict[str, Array]],
        rows: Sequence[int],
        names: list[str],
        check_finite: bool,
        done: BatchDone,
    ) -> None: ...

    def run_sync(self, feeds: dict[str, Array], output_names: list[str]) -> list[Array]: ...

    def close(self, stop_runs: bool = False) -> None:
        """Release the sessions; ``stop_runs``: cut runs still going short (shutdown, once
        the drain time is up and their callers have been answered)."""


def session_settings(config: RuntimeConfig, default_threads: int) -> dict[str, Any]:
    """The session options of ``config`` as plain values (a model process gets them too)."""
    return {
        "graph_optimization": config.graph_optimization,
        "intra_op_threads": config.intra_op_threads or default_threads,
        "inter_op_threads": config.inter_op_threads,
        "allow_spinning": config.allow_spinning,
    }


def model_session_settings(
    path: Path,
    config: RuntimeConfig,
    default_threads: int,
    providers: Sequence[Any],
    max_batch_size: int | None,
    label: str,
) -> tuple[dict[str, Any], ort.InferenceSession | None]:
    """``session_settings`` for one model: where its config names no intra-op threads, the
    default unless its runs are no faster on them than on one (``thread_choice``); and the
    session that choice loaded with those settings, if it loaded one."""
    settings = session_settings(config, default_threads)
    if config.intra_op_threads:
        return settings, None
    choice = choose_threads(path, settings, providers, max_batch_size, label)
    if choice.said:
        log.info("%s", choice.said)
    settings["intra_op_threads"] = choice.threads
    return settings, choice.session


class OrtRuntime:
    """Sessions of one ONNX file and the threads (one per session) that run them."""

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
        if wants_cuda(self.providers):
            preload_cuda_libraries()
        self.settings, loaded = model_session_settings(
            path, config, default_threads, self.providers, max_batch_size, self.label
        )
        options = session_options(self.settings)
        gpu = device_id(wanted)
        first = ModelRunner(loaded or self._load(options), gpu)
        check_providers(wanted, self.providers, first.session.get_providers(), path)
        self._every_runner = [first]
        self._every_runner += [
            ModelRunner(self._load(options), gpu) for _ in range(config.instances - 1)
        ]
        self._runners: queue.SimpleQueue[ModelRunner] = queue.SimpleQueue()
        for runner in self._every_runner:
            self._runners.put(runner)
        session = first.session
        self.signature = read_signature(
            session.get_inputs(), session.get_outputs(), max_batch_size, path
        )
        self.device = "cuda" if first.cuda else "cpu"
        self.instances = config.instances
        self._handoff_after_ns = config.handoff_after_us * 1000  # 0: never
        self.handoff_wait_s = HANDOFF_WAIT_S
        self._hand_off = False  # the last run took handoff_after_us or more
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"ort {self.label} #{i}", daemon=True)
            for i in range(config.instances)
        ]
        for thread in self._threads:
            thread.start()

    def _load(self, options: ort.SessionOptions) -> ort.InferenceSession:
        try:
            return ort.InferenceSession(str(self.path), options, providers=self.providers)
        except Exception as error:  # ORT raises its own pybind types for bad files
            raise ConfigError(f"{self.path}: ONNX Runtime cannot load it: {error}") from None

    def run_sync(self, feeds: dict[str, Array], output_names: list[str]) -> list[Array]:
        """Run the model in the calling thread on a free session."""
        runner = self._runners.get()
        try:
            return runner.run(feeds, output_names)
        finally:
            self._runners.put(runner)

    async def attach(self) -> None:
        """Nothing to do: the threads need no event loop of their own."""

    def submit_batch(
        self,
        feeds_list: Sequence[dict[str, Array]],
        rows: Sequence[int],
        names: list[str],
        check_finite: bool,
        done: BatchDone,
    ) -> None:
        """Run one batch in a runtime thread; ``done`` gets its RunResult on the event loop."""
        t0 = time.perf_counter_ns()
        feeds = concatenate(feeds_list)
        job = _Job(feeds, rows, names, check_finite, done, asyncio.get_running_loop())
        job.input_ns = time.perf_counter_ns() - t0
        if not self._hand_off:
            self._jobs.put(job)
            return
        job.taken = taken = threading.Lock()
        taken.acquire()
        self._jobs.put(job)
        taken.acquire(timeout=self.handoff_wait_s)  # the GIL is free meanwhile

    def _work(self) -> None:
        run, label, ran = self.run_sync, self.label, self._ran
        while (job := self._jobs.get()) is not None:
            if job.taken is not None:
                job.taken.release()
            try:
                outcome: Ran | BaseException = run_batch(run, label, job.feeds, job.rows, job.names)
            except BaseException as error:  # handed to the loop, which decides
                outcome = error
            try:
                job.loop.call_soon_threadsafe(ran, job, outcome)
            except RuntimeError:
                return  # the loop is closed: the server is gone

    def _ran(self, job: _Job, outcome: Ran | BaseException) -> None:
        """On the loop: cut a finished batch per request and hand it on."""
        if isinstance(outcome, BaseException):
            job.done(outcome)
            return
        self._hand_off = 0 < self._handoff_after_ns <= outcome.infer_ns
        try:
            result = split(outcome, job.rows, job.names, job.check_finite)
        except Exception as error:
            job.done(error)
            return
        result.input_ns = job.input_ns
        job.done(result)

    def close(self, stop_runs: bool = False) -> None:
        """Let queued work finish (or, with ``stop_runs``, fail at once), then stop the
        threads."""
        if stop_runs:
            for runner in self._every_runner:
                runner.stop()
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join()


@dataclass(slots=True)
class _Job:
    """One batch on its way to a runtime thread and back."""

    feeds: dict[str, Array]
    rows: Sequence[int]
    names: list[str]
    check_finite: bool
    done: BatchDone
    loop: asyncio.AbstractEventLoop
    input_ns: int = 0
    taken: threading.Lock | None = None  # held until a runtime thread takes the job (hand-off)


def read_signature(
    inputs: Sequence[Any], outputs: Sequence[Any], max_batch_size: int | None, path: Path
) -> ModelSignature:
    """The V2 signature of a graph's inputs and outputs (each with ``name``, ``type`` and
    ``shape``, symbolic dims not ints); ``max_batch_size`` None picks a default."""
    args = [("input", a) for a in inputs] + [("output", a) for a in outputs]
    fixed_first = [
        f'{kind} "{a.name}"' for kind, a in args if not a.shape or isinstance(a.shape[0], int)
    ]
    if max_batch_size is None:
        max_batch_size = 0 if fixed_first else DEFAULT_MAX_BATCH_SIZE
    elif max_batch_size > 0 and fixed_first:
        raise ConfigError(
            f"{path}: max_batch_size {max_batch_size} needs a variable first dim, "
            f"but {fixed_first[0]} has a fixed one"
        )
    specs: dict[str, list[TensorSpec]] = {"input": [], "output": []}
    for kind, arg in args:
        datatype = BY_ONNX.get(arg.type)
        if datatype is None:
            raise ConfigError(f'{path}: {kind} "{arg.name}" has type {arg.type}, not servable')
        dims = arg.shape[1:] if max_batch_size > 0 else arg.shape
        shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in dims)
        specs[kind].append(TensorSpec(arg.name, datatype, shape))
    return ModelSignature(tuple(specs["input"]), tuple(specs["output"]), max_batch_size)
