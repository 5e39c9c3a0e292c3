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
        if len(rows) > 1:
            log.warning("%s: batch of %d failed (%s); retrying alone", label, len(rows), error)
            return _execute_alone(run, label, feeds, rows, names, check_finite)
        result.results.append(str(error))
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


def _execute_alone(
    run: RunFn,
    label: str,
    feeds: dict[str, Array],
    rows: Sequence[int],
    names: list[str],
    check_finite: bool,
) -> RunResult:
    combined = RunResult()
    start = 0
    for count in rows:
        end = start + count
        single = execute(
            run, label, {n: a[start:end] for n, a in feeds.items()}, [count], names, check_finite
        )
        start = end
        combined.results.extend(single.results)
        combined.infer_ns += single.infer_ns
        combined.output_ns += single.output_ns
        combined.nonfinite = combined.nonfinite or single.nonfinite
    return combined
