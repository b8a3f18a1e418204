"""What every CLI of the project shares: the ``--config`` flag, error reporting, child processes.

A CLI is ``main(argv) -> int``; expected failures (:class:`MTLSError`) become one
``error: ...`` line on stderr and their exit code, never a traceback.

Child processes (server workers, the pytest fixture's server, the demo's server)
are started by :func:`module_command` only, so that what runs is always the
installed package, never a file that happens to sit in the working directory.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Final

from mtls_ref.shared.core.errors import MTLSError

__all__ = ["SERVER_MODULE", "add_config_argument", "module_command", "quiet_broken_pipe", "run_cli"]

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
