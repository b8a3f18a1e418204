"""The config schema's vocabulary: what a field's metadata says, and how a raw value becomes a field's value.

A field of a config section (:mod:`~mtls_ref.shared.core.config`) may carry
``choices(...)`` (the allowed values), ``bounds(low, high)`` (a numeric range)
and ``flag(help)`` (it is a command-line flag of its tool, with that help; see
:class:`~mtls_ref.shared.core.cli_support.ConfigFlags`). :func:`coerce` turns a
value from TOML, the environment or a flag into the field's type and checks it
against that metadata, or raises one :class:`ConfigError` line that names where
the value came from and what is allowed.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any, Union

from mtls_ref.shared.core.errors import ConfigError

__all__ = ["bounds", "choices", "coerce", "flag", "without_none"]


def choices(*allowed: str) -> dict[str, Any]:
    """The field takes one of ``allowed``."""
    return {"choices": allowed}


def bounds(low: float, high: float | None = None) -> dict[str, Any]:
    """The field is a number from ``low`` to ``high`` (no upper bound when None)."""
    return {"range": (low, high)}


def flag(help_text: str, *, metavar: str | None = None, negatable: bool = True) -> dict[str, Any]:
    """The field is a command-line flag: its help, and (when argparse's default will not do)
    its metavar; a boolean flag has a ``--no-`` form unless ``negatable`` is false."""
    return {"help": help_text, "metavar": metavar, "negatable": negatable}


def without_none(hint: Any) -> Any:
    """``Path | None`` -> ``Path``; other types as they are."""
    if typing.get_origin(hint) in (Union, types.UnionType):
        (kind,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return kind
    return hint


def coerce(cls: type[Any], key: str, raw: Any, where: str, base: Path, *, text: bool = True) -> Any:
    """Turn a TOML/env/flag value into the field's type, or explain why not.

    ``text`` allows strings to stand for numbers, booleans and comma-separated
    lists (environment and flags); TOML values must already have the right type.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if key not in fields:
        raise ConfigError(f"{where}: unknown key; known keys: {', '.join(sorted(fields))}")
    spec = fields[key]
    hint = typing.get_type_hints(cls)[key]
    value = _convert(hint, raw, where, base, text)
    if "choices" in spec.metadata and value not in spec.metadata["choices"]:
        allowed = ", ".join(repr(c) for c in spec.metadata["choices"])
        raise ConfigError(f"{where}: {raw!r} is not allowed; use one of {allowed}")
    if "range" in spec.metadata:
        low, high = spec.metadata["range"]
        if value < low or (high is not None and value > high):
            span = f"from {low} to {high}" if high is not None else f"of at least {low}"
            raise ConfigError(f"{where}: {raw!r} is out of range; use a number {span}")
    return value


def _convert(hint: Any, raw: Any, where: str, base: Path, text: bool) -> Any:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        if raw in ("", None):
            return None  # an empty string clears an optional path
        return _convert(without_none(hint), raw, where, base, text)
    from_text = text and isinstance(raw, str)
    if hint is bool:
        if isinstance(raw, bool):
            return raw
        if from_text and raw.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return raw.lower() in ("1", "true", "yes", "on")
        raise ConfigError(f"{where}: expected true or false, got {raw!r}")
    if hint is int:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        if from_text and raw.strip().lstrip("-").isdigit():
            return int(raw)
        raise ConfigError(f"{where}: expected a whole number, got {raw!r}")
    if hint is float:
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            return float(raw)
        if from_text:
            try:
                return float(raw)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number of seconds, got {raw!r}")
    if hint is Path:
        if not isinstance(raw, str | os.PathLike):
            raise ConfigError(f"{where}: expected a path as a string, got {raw!r}")
        path = Path(raw).expanduser()
        return path if path.is_absolute() else base / path
    if origin is tuple:
        if from_text:  # environment: comma-separated
            items: list[Any] = [part.strip() for part in raw.split(",") if part.strip()]
        elif isinstance(raw, list | tuple):
            items = list(raw)
        else:
            raise ConfigError(f"{where}: expected a list of strings, got {raw!r}")
        if not all(isinstance(item, str) for item in items):
            raise ConfigError(f"{where}: expected a list of strings, got {raw!r}")
        return tuple(items)
    if hint is str:
        if not isinstance(raw, str):
            raise ConfigError(f"{where}: expected a string, got {raw!r}")
        return raw
    raise AssertionError(f"unsupported config type {hint!r}")  # a bug in this module
