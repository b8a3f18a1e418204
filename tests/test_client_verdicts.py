"""The client's verdict names what went wrong: a version mismatch, a silent close, a refused certificate.

Each failure is set up for real over loopback (openssl s_server limited to one TLS version or cipher; our
server in forward mode before a backend that hangs up) beside a control that shows the same peer
accepting, or refusing our certificate, so a verdict cannot pass by being the only one the code can give.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from mtls_ref.client.cli import main as client_main
from mtls_ref.client.session import ClientReport, Exit, run_client
from mtls_ref.shared.core.config import ClientConfig
from mtls_ref.shared.tls.context import ALPN_LINE, client_context

from .support.pki import Pki
from .support.s_server import s_server
from .support.tls import client_config, log_events, start_server, with_version

NOT_A_REJECTION = (
    "the server closed the connection without an alert after the handshake: not a certificate rejection; "
    "a forward-mode backend that closed, or a server that does not speak this protocol"
)


async def run(config: ClientConfig, mode: str, messages: list[str]) -> ClientReport:
    alpn = [ALPN_LINE] if mode == "line" else None
    with trio.fail_after(15):
        return await run_client(config, client_context(config, alpn=alpn), messages=messages, mode=mode)


# -- a TLS version the server does not speak -------------------------------------------------------


@pytest.mark.interop
@pytest.mark.parametrize(("ours", "theirs"), [("1.3", "-tls1_2"), ("1.2", "-tls1_3")])
async def test_version_mismatch_is_a_negotiation_failure(
    pki: Pki, openssl: str, ours: str, theirs: str
) -> None:
    """--tls 1.3 against `s_server -tls1_2` (and the reverse): exit 8 with protocol_version, not exit 5."""
    async with s_server(openssl, pki, theirs) as port:
        report = await run(with_version(client_config(pki, port=port), ours), "raw", ["mtls"])
    assert report.result is Exit.NEGOTIATION, report.summary
    assert report.alert == "protocol_version"
    assert report.summary == (
        f"the server does not accept the TLS versions we offer (we offered TLS {ours} only)"
    )
    assert "--tls" in report.fix


@pytest.mark.interop
async def test_no_shared_cipher_is_a_negotiation_failure(pki: Pki, openssl: str) -> None:
    """`s_server -tls1_2` allowing only an RSA suite with its ECDSA key: handshake_failure arrives before our
    certificate went out, so it cannot be about it: exit 8, not 5."""
    async with s_server(openssl, pki, "-tls1_2", "-cipher", "AES128-SHA") as port:
        report = await run(with_version(client_config(pki, port=port), "1.2"), "raw", ["mtls"])
    assert report.result is Exit.NEGOTIATION, report.summary
    assert report.alert == "handshake_failure"
    assert report.summary == (
        "the server found no acceptable parameters (or refused the handshake), "
        "before we sent a certificate (so not because of it)"
    )
    assert ("client", "Certificate") not in [(e.sender.value, e.name) for e in report.events]


@pytest.mark.interop
async def test_negotiation_controls_the_same_server_judges_certificates(pki: Pki, openssl: str) -> None:
    """Controls: the same `s_server -tls1_2` accepts us on TLS 1.2 and refuses a foreign certificate there
    (exit 5, unknown_ca); without a certificate the same handshake_failure as above, but after our empty
    Certificate, is a certificate rejection (exit 5)."""
    async with s_server(openssl, pki, "-tls1_2") as port:
        accepted = await run(with_version(client_config(pki, port=port), "1.2"), "raw", ["mtls"])
        foreign = await run(
            with_version(client_config(pki, pki.foreign_client, port=port), "1.2"), "raw", ["mtls"]
        )
        no_cert = await run(
            with_version(client_config(pki, port=port, cert=None, key=None), "1.2"), "raw", ["mtls"]
        )
    assert accepted.result is Exit.OK, accepted.summary
    assert accepted.exchanges == [("mtls", "sltm")]
    assert foreign.result is Exit.CERT_REJECTED and foreign.alert == "unknown_ca", foreign.summary
    assert no_cert.result is Exit.CERT_REJECTED and no_cert.alert == "handshake_failure", no_cert.summary
    assert no_cert.summary == "the server requires a client certificate and we sent none"


@pytest.mark.interop
async def test_version_mismatch_on_the_command_line(
    pki: Pki, openssl: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`mtls-client --tls 1.3 --raw` against `s_server -tls1_2` prints FAILED (negotiation) and exits 8."""
    async with s_server(openssl, pki, "-tls1_2") as port:
        argv = [
            *("--host", "127.0.0.1", "--port", str(port), "--server-name", "localhost"),
            *("--cert", str(pki.client.chain), "--key", str(pki.client.key), "--ca", str(pki.ca_cert)),
            *("--tls", "1.3", "--raw", "--send", "mtls", "--trace", "off", "--timeout", "5"),
        ]
        with trio.fail_after(15):
            code = await trio.to_thread.run_sync(client_main, argv)
    out = capsys.readouterr().out
    assert code == 8, out
    assert (
        "result: FAILED (negotiation): the server does not accept the TLS versions we offer "
        "(we offered TLS 1.3 only) [alert received: protocol_version]"
    ) in out
    assert "cert-rejected" not in out


# -- a server that closes without an alert ------------------------------------------------------------


@asynccontextmanager
async def closing_backend(connections: list[int]) -> AsyncIterator[int]:
    """A plain TCP service that accepts and hangs up at once, counting the connections it closed."""

    async def handle(stream: trio.SocketStream) -> None:
        connections.append(1)
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
        yield int(listeners[0].socket.getsockname()[1])
        nursery.cancel_scope.cancel()


@pytest.mark.usefixtures("tls_engine")
@pytest.mark.parametrize("mode", ["line", "raw", "http"])
async def test_forward_backend_that_closes_is_not_a_certificate_rejection(
    pki: Pki, tls_version: str, mode: str
) -> None:
    """Forward mode before a backend that hangs up: the server accepted us and closed without an alert, so
    the client says so (exit 7) rather than blaming our certificate, on TLS 1.3 as on 1.2."""
    closed: list[int] = []
    async with closing_backend(closed) as backend, trio.open_nursery() as nursery:
        server, port, log = await start_server(nursery, pki, forward=f"127.0.0.1:{backend}")
        report = await run(with_version(client_config(pki, port=port), tls_version), mode, ["ping"])
        server.shutdown()
    assert report.result is Exit.PROTOCOL, report.summary
    assert report.summary == NOT_A_REJECTION
    assert report.fix.startswith("see the server's log")
    assert report.alert is None and report.closed_without_alert
    assert report.tls_version == f"TLSv{tls_version}"
    assert closed == [1]
    (entry,) = log_events(log, "connection")
    assert entry["outcome"] == "accepted", entry


@pytest.mark.usefixtures("tls_engine")
@pytest.mark.parametrize("mode", ["line", "raw"])
async def test_forward_control_an_untrusted_certificate_is_still_rejected(pki: Pki, mode: str) -> None:
    """Control: the same forward setup under TLS 1.3 refuses a foreign-CA certificate with an alert on the
    client's first read: cert-rejected, exit 5, unknown_ca; the backend is never reached."""
    closed: list[int] = []
    async with closing_backend(closed) as backend, trio.open_nursery() as nursery:
        server, port, log = await start_server(nursery, pki, forward=f"127.0.0.1:{backend}")
        config = with_version(client_config(pki, pki.foreign_client, port=port), "1.3")
        report = await run(config, mode, ["ping"])
        server.shutdown()
    assert report.result is Exit.CERT_REJECTED, report.summary
    assert report.alert == "unknown_ca"
    assert "does not trust the CA that issued our certificate" in report.summary
    assert not report.closed_without_alert
    assert report.tls_version == "TLSv1.3"  # the rejection came after our side of the handshake
    assert closed == []
    assert log_events(log, "connection")[0]["outcome"] == "rejected"


# -- the codes as documented ----------------------------------------------------------------------


def test_every_exit_code_is_documented_once(capsys: pytest.CaptureFixture[str]) -> None:
    """docs/client.md's exit-code table and `mtls-client --help` list exactly the codes the client returns
    (1, "unexpected", is in neither), each once."""
    doc = (Path(__file__).resolve().parent.parent / "docs" / "client.md").read_text(encoding="utf-8")
    table = doc.split("| exit | meaning |", 1)[1].split("\n\n", 1)[0]
    documented = [
        int(row.split("|")[1]) for row in table.splitlines() if row.startswith("| ") and "---" not in row
    ]
    expected = [code.value for code in Exit if code is not Exit.FAILURE]
    assert documented == expected
    with pytest.raises(SystemExit):
        client_main(["--help"])
    help_text = capsys.readouterr().out.split("exit codes:", 1)[1]
    assert [int(line.split()[0]) for line in help_text.splitlines()[1 : len(expected) + 1]] == expected
