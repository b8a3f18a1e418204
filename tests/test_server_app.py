"""The server as a whole on loopback: start-up checks, shutdown, limits, logs, key log, trace."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import trio
import trio.testing

from mtls_ref.client.session import Exit, run_client
from mtls_ref.server.app import Server
from mtls_ref.server.log import EventLog
from mtls_ref.shared.core.errors import CertificateError, ConfigError
from mtls_ref.shared.core.protocol import LineBuffer
from mtls_ref.shared.tls.connection import TLSConnection
from mtls_ref.shared.tls.context import ALPN_LINE, client_context

from .support.pki import Pki
from .support.tls import client_config, log_events, server_config, start_server


async def open_session(pki: Pki, port: int) -> tuple[TLSConnection, LineBuffer]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    tls = TLSConnection(
        stream,
        client_context(client_config(pki, port=port), alpn=[ALPN_LINE]),
        server_side=False,
        server_hostname="localhost",
    )
    await tls.handshake()
    return tls, LineBuffer()


async def read_line(tls: TLSConnection, lines: LineBuffer, pending: list[str]) -> str | None:
    with trio.fail_after(5):
        while not pending:
            data = await tls.receive_some(4096)
            if not data:
                return None
            pending.extend(lines.feed(data))
    return pending.pop(0)


@pytest.mark.usefixtures("tls_engine")
def test_refuses_to_start_without_client_ca(pki: Pki) -> None:
    """No CA means no client verification: the server will not start, and says why."""
    with pytest.raises(ConfigError, match="refusing to start: no \\[server\\] ca"):
        Server(server_config(pki, ca=None))


@pytest.mark.usefixtures("tls_engine")
def test_missing_and_mismatched_files_are_clear(pki: Pki, tmp_path: Path) -> None:
    """A missing cert file given by path is told to check that path; a key from another cert is named
    as such (the default paths' 'make certs' hint: tests/test_missing_files.py)."""
    with pytest.raises(
        ConfigError, match=r"server certificate '.*nope\.pem': no such file: check the path \(--cert or"
    ):
        Server(server_config(pki, cert=tmp_path / "nope.pem"))
    with pytest.raises(CertificateError, match="does not belong to certificate"):
        Server(server_config(pki, key=pki.client.key))
    with pytest.raises(ConfigError, match="allow rule 'alice' is not KIND:PATTERN"):
        Server(server_config(pki, allow=("alice",)))


@pytest.mark.usefixtures("tls_engine")
async def test_busy_port_is_a_clear_error(pki: Pki) -> None:
    """Binding a port in use fails with the address and what to do."""
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}: .*pick another --port"):
        await Server(server_config(pki, port=port)).listen()
    await listener.aclose()


@pytest.mark.usefixtures("tls_engine")
async def test_graceful_shutdown_with_a_live_connection(pki: Pki) -> None:
    """On shutdown the listener closes, a live session may still finish within the grace period."""
    async with trio.open_nursery() as nursery:
        server, port, log = await start_server(nursery, pki, shutdown_grace=5.0)
        tls, lines = await open_session(pki, port)
        pending: list[str] = []
        assert (await read_line(tls, lines, pending) or "").startswith("OK hello")
        server.shutdown()
        await trio.testing.wait_all_tasks_blocked()  # serve() has closed its listeners and logged
        assert log_events(log, "shutdown")
        with pytest.raises(OSError):
            await trio.open_tcp_stream("127.0.0.1", port)
        await tls.send_all(b"PING\n")
        assert await read_line(tls, lines, pending) == "OK pong"
        await tls.send_all(b"QUIT\n")
        assert await read_line(tls, lines, pending) == "OK bye"
        assert await read_line(tls, lines, pending) is None
        await tls.abort()
    assert log_events(log, "shutdown")[0]["draining"] == 1
    assert log_events(log, "stopped")


@pytest.mark.usefixtures("tls_engine")
async def test_shutdown_grace_expiry_says_goodbye(pki: Pki) -> None:
    """A session still open when the grace period ends gets a shutting-down line and close_notify."""
    async with trio.open_nursery() as nursery:
        server, port, log = await start_server(nursery, pki, shutdown_grace=0.2)
        tls, lines = await open_session(pki, port)
        pending: list[str] = []
        await read_line(tls, lines, pending)
        server.shutdown()
        assert (await read_line(tls, lines, pending) or "").startswith("ERR shutting-down")
        assert await read_line(tls, lines, pending) is None  # clean EOF: close_notify was sent
        await tls.abort()
    assert log_events(log, "connection")[0]["reason"] == "server shutting down"


@pytest.mark.usefixtures("tls_engine")
async def test_connection_cap_is_enforced(pki: Pki) -> None:
    """Beyond max_connections new peers are closed at once and logged; others keep working."""
    async with trio.open_nursery() as nursery:
        server, port, log = await start_server(nursery, pki, max_connections=1)
        tls, lines = await open_session(pki, port)
        pending: list[str] = []
        await read_line(tls, lines, pending)
        second = await run_client(
            client_config(pki, port=port, timeout=3), client_context(client_config(pki), alpn=[ALPN_LINE])
        )
        assert second.result is not Exit.OK
        await tls.send_all(b"PING\n")
        assert await read_line(tls, lines, pending) == "OK pong"
        await tls.abort()
        server.shutdown()
    rejected = [e for e in log_events(log, "connection") if e["outcome"] == "rejected"]
    assert "connection cap of 1 reached" in rejected[0]["reason"]


@pytest.mark.usefixtures("tls_engine")
async def test_trace_and_keylog(pki: Pki, tmp_path: Path, tls_version: str) -> None:
    """--trace logs each connection's diagram; --keylog writes NSS key-log lines on both sides."""
    server_keys, client_keys = tmp_path / "server.keylog", tmp_path / "client.keylog"
    async with trio.open_nursery() as nursery:
        server, port, log = await start_server(nursery, pki, trace=True, keylog=server_keys)
        config = dataclasses.replace(
            client_config(pki, port=port), keylog=client_keys, tls_min=tls_version, tls_max=tls_version
        )
        report = await run_client(config, client_context(config, alpn=[ALPN_LINE]))
        server.shutdown()
    assert report.result is Exit.OK
    diagram = log_events(log, "trace")[0]["diagram"]
    assert f"TLS {tls_version} handshake, as recorded by the server" in diagram
    assert "client certificate: CN=alice + 1 CA cert" in diagram
    label = "CLIENT_HANDSHAKE_TRAFFIC_SECRET" if tls_version == "1.3" else "CLIENT_RANDOM"
    for path in (server_keys, client_keys):
        assert label in path.read_text()


async def test_security_posture_banner(pki: Pki, tls_engine: str) -> None:
    """Start-up prints the posture: engine, address, versions, CA and fingerprint, CRL, allow-list, ALPN,
    and whether the CA names are sent (yes on the openssl engine, which can)."""
    lines: list[str] = []
    server = Server(server_config(pki, allow=("CN:alice",)), log=EventLog("text", lines.append))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        server.shutdown()
    banner = lines[0]
    assert banner.startswith("mtls-server security posture")
    for expected in (
        f"TLS engine       {tls_engine} (",
        "TLS versions     1.2-1.3 (1.3 preferred)",
        "required, verified against O=mtls-ref,CN=mtls-ref Demo Root CA",
        "CA SHA-256 ",
        "revocation (CRL) off",
        "allow-list       CN:alice",
        "ALPN             h2, http/1.1, mtls-ref/1",
        {
            "openssl": "CA names sent    yes: CertificateRequest lists O=mtls-ref,CN=mtls-ref Demo Root CA",
            "stdlib": "CA names sent    no: Python's ssl sends no",
        }[tls_engine],
    ):
        assert expected in banner
    assert " listening addresses=127.0.0.1:" in lines[1]


async def test_banner_with_one_tls_version_says_only(pki: Pki) -> None:
    """tls_max = "1.2" (with tls_min 1.2): the banner says "1.2 only", not "1.2-1.2 (1.3 preferred)"."""
    lines: list[str] = []
    server = Server(server_config(pki, tls_max="1.2"), log=EventLog("text", lines.append))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        server.shutdown()
    assert "TLS versions     1.2 only\n" in lines[0]
    assert "preferred" not in lines[0]
