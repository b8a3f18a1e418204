"""`openssl s_server` as the peer nobody here wrote, on a loopback port it reports itself: its flags and
the port it prints are shared with the bench, which runs it as a plain subprocess."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import trio

from .pki import Pki
from .processes import read_until

# -Verify 1 requires a client certificate (lowercase -verify only asks for one), and
# -verify_return_error ends the handshake when it fails verification instead of carrying on.
REQUIRE_CLIENT_CERT = ("-Verify", "1", "-verify_return_error")


def credential_flags(*, cert: Path, key: Path, ca: Path, chain: Path | None = None) -> list[str]:
    """s_server's certificate (and the chain it sends, when given), its key, and the CA it trusts."""
    sent_chain = ["-cert_chain", str(chain)] if chain is not None else []
    return ["-cert", str(cert), *sent_chain, "-key", str(key), "-CAfile", str(ca)]


def accept_port(output: str) -> int | None:
    """The port of s_server's ``ACCEPT 127.0.0.1:PORT`` line in ``output``, or None before it is printed."""
    _, found, rest = output.partition("ACCEPT ")
    return int(rest.splitlines()[0].rsplit(":", 1)[1]) if found else None


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
            port = accept_port(seen.decode(errors="replace"))
            assert port is not None  # read_until returned once the ACCEPT line was complete
            yield port
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
        *credential_flags(cert=pki.server.cert, chain=pki.server.chain, key=pki.server.key, ca=pki.ca_cert),
        *REQUIRE_CLIENT_CERT,
        "-rev",
    )
