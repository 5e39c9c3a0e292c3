"""Settings from defaults, a TOML file, ORTSERVE_* variables and flags; model config files."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from server.__main__ import build_parser
from server.errors import ConfigError
from server.settings import (
    BatchingConfig,
    ModelConfig,
    RuntimeConfig,
    Settings,
    load_model_config,
    load_settings,
)

SETTING_NAMES = [f.name for f in dataclasses.fields(Settings)]


def _write(tmp_path: Path, text: str, name: str = "ortserve.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _cli(*args: str) -> dict[str, Any]:
    """The overrides ``main`` hands to load_settings for ``ortserve serve ARGS``."""
    namespace = vars(build_parser().parse_args(["serve", *args]))
    return {k: v for k, v in namespace.items() if k not in ("command", "config")}


# Server settings


def test_defaults() -> None:
    settings = load_settings(None, {}, {})
    assert settings == Settings()
    assert settings.model_repository is None
    assert (settings.host, settings.http_port, settings.grpc_port) == ("127.0.0.1", 8000, 8001)
    assert settings.max_request_bytes == 64 * 2**20
    assert settings.stream_backlog_bytes == 16 * 2**20
    assert (settings.device, settings.log_level, settings.drain_timeout_s) == ("auto", "info", 30.0)


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().http_port = 1  # type: ignore[misc]


def test_toml_file(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        'model_repository = "/models"\nhost = "0.0.0.0"\nhttp_port = 9000\n'
        'device = "cuda:1"\nlog_level = "debug"\ndrain_timeout_s = 5\nmax_request_bytes = 1024\n',
    )
    settings = load_settings(path, {}, {})
    assert settings.model_repository == Path("/models")
    assert settings.host == "0.0.0.0"
    assert settings.http_port == 9000
    assert settings.grpc_port == 8001
    assert settings.device == "cuda:1"
    assert settings.log_level == "debug"
    assert settings.drain_timeout_s == 5.0
    assert isinstance(settings.drain_timeout_s, float)
    assert settings.max_request_bytes == 1024


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = _write(tmp_path, 'http_port = 9000\ngrpc_port = 9001\nhost = "a"\n')
    environ = {
        "ORTSERVE_HTTP_PORT": "9100",
        "ORTSERVE_HOST": "b",
        "ORTSERVE_MODEL_REPOSITORY": "/env",
        "ORTSERVE_DRAIN_TIMEOUT_S": "1.5",
        "UNRELATED": "x",
    }
    settings = load_settings(path, environ, {})
    assert settings.http_port == 9100
    assert settings.grpc_port == 9001
    assert settings.host == "b"
    assert settings.model_repository == Path("/env")
    assert settings.drain_timeout_s == 1.5


def test_cli_overrides_environment_and_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "http_port = 9000\ngrpc_port = 9001\nmax_request_bytes = 10\n")
    environ = {"ORTSERVE_HTTP_PORT": "9100", "ORTSERVE_GRPC_PORT": "9101"}
    overrides = _cli("--http-port", "9200", "--model-repository", "/cli", "--device", "cpu")
    settings = load_settings(path, environ, overrides)
    assert settings.http_port == 9200
    assert settings.grpc_port == 9101
    assert settings.max_request_bytes == 10
    assert settings.model_repository == Path("/cli")
    assert settings.device == "cpu"


def test_absent_cli_flags_do_not_override(tmp_path: Path) -> None:
    settings = load_settings(None, {"ORTSERVE_HTTP_PORT": "9100"}, _cli())
    assert settings.http_port == 9100


def test_unknown_key_in_file_names_key_and_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "http_prot = 9000\n")
    with pytest.raises(ConfigError, match=re.escape(f'{path}: unknown key "http_prot"')):
        load_settings(path, {}, {})


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ('http_port = "9000"', "http_port"),
        ("http_port = 9000.0", "http_port"),
        ("http_port = true", "http_port"),
        ("host = 1", "host"),
        ("drain_timeout_s = true", "drain_timeout_s"),
        ('drain_timeout_s = "5"', "drain_timeout_s"),
        ("model_repository = 3", "model_repository"),
        ("max_request_bytes = [1]", "max_request_bytes"),
        ("device = {}", "device"),
    ],
)
def test_wrong_type_in_file_names_key_and_file(tmp_path: Path, line: str, key: str) -> None:
    path = _write(tmp_path, line + "\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {}, {})
    assert str(path) in str(caught.value)
    assert f'"{key}"' in str(caught.value)


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("http_port = 70000", "http_port"),
        ("grpc_port = -1", "grpc_port"),
        ("max_request_bytes = 0", "max_request_bytes"),
        ("stream_backlog_bytes = 0", "stream_backlog_bytes"),
        ('device = "gpu"', "device"),
        ('log_level = "trace"', "log_level"),
    ],
)
def test_bad_value_in_file_names_key_and_file(tmp_path: Path, line: str, key: str) -> None:
    path = _write(tmp_path, line + "\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {}, {})
    assert str(path) in str(caught.value)
    assert key in str(caught.value)


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "http_port = \n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}: not valid TOML")):
        load_settings(path, {}, {})


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError, match=re.escape(f"{path}: cannot read")):
        load_settings(path, {}, {})


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ORTSERVE_HTTP_PORT", "http"),
        ("ORTSERVE_GRPC_PORT", ""),
        ("ORTSERVE_MAX_REQUEST_BYTES", "1e6"),
        ("ORTSERVE_DRAIN_TIMEOUT_S", "soon"),
    ],
)
def test_wrong_type_in_environment_names_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        load_settings(None, {variable: value}, {})


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:12"])
def test_good_device_strings(device: str) -> None:
    assert Settings(device=device).device == device
    assert RuntimeConfig(device=device).device == device


@pytest.mark.parametrize(
    "device", ["gpu", "CPU", "cuda:", "cuda:-1", "cuda:x", "cuda0", " cpu", "cpu ", "", "tpu"]
)
def test_bad_device_strings_are_rejected(device: str) -> None:
    with pytest.raises(ConfigError, match="device"):
        Settings(device=device)
    with pytest.raises(ConfigError, match="runtime.device"):
        RuntimeConfig(device=device)


def test_bad_device_in_environment_is_rejected() -> None:
    with pytest.raises(ConfigError, match="device"):
        load_settings(None, {"ORTSERVE_DEVICE": "gpu"}, {})


def test_every_setting_has_a_cli_flag() -> None:
    assert sorted(_cli()) == sorted(SETTING_NAMES)


@pytest.mark.parametrize("name", [*SETTING_NAMES, "config"])
def test_serve_help_mentions_every_flag(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(["serve", "--help"])
    assert caught.value.code == 0
    assert "--" + name.replace("_", "-") in capsys.readouterr().out


def test_top_level_help_mentions_serve_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    out = capsys.readouterr().out
    assert "serve" in out
    assert "--version" in out


def test_cli_rejects_an_unknown_log_level(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(["serve", "--log-level", "trace"])
    assert caught.value.code == 2
    assert "--log-level" in capsys.readouterr().err


# Model config.toml


def test_model_config_defaults_without_a_file(tmp_path: Path) -> None:
    assert load_model_config(tmp_path / "config.toml") == ModelConfig()
    assert ModelConfig().batching.max_batch_size is None
    assert ModelConfig().runtime == RuntimeConfig()
    assert RuntimeConfig().cudnn_conv_algo_search == "heuristic"  # not ONNX Runtime's exhaustive


def test_model_config_file(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "[batching]\nmax_batch_size = 8\n"
        '[runtime]\ndevice = "cpu"\ninstances = 2\nintra_op_threads = 3\n'
        'inter_op_threads = 1\ngraph_optimization = "basic"\nexecutor = "process"\n'
        'cudnn_conv_algo_search = "exhaustive"\n',
        "config.toml",
    )
    config = load_model_config(path)
    assert config.batching == BatchingConfig(max_batch_size=8)
    assert config.runtime == RuntimeConfig(
        device="cpu",
        instances=2,
        intra_op_threads=3,
        inter_op_threads=1,
        graph_optimization="basic",
        executor="process",
        cudnn_conv_algo_search="exhaustive",
    )


def test_model_config_unknown_section_names_it_and_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "[batchin]\nmax_batch_size = 8\n", "config.toml")
    with pytest.raises(ConfigError, match=re.escape(f'{path}: unknown key "batchin"')):
        load_model_config(path)


def test_model_config_unknown_key_names_it_and_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "[runtime]\nthreads = 2\n", "config.toml")
    with pytest.raises(ConfigError, match=re.escape(f'{path}: unknown key "runtime.threads"')):
        load_model_config(path)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[batching]\nmax_batch_size = "8"\n', "batching.max_batch_size"),
        ("[batching]\nmax_batch_size = 8.0\n", "batching.max_batch_size"),
        ("[runtime]\ninstances = true\n", "runtime.instances"),
        ("[runtime]\ndevice = 0\n", "runtime.device"),
        ("[runtime]\ngraph_optimization = 1\n", "runtime.graph_optimization"),
        ("batching = 3\n", "batching"),
        ('runtime = "cpu"\n', "runtime"),
    ],
)
def test_model_config_wrong_type_names_key_and_file(tmp_path: Path, text: str, key: str) -> None:
    path = _write(tmp_path, text, "config.toml")
    with pytest.raises(ConfigError) as caught:
        load_model_config(path)
    assert str(path) in str(caught.value)
    assert f'"{key}"' in str(caught.value)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[batching]\nmax_batch_size = -1\n", "batching.max_batch_size"),
        ("[runtime]\ninstances = 0\n", "runtime.instances"),
        ("[runtime]\nintra_op_threads = -1\n", "runtime"),
        ("[runtime]\nhandoff_after_us = -1\n", "runtime.handoff_after_us"),
        ('[runtime]\ngraph_optimization = "max"\n', "runtime.graph_optimization"),
        ('[runtime]\ndevice = "gpu"\n', "runtime.device"),
        ('[runtime]\nexecutor = "fork"\n', "runtime.executor"),
        ('[runtime]\ncudnn_conv_algo_search = "fast"\n', "runtime.cudnn_conv_algo_search"),
    ],
)
def test_model_config_bad_value_names_key_and_file(tmp_path: Path, text: str, key: str) -> None:
    path = _write(tmp_path, text, "config.toml")
    with pytest.raises(ConfigError) as caught:
        load_model_config(path)
    assert str(path) in str(caught.value)
    assert key in str(caught.value)


def test_model_config_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "[runtime\n", "config.toml")
    with pytest.raises(ConfigError, match=re.escape(f"{path}: not valid TOML")):
        load_model_config(path)
