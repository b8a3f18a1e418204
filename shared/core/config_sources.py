"""Where config values come from before the flags: the config file and the environment.

The file is ``--config PATH``, else ``$MTLS_CONFIG``, else ``./mtls.toml`` when
it exists; its relative paths are resolved against its own folder. The
environment gives ``MTLS_<SECTION>_<KEY>``, its relative paths resolved against
the working directory. Each value is coerced to its field's type as it is read
(:func:`~mtls_ref.shared.core.fields.coerce`), so a bad one is reported with
the place it came from. ``sections`` is the config's table of section name ->
section class.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from mtls_ref.shared.core.errors import ConfigError
from mtls_ref.shared.core.fields import coerce

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CONFIG_NAME",
    "Values",
    "choose_file",
    "read_env",
    "read_file",
    "section_class",
]

CONFIG_ENV: Final = "MTLS_CONFIG"
DEFAULT_CONFIG_NAME: Final = "mtls.toml"

# Raw values gathered so far: section -> key -> value (already of the field's type).
Values = dict[str, dict[str, Any]]


def choose_file(path: str | os.PathLike[str] | None, env: Mapping[str, str], cwd: Path) -> Path | None:
    """The config file to read (``path``, ``$MTLS_CONFIG``, ``./mtls.toml``), or None for none."""
    if path is None and env.get(CONFIG_ENV):
        path = env[CONFIG_ENV]
    if path is not None:
        chosen = cwd / Path(path)
        if not chosen.is_file():
            raise ConfigError(
                f"config file {str(path)!r} not found: pass an existing file with --config "
                f"or {CONFIG_ENV}, or leave both unset to use ./{DEFAULT_CONFIG_NAME} or the defaults"
            )
        return chosen
    default = cwd / DEFAULT_CONFIG_NAME
    return default if default.is_file() else None


def read_file(values: Values, source: Path, sections: Mapping[str, type[Any]]) -> None:
    """Add the TOML file's keys to ``values``; TOML values must already have the field's type."""
    try:
        data = tomllib.loads(source.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source}: cannot read the config file: {exc}") from exc
    for section, table in data.items():
        cls = section_class(sections, section, str(source))
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: [{section}] must be a table of keys, got {table!r}")
        for key, raw in table.items():
            where = f"{source}: [{section}] {key}"
            values[section][key] = coerce(cls, key, raw, where, source.parent, text=False)


def read_env(values: Values, env: Mapping[str, str], cwd: Path, sections: Mapping[str, type[Any]]) -> None:
    """Add the ``MTLS_<SECTION>_<KEY>`` variables to ``values`` (other ``MTLS_`` names are not ours)."""
    for name, raw in env.items():
        if not name.startswith("MTLS_") or name == CONFIG_ENV:
            continue
        rest = name[len("MTLS_") :].lower()
        section, _, key = rest.partition("_")
        if section not in sections:
            continue  # MTLS_KEY_PASSPHRASE and friends belong to other readers
        cls = sections[section]
        if key not in _field_names(cls):
            raise ConfigError(
                f"environment {name}: unknown key {key!r} in [{section}]; "
                f"known keys: {', '.join(sorted(_field_names(cls)))}"
            )
        values[section][key] = coerce(cls, key, raw, f"environment {name}", cwd)


def section_class(sections: Mapping[str, type[Any]], section: str, where: str) -> type[Any]:
    try:
        return sections[section]
    except KeyError:
        raise ConfigError(
            f"{where}: unknown section [{section}]; allowed: {', '.join(f'[{s}]' for s in sections)}"
        ) from None


def _field_names(cls: type[Any]) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}
