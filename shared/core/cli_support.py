"""What every CLI of the project shares: the config's flags, error reporting, child processes.

A CLI is ``main(argv) -> int``; expected failures (:class:`MTLSError`) become one
``error: ...`` line on stderr and their exit code, never a traceback.

The flags that override a config section are generated from that section's
dataclass (:class:`ConfigFlags`): a field with ``help`` metadata is a flag
named after it (``tls_min`` -> ``--tls-min``), typed from its annotation, with
its ``choices``; a boolean one has a ``--no-`` form unless it says otherwise.
The same fields give the way back, :meth:`ConfigFlags.overrides`, so a new
setting is one field in :mod:`~mtls_ref.shared.core.config`, not three edits
per tool. Values are checked (ranges included) by ``load_config``, as they are
for the file and the environment.

Child processes (server workers, the pytest fixture's server, the demo's server)
are started by :func:`module_command` only, so that what runs is always the
installed package, never a file that happens to sit in the working directory.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from mtls_ref.shared.core.config import TLS_VERSIONS, Config
from mtls_ref.shared.core.errors import MTLSError
from mtls_ref.shared.core.fields import without_none

__all__ = [
    "SERVER_MODULE",
    "ConfigFlags",
    "add_config_argument",
    "add_exact_tls_flag",
    "module_command",
    "quiet_broken_pipe",
    "run_cli",
]

SERVER_MODULE: Final = "mtls_ref.server"


def module_command(module: str, *args: str) -> list[str]:
    """The argv that runs ``python -m module args...`` with this interpreter, from installed code only.

    ``-P`` (Python 3.11+) keeps the working directory off the child's ``sys.path``:
    with plain ``-m`` a ``server.py`` or an ``mtls_ref/`` folder where the user
    stands would be imported instead of ours, and run with our arguments.
    """
    return [sys.executable, "-P", "-m", module, *args]


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="config file (default: $MTLS_CONFIG, else ./mtls.toml if present, else built-in defaults)",
    )


# A flag's metavar when its field names none: every number of seconds in the config is a float
# (load_config says "expected a number of seconds"), and every count an int.
_METAVARS: Final[Mapping[Any, str]] = {float: "SECONDS", int: "N"}


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigFlags:
    """One tool's flags for a config section: added to its parser, read back as ``overrides``.

    Every field of ``section`` (a :class:`Config` section class) that has ``help``
    metadata is a flag, or those named in ``only`` (a tool that takes part of the
    section); ``help_for`` words a field's help for this tool.
    """

    section: type[Any]
    only: frozenset[str] | None = None
    help_for: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        flagged = {spec.name for spec in dataclasses.fields(self.section) if "help" in spec.metadata}
        unknown = set(self.only or ()) - flagged
        if unknown:
            raise ValueError(f"{self.section.__name__} has no flag for {', '.join(sorted(unknown))}")

    @property
    def fields(self) -> list[dataclasses.Field[Any]]:
        """The fields that are flags, in the section's order."""
        return [
            spec
            for spec in dataclasses.fields(self.section)
            if "help" in spec.metadata and (self.only is None or spec.name in self.only)
        ]

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        """``--config PATH``, then one flag per field, each defaulting to None ("the config stands")."""
        add_config_argument(parser)
        hints = typing.get_type_hints(self.section)
        for spec in self.fields:
            _add_flag(parser, spec, hints[spec.name], self.help_for.get(spec.name))

    def overrides(self, args: argparse.Namespace, **values: Any) -> dict[str, dict[str, Any]]:
        """``load_config``'s ``overrides``: every flag's value (None where not given), then ``values``."""
        keys = {spec.name: getattr(args, spec.name) for spec in self.fields}
        return {_section_name(self.section): keys | values}


def _add_flag(
    parser: argparse.ArgumentParser, spec: dataclasses.Field[Any], hint: Any, help_text: str | None
) -> None:
    meta = spec.metadata
    kind = without_none(hint)
    options: dict[str, Any] = {"help": help_text or meta["help"], "default": None}
    if kind is bool:
        options["action"] = argparse.BooleanOptionalAction if meta["negatable"] else "store_true"
    else:
        metavar = meta["metavar"] or _METAVARS.get(kind)
        if metavar is not None:
            options["metavar"] = metavar
        if "choices" in meta:
            options["choices"] = meta["choices"]
        if typing.get_origin(kind) is tuple:
            options["action"] = "append"  # repeatable; the list replaces the config's
        elif kind in (int, float, Path):
            options["type"] = kind
    parser.add_argument(f"--{spec.name.replace('_', '-')}", **options)


def _section_name(section: type[Any]) -> str:
    """The name under which :class:`Config` holds ``section`` (``ServerConfig`` -> ``"server"``)."""
    for name, hint in typing.get_type_hints(Config).items():
        if hint is section:
            return name
    raise ValueError(f"{section.__name__} is not a section of Config")


def add_exact_tls_flag(parser: argparse.ArgumentParser) -> None:
    """``--tls 1.2``: the client's one TLS version, both ``tls_min`` and ``tls_max``."""
    parser.add_argument("--tls", choices=TLS_VERSIONS, help="use exactly this TLS version")


def run_cli(
    body: Callable[[argparse.Namespace], int], parser: argparse.ArgumentParser, argv: Sequence[str] | None
) -> int:
    """Parse ``argv`` and run ``body``, turning our errors into one line and an exit code."""
    args = parser.parse_args(argv)
    try:
        code = body(args)
        sys.stdout.flush()  # inside the try: a closed pipe must surface here, not at exit
    except BrokenPipeError:
        return quiet_broken_pipe()
    except MTLSError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130
    return code


def quiet_broken_pipe() -> int:
    """The reader went away (``... | head -1``): stop quietly, as Unix tools do.

    stdout is pointed at /dev/null so the interpreter's final flush does not
    print a second error (the recipe in Python's signal module documentation).
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + signal.SIGPIPE
