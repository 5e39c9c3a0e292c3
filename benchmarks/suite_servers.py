"""The servers one suite run holds: each started on first use, the ones that failed
remembered (their points are skipped with the reason), all stopped at the end."""

from __future__ import annotations

import sys
from pathlib import Path

from .loadgen import Skip, Target
from .payloads import output_specs
from .server_usage import session_parameters
from .servers import Server, ServerFailed, start_floor, start_ortserve
from .suite_plan import (
    FLOOR_GRPC_X2,
    FLOOR_HTTP,
    ORTSERVE,
    ORTSERVES,
    THREAD_TRY,
    WORKER_COUNT,
    WORKERS,
)


class Servers:
    """Starts each server on first use and remembers the ones that failed."""

    def __init__(self, repos: dict[str, Path], device: str) -> None:
        self.repos = repos
        self.device = device
        self.running: dict[str, Server] = {}
        self.failed: dict[str, str] = {}
        self.sessions: dict[str, dict[str, dict[str, str]]] = {}  # ortserve's, per model
        self.thread_tries: dict[str, list[str]] = {}  # ortserve's log lines on them

    def target(self, name: str, model: str) -> Target:
        """The running server ``name`` (for ``model``, for floors); raises Skip."""
        key = name if name.startswith(ORTSERVE) else f"{name}:{model}"
        if key in self.failed:
            raise Skip(self.failed[key])
        server = self.running.get(key)
        if server is None:
            print(f"starting {key}", file=sys.stderr, flush=True)
            try:
                server = self.running[key] = self._start(name, model)
            except ServerFailed as error:
                self.failed[key] = f"server did not start: {error}"
                raise Skip(self.failed[key]) from None
            if name in ORTSERVES:  # under --workers, one worker's (each chooses its own)
                self.sessions[key] = {
                    m: session_parameters(server.http, m) for m in self._served(name)
                }
                self.thread_tries[key] = server.lines(THREAD_TRY)
        try:
            server.check_alive()
        except ServerFailed as error:
            self.failed[key] = str(error)
            raise Skip(str(error)) from None
        is_floor = not name.startswith(ORTSERVE)
        workers = WORKER_COUNT if name == WORKERS else 1  # each keeps its own statistics
        return Target(name, server.grpc, server.http, server.pids, is_floor, not is_floor, workers)

    def _served(self, name: str) -> list[str]:
        """The models ortserve ``name`` serves (its repository's folders)."""
        repo = self.repos[ORTSERVES[name][0]]
        return sorted(p.name for p in repo.iterdir() if p.is_dir())

    def _start(self, name: str, model: str) -> Server:
        if name in ORTSERVES:
            repo, extra = ORTSERVES[name]
            return start_ortserve(name, self.repos[repo], "--device", self.device, *extra)
        outputs = [arg for spec in output_specs(model) for arg in ("--output", str(spec))]
        args = ["--model", model, *outputs]
        if name == FLOOR_HTTP:
            return start_floor(name, "floor_http", args)
        return start_floor(name, "floor_grpc", args, processes=2 if name == FLOOR_GRPC_X2 else 1)

    def stop_all(self) -> dict[str, list[int]]:
        codes = {}
        for key, server in self.running.items():
            codes[key] = server.stop()
        self.running.clear()
        return codes
