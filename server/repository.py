"""The model repository on disk: ``<root>/<name>/[config.toml]`` and ``<version>/model.onnx``.

A model folder that holds ``model.onnx`` directly (no version folders) serves it as version 1.
Nothing outside the repository is read: names and links that lead out of it are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError
from .settings import ModelConfig, load_model_config

MODEL_FILE = "model.onnx"
CONFIG_FILE = "config.toml"
RESERVED_NAMES = frozenset({"stats"})  # /v2/models/stats is the statistics endpoint


@dataclass(frozen=True, slots=True)
class ModelSource:
    """One model found on disk: its config and the ONNX file of each version."""

    name: str
    config: ModelConfig
    versions: dict[int, Path]


def scan_repository(root: Path) -> list[ModelSource]:
    """Every model under ``root``, sorted by name; raises ConfigError naming the bad path."""
    if not root.is_dir():
        raise ConfigError(f"{root}: model repository is not a directory")
    real_root = root.resolve()
    models = [
        _scan_model(folder, real_root)
        for folder in sorted(root.iterdir())
        if folder.is_dir() and not folder.name.startswith(".")
    ]
    if not models:
        raise ConfigError(f"{root}: no models (expected <name>/<version>/{MODEL_FILE})")
    return models


def _scan_model(folder: Path, real_root: Path) -> ModelSource:
    name = folder.name
    if name in RESERVED_NAMES:
        raise ConfigError(f'{folder}: "{name}" is reserved by the V2 protocol; rename the folder')
    config = load_model_config(_inside(folder / CONFIG_FILE, real_root))
    versions: dict[int, Path] = {}
    for entry in sorted(folder.iterdir()):
        if not entry.is_dir() or entry.name.startswith("."):
            continue
        if not (entry.name.isascii() and entry.name.isdigit()) or int(entry.name) < 1:
            raise ConfigError(f"{entry}: version folders must be positive integers")
        version = int(entry.name)
        if version in versions:
            raise ConfigError(f"{folder}: two folders for version {version}")
        model_file = _inside(entry / MODEL_FILE, real_root)
        if not model_file.is_file():
            raise ConfigError(f"{entry}: no {MODEL_FILE} in this version folder")
        versions[version] = model_file
    direct = _inside(folder / MODEL_FILE, real_root)
    if not versions and direct.is_file():
        versions[1] = direct
    if not versions:
        raise ConfigError(f"{folder}: no versions (expected {folder}/1/{MODEL_FILE})")
    return ModelSource(name, config, dict(sorted(versions.items())))


def _inside(path: Path, real_root: Path) -> Path:
    """``path`` itself, after checking that it does not lead out of the repository."""
    if not path.resolve().is_relative_to(real_root):
        raise ConfigError(f"{path}: leads outside the model repository")
    return path
