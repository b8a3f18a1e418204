"""Child processes under trio: read their output up to a marker, stop them within a bound."""

from __future__ import annotations

import pytest
import trio


async def read_until(
    stream: trio.abc.ReceiveStream, marker: bytes, what: str, *, deadline: float = 20
) -> bytes:
    """Read a process's output until ``marker`` and the end of its line; fail clearly if it exits first."""
    seen = b""
    with trio.fail_after(deadline):
        while marker not in seen or b"\n" not in seen.split(marker, 1)[1]:
            chunk = await stream.receive_some(4096)
            if not chunk:
                pytest.fail(f"{what} exited before printing {marker!r}: {seen.decode(errors='replace')}")
            seen += chunk
    return seen


async def stop_process(process: trio.Process) -> None:
    """SIGTERM, up to 10 s to go, then SIGKILL."""
    process.terminate()
    with trio.move_on_after(10):
        await process.wait()
    if process.returncode is None:
        process.kill()
        await process.wait()
