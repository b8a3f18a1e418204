"""Our client against our server over real loopback sockets: outcomes and exit codes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import trio

from mtls_ref.client.report import render_report
from mtls_ref.client.session import ClientReport, Exit, run_client
from mtls_ref.shared.core.config import ClientConfig
from mtls_ref.shared.pki.authority import Profile, parse_san
from mtls_ref.shared.tls.context import ALPN_LINE, client_context

from .support.pki import Pki
from .support.tls import client_config, log_events, no_cert, start_server, with_version


async def run(config: ClientConfig, **kwargs: object) -> ClientReport:
    with trio.fail_after(15):
        return await run_client(config, client_context(config, alpn=[ALPN_LINE]), **kwargs)  # type: ignore[arg-type]


@pytest.mark.usefixtures("tls_engine")
async def test_success_prints_diagram_and_replies(pki: Pki, tls_version: str) -> None:
    """The client completes the handshake, exchanges lines, exits 0, and shows the real trace."""
    async with trio.open_nursery() as nursery:
        server, port, log = await start_server(nursery, pki)
        report = await run(with_version(client_config(pki, port=port), tls_version))
        server.shutdown()
    assert report.result is Exit.OK, report.summary
    assert report.tls_version == f"TLSv{tls_version}"
    assert report.client_cert_requested is True
    assert report.client_cert_sent == "CN=alice + 1 CA cert"
    assert [q for q, _ in report.exchanges] == ["WHOAMI", "ECHO hello from mtls-client", "QUIT"]
    assert report.exchanges[1][1] == "OK echo hello from mtls-client"
    assert report.server_chain[0]["subject"] == "CN=server"
    text = render_report(report)
    assert f"TLS {tls_version} handshake, as recorded by the client" in text
    assert "client certificate: CN=alice + 1 CA cert" in text
    assert "result: OK" in text
    if tls_version == "1.2":
        assert "ServerHelloDone" in text and "EncryptedExtensions" not in text
    else:
        assert "EncryptedExtensions" in text and "ServerHelloDone" not in text
    data = json.loads(render_report(report, as_json=True))
    assert data["exit_code"] == 0 and data["trace"]
    assert log_events(log, "connection")[0]["outcome"] == "accepted"


@pytest.mark.usefixtures("tls_engine")
async def test_no_certificate_is_diagnosed(pki: Pki, tls_version: str) -> None:
    """Without a certificate: exit 5, the alert named, and the fix; never a false success."""
    async with trio.open_nursery() as nursery:
        server, port, _ = await start_server(nursery, pki)
        report = await run(no_cert(with_version(client_config(pki, port=port), tls_version)))
        server.shutdown()
    assert report.result is Exit.CERT_REJECTED
    assert report.summary == "the server requires a client certificate and we sent none"
    assert report.alert == ("certificate_required" if tls_version == "1.3" else "handshake_failure")
    assert "--cert" in report.fix
    assert report.greeting is None and not report.exchanges


@pytest.mark.usefixtures("tls_engine")
async def test_foreign_ca_certificate_is_diagnosed(pki: Pki, tls_version: str) -> None:
    """A certificate from another CA: exit 5 with unknown_ca; the server logs why."""
    async with trio.open_nursery() as nursery:
        server, port, log = await start_server(nursery, pki)
        config = with_version(client_config(pki, pki.foreign_client, port=port), tls_version)
        report = await run(config)
        server.shutdown()
    assert report.result is Exit.CERT_REJECTED
    assert report.alert == "unknown_ca"
    assert "does not trust the CA that issued our certificate" in report.summary
    entry = log_events(log, "connection")[0]
    assert entry["outcome"] == "rejected" and entry["alert"] == "unknown_ca"
    assert "not issued by a CA we trust" in entry["reason"]


@pytest.mark.usefixtures("tls_engine")
async def test_tls13_rejection_arrives_on_first_read(pki: Pki) -> None:
    """Under TLS 1.3 the handshake completes for the client; the rejection comes after its Finished."""
    async with trio.open_nursery() as nursery:
        server, port, _ = await start_server(nursery, pki)
        report = await run(no_cert(with_version(client_config(pki, port=port), "1.3")))
        server.shutdown()
    names = [(e.sender.value, e.name) for e in report.events]
    assert names.index(("client", "Finished")) < names.index(("server", "Alert"))
    assert report.tls_version == "TLSv1.3"  # the handshake did complete on our side


@pytest.mark.usefixtures("tls_engine")
async def test_forbidden_by_allow_list(pki: Pki) -> None:
    """Authenticated but not allowed: exit 6 naming the identity."""
    async with trio.open_nursery() as nursery:
        server, port, _ = await start_server(nursery, pki, allow=("CN:bob",))
        report = await run(client_config(pki, port=port))
        server.shutdown()
    assert report.result is Exit.FORBIDDEN
    assert "spiffe://mtls-ref.test/alice is not allowed" in report.summary


@pytest.mark.usefixtures("tls_engine")
async def test_untrusted_server_is_diagnosed(pki: Pki) -> None:
    """A client trusting another CA refuses the server: exit 4 with the verification reason."""
    async with trio.open_nursery() as nursery:
        server, port, log = await start_server(nursery, pki)
        config = dataclasses.replace(client_config(pki, port=port), ca=pki.foreign_ca_cert)
        report = await run(config)
        server.shutdown()
    assert report.result is Exit.SERVER_UNTRUSTED
    assert "not issued by a CA we trust" in report.summary
    assert "unable to get local issuer certificate" in report.summary
    entry = log_events(log, "connection")[0]
    assert entry["alert_received"] == "unknown_ca" and entry["alert"] == "none"  # ours reached it


@pytest.mark.usefixtures("tls_engine")
async def test_hostname_mismatch_is_diagnosed(pki: Pki) -> None:
    """A server certificate without the expected name is refused (hostname checking is on)."""
    async with trio.open_nursery() as nursery:
        server, port, _ = await start_server(nursery, pki)
        report = await run(client_config(pki, port=port, server_name="elsewhere.test"))
        server.shutdown()
    assert report.result is Exit.SERVER_UNTRUSTED
    assert "does not name the host" in report.summary


@pytest.mark.usefixtures("tls_engine")
async def test_server_cert_with_wrong_role_is_refused(pki: Pki, tmp_path: Path) -> None:
    """A server presenting a clientAuth-only certificate fails the client's purpose check."""
    ca = pki.ca
    files = ca.issue(Profile.CLIENT, "not-a-server", out_dir=tmp_path, sans=[parse_san("DNS:localhost")])
    async with trio.open_nursery() as nursery:
        server, port, _ = await start_server(nursery, pki, cert=files.chain, key=files.key)
        report = await run(client_config(pki, port=port))
        server.shutdown()
    assert report.result is Exit.SERVER_UNTRUSTED
    assert "EKU lacks serverAuth" in report.summary


async def test_cannot_connect(pki: Pki) -> None:
    """Nothing listening: exit 3 with what to do."""
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    await listener.aclose()
    report = await run(client_config(pki, port=port))
    assert report.result is Exit.CONNECT
    assert "make run-server" in report.fix


async def test_silent_server_times_out(pki: Pki) -> None:
    """A TCP server that never speaks TLS: exit 7 after the deadline, no hang."""
    async with trio.open_nursery() as nursery:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        accepted: list[trio.SocketStream] = []

        async def hold(stream: trio.SocketStream) -> None:
            accepted.append(stream)
            await trio.sleep_forever()

        nursery.start_soon(trio.serve_listeners, hold, listeners)
        report = await run(client_config(pki, port=port, timeout=0.5))
        nursery.cancel_scope.cancel()
    assert report.result is Exit.PROTOCOL
    assert "did not finish within 0.5s" in report.summary
