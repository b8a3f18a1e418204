"""Our server and client configured from the test PKI, run in process: in memory or on loopback."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import trio

from mtls_ref.server.app import Server
from mtls_ref.server.log import EventLog
from mtls_ref.shared.core.config import ClientConfig, ServerConfig
from mtls_ref.shared.pki.authority import IssuedFiles

from .pki import Pki

# The server engine the helpers below use; the `tls_engine` fixture runs a test once per engine.
SERVER_ENGINE = "openssl"


def server_config(pki: Pki, **changes: Any) -> ServerConfig:
    """Our server on the test PKI, any free loopback port, short timeouts; ``changes`` set any field."""
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
    return dataclasses.replace(base, **changes)


def client_config(
    pki: Pki, creds: IssuedFiles | None = None, *, port: int = 8443, **changes: Any
) -> ClientConfig:
    """Our client as ``creds`` (default alice) to ``port``, trusting the test CA; ``changes`` set fields."""
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
    return dataclasses.replace(base, **changes)


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
