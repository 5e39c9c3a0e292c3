"""What a server spent during a run: CPU seconds of its processes (and all their
descendants, for multi-process servers) from ``/proc``, and its success/fail counts from the
V2 statistics endpoint (``GET /v2/models/{name}/stats``, Triton's JSON) when it answers 200,
with where a request's time went inside the server (rows per run, queue and compute times);
and what the whole host did meanwhile (``/proc/stat``: the share of its CPU time stolen by
the hypervisor for other guests, and the share left idle), which says how far a point's
figures can be trusted on a shared machine. ``UsageWindow`` brackets a measured phase with
all three. Under ``--workers`` each worker keeps its own statistics; its answers name it
(``x-ortserve-pid``), so the window reads every worker's and adds them up."""

from __future__ import annotations

import json
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

TICKS_PER_S = os.sysconf("SC_CLK_TCK")
# the header ortserve's statistics answers name their process in (its http_app.ANSWERED_BY;
# not imported, which would load the whole server into every load generator)
ANSWERED_BY = "x-ortserve-pid"
WORKER_READS = 64  # statistics reads, each on a new connection, to reach every worker


def _stat_fields(pid: int | str) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # fields from 3 (state) on


def process_cpu_s(pid: int | str) -> float:
    """utime + stime of one live process in seconds (0 if it is gone)."""
    fields = _stat_fields(pid)
    return 0.0 if fields is None else (int(fields[11]) + int(fields[12])) / TICKS_PER_S


def process_tree(pids: list[int]) -> set[int]:
    """``pids`` and every live descendant of them."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat_fields(entry)) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = set(), list(pids)
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo += children.get(pid, [])
    return found


def tree_cpu_s(pids: list[int]) -> float:
    """CPU seconds used so far by ``pids`` and their live descendants."""
    return sum(process_cpu_s(pid) for pid in process_tree(pids))


@dataclass(frozen=True)
class HostTimes:
    """Cumulative CPU time of every core of the host, from the ``cpu`` line of /proc/stat."""

    total: int  # ticks of every kind (guest time is already inside user and nice)
    idle: int  # idle and iowait
    steal: int  # taken by the hypervisor for other guests

    def shares_since(self, before: HostTimes) -> tuple[float, float] | None:
        """(steal, idle) as shares of the host's CPU time since ``before``; None if none passed."""
        total = self.total - before.total
        if total <= 0:
            return None
        return (self.steal - before.steal) / total, (self.idle - before.idle) / total


def host_times() -> HostTimes | None:
    """The host's CPU times now, or None where /proc/stat is missing or has no steal column."""
    try:
        with open("/proc/stat") as f:
            line = f.readline()
    except OSError:
        return None
    fields = line.split()
    if len(fields) < 9 or fields[0] != "cpu":
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    total = user + nice + system + idle + iowait + irq + softirq + steal
    return HostTimes(total=total, idle=idle + iowait, steal=steal)


STAGES = ("success", "queue", "compute_input", "compute_infer", "compute_output")


@dataclass(frozen=True)
class InferCounts:
    """Cumulative statistics of one model (all its versions): successful and failed
    inferences, rows and model runs, and (count, ns) of each stage in ``STAGES``."""

    success: int
    fail: int
    rows: int  # inference_count: successful rows
    runs: int  # execution_count: model runs
    stages: tuple[tuple[int, int], ...]  # (count, ns) per STAGES entry


def infer_counts(http: str | None, model: str, timeout_s: float = 5.0) -> InferCounts | None:
    """The model's counts from ``http`` (HOST:PORT), or None when the server has no
    statistics endpoint (anything but a 200 with Triton's JSON)."""
    read = _read_stats(http, model, timeout_s)
    return None if read is None else read[0]


def worker_counts(
    http: str | None, model: str, workers: int, timeout_s: float = 5.0
) -> dict[int, InferCounts] | None:
    """Each of ``workers`` worker processes' counts, by the pid its answers name
    (``ANSWERED_BY``), read over new connections (the kernel hands each to a worker) until all
    have answered; None if some did not within ``WORKER_READS`` reads."""
    counts: dict[int, InferCounts] = {}
    for _ in range(WORKER_READS):
        read = _read_stats(http, model, timeout_s)
        if read is None or not read[1].get(ANSWERED_BY, "").isdigit():
            return None
        counts.setdefault(int(read[1][ANSWERED_BY]), read[0])  # each one's first read
        if len(counts) == workers:
            return counts
    return None


def _read_stats(
    http: str | None, model: str, timeout_s: float
) -> tuple[InferCounts, dict[str, str]] | None:
    """The model's counts and the answer's headers, over a new connection; None without."""
    answer = _get(http, f"/v2/models/{model}/stats", timeout_s)
    counts = None if answer is None else _counts(answer[0])
    return None if answer is None or counts is None else (counts, answer[1])


def total(counts: Iterable[InferCounts]) -> InferCounts:
    """Several processes' counts added up."""
    parts = list(counts)
    stages = tuple(
        (sum(p.stages[i][0] for p in parts), sum(p.stages[i][1] for p in parts))
        for i in range(len(STAGES))
    )
    return InferCounts(
        success=sum(p.success for p in parts),
        fail=sum(p.fail for p in parts),
        rows=sum(p.rows for p in parts),
        runs=sum(p.runs for p in parts),
        stages=stages,
    )


def _counts(doc: Any) -> InferCounts | None:
    try:
        versions = doc["model_stats"]
        stats = [v["inference_stats"] for v in versions]
        stages = tuple(
            (
                sum(int(s.get(stage, {}).get("count", 0)) for s in stats),
                sum(int(s.get(stage, {}).get("ns", 0)) for s in stats),
            )
            for stage in STAGES
        )
        return InferCounts(
            success=sum(int(s["success"]["count"]) for s in stats),
            fail=sum(int(s["fail"]["count"]) for s in stats),
            rows=sum(int(v.get("inference_count", 0)) for v in versions),
            runs=sum(int(v.get("execution_count", 0)) for v in versions),
            stages=stages,
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def breakdown(before: InferCounts, after: InferCounts) -> dict[str, float | None] | None:
    """Where a request's time went inside the server between two reads, from its statistics:
    rows per model run, and the mean µs per request of each stage (``request_us``: from
    arrival to answer; ``queue_us``: waiting for a run; ``compute_*_us``: the runs it was in,
    as the V2 statistics charge them). None when no run finished in between."""
    runs = after.runs - before.runs
    if runs <= 0:
        return None
    out: dict[str, float | None] = {"rows_per_run": round((after.rows - before.rows) / runs, 2)}
    for stage, (count_a, ns_a), (count_b, ns_b) in zip(
        STAGES, after.stages, before.stages, strict=True
    ):
        count = count_a - count_b
        key = "request_us" if stage == "success" else f"{stage}_us"
        out[key] = round((ns_a - ns_b) / count / 1000, 1) if count > 0 else None
    return out


class UsageWindow:
    """Server CPU, and failures from its statistics, over a measured phase.

    Statistics are read at ``start()`` and after ``stats_span`` of ``duration_s``: h2load resets
    the streams still in flight when it stops, and a server may count those as failures. With
    ``workers`` > 1 each read covers every worker, and the window needs the same workers at
    both ends (a worker restarted in between has a new pid, and its counts start again).
    """

    def __init__(
        self,
        pids: tuple[int, ...],
        http: str | None,
        model: str,
        duration_s: float,
        stats_span: float = 0.9,
        workers: int = 1,
    ) -> None:
        self.pids = list(pids)
        self.http = http
        self.model = model
        self.workers = workers
        self.late_s = duration_s * stats_span
        self.cpu_s = 0.0
        self.counts: list[dict[int, InferCounts] | None] = []  # by worker pid (0: one process)
        self.host_shares: tuple[float, float] | None = None  # (steal, idle) over the window
        self._host: HostTimes | None = None
        self._timer: threading.Timer | None = None

    def start(self) -> None:
        self._host = host_times()
        self.cpu_s = -tree_cpu_s(self.pids)
        self.counts = [self._read()]
        if self.counts[0] is not None:
            self._timer = threading.Timer(self.late_s, self._read_late)
            self._timer.start()

    def _read(self) -> dict[int, InferCounts] | None:
        if self.workers > 1:
            return worker_counts(self.http, self.model, self.workers)
        counts = infer_counts(self.http, self.model)
        return None if counts is None else {0: counts}

    def _read_late(self) -> None:
        self.counts.append(self._read())

    def stop(self) -> None:
        self.cpu_s += tree_cpu_s(self.pids)
        now = host_times()
        if now is not None and self._host is not None:
            self.host_shares = now.shares_since(self._host)
        if self._timer is not None:
            self._timer.join()

    def _ends(self) -> tuple[InferCounts, InferCounts] | None:
        """The counts at both ends of the window, every worker's added up; None without."""
        if len(self.counts) != 2:
            return None
        first, last = self.counts
        if not first or not last or first.keys() != last.keys():
            return None
        return total(first.values()), total(last.values())

    def server_breakdown(self) -> dict[str, float | None] | None:
        """``breakdown`` over the window, None without statistics."""
        ends = self._ends()
        return None if ends is None else breakdown(*ends)

    def server_errors(self) -> int | None:
        """Failures the statistics counted in the window, None without statistics."""
        ends = self._ends()
        return None if ends is None else ends[1].fail - ends[0].fail


def session_parameters(http: str | None, model: str, timeout_s: float = 5.0) -> dict[str, str]:
    """The session options ortserve runs ``model`` with, from its model config's parameters
    (``intra_op_thread_count`` as chosen at load...); {} when it does not say."""
    doc = _get_json(http, f"/v2/models/{model}/config", timeout_s)
    try:
        return {str(k): str(v["string_value"]) for k, v in doc["parameters"].items()}
    except (KeyError, TypeError, AttributeError):  # None too: no answer
        return {}


def _get_json(http: str | None, path: str, timeout_s: float) -> Any:
    """The JSON a GET of ``path`` on ``http`` (HOST:PORT) answers with a 200, else None."""
    answer = _get(http, path, timeout_s)
    return None if answer is None else answer[0]


def _get(http: str | None, path: str, timeout_s: float) -> tuple[Any, dict[str, str]] | None:
    """The JSON and the headers (lower-case names) of a 200 answer to a GET of ``path`` on
    ``http`` (HOST:PORT) over a new connection; None for anything else."""
    if http is None:
        return None
    try:
        with urllib.request.urlopen(f"http://{http}{path}", timeout=timeout_s) as response:
            headers = {k.lower(): v for k, v in response.headers.items()}
            return json.load(response), headers
    except (OSError, ValueError, urllib.error.URLError):  # HTTPError is a URLError
        return None
