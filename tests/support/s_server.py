"""`openssl s_server` as the peer nobody here wrote, on a loopback port it reports itself."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import trio

from .pki import Pki
from .processes import read_until


@asynccontextmanager
async def openssl_s_server(openssl: str, *args: str) -> AsyncIterator[int]:
    """`openssl s_server -accept 127.0.0.1:0 ARGS`, its output drained; yields the port it bound."""
    process = await trio.lowlevel.open_process(
        [openssl, "s_server", "-accept", "127.0.0.1:0", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    stdout = process.stdout
    assert stdout is not None
    try:
        seen = await read_until(stdout, b"ACCEPT ", "openssl s_server")

        async def drain() -> None:  # s_server logs every connection; keep its pipe flowing
            while await stdout.receive_some(65536):
                pass

        async with trio.open_nursery() as nursery:
            nursery.start_soon(drain)
            yield int(seen.split(b"ACCEPT ", 1)[1].split(b"\n")[0].rsplit(b":", 1)[1])
            nursery.cancel_scope.cancel()
    finally:
        process.kill()
        with trio.move_on_after(5):
            await process.wait()
        for pipe in (process.stdin, stdout):
            if pipe is not None:
                await pipe.aclose()


def s_server(openssl: str, pki: Pki, *extra: str) -> AbstractAsyncContextManager[int]:
    """`openssl s_server -Verify 1 -verify_return_error -rev` with the test PKI (``extra``: e.g. -tls1_2)."""
    return openssl_s_server(
        openssl,
        *extra,
        "-cert",
        str(pki.server.cert),
        "-cert_chain",
        str(pki.server.chain),
        "-key",
        str(pki.server.key),
        "-CAfile",
        str(pki.ca_cert),
        "-Verify",
        "1",
        "-verify_return_error",
        "-rev",
    )
