"""What every CLI of the project shares: the ``--config`` flag and error reporting.

A CLI is ``main(argv) -> int``; expected failures (:class:`MTLSError`) become one
``error: ...`` line on stderr and their exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from .errors import MTLSError

__all__ = ["add_config_argument", "run_cli"]


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
        return body(args)
    except MTLSError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130
