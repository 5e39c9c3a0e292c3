"""The loaded models: every version of every model, and how requests name them.

A request without a version gets the highest ready version. Versions are decimal strings
on the wire: anything else is InvalidInput, an unknown one ModelNotFound, one that is not
ready ModelNotReady.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .datatypes import DataType
from .errors import InvalidInput, ModelNotFound, ModelNotReady
from .runtime import ModelRuntime
from .settings import ModelConfig
from .stats import ModelStats
from .types import ModelSignature
from .validation import RequestCheck

if TYPE_CHECKING:
    from .batching import Batcher
    from .fallback import Fallback


@dataclass(slots=True)
class Health:
    """What the last checks said of one model version (see health.py)."""

    healthy: bool = False
    reason: str = "not checked yet"
    consecutive_failures: int = 0
    checked_at: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "healthy": self.healthy,
            "reason": self.reason,
            "consecutive_failures": self.consecutive_failures,
        }


@dataclass
class ModelVersion:
    """One loaded version of a model."""

    name: str
    version: int
    runtime: ModelRuntime
    config: ModelConfig
    batcher: Batcher | None = None
    stats: ModelStats = field(default_factory=ModelStats)
    is_ready: bool = False  # loaded and able to serve
    health: Health = field(default_factory=Health)
    fallback: Fallback | None = None

    @property
    def is_healthy(self) -> bool:
        """Ready in the protocol's sense: able to serve and its checks pass."""
        return self.is_ready and self.health.healthy

    @property
    def signature(self) -> ModelSignature:
        return self.runtime.signature

    @functools.cached_property
    def output_datatypes(self) -> dict[str, DataType]:
        return {spec.name: spec.datatype for spec in self.signature.outputs}

    @functools.cached_property
    def version_text(self) -> str:
        return str(self.version)

    @functools.cached_property
    def check_request(self) -> RequestCheck:
        """This version's request validation (see validation.RequestCheck)."""
        return RequestCheck(self.signature, self.name)


class ModelStore:
    """Lookup of loaded model versions by name and version string."""

    def __init__(self, versions: list[ModelVersion]) -> None:
        self._models: dict[str, dict[int, ModelVersion]] = {}
        for v in sorted(versions, key=lambda v: (v.name, v.version)):
            self._models.setdefault(v.name, {})[v.version] = v

    def names(self) -> list[str]:
        return sorted(self._models)

    def versions(self, name: str) -> list[ModelVersion]:
        """Every loaded version of ``name``, lowest first; raises ModelNotFound."""
        try:
            return list(self._models[name].values())
        except KeyError:
            raise ModelNotFound(f'unknown model "{name}"') from None

    def all_versions(self) -> list[ModelVersion]:
        return [v for versions in self._models.values() for v in versions.values()]

    def get(self, name: str, version: str = "") -> ModelVersion:
        """The version a request names ("" = highest ready)."""
        versions = self._models.get(name)
        if versions is None:
            raise ModelNotFound(f'unknown model "{name}"')
        if not version:
            for candidate in reversed(versions.values()):
                if candidate.is_ready:
                    return candidate
            raise ModelNotFound(f'model "{name}" has no ready version')
        if not (version.isascii() and version.isdigit()):
            raise InvalidInput(f'model "{name}": version "{version}" is not a positive integer')
        found = versions.get(int(version))
        if found is None:
            raise ModelNotFound(f'model "{name}" has no version {version}')
        if not found.is_ready:
            raise ModelNotReady(f'model "{name}" version {version} is not ready')
        return found

    def is_ready(self) -> bool:
        return all(v.is_healthy for v in self.all_versions())
