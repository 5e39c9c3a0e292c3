"""One model run for a batch of requests, in two halves: run, then split.

``run_batch`` is the model's side: it runs the joined inputs and, if the batch fails and holds
more than one request, runs each request alone so that only the one that breaks the model
fails. ``split`` is the answer's side: it cuts the outputs back into one set per request and
notes an output holding NaN or Inf. The thread executor runs the first half in its runtime
thread and the second on the event loop, so the thread holds the GIL only to enter and leave
ONNX Runtime; the model process (``model_process``) does both in its own process.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .types import Array

log = logging.getLogger(__name__)
Outputs = dict[str, Array]
RunFn = Callable[[dict[str, Array], list[str]], list[Array]]


@dataclass(slots=True)
class Ran:
    """What the model gave for a batch: the outputs of the whole batch, or (when the batch
    failed) each request's own outputs or the message of why it failed."""

    outputs: list[Array] | None
    alone: list[list[Array] | str] | None = None
    infer_ns: int = 0


@dataclass(slots=True)
class RunResult:
    """What one batch gave: per request its outputs, or the message of why the run failed."""

    results: list[Outputs | str] = field(default_factory=list)
    failed: str = ""  # why the first failed request failed
    nonfinite: str = ""  # an output that held NaN or Inf
    input_ns: int = 0
    infer_ns: int = 0
    output_ns: int = 0


def concatenate(feeds_list: Sequence[dict[str, Array]]) -> dict[str, Array]:
    """The requests' inputs joined along the batch dim (the request itself when alone)."""
    if len(feeds_list) == 1:
        return feeds_list[0]
    return {name: np.concatenate([f[name] for f in feeds_list]) for name in feeds_list[0]}


def run_batch(
    run: RunFn, label: str, feeds: dict[str, Array], rows: Sequence[int], names: list[str]
) -> Ran:
    """Run ``feeds`` (the batch, ``rows`` per request, in order) for the outputs ``names``."""
    t0 = time.perf_counter_ns()
    try:
        return Ran(run(feeds, names), infer_ns=time.perf_counter_ns() - t0)
    except Exception as error:
        if len(rows) == 1:
            return Ran(None, [str(error)], time.perf_counter_ns() - t0)
        log.warning("%s: batch of %d failed (%s); retrying alone", label, len(rows), error)
    alone: list[list[Array] | str] = []
    start = 0
    for count in rows:
        part = {n: a[start : start + count] for n, a in feeds.items()}
        start += count
        try:
            alone.append(run(part, names))
        except Exception as error:
            alone.append(str(error))
    return Ran(None, alone, time.perf_counter_ns() - t0)


def nonfinite_output(names: list[str], outputs: Sequence[Array]) -> str:
    """The first float output holding NaN or Inf, or "".

    One dot product per output: a NaN or Inf anywhere makes the sum of squares NaN or Inf, so a
    finite one proves every value finite; only one that is not (which large finite values also
    give, by overflowing) needs the element-wise check.
    """
    for name, out in zip(names, outputs, strict=True):
        if out.dtype.kind != "f" or math.isfinite(np.vdot(out, out)):
            continue
        if not np.isfinite(out).all():
            return name
    return ""


def nonfinite_of(ran: Ran, names: list[str]) -> str:
    """The first output holding NaN or Inf in what the model gave, or ""."""
    if ran.outputs is not None:
        return nonfinite_output(names, ran.outputs)
    for part in ran.alone or ():
        if not isinstance(part, str) and (name := nonfinite_output(names, part)):
            return name
    return ""


def split(ran: Ran, rows: Sequence[int], names: list[str], check_finite: bool) -> RunResult:
    """Each request's outputs (views into the batch's), in order; ``check_finite`` looks for
    NaN and Inf in what the model gave."""
    result = RunResult(infer_ns=ran.infer_ns)
    t0 = time.perf_counter_ns()
    if check_finite:
        result.nonfinite = nonfinite_of(ran, names)
    outputs = ran.outputs
    if outputs is None:
        assert ran.alone is not None
        for part in ran.alone:
            if isinstance(part, str):
                result.results.append(part)
                result.failed = result.failed or part
            else:
                result.results.append(dict(zip(names, part, strict=True)))
    else:
        if len(rows) == 1:
            result.results.append(dict(zip(names, outputs, strict=True)))
        else:
            start = 0
            for count in rows:
                end = start + count
                result.results.append(
                    {n: out[start:end] for n, out in zip(names, outputs, strict=True)}
                )
                start = end
    result.output_ns = time.perf_counter_ns() - t0
    return result
