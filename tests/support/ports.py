"""Loopback ports for peers that cannot report the port they bound to: pick one, wait until it accepts
(under trio for the tests, blocking for the bench, which runs its servers as plain subprocesses)."""

from __future__ import annotations

import socket
import subprocess
import time

import pytest
import trio

STARTUP_TIMEOUT = 20.0


def free_port() -> int:
    """A loopback port free right now, for peers that cannot report the port they bound to."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_for_port(port: int, process: trio.Process, what: str) -> None:
    """Until ``port`` accepts connections (bounded): these servers print nothing when ready."""
    with trio.fail_after(STARTUP_TIMEOUT):
        while True:
            try:
                stream = await trio.open_tcp_stream("127.0.0.1", port)
            except OSError:
                if process.returncode is not None:
                    pytest.fail(f"{what} exited with {process.returncode} before listening")
                await trio.sleep(0.05)  # starting up; bounded by fail_after
                continue
            await stream.aclose()
            return


def wait_for_port_blocking(
    port: int, process: subprocess.Popen[bytes], what: str, *, timeout: float = STARTUP_TIMEOUT
) -> None:
    """``wait_for_port`` for a ``subprocess.Popen`` (the bench): RuntimeError if it exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            time.sleep(0.05)  # starting up; poll again (bounded by the deadline)
        else:
            return
    raise RuntimeError(f"{what} did not start listening within {timeout:g} s")
