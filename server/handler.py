"""One client connection, from TCP accept to close, and its one log line.

Theory of operation
-------------------
1. Handshake under ``handshake_timeout`` (:mod:`.handshake`). OpenSSL verifies
   the client chain (CA, validity, clientAuth purpose); if it refuses, the
   engine has written its alert so the client learns *why*, and we log it.
2. Identity: the peer's leaf (DER) is parsed once into :class:`PeerIdentity`.
3. Authorization: the allow-list decides. A refusal is an application-level
   ``ERR forbidden`` line naming the identity, then close_notify. In forward
   mode an admitted client goes to :mod:`.forward_mode` instead.
4. Protocol: ALPN ``h2`` means HTTP/2 (``server/http2.py``); ALPN ``http/1.1``
   means HTTP/1.1 (``server/http.py``); ALPN ``mtls-ref/1`` means the line
   protocol. A client with no ALPN gets ``protocol_sniff`` seconds to speak
   first: an HTTP request line means HTTP (``openssl s_client`` sending
   ``GET / HTTP/1.0``); anything else, or silence, means the line protocol.
5. Line protocol, greeting first: under TLS 1.3 the client finishes its
   handshake before the server has judged its certificate, so the greeting is
   the client's proof that it was accepted.
6. Request loop (:mod:`.line_loop`): each read waits at most ``idle_timeout``;
   lines are bounded by ``max_line``; a protocol violation gets one ``ERR``
   line and a close.
7. Close: close_notify when the handshake completed (one try that never waits,
   so shutdown still says goodbye without a shield or a deadline), a bounded
   linger otherwise; the record goes to ``report`` (:mod:`.record`): one log
   line, one count.

The handler takes a ``trio.SocketStream``: the server's TCP connections, and in
tests one end of a ``socketpair()``, so tests run the engines' own adapters.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable
from typing import Final

import trio
from cryptography import x509

from mtls_ref.shared.core.cancellation import cancelled_alone
from mtls_ref.shared.core.protocol import Reply
from mtls_ref.shared.tls.connection import TLSConnection
from mtls_ref.shared.tls.context import ALPN_H2, ALPN_HTTP, ALPN_LINE
from mtls_ref.shared.tls.identity import identity_from_der
from mtls_ref.shared.tls.render import render_terminal
from mtls_ref.shared.tls.stream import RECORD_SIZE
from mtls_ref.shared.tls.trace import HandshakeRecorder, PeerCertificateCatcher, Role, recording

from .admission import HandshakeSlot
from .engine import ServerContext
from .forward_headers import unforwardable_name
from .forward_mode import forward_connection
from .handshake import handshake
from .http import HTTP_REQUEST_LINE, serve_http
from .http2 import GoAwayOn, serve_http2
from .line_loop import PeerNotReading, send_reply, serve_lines
from .log import EventLog
from .record import Code, ConnectionRecord, ConnectionReport, Outcome, Refused, refuse
from .settings import HandlerSettings
from .views import SessionInfo

__all__ = ["ConnectionRecord", "HandlerSettings", "handle_connection"]

# Bound on saying goodbye (close_notify or a final ERR line) to a peer that may not read.
CLOSE_TIMEOUT: Final = 2.0


async def handle_connection(
    transport: trio.SocketStream,
    *,
    context: ServerContext,
    settings: HandlerSettings,
    log: EventLog,
    peer: str,
    slot: HandshakeSlot | None = None,
    addresses: tuple[tuple[str, int], tuple[str, int]] | None = None,
    report: Callable[[ConnectionRecord], None] | None = None,
) -> ConnectionRecord:
    """Serve one connection to completion; never raises for anything the peer does.

    ``slot``: the connection's place in the server's handshake budget (its deadline,
    and whether it was dropped for a newer one); without one the handler keeps its own.
    ``addresses``: (client, server) socket addresses, for the PROXY v2 header in forward mode.
    ``report``: where the finished record goes (the server logs and counts it); by default its
    log line only.
    """
    record = ConnectionRecord(peer=peer)
    tls = TLSConnection(transport, context, server_side=True)
    recorder: HandshakeRecorder | PeerCertificateCatcher = (
        HandshakeRecorder(Role.SERVER)
        if settings.trace or settings.record_handshakes
        else PeerCertificateCatcher(Role.SERVER)
    )
    established = False
    try:
        # A nursery below (HTTP/2's streams, a relay) raises its tasks' Cancelled as a group.
        with recording(recorder), cancelled_alone():
            await handshake(tls, settings, record, recorder, slot)
            if slot is not None:
                established = slot.established()
                if not established:
                    cap = slot.budget.max_established
                    refuse(
                        record,
                        Outcome.REJECTED,
                        Code.CONNECTION_CAP,
                        f"connection cap of {cap} reached (max_connections)",
                    )
            await _serve(tls, settings, record, addresses, recorder)
    except Refused:
        pass
    except PeerNotReading as stalled:
        record.reason = str(stalled)
        await tls.abort()
    except trio.Cancelled:
        if record.outcome is Outcome.OPEN:
            record.decide(Outcome.CLOSED, Code.SHUTDOWN, "server shutting down")
        else:
            record.reason = "server shutting down"
        # Only our own line protocol gets a goodbye line: in forward mode and HTTP the bytes on the
        # stream are the backend's or HTTP's, and ours would be read as theirs.
        if record.protocol == "line":
            with trio.CancelScope(shield=True), contextlib.suppress(PeerNotReading):
                goodbye = Reply(False, "shutting-down", "server is shutting down; reconnect later")
                await send_reply(tls, goodbye, within=CLOSE_TIMEOUT)
        raise
    finally:
        if slot is not None:
            slot.release()
            if established:
                slot.close_established()
        # After a handshake the goodbye never waits (no scope, no scheduling point: the task ends
        # here); before one, the bounded linger runs shielded, so shutdown still delivers an alert.
        if not tls.close_politely():
            with trio.CancelScope(shield=True):
                await tls.abort()
        if settings.trace and isinstance(recorder, HandshakeRecorder):
            events = recorder.finish()
            log.event(
                "trace",
                peer=peer,
                diagram="\n"
                + render_terminal(
                    events,
                    observer=Role.SERVER,
                    version_label=recorder.version_label,
                    tls13=recorder.tls13,
                ),
            )
        (report or ConnectionReport(log))(record)
    return record


async def _serve(
    tls: TLSConnection,
    settings: HandlerSettings,
    record: ConnectionRecord,
    addresses: tuple[tuple[str, int], tuple[str, int]] | None,
    recorder: HandshakeRecorder | PeerCertificateCatcher,
) -> None:
    record.tls_version = tls.version()
    record.cipher = tls.cipher()
    der = tls.peer_certificate_der()
    if der is None:  # cannot happen with CERT_REQUIRED; refuse rather than trust it
        refuse(record, Outcome.REJECTED, Code.OTHER, "no client certificate after handshake")
    identity = record.identity = identity_from_der(der)
    decision = settings.allow.decide(identity)
    record.resumed = tls.session_reused()
    info = SessionInfo(
        identity=identity,
        decision=decision,
        tls_version=record.tls_version,
        cipher=record.cipher,
        ca_subject=settings.ca_subject,
        resumed=record.resumed,
        # Once per connection: whoami and the page ask on every request, and it is the dearest part.
        verified_chain=functools.cache(lambda: _chain_subjects(tls.verified_chain())),
        alpn=tls.selected_alpn_protocol,
        crl=settings.crl,
        handshake=recorder if isinstance(recorder, HandshakeRecorder) else None,
    )
    if decision.allowed:
        record.decide(Outcome.ACCEPTED, Code.SERVED, decision.reason)
    else:
        record.decide(Outcome.FORBIDDEN, Code.ALLOW_LIST, decision.reason)
    if settings.forward is not None:
        record.protocol = "forward"
        if decision.allowed and (bad_name := unforwardable_name(identity)):
            why = f"the certificate's name {bad_name} holds a control character: never forwarded"
            refuse(record, Outcome.FORBIDDEN, Code.UNFORWARDABLE, why)
        if decision.allowed:
            await forward_connection(tls, settings, identity, record, addresses)
        return  # a refused client gets close_notify: the backend's protocol is not ours to speak
    record.protocol, initial = await _choose_protocol(tls, settings)
    if record.protocol == "h2":
        ended = await serve_http2(
            tls,
            dataclasses.replace(info, http_version="HTTP/2"),
            record,
            idle_timeout=settings.idle_timeout,
            request_timeout=settings.request_timeout,
            go_away=(
                GoAwayOn(settings.stopping, "server shutting down"),
                GoAwayOn(settings.reloaded, "credentials reloaded", grace=settings.shutdown_grace),
            ),
            app=settings.h2_app,
        )
        if decision.allowed:
            record.reason = ended
        return
    if record.protocol == "http":
        ended = await serve_http(
            tls,
            initial,
            dataclasses.replace(info, http_version="HTTP/1.1"),
            record,
            idle_timeout=settings.idle_timeout,
            request_timeout=settings.request_timeout,
        )
        if decision.allowed:
            record.reason = ended
        return
    await serve_lines(tls, settings, record, info, initial)  # greeting or ERR forbidden first


async def _choose_protocol(tls: TLSConnection, settings: HandlerSettings) -> tuple[str, bytes]:
    """ALPN decides; without ALPN, a first line that is an HTTP request line means HTTP."""
    alpn = tls.selected_alpn_protocol()
    if alpn == ALPN_H2:
        return "h2", b""
    if alpn == ALPN_HTTP:
        return "http", b""
    if alpn == ALPN_LINE:
        return "line", b""
    data = b""
    with trio.move_on_after(settings.protocol_sniff):
        data = await _receive_or_eof(tls)
    if not data:
        return "line", b""  # silent (a person at s_client): greet and wait
    with trio.move_on_after(settings.idle_timeout):
        while b"\n" not in data and len(data) < settings.max_line:
            more = await _receive_or_eof(tls)
            if not more:
                break
            data += more
    return ("http" if HTTP_REQUEST_LINE.match(data) else "line"), data


async def _receive_or_eof(tls: TLSConnection) -> bytes:
    try:
        return bytes(await tls.receive_some(RECORD_SIZE))
    except trio.BrokenResourceError:
        return b""


def _chain_subjects(chain: list[x509.Certificate] | None) -> list[str] | None:
    return [cert.subject.rfc4514_string() for cert in chain] if chain else None
