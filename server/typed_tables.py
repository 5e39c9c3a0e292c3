"""TOML tables and environment text -> typed dataclasses, every key and value type checked.

Errors are ConfigError naming the key and where it came from (a file, a variable).
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError

T = typing.TypeVar("T")


def build(cls: type[T], table: Mapping[str, Any], where: str, prefix: str = "") -> T:
    """Make dataclass ``cls`` from a TOML table, checking every key and value type."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in names:
            known = ", ".join(sorted(names))
            raise ConfigError(f'{where}: unknown key "{prefix}{key}" (known: {known})')
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise ConfigError(f'{where}: "{prefix}{key}" must be a table [{prefix}{key}]')
            values[key] = build(hint, value, where, f"{prefix}{key}.")  # type: ignore[arg-type]
        else:
            values[key] = _typed(value, hint, where, prefix + key)
    try:
        return cls(**values)
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None


def _typed(value: Any, hint: Any, where: str, key: str) -> Any:
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for option in options:
        if option is type(None):
            continue
        if option is bool and isinstance(value, bool):
            return value
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if option is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if option in (str, Path) and isinstance(value, str):
            return option(value)
        if typing.get_origin(option) is tuple and isinstance(value, list):
            item = typing.get_args(option)[0]
            return tuple(_typed(v, item, where, f"{key}[{i}]") for i, v in enumerate(value))
    wanted = " or ".join(getattr(o, "__name__", str(o)) for o in options if o is not type(None))
    raise ConfigError(f'{where}: "{key}" must be {wanted}, got {type(value).__name__} {value!r}')


def from_text(text: str, hint: Any, key: str) -> Any:
    """Coerce an environment variable's text to the field's type."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if bool in options:
        if text.lower() not in ("1", "0", "true", "false", "yes", "no"):
            raise ConfigError(f"{key}: {text!r} is not a boolean (true or false)")
        return text.lower() in ("1", "true", "yes")
    if int in options:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{key}: {text!r} is not an integer") from None
    if float in options:
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"{key}: {text!r} is not a number") from None
    return text


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; raises ConfigError naming the file on any problem."""
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
