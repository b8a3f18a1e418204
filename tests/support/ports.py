"""Loopback ports for peers that cannot report the port they bound to: pick one, wait until it accepts."""

from __future__ import annotations

import socket

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
