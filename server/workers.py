"""``--workers N``: N complete server processes sharing both ports under one parent.

Each worker is an ordinary ``ortserve serve`` (its own batchers and sessions) binding the
HTTP and gRPC ports with SO_REUSEPORT, so the kernel spreads connections over them. The
parent reserves the ports (port 0 becomes a real one, the same for all), starts the workers,
prints the serving line once every worker serves and the ready line once every worker is
ready, restarts a worker that dies, and forwards SIGTERM / SIGINT so that each drains before
the parent exits. A parent that dies without that (SIGKILL, the OOM killer) closes the
workers' stdin, and they drain and stop by themselves.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
import sys
import time
from typing import Any

from .app import address, bind_socket
from .settings import Settings

log = logging.getLogger("ortserve.workers")
RESTART_DELAY_S = (0.5, 1, 2, 5, 10)  # backoff while a worker keeps dying


def worker_command(settings: Settings, argv: list[str]) -> list[str]:
    """One worker's command line: the parent's own arguments (so the same config file and
    environment apply), then the reserved ports, its threads, one process, shared ports, and
    a stop once its stdin (a pipe from this process) closes, so that none outlives a parent
    that is killed."""
    return [
        sys.executable, "-m", "server", "serve", *argv,
        "--http-port", str(settings.http_port),
        "--grpc-port", str(settings.grpc_port),
        "--intra-op-threads", str(settings.threads_per_model()),
        "--workers", "1",
        "--reuse-port",
        "--stop-when-stdin-closes",
    ]  # fmt: skip


class Supervisor:
    """Starts, watches and stops the worker processes."""

    def __init__(self, settings: Settings, argv: list[str]) -> None:
        self.settings = settings
        self.command = worker_command(settings, argv)
        self.processes: dict[int, asyncio.subprocess.Process] = {}
        self.serving: dict[int, asyncio.Event] = {}
        self.ready: dict[int, asyncio.Event] = {}
        self.stopping = False
        self.failures = 0

    async def start(self, index: int) -> None:
        process = await asyncio.create_subprocess_exec(
            *self.command, stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.PIPE
        )  # nothing is written to stdin: the worker stops when it closes, with this process
        self.processes[index] = process
        self.serving[index] = asyncio.Event()
        if index not in self.ready or self.ready[index].is_set():
            # one not yet set stays: the ready line may be waiting on it
            self.ready[index] = asyncio.Event()
        asyncio.create_task(self._pump(index, process))

    async def _pump(self, index: int, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            line = raw.decode(errors="replace")
            if line.startswith("ortserve serving "):
                self.serving[index].set()
            elif line.startswith("ortserve ready "):
                self.ready[index].set()
            else:
                sys.stdout.write(line)
                sys.stdout.flush()

    async def watch(self, index: int) -> int:
        """Wait for worker ``index`` to exit; restart it unless the server is stopping."""
        while True:
            started = time.monotonic()
            code = await self.processes[index].wait()
            if self.stopping:
                return 0 if code == -signal.SIGTERM else code  # stopped while starting
            if time.monotonic() - started > 60:
                self.failures = 0  # it had been healthy: restart at once
            delay = RESTART_DELAY_S[min(self.failures, len(RESTART_DELAY_S) - 1)]
            self.failures += 1
            log.error("worker %d exited with code %d; restarting in %ss", index, code, delay)
            await asyncio.sleep(delay)
            if self.stopping:
                return 0
            await self.start(index)

    def signal_all(self, sig: int) -> None:
        for process in self.processes.values():
            if process.returncode is None:
                process.send_signal(sig)


async def supervise(settings: Settings, argv: list[str]) -> int:
    host = settings.host
    # Reserve the ports for the workers' lifetime: bound, never listening, so the kernel
    # never hands this socket a connection.
    http = bind_socket(host, settings.http_port, reuse_port=True)
    grpc = bind_socket(host, settings.grpc_port, reuse_port=True)
    ports = dataclasses.replace(
        settings, http_port=http.getsockname()[1], grpc_port=grpc.getsockname()[1]
    )
    supervisor = Supervisor(ports, argv)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    for index in range(settings.workers):
        await supervisor.start(index)
    started = await _wait_started(supervisor, stop)
    watchers: list[asyncio.Future[int]] = []
    code = 0
    if started:
        watchers = [asyncio.ensure_future(supervisor.watch(i)) for i in range(settings.workers)]
        addresses = f"http={address(host, ports.http_port)} grpc={address(host, ports.grpc_port)}"
        print(f"ortserve serving {addresses}", flush=True)
        announce = asyncio.ensure_future(_announce_ready(supervisor, addresses))
        await stop.wait()
        announce.cancel()
    else:
        code = next((p.returncode for p in supervisor.processes.values() if p.returncode), 0)
    supervisor.stopping = True
    supervisor.signal_all(signal.SIGTERM)
    codes = await asyncio.gather(*watchers)
    for process in supervisor.processes.values():
        await process.wait()
    http.close()
    grpc.close()
    return code or next((c for c in codes if c), 0)


async def _announce_ready(supervisor: Supervisor, addresses: str) -> None:
    """Print the ready line once every worker is ready: a worker restarted meanwhile counts
    once the new process is."""
    while not all(event.is_set() for event in supervisor.ready.values()):
        await asyncio.gather(*(event.wait() for event in supervisor.ready.values()))
    print(f"ortserve ready {addresses}", flush=True)


async def _wait_started(supervisor: Supervisor, stop: asyncio.Event) -> bool:
    """True once every worker serves; False if one exits first or a signal comes."""
    ready = asyncio.ensure_future(asyncio.gather(*(e.wait() for e in supervisor.serving.values())))
    others: list[asyncio.Future[Any]] = [asyncio.ensure_future(stop.wait())]
    others += [asyncio.ensure_future(p.wait()) for p in supervisor.processes.values()]
    await asyncio.wait([ready, *others], return_when=asyncio.FIRST_COMPLETED)
    started = ready.done() and not ready.cancelled() and not stop.is_set()
    for future in (ready, *others):
        future.cancel()
    # A cancelled gather ends with CancelledError as its exception: collect it, or asyncio
    # logs "exception was never retrieved" with a traceback when the future is collected.
    await asyncio.gather(ready, *others, return_exceptions=True)
    return started


def run_workers(settings: Settings, argv: list[str]) -> int:
    """Run ``settings.workers`` worker processes until SIGTERM / SIGINT; the exit code."""
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return asyncio.run(supervise(settings, argv))
