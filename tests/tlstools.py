"""Helpers for tests that run real TLS: contexts from the test PKI, connected in memory or on loopback."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from mtls_ref.server.app import Server
from mtls_ref.server.log import EventLog
from mtls_ref.shared.core.config import ClientConfig, ServerConfig
from mtls_ref.shared.pki.authority import IssuedFiles
from mtls_ref.shared.pki.keys import load_certificates

from .pkitools import Pki

# The server engine the helpers below use; the `tls_engine` fixture runs a test once per engine.
SERVER_ENGINE = "openssl"


def server_config(pki: Pki, **changes: object) -> ServerConfig:
    base = ServerConfig(
        tls_engine=SERVER_ENGINE,
        host="127.0.0.1",
        port=0,
        cert=pki.server.chain,
        key=pki.server.key,
        ca=pki.ca_cert,
        handshake_timeout=5.0,
        idle_timeout=5.0,
        shutdown_grace=1.0,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def client_config(
    pki: Pki, creds: IssuedFiles | None = None, *, port: int = 8443, **changes: object
) -> ClientConfig:
    creds = pki.client if creds is None else creds
    base = ClientConfig(
        host="127.0.0.1",
        port=port,
        server_name="localhost",
        cert=creds.chain,
        key=creds.key,
        ca=pki.ca_cert,
        timeout=5.0,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def no_cert(config: ClientConfig) -> ClientConfig:
    return dataclasses.replace(config, cert=None, key=None)


def with_version(config: ClientConfig, version: str) -> ClientConfig:
    return dataclasses.replace(config, tls_min=version, tls_max=version)


async def start_server(nursery: trio.Nursery, pki: Pki, **changes: object) -> tuple[Server, int, list[str]]:
    """Run our server on a free loopback port; returns it, its port and its log lines."""
    log: list[str] = []
    server = Server(server_config(pki, **changes), log=EventLog("json", log.append))
    addresses = await nursery.start(server.serve)
    return server, int(addresses[0][1]), log


def socket_stream_pair() -> tuple[trio.SocketStream, trio.SocketStream]:
    """Two connected sockets (``socketpair()``): the engines' own adapters run over them, no port needed."""
    left, right = trio.socket.socketpair()
    return trio.SocketStream(left), trio.SocketStream(right)


def log_events(log: list[str], name: str) -> list[dict[str, Any]]:
    return [entry for entry in (json.loads(line) for line in log) if entry["event"] == name]


async def start_server_with(nursery: trio.Nursery, **settings: Any) -> tuple[Server, int, list[str]]:
    """Run our server with explicit [server] settings (no test PKI needed)."""
    log: list[str] = []
    config = ServerConfig(
        tls_engine=SERVER_ENGINE,
        host="127.0.0.1",
        port=0,
        handshake_timeout=5.0,
        idle_timeout=5.0,
        shutdown_grace=1.0,
        reload_interval=0,
        **settings,
    )
    server = Server(config, log=EventLog("json", log.append))
    addresses = await nursery.start(server.serve)
    return server, int(addresses[0][1]), log


def s_client_credentials(pki: Pki, creds: IssuedFiles | None = None) -> list[str]:
    """openssl s_client flags presenting ``creds`` (default alice) with its chain, trusting the test CA."""
    creds = pki.client if creds is None else creds
    return [
        "-CAfile",
        str(pki.ca_cert),
        "-cert",
        str(creds.cert),
        "-cert_chain",
        str(creds.chain),
        "-key",
        str(creds.key),
    ]


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


def certificates_sent(trace: str) -> list[str]:
    """The subjects, in order, of the certificates this side sent, from `openssl s_client -trace`
    output: the "Subject:" lines of each certificate printed in a "Sent Record" (TLS 1.3 records are
    shown decrypted, so the client's Certificate message is there on both versions)."""
    subjects: list[str] = []
    sending = False
    for line in trace.splitlines():
        if line.startswith(("Sent Record", "Received Record")):
            sending = line.startswith("Sent Record")
        elif sending and line.strip().startswith("Subject:"):
            subjects.append(line.split("Subject:", 1)[1].strip())
    return subjects


def subjects_in(path: Path) -> list[str]:
    """The subjects of the certificates in a PEM file, in order, spelled as `openssl -trace` does."""
    return [
        ", ".join(f"{attr.rfc4514_attribute_name} = {attr.value!s}" for attr in cert.subject)
        for cert in load_certificates(path)
    ]
