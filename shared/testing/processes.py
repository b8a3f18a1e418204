"""Our server as a child process of a test suite: started from the installed package, stopped for sure.

The child runs ``python -P -m mtls_ref.server ...`` (never a ``server.py`` where
the tests run) in its own folder, without the suite's ``MTLS_*`` environment,
so only what the fixture wrote configures it.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Final, Literal

from mtls_ref.shared.core.cli_support import SERVER_MODULE, module_command

__all__ = ["start_server_process", "stop_process"]

# How long a stopping server may drain (its shutdown_grace is 5 s by default), then how long
# a killed one may take to be reaped.
STOP_TIMEOUT: Final = 10.0


def start_server_process(
    *args: str, cwd: Path, pipe: Literal["stdout", "stderr"]
) -> subprocess.Popen[bytes]:
    """``mtls-server args...`` in ``cwd``, with its ``pipe`` (what it reports on) readable by us."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MTLS_")}
    return subprocess.Popen(
        module_command(SERVER_MODULE, *args),
        stdout=subprocess.PIPE if pipe == "stdout" else None,
        stderr=subprocess.PIPE if pipe == "stderr" else None,
        env=env,
        cwd=cwd,
    )


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (a graceful drain, workers included), and SIGKILL if that takes too long."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT)
