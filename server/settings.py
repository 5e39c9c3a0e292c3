"""Typed settings: the server's `Settings` and each model's `ModelConfig`.

Server settings come from, in order: defaults, a TOML file (``--config``), ``ORTSERVE_*``
environment variables, command-line flags. A model's config comes from
``<repository>/<name>/config.toml``. Unknown keys and wrong types raise ConfigError naming
the key and the file.
"""

from __future__ import annotations

import dataclasses
import os
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .typed_tables import build, from_text, read_toml

ENV_PREFIX = "ORTSERVE_"
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")
GRAPH_OPTIMIZATIONS = ("disable", "basic", "extended", "all")
# cuDNN convolution algorithm choice on CUDA (ONNX Runtime's cudnn_conv_algo_search)
CONV_ALGO_SEARCHES = ("heuristic", "exhaustive", "default")
EXECUTORS = ("thread", "process")


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Everything the server process is told; built once, passed down."""

    model_repository: Path | None = None
    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    max_request_bytes: int = 64 * 2**20
    # answers a gRPC stream holds for a client that does not read them; past it the stream
    # reads no more requests until they drain
    stream_backlog_bytes: int = 16 * 2**20
    device: str = "auto"
    log_level: str = "info"
    drain_timeout_s: float = 30.0
    workers: int = 1
    reuse_port: bool = False  # SO_REUSEPORT on both ports (set for every worker of --workers)
    # drain and stop once standard input reaches its end (set for every worker of --workers,
    # whose stdin is a pipe from the parent: a parent that is killed takes its workers along)
    stop_when_stdin_closes: bool = False
    # for models whose config says 0 (one if its runs are no faster on more); 0: cores ÷ workers
    intra_op_threads: int = 0
    executor: str = "thread"  # for models whose config names none: "thread" or "process"
    tls_cert_file: Path | None = None  # with tls_key_file: both front ends speak TLS
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None  # set: clients must present a certificate (mTLS)
    auth_token_file: Path | None = None  # set: inference needs "Authorization: Bearer <token>"
    prediction_log_dir: Path | None = None  # None: no prediction log
    prediction_log_segment_mb: int = 64
    prediction_log_segment_age_s: float = 3600.0
    prediction_log_gzip: bool = False
    prediction_log_fsync_interval_s: float = 1.0
    prediction_log_queue_size: int = 65536
    prediction_log_when_full: str = "block"  # "block" (bounded) or "drop"
    prediction_log_block_ms: int = 1000

    def threads_per_model(self) -> int:
        """Intra-op threads for a model that names none: the cores, shared by the workers."""
        return self.intra_op_threads or max(1, (os.cpu_count() or 1) // self.workers)

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigError(f"workers: {self.workers} must be at least 1")
        if self.intra_op_threads < 0:
            raise ConfigError("intra_op_threads: must be 0 (automatic) or more")
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ConfigError("tls_cert_file and tls_key_file go together")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ConfigError("tls_client_ca_file needs tls_cert_file and tls_key_file")
        if self.prediction_log_when_full not in ("block", "drop"):
            raise ConfigError(
                f'prediction_log_when_full: "{self.prediction_log_when_full}" is not block or drop'
            )
        if min(self.prediction_log_segment_mb, self.prediction_log_queue_size) < 1:
            raise ConfigError("prediction_log_segment_mb and _queue_size must be positive")
        if self.prediction_log_fsync_interval_s <= 0 or self.prediction_log_block_ms < 0:
            raise ConfigError("prediction_log: fsync interval must be positive, block_ms >= 0")
        for name in ("http_port", "grpc_port"):
            port = getattr(self, name)
            if not 0 <= port <= 65535:
                raise ConfigError(f"{name}: {port} is not a port number (0-65535)")
        if self.max_request_bytes <= 0:
            raise ConfigError("max_request_bytes: must be positive")
        if self.stream_backlog_bytes <= 0:
            raise ConfigError("stream_backlog_bytes: must be positive")
        _check_device(self.device, "device")
        _check_executor(self.executor, "executor")
        if self.log_level not in ("debug", "info", "warning", "error"):
            raise ConfigError(
                f'log_level: "{self.log_level}" is not one of debug, info, warning, error'
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchingConfig:
    """``[batching]``: how requests of one model version share model runs."""

    enabled: bool = True  # false: every request runs alone
    max_batch_size: int | None = None  # None: 256 with a symbolic first dim; 0: no batch dim
    max_queue_delay_us: int = 0  # 0: run as soon as an instance is free
    busy_hold_us: int = 5000  # saturated event loop: a batch after a run waits this long; 0: never
    preferred_batch_sizes: tuple[int, ...] = ()
    max_queue_size: int = 1024  # requests waiting; more are refused with 429
    timeout_ms: int = 0  # 0: no server-side deadline

    def __post_init__(self) -> None:
        if self.max_batch_size is not None and self.max_batch_size < 0:
            raise ConfigError("batching.max_batch_size: must be 0 or more")
        if min(self.max_queue_delay_us, self.busy_hold_us, self.timeout_ms) < 0:
            raise ConfigError(
                "batching: max_queue_delay_us, busy_hold_us and timeout_ms must be 0 or more"
            )
        if self.max_queue_size < 1:
            raise ConfigError("batching.max_queue_size: must be at least 1")
        if any(size < 1 for size in self.preferred_batch_sizes):
            raise ConfigError("batching.preferred_batch_sizes: sizes must be positive")
        limit = self.max_batch_size
        if limit is not None and any(size > limit for size in self.preferred_batch_sizes):
            raise ConfigError(
                f"batching.preferred_batch_sizes: sizes must not exceed max_batch_size {limit}"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeConfig:
    """``[runtime]``: where and how ONNX Runtime runs the model."""

    device: str | None = None  # None: the server's default device
    instances: int = 1
    intra_op_threads: int = 0  # 0: the server's intra_op_threads
    inter_op_threads: int = 0  # 0: ONNX Runtime's choice
    allow_spinning: bool = False  # true: ORT's idle threads spin: lower latency, a core's CPU
    # thread executor: after a run this long the loop hands the next batch to a runtime thread
    # (waits for it to be taken) rather than keep the GIL it needs to start; 0: never
    handoff_after_us: int = 2000
    graph_optimization: str = "all"
    executor: str | None = None  # None: the server's executor ("process" or "thread")
    # "exhaustive" (ONNX Runtime's own default) times every algorithm for each new input shape,
    # which can take a second on a convolutional model, and each new batch size is a new shape
    cudnn_conv_algo_search: str = "heuristic"

    def __post_init__(self) -> None:
        if self.device is not None:
            _check_device(self.device, "runtime.device")
        if self.executor is not None:
            _check_executor(self.executor, "runtime.executor")
        if self.instances < 1:
            raise ConfigError("runtime.instances: must be at least 1")
        if self.intra_op_threads < 0 or self.inter_op_threads < 0:
            raise ConfigError("runtime: thread counts must be 0 (automatic) or more")
        if self.handoff_after_us < 0:
            raise ConfigError("runtime.handoff_after_us: must be 0 (never) or more")
        if self.graph_optimization not in GRAPH_OPTIMIZATIONS:
            raise ConfigError(
                f'runtime.graph_optimization: "{self.graph_optimization}" is not one of '
                + ", ".join(GRAPH_OPTIMIZATIONS)
            )
        if self.cudnn_conv_algo_search not in CONV_ALGO_SEARCHES:
            raise ConfigError(
                f'runtime.cudnn_conv_algo_search: "{self.cudnn_conv_algo_search}" is not one of '
                + ", ".join(CONV_ALGO_SEARCHES)
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggingConfig:
    """``[logging]``: what the prediction log keeps of this model's predictions."""

    enabled: bool = True
    inputs: str = "hash"  # "full", "hash" (sha256 of the input bytes) or "none"
    outputs: bool = True

    def __post_init__(self) -> None:
        if self.inputs not in ("full", "hash", "none"):
            raise ConfigError(f'logging.inputs: "{self.inputs}" is not one of full, hash, none')


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthConfig:
    """``[health]``: when this model counts as ready, and how it recovers."""

    inputs: str | None = None  # golden inputs (.npz), relative to the version folder
    outputs: str | None = None  # the outputs those inputs must give (.npz)
    rtol: float = 1e-5
    atol: float = 1e-6
    check_finite: bool = True  # NaN or Inf in a float output is a failure
    failures_to_unready: int = 5  # consecutive failed runs that make the model not ready
    recheck_interval_s: float = 5.0  # how often a not-ready model is checked again

    def __post_init__(self) -> None:
        if (self.inputs is None) != (self.outputs is None):
            raise ConfigError("health: golden inputs and outputs go together")
        if self.failures_to_unready < 1 or self.recheck_interval_s <= 0:
            raise ConfigError("health: failures_to_unready >= 1, recheck_interval_s > 0")
        if self.rtol < 0 or self.atol < 0:
            raise ConfigError("health: rtol and atol must be 0 or more")


@dataclass(frozen=True, slots=True, kw_only=True)
class FallbackConfig:
    """``[fallback]``: what answers when the primary fails, is too slow or is switched off."""

    chain: tuple[str, ...] = ()  # in order, any of "cache", "baseline"
    timeout_ms: int = 0  # > 0: a primary slower than this falls back
    baseline: str = ""  # another model of the repository with the same inputs
    cache_entries: int = 1024
    cache_bytes: int = 64 * 2**20
    cache_ttl_s: float = 300.0
    breaker_failures: int = 5
    breaker_window: int = 20
    breaker_failure_rate: float = 0.5
    breaker_cooldown_s: float = 10.0
    breaker_trial_requests: int = 1

    def __post_init__(self) -> None:
        for step in self.chain:
            if step not in ("cache", "baseline"):
                raise ConfigError(f'fallback.chain: "{step}" is not cache or baseline')
        if "baseline" in self.chain and not self.baseline:
            raise ConfigError("fallback: a chain with baseline needs fallback.baseline")
        if min(self.cache_entries, self.breaker_failures, self.breaker_window) < 1:
            raise ConfigError("fallback: cache_entries, breaker_failures, breaker_window >= 1")
        if self.timeout_ms < 0 or self.breaker_trial_requests < 1:
            raise ConfigError("fallback: timeout_ms >= 0, breaker_trial_requests >= 1")

    @property
    def is_enabled(self) -> bool:
        return bool(self.chain)


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelConfig:
    """A model's ``config.toml``; every section is optional."""

    batching: BatchingConfig = field(default_factory=BatchingConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    fallback: FallbackConfig = field(default_factory=FallbackConfig)


def _check_device(device: str, key: str) -> None:
    if not DEVICE_PATTERN.fullmatch(device):
        raise ConfigError(f'{key}: "{device}" is not one of auto, cpu, cuda, cuda:N')


def _check_executor(executor: str, key: str) -> None:
    if executor not in EXECUTORS:
        raise ConfigError(f'{key}: "{executor}" is not one of {", ".join(EXECUTORS)}')


def load_settings(
    config_file: Path | None, environ: Mapping[str, str], overrides: Mapping[str, Any]
) -> Settings:
    """Settings from a TOML file, then ``ORTSERVE_*`` variables, then ``overrides`` (CLI)."""
    table: dict[str, Any] = {}
    if config_file is not None:
        table.update(read_toml(config_file))
        build(Settings, table, str(config_file))  # names the file in errors
    hints = typing.get_type_hints(Settings)
    for f in dataclasses.fields(Settings):
        variable = ENV_PREFIX + f.name.upper()
        if variable in environ:
            table[f.name] = from_text(environ[variable], hints[f.name], variable)
    table.update({k: v for k, v in overrides.items() if v is not None})
    return build(Settings, table, "settings")


def load_model_config(path: Path) -> ModelConfig:
    """A model's config.toml, or the defaults when there is none."""
    if not path.exists():
        return ModelConfig()
    return build(ModelConfig, read_toml(path), str(path))
