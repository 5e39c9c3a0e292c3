"""The composition root: builds every part, owns start-up and shutdown order.

Start-up: scan the repository, load and warm up every model version (in threads), start
gRPC and HTTP, then print ``ortserve ready http=HOST:PORT grpc=HOST:PORT``. Shutdown (SIGTERM
or SIGINT): stop accepting, let work in flight finish (bounded by ``drain_timeout_s``; what
is left then is answered 503 / UNAVAILABLE and its model runs are cut short), close both
front ends, release the models.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
import os
import signal
import socket
import ssl
import stat
import sys
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn

from .auth import TokenCheck
from .errors import ConfigError
from .frontends.grpc_service import TlsFiles, build_grpc_server, quiet_gone_clients, set_health
from .frontends.http_app import build_http_app
from .health import check, due_for_check, set_checked
from .metrics import Metrics
from .model_loading import load_models
from .prediction_log import LogConfig, PredictionLog
from .service import InferenceService
from .settings import Settings

log = logging.getLogger("ortserve")
HEALTH_TICK_S = 0.2


class _HttpServer(uvicorn.Server):
    """uvicorn without its own signal handling: the App decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _start_prediction_log(settings: Settings, metrics: Metrics) -> PredictionLog | None:
    """The prediction log, started, with its gauges; None when no directory is set."""
    if settings.prediction_log_dir is None:
        return None
    prediction_log = PredictionLog(
        LogConfig(
            directory=settings.prediction_log_dir,
            segment_bytes=settings.prediction_log_segment_mb * 2**20,
            segment_age_s=settings.prediction_log_segment_age_s,
            gzip_closed=settings.prediction_log_gzip,
            fsync_interval_s=settings.prediction_log_fsync_interval_s,
            queue_size=settings.prediction_log_queue_size,
            when_full=settings.prediction_log_when_full,
            block_ms=settings.prediction_log_block_ms,
        )
    )
    prediction_log.start()
    metrics.prediction_log_depth.set_function(lambda: prediction_log.depth)
    metrics.prediction_log_dropped.set_function(lambda: prediction_log.dropped)
    return prediction_log


async def _close_prediction_log(prediction_log: PredictionLog) -> None:
    """Write out what is queued and close the log (off the event loop)."""
    await asyncio.to_thread(prediction_log.close)
    log.info(
        "prediction log: %d records written, %d dropped",
        prediction_log.written,
        prediction_log.dropped,
    )


def _tls_files(settings: Settings) -> TlsFiles | None:
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    return TlsFiles(settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file)


def _http_server(
    settings: Settings, service: InferenceService
) -> tuple[_HttpServer, socket.socket]:
    """uvicorn for ``service`` and the socket it will serve on, bound here."""
    http_socket = bind_socket(settings.host, settings.http_port, settings.reuse_port)
    http = _HttpServer(
        uvicorn.Config(
            build_http_app(service, settings.max_request_bytes),
            http="httptools",
            loop="none",
            lifespan="off",
            access_log=False,
            proxy_headers=False,  # client addresses are not used: nothing to rewrite
            log_level=settings.log_level,
            # after service.drain: bounds what is left (a body still arriving, say)
            timeout_graceful_shutdown=math.ceil(settings.drain_timeout_s),
            ssl_certfile=settings.tls_cert_file,
            ssl_keyfile=settings.tls_key_file,
            ssl_ca_certs=settings.tls_client_ca_file,
            ssl_cert_reqs=ssl.CERT_REQUIRED if settings.tls_client_ca_file else ssl.CERT_NONE,
        )
    )
    return http, http_socket


def bind_socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    """A TCP socket bound to ``host:port`` (not yet listening)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise OSError(f"cannot bind {host}:{port}: {error.strerror}") from None
    sock.set_inheritable(True)
    return sock


def address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class App:
    """One ortserve process: models, both front ends, and their lifecycle."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stop = asyncio.Event()

    def request_stop(self) -> None:
        self._stop.set()

    async def serve(self) -> None:
        """Start everything, print the ready line, serve until asked to stop, shut down."""
        settings = self.settings
        metrics = Metrics()
        store = await load_models(settings, metrics)
        prediction_log = _start_prediction_log(settings, metrics)
        auth = TokenCheck.from_file(settings.auth_token_file) if settings.auth_token_file else None
        service = InferenceService(store, metrics, prediction_log, auth)
        grpc_server, grpc_port, health = await build_grpc_server(
            service,
            settings.host,
            settings.grpc_port,
            settings.max_request_bytes,
            settings.stream_backlog_bytes,
            settings.reuse_port,
            _tls_files(settings),
        )
        http, http_socket = _http_server(settings, service)
        http_port = http_socket.getsockname()[1]
        # Accepting before either front end listens: under --workers a restarted worker shares
        # its ports with the others, so requests reach it the moment it listens.
        service.is_accepting = True
        await grpc_server.start()
        http_task = asyncio.create_task(http.serve(sockets=[http_socket]))
        try:
            while not http.started:
                if http_task.done():
                    http_task.result()
                    raise RuntimeError("HTTP server stopped during start-up")
                await asyncio.sleep(0.01)
            # What start-up made (modules, models, servers) lives as long as the process: out
            # of the collector's way, a full collection under load stops the event loop for
            # about 1 ms instead of 30-40 (small_mlp gRPC c64, 2-core VM). Frozen cycles are
            # never collected: unloading a model while serving would need gc.unfreeze() first.
            gc.freeze()
            addresses = (
                f"http={address(settings.host, http_port)} grpc={address(settings.host, grpc_port)}"
            )
            print(f"ortserve serving {addresses}", flush=True)
            watcher = asyncio.create_task(watch_health(service, health, addresses))
            await self._stop.wait()
            watcher.cancel()
            log.info("shutting down")
        finally:
            service.is_accepting = False
            await set_health(health, service)
            drained = await service.drain(settings.drain_timeout_s)
            if not drained:
                service.abandon(
                    "server is shutting down: not answered within drain_timeout_s "
                    f"({settings.drain_timeout_s:g} s)"
                )
            http.should_exit = True
            await grpc_server.stop(settings.drain_timeout_s)
            with contextlib.suppress(Exception):
                await http_task
            for model in store.all_versions():
                model.runtime.close(stop_runs=not drained)
            if prediction_log is not None:  # after the drain: every answered request is in it
                await _close_prediction_log(prediction_log)


async def watch_health(service: InferenceService, health: Any, addresses: str) -> None:
    """Publish readiness (grpc.health.v1 too), check not-ready versions again when due,
    and print the ready line the first time every model is ready."""
    announced = False
    published: tuple[bool, ...] | None = None
    while True:
        for model in service.store.all_versions():
            if model.is_ready and due_for_check(model):
                reason, _ = await asyncio.to_thread(check, model)
                if set_checked(model, reason):
                    log.warning(
                        "%s version %d is %s",
                        model.name,
                        model.version,
                        "ready again" if reason is None else f"not ready: {reason}",
                    )
        state = tuple(m.is_healthy for m in service.store.all_versions())
        if state != published:
            await set_health(health, service)
            published = state
        if not announced and service.is_ready():
            print(f"ortserve ready {addresses}", flush=True)
            announced = True
        await asyncio.sleep(HEALTH_TICK_S)


class _StopAtEnd(asyncio.Protocol):
    """Reads standard input and ignores it; its end (the writer closed it, or died) stops
    the server as SIGTERM does."""

    def __init__(self, stop: Callable[[], None]) -> None:
        self._stop = stop

    def data_received(self, data: bytes) -> None:
        pass

    def connection_lost(self, exc: Exception | None) -> None:
        log.info("standard input closed: stopping")
        self._stop()


def _stdin_is_a_pipe() -> bool:
    try:
        mode = os.fstat(0).st_mode
    except OSError:  # closed
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def run(settings: Settings) -> int:
    """Serve until SIGTERM or SIGINT; returns the process exit code."""
    import uvloop

    if settings.stop_when_stdin_closes and not _stdin_is_a_pipe():
        raise ConfigError("stop_when_stdin_closes: standard input is not a pipe or a socket")

    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    quiet_gone_clients()

    async def main() -> None:
        app = App(settings)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, app.request_stop)
        if settings.stop_when_stdin_closes:
            await loop.connect_read_pipe(lambda: _StopAtEnd(app.request_stop), sys.stdin)
        await app.serve()

    result: Any = uvloop.run(main())
    del result
    return 0
