"""One model run for a batch of requests: run, check, split; one by one if the batch fails.

Shared by both executors: the runtime thread calls it in the server process, the model
process (``model_process``) calls it in its own process. It never touches the event loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .types import Array

log = logging.getLogger(__name__)
Outputs = dict[str, Array]
RunFn = Callable[[dict[str, Array], list[str]], list[Array]]


@dataclass(slots=True)
class RunResult:
    """What one batch gave: per request its outputs, or the message of why the run failed."""

    results: list[Outputs | str] = field(default_factory=list)
    nonfinite: str = ""  # an output that held NaN or Inf
    input_ns: int = 0
    infer_ns: int = 0
    output_ns: int = 0


def concatenate(feeds_list: Sequence[dict[str, Array]]) -> dict[str, Array]:
    """The requests' inputs joined along the batch dim (the request itself when alone)."""
    if len(feeds_list) == 1:
        return feeds_list[0]
    return {name: np.concatenate([f[name] for f in feeds_list]) for name in feeds_list[0]}


def execute(
    run: RunFn,
    label: str,
    feeds: dict[str, Array],
    rows: Sequence[int],
    names: list[str],
    check_finite: bool,
) -> RunResult:
    """Run ``feeds`` (the batch, ``rows`` per request, in order) and split the outputs.

    If the batch fails and holds more than one request, each request runs alone so that only
    the one that breaks the model fails.
    """
    result = RunResult()
    t0 = time.perf_counter_ns()
    try:
        outputs = run(feeds, names)
    except Exception as error:
        if len(rows) == 1:
            result.results.append(str(error))
            return result
        log.warning("%s: batch of %d failed (%s); retrying alone", label, len(rows), error)
        start = 0
        for count in rows:
            part = {n: a[start : start + count] for n, a in feeds.items()}
            start += count
            single = execute(run, label, part, [count], names, check_finite)
            result.results.extend(single.results)
            result.infer_ns += single.infer_ns
            result.output_ns += single.output_ns
            result.nonfinite = result.nonfinite or single.nonfinite
        return result
    t1 = time.perf_counter_ns()
    if check_finite:
        for name, out in zip(names, outputs, strict=True):
            if out.dtype.kind == "f" and not np.isfinite(out).all():
                result.nonfinite = name
                break
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
    result.infer_ns, result.output_ns = t1 - t0, time.perf_counter_ns() - t1
    return result
