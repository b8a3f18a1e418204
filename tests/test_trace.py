"""The handshake as both sides really see it, recorded from real TLS over memory streams."""

from __future__ import annotations

import ssl

import pytest
import trio
import trio.testing

from mtls_ref.shared.tls import trace
from mtls_ref.shared.tls.connection import TLSConnection
from mtls_ref.shared.tls.context import client_context, server_context
from mtls_ref.shared.tls.trace import HandshakeRecorder, Role, parse_certificate_message, recording

from .support.pki import Pki
from .support.tls import client_config, no_cert, server_config, socket_stream_pair, with_version

C, S = Role.CLIENT, Role.SERVER
EXPECTED = {
    "1.3": [
        (C, "ClientHello"),
        (S, "ServerHello"),
        (S, "ChangeCipherSpec"),
        (S, "EncryptedExtensions"),
        (S, "CertificateRequest"),
        (S, "Certificate"),
        (S, "CertificateVerify"),
        (S, "Finished"),
        (C, "ChangeCipherSpec"),
        (C, "Certificate"),
        (C, "CertificateVerify"),
        (C, "Finished"),
        (S, "NewSessionTicket"),
        (S, "NewSessionTicket"),
    ],
    "1.2": [
        (C, "ClientHello"),
        (S, "ServerHello"),
        (S, "Certificate"),
        (S, "ServerKeyExchange"),
        (S, "CertificateRequest"),
        (S, "ServerHelloDone"),
        (C, "Certificate"),
        (C, "ClientKeyExchange"),
        (C, "CertificateVerify"),
        (C, "ChangeCipherSpec"),
        (C, "Finished"),
        (S, "NewSessionTicket"),
        (S, "ChangeCipherSpec"),
        (S, "Finished"),
    ],
}


async def exchange(
    pki: Pki, version: str, *, with_cert: bool = True
) -> tuple[HandshakeRecorder, HandshakeRecorder]:
    """Handshake, one line each way; returns (client recorder, server recorder)."""
    sctx = server_context(server_config(pki))
    config = with_version(client_config(pki), version)
    cctx = client_context(config if with_cert else no_cert(config))
    client_stream, server_stream = socket_stream_pair()
    crec, srec = HandshakeRecorder(C), HandshakeRecorder(S)

    async def server() -> None:
        with recording(srec):
            tls = TLSConnection(server_stream, sctx, server_side=True)
            try:
                await tls.handshake()
                await tls.send_all(b"hello\n")
                await tls.receive_some(100)
            except trio.BrokenResourceError:
                pass
            finally:
                await tls.aclose()

    async def client() -> None:
        with recording(crec):
            tls = TLSConnection(client_stream, cctx, server_side=False, server_hostname="localhost")
            try:
                await tls.handshake()
                await tls.receive_some(100)
                await tls.send_all(b"hi\n")
            except trio.BrokenResourceError:
                pass
            finally:
                await tls.aclose()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server)
            nursery.start_soon(client)
    return crec, srec


def handshake_of(recorder: HandshakeRecorder) -> list[tuple[Role, str]]:
    return [(e.sender, e.name) for e in recorder.finish() if e.kind in ("handshake", "change_cipher_spec")]


def test_message_callback_hook_exists() -> None:
    """The private CPython hook we depend on is present; if this fails, tracing is broken."""
    assert trace.available()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    trace.install(ctx)
    import _ssl

    assert _ssl._SSLContext._msg_callback.__get__(ctx) is trace._dispatch  # type: ignore[attr-defined]


async def test_both_sides_record_the_real_sequence(pki: Pki, tls_version: str) -> None:
    """Client and server record the same messages in the order of the negotiated version."""
    crec, srec = await exchange(pki, tls_version)
    assert handshake_of(crec) == EXPECTED[tls_version]
    assert handshake_of(srec) == EXPECTED[tls_version]
    assert crec.tls13 is (tls_version == "1.3")


async def test_application_data_records_follow_the_handshake(pki: Pki, tls_version: str) -> None:
    """Application data records appear after the handshake, sized as encrypted on the wire."""
    crec, _ = await exchange(pki, tls_version)
    events = crec.finish()
    data = [e for e in events if e.kind == "application_data"]
    assert [e.sender for e in data] == [S, C]
    assert events.index(data[0]) > max(i for i, e in enumerate(events) if e.kind == "handshake")
    # Plaintext "hello\n" and "hi\n" plus at least an AEAD tag (16 bytes).
    assert data[0].length >= 6 + 16 and data[1].length >= 3 + 16


async def test_client_certificate_and_chain_are_captured(pki: Pki, tls_version: str) -> None:
    """The Certificate messages carry leaf + intermediate; the client keeps the server's chain."""
    crec, srec = await exchange(pki, tls_version)
    client_cert = next(e for e in srec.finish() if e.name == "Certificate" and e.sender is C)
    assert client_cert.detail == "CN=alice + 1 CA cert"
    assert len(crec.peer_certificates) == 2
    assert len(srec.peer_certificates) == 2


async def test_rejected_client_shows_the_alert(pki: Pki, tls_version: str) -> None:
    """Without a client certificate, both traces end with the server's fatal alert."""
    crec, srec = await exchange(pki, tls_version, with_cert=False)
    expected_alert = "fatal certificate_required" if tls_version == "1.3" else "fatal handshake_failure"
    for recorder in (crec, srec):
        events = recorder.finish()
        empty = next(e for e in events if e.name == "Certificate" and e.sender is C)
        assert empty.detail == "empty: no certificate"
        alerts = [e for e in events if e.kind == "alert"]
        assert [(a.sender, a.detail) for a in alerts] == [(S, expected_alert)]


def test_certificate_message_parser_handles_truncation() -> None:
    """A truncated Certificate message yields no certificates rather than an exception."""
    assert parse_certificate_message(b"\x0b\x00\x00\x10\x00\x00\x0c\x00\x00", tls13=False) == []


@pytest.mark.parametrize("tls13", [True, False])
def test_certificate_message_parser(tls13: bool) -> None:
    """Both wire layouts of Certificate are parsed (TLS 1.3 adds context and extensions)."""
    cert = b"\x30\x03\x02\x01\x01"
    entry = len(cert).to_bytes(3, "big") + cert + (b"\x00\x00" if tls13 else b"")
    body = (b"\x00" if tls13 else b"") + len(entry * 2).to_bytes(3, "big") + entry * 2
    message = b"\x0b" + len(body).to_bytes(3, "big") + body
    assert parse_certificate_message(message, tls13=tls13) == [cert, cert]
