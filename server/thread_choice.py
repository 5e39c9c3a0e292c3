"""How many intra-op threads a model whose config names none is worth, measured at load.

ortserve's ONNX Runtime threads sleep when idle (``allow_spinning = false``), so a run that
splits its work among N threads first wakes N - 1 sleeping ones. For a model whose runs are
short that costs about what the split saves: on the 2-core development machine small_mlp ran
batches of 8 rows no faster on two threads than on one, for 20-40% more CPU per row, CPU the
front end needs. So for such a model the server tries both at load, on runs of one row (a
lone caller's) and of ``PROBE_ROWS`` rows (a busy server's batches), with a pause before each
(the threads fall asleep, as between a server's runs), and keeps one thread unless at both
sizes the N threads are at least ``MIN_SPEEDUP`` times faster and save at least
``MIN_SAVING_S`` a run. Both, because the big runs alone misled: on a quiet host two threads
ran small_mlp's 32-row batches up to 1.6 times faster than one, yet served it worse (its
one-row runs took 180-200 us against 130-170, and it answered ~10% fewer requests at gRPC
concurrency 64); its one-row runs, tried alone, were faster on two threads by less than the
bar most of the time. It does not try where threads plainly pay or the try cannot tell: the
first two runs on N threads each ``LONG_RUN_S`` long (one alone may have stalled), a file
over ``MAX_PROBE_FILE_BYTES`` (not loaded once more for the try), CUDA, spinning threads,
string inputs, or a run that fails (the health check says why). A model's own
``intra_op_threads`` is used as given. The session the try loaded on the threads it chose is
handed back, so that the runtime need not load the file again, with the line its caller logs.
With the ``process`` executor the first model process makes the try and the others start on
its choice: the server process never loads the model.
"""

from __future__ import annotations

import logging
import os
import statistics
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import onnxruntime as ort

from .datatypes import BY_ONNX
from .ort_options import session_options, wants_cuda

log = logging.getLogger(__name__)

PROBE_ROWS = 32  # rows per timed run (fewer if the model's max_batch_size is smaller)
PROBE_RUNS = 12  # timed runs each way, taken in turn
PROBE_GAP_S = 0.001  # the pause before each timed run
LONG_RUN_S = 0.02  # a run on N threads this long: they pay for their wake-up, no need to try one
MIN_SPEEDUP = 1.25  # N threads must be this much faster than one to be kept
MIN_SAVING_S = 50e-6  # and save this much per run: runs of microseconds time as noise, not work
MAX_PROBE_FILE_BYTES = 64 * 2**20
# models load in parallel (in threads, or in model processes whose first one tries while the
# server holds this): timings taken together would lie
one_try_at_a_time = threading.Lock()


class ThreadChoice(NamedTuple):
    threads: int
    session: ort.InferenceSession | None  # loaded with ``threads``, warmed up; None if not tried
    said: str = ""  # what the try found, for the log ("" where none was made)


class Timing(NamedTuple):
    rows: int
    many_s: float  # median seconds per run on N threads
    one_s: float  # and on one


def choose_threads(
    path: Path,
    settings: dict[str, Any],
    providers: Sequence[Any],
    max_batch_size: int | None,
    label: str = "",
) -> ThreadChoice:
    """``settings["intra_op_threads"]`` (N), or 1 where N threads do not make its runs of one
    row and of ``PROBE_ROWS`` rows both ``MIN_SPEEDUP`` times faster than one thread does."""
    threads = int(settings["intra_op_threads"])
    untried = ThreadChoice(threads, None)
    if not worth_trying(path, settings, providers):
        return untried
    rows = min(PROBE_ROWS, max_batch_size) if max_batch_size else PROBE_ROWS
    timings: list[Timing] = []
    try:
        with one_try_at_a_time:
            many = _session(path, settings, threads, providers)
            sizes = probe_sizes(many, rows)
            if not sizes:
                return ThreadChoice(threads, many)
            big = sizes[-1][1]
            first_s = _timed(many, big, gap_s=0.0)  # the first run allocates, too
            if first_s >= LONG_RUN_S and (second_s := _timed(many, big, gap_s=0.0)) >= LONG_RUN_S:
                said = (
                    f"{label or path}: {threads} intra-op threads, not tried on one (runs of "
                    f"{sizes[-1][0]} rows: {first_s * 1e3:.1f} and {second_s * 1e3:.1f} ms "
                    f"on {threads} threads)"
                )
                return ThreadChoice(threads, many, said)
            one = _session(path, settings, 1, providers)
            for size, feeds in sizes:  # one row first: where threads do not pay, stop there
                many.run(None, feeds)
                one.run(None, feeds)
                timings.append(Timing(size, *compare(many, one, feeds)))
                if not keeps_threads(timings):
                    break
    except Exception as error:  # a model that fails here fails its health check, saying why
        log.debug("%s: not timed for its threads (%s); keeping %d", label, error, threads)
        return untried
    chosen = threads if keeps_threads(timings) else 1
    runs = "; ".join(
        f"runs of {t.rows} row{'' if t.rows == 1 else 's'}: {t.many_s * 1e3:.2f} ms "
        f"on {threads} threads, {t.one_s * 1e3:.2f} ms on one"
        for t in timings
    )
    said = f"{label or path}: {chosen} intra-op thread{'' if chosen == 1 else 's'} ({runs})"
    return ThreadChoice(chosen, many if chosen == threads else one, said)


def worth_trying(path: Path, settings: dict[str, Any], providers: Sequence[Any]) -> bool:
    """Whether ``choose_threads`` would try the model at all: more than one thread asked for,
    on the CPU, sleeping when idle, from a file of at most ``MAX_PROBE_FILE_BYTES``."""
    return (
        int(settings["intra_op_threads"]) > 1
        and not wants_cuda(providers)
        and not settings["allow_spinning"]
        and _size(path) <= MAX_PROBE_FILE_BYTES
    )


def keeps_threads(timings: Sequence[Timing]) -> bool:
    """N threads are kept only where they pay at every size tried: a lone caller's one-row
    runs as much as a busy server's batches."""
    return bool(timings) and all(threads_pay(t.many_s, t.one_s) for t in timings)


def threads_pay(many_s: float, one_s: float) -> bool:
    """Whether runs of ``many_s`` seconds on N threads against ``one_s`` on one are worth the
    N - 1 threads' CPU: ``MIN_SPEEDUP`` times faster, and by ``MIN_SAVING_S`` at least (a model
    of a few microseconds per run, which ONNX Runtime does not even split, measured up to 1.5
    times "faster" on N threads from a busy host's noise alone)."""
    return one_s >= many_s * MIN_SPEEDUP and one_s - many_s >= MIN_SAVING_S


def compare(
    many: ort.InferenceSession, one: ort.InferenceSession, feeds: dict[str, np.ndarray]
) -> tuple[float, float]:
    """Median seconds per run of each session, ``PROBE_RUNS`` each, in turn (which goes first
    alternating, so neither always follows the other), each after a pause of ``PROBE_GAP_S``."""
    many_s: list[float] = []
    one_s: list[float] = []
    turns = [(many, many_s), (one, one_s)]
    for k in range(PROBE_RUNS):
        for session, times in turns if k % 2 == 0 else turns[::-1]:
            times.append(_timed(session, feeds, PROBE_GAP_S))
    return statistics.median(many_s), statistics.median(one_s)


def probe_sizes(
    session: ort.InferenceSession, rows: int
) -> list[tuple[int, dict[str, np.ndarray]]]:
    """Zero inputs of one row and of ``rows`` rows (one entry if the shapes come out the
    same: no symbolic batch dim), or none when an input is not numeric."""
    sizes: list[tuple[int, dict[str, np.ndarray]]] = []
    for size in (1, rows):
        feeds = probe_inputs(session, size)
        if feeds is None:
            return []
        if sizes and all(a.shape == sizes[0][1][n].shape for n, a in feeds.items()):
            break
        sizes.append((size, feeds))
    return sizes


def probe_inputs(session: ort.InferenceSession, rows: int) -> dict[str, np.ndarray] | None:
    """Zero inputs with ``rows`` in each symbolic first dim (other symbolic dims 1); None when
    an input is not numeric."""
    feeds = {}
    for arg in session.get_inputs():
        datatype = BY_ONNX.get(arg.type)
        if datatype is None or not datatype.itemsize:
            return None
        dims = list(arg.shape)
        shape = [d if isinstance(d, int) and d >= 0 else 1 for d in dims]
        if dims and not isinstance(dims[0], int):
            shape[0] = rows
        feeds[arg.name] = np.zeros(shape, dtype=datatype.dtype)
    return feeds


def _session(
    path: Path, settings: dict[str, Any], threads: int, providers: Sequence[Any]
) -> ort.InferenceSession:
    options = session_options({**settings, "intra_op_threads": threads})
    return ort.InferenceSession(str(path), options, providers=list(providers))


def _timed(session: ort.InferenceSession, feeds: dict[str, np.ndarray], gap_s: float) -> float:
    if gap_s:
        time.sleep(gap_s)
    start = time.perf_counter()
    session.run(None, feeds)
    return time.perf_counter() - start


def _size(path: Path) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
