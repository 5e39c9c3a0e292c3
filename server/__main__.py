"""The ortserve command line: ``ortserve serve --model-repository DIR ...``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import __version__, log_reader
from .errors import ConfigError
from .settings import ENV_PREFIX, Settings, load_settings

EPILOG = f"""\
Every flag can also be set with an environment variable ({ENV_PREFIX}HOST,
{ENV_PREFIX}HTTP_PORT, ...) or a key of the TOML file given with --config
({ENV_PREFIX}CONFIG). Flags win over the environment, which wins over the file.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ortserve",
        description="Serve ONNX models over the KServe V2 inference protocol (gRPC and HTTP).",
    )
    parser.add_argument("--version", action="version", version=f"ortserve {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="serve a model repository",
        description="Serve every model of a repository laid out as "
        "<repo>/<name>/<version>/model.onnx with an optional <repo>/<name>/config.toml. "
        "Prints 'ortserve ready http=HOST:PORT grpc=HOST:PORT' once both front ends "
        "accept connections and every model is ready; SIGTERM or SIGINT shut down cleanly.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    defaults = Settings()
    serve.add_argument("--config", metavar="FILE", help="TOML settings file")
    serve.add_argument(
        "--model-repository", metavar="DIR", help="folder of models (required, here or in config)"
    )
    serve.add_argument("--host", help=f"address both front ends bind (default {defaults.host})")
    serve.add_argument(
        "--http-port",
        type=int,
        metavar="PORT",
        help=f"HTTP port, 0 picks a free one (default {defaults.http_port})",
    )
    serve.add_argument(
        "--grpc-port",
        type=int,
        metavar="PORT",
        help=f"gRPC port, 0 picks a free one (default {defaults.grpc_port})",
    )
    serve.add_argument(
        "--device",
        metavar="DEVICE",
        help="auto, cpu, cuda or cuda:N for models whose config names none "
        f"(default {defaults.device}: CUDA when ONNX Runtime has it)",
    )
    serve.add_argument(
        "--max-request-bytes",
        type=int,
        metavar="N",
        help=f"largest request body or gRPC message (default {defaults.max_request_bytes})",
    )
    serve.add_argument(
        "--stream-backlog-bytes",
        type=int,
        metavar="N",
        help="answers a gRPC stream holds for a client that is not reading them; past it the "
        f"stream reads no more requests until they drain (default {defaults.stream_backlog_bytes})",
    )
    serve.add_argument(
        "--drain-timeout-s",
        type=float,
        metavar="S",
        help=f"on shutdown, how long work in flight may take (default {defaults.drain_timeout_s})",
    )
    serve.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="run N server processes sharing both ports (SO_REUSEPORT) under one parent that "
        "restarts any that dies; for a CPU-bound front end on a many-core host, not for a GPU "
        "model whose memory must not be duplicated "
        f"(default {defaults.workers})",
    )
    serve.add_argument(
        "--intra-op-threads",
        type=int,
        metavar="N",
        help="ONNX Runtime threads per session for models whose config sets none "
        "(default 0: the cores, divided among the workers); a model whose runs are no "
        "faster on them than on one thread gets one",
    )
    serve.add_argument(
        "--executor",
        choices=("thread", "process"),
        help="where models without their own [runtime] executor run: in threads of the "
        "server, or in a model process per instance (a crash cannot take the server down, "
        f"and the model stays off the front end's GIL) (default {defaults.executor})",
    )
    serve.add_argument(
        "--reuse-port",
        action="store_const",
        const=True,
        help="bind both ports with SO_REUSEPORT, so several processes can share them",
    )
    serve.add_argument(
        "--stop-when-stdin-closes",
        action="store_const",
        const=True,
        help="drain and stop once standard input reaches its end, as on SIGTERM (every "
        "worker of --workers reads a pipe from the parent, so a killed parent stops them)",
    )
    serve.add_argument("--tls-cert-file", metavar="PEM", help="serve both ports over TLS")
    serve.add_argument("--tls-key-file", metavar="PEM", help="the TLS certificate's key")
    serve.add_argument(
        "--tls-client-ca-file",
        metavar="PEM",
        help="require client certificates signed by this CA (mutual TLS)",
    )
    serve.add_argument(
        "--auth-token-file",
        metavar="FILE",
        help="require 'Authorization: Bearer <token>' (gRPC metadata 'authorization') on "
        "inference; the token is the file's content",
    )
    serve.add_argument(
        "--prediction-log-dir",
        metavar="DIR",
        help="write every prediction to rotating JSONL segments in DIR (default: off)",
    )
    serve.add_argument(
        "--prediction-log-segment-mb",
        type=int,
        metavar="MB",
        help=f"start a new segment past this size (default {defaults.prediction_log_segment_mb})",
    )
    serve.add_argument(
        "--prediction-log-segment-age-s",
        type=float,
        metavar="S",
        help="start a new segment past this age "
        f"(default {defaults.prediction_log_segment_age_s:g})",
    )
    serve.add_argument(
        "--prediction-log-gzip",
        action="store_const",
        const=True,
        help="gzip segments once they are closed",
    )
    serve.add_argument(
        "--prediction-log-fsync-interval-s",
        type=float,
        metavar="S",
        help="a record is on disk (fsync) at most this long after its answer "
        f"(default {defaults.prediction_log_fsync_interval_s:g})",
    )
    serve.add_argument(
        "--prediction-log-queue-size",
        type=int,
        metavar="N",
        help=f"records waiting to be written (default {defaults.prediction_log_queue_size})",
    )
    serve.add_argument(
        "--prediction-log-when-full",
        choices=["block", "drop"],
        help="block: new requests wait for room (bounded), then 429; drop: count and drop "
        f"records (default {defaults.prediction_log_when_full})",
    )
    serve.add_argument(
        "--prediction-log-block-ms",
        type=int,
        metavar="MS",
        help=f"how long block waits (default {defaults.prediction_log_block_ms})",
    )
    serve.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help=f"log level (default {defaults.log_level})",
    )
    log_reader.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    if args.command == "logs":
        return log_reader.run(args)
    overrides = {k: v for k, v in vars(args).items() if k not in ("command", "config")}
    config = args.config or os.environ.get(ENV_PREFIX + "CONFIG")
    try:
        settings = load_settings(Path(config) if config else None, os.environ, overrides)
        if settings.model_repository is None:
            raise ConfigError(
                "no model repository: pass --model-repository DIR "
                f"or set {ENV_PREFIX}MODEL_REPOSITORY"
            )
        if settings.workers > 1:
            from .workers import run_workers

            return run_workers(settings, argv[1:])  # after "serve"
        from .app import run

        return run(settings)
    except (ConfigError, OSError) as error:
        print(f"ortserve: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
