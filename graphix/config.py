"""Dataclass configurations read from JSON files with ``key=value`` overrides.

Every field of a configuration dataclass carries its help text in
``field(metadata={"help": ...})``. A key that the dataclass does not define is an
error, in a file and in an override alike, so a typo never passes silently.

>>> from dataclasses import dataclass, field
>>> @dataclass
... class Example:
...     lr: float = field(default=1e-3, metadata={"help": "learning rate"})
...     name: str = field(default="run", metadata={"help": "run name"})
>>> apply_overrides(Example(), ["lr=0.5", "name=test"])
Example(lr=0.5, name='test')
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from graphix.errors import ConfigError

ConfigT = TypeVar("ConfigT")


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _convert(value: Any, annotation: Any, key: str) -> Any:
    """Convert a JSON value or an override string to the field's annotated type."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        return _convert(value, options[0], key)
    if origin in (list, tuple):
        (item_type, *_) = typing.get_args(annotation) or (Any,)
        if isinstance(value, str):
            value = [part for part in value.split(",") if part.strip()] if value.strip() else []
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {key!r} expects a list, got {value!r}")
        return origin(_convert(item, item_type, key) for item in value)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"config key {key!r} expects true or false, got {value!r}")
    if annotation in (int, float, str):
        try:
            if annotation is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            return annotation(value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"config key {key!r} expects {annotation.__name__}, got {value!r}"
            ) from None
    return value


def from_dict(cls: type[ConfigT], values: dict[str, Any], source: str = "config") -> ConfigT:
    """Build `cls` from a mapping; unknown keys raise ConfigError naming `source`."""
    types_by_name = _field_types(cls)
    unknown = sorted(set(values) - set(types_by_name))
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {', '.join(unknown)}; valid keys: "
            + ", ".join(sorted(types_by_name))
        )
    converted = {key: _convert(value, types_by_name[key], key) for key, value in values.items()}
    return cls(**converted)


def load_config(cls: type[ConfigT], path: str | Path | None,
                overrides: list[str] | None = None) -> ConfigT:
    """Read `cls` from a JSON file (or defaults when `path` is None), then apply overrides."""
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ConfigError(f"config file {path} is not valid JSON: {error}") from None
        if not isinstance(values, dict):
            raise ConfigError(f"config file {path} must contain a JSON object")
    config = from_dict(cls, values, source=str(path or "defaults"))
    return apply_overrides(config, overrides or [])


def apply_overrides(config: ConfigT, overrides: list[str]) -> ConfigT:
    """Apply ``key=value`` strings to a configuration dataclass."""
    types_by_name = _field_types(type(config))
    changes = {}
    for override in overrides:
        key, separator, value = override.partition("=")
        key = key.strip()
        if not separator:
            raise ConfigError(f"override {override!r} must have the form key=value")
        if key not in types_by_name:
            raise ConfigError(
                f"override {override!r}: unknown key {key!r}; valid keys: "
                + ", ".join(sorted(types_by_name))
            )
        changes[key] = _convert(value, types_by_name[key], key)
    return dataclasses.replace(config, **changes)


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def describe(cls: type) -> str:
    """Return one line per field: name, default and help text, for ``--help`` output."""
    lines = []
    for item in dataclasses.fields(cls):
        default = item.default if item.default is not dataclasses.MISSING else "(required)"
        lines.append(f"  {item.name} = {default!r}: {item.metadata.get('help', '')}")
    return "\n".join(lines)
