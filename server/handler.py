"""One client connection, from TCP accept to close, and its one log line.

Theory of operation
-------------------
1. Handshake under ``handshake_timeout``. OpenSSL verifies the client chain
   (CA, validity, clientAuth purpose); if it refuses, :class:`TLSConnection`
   sends the queued alert so the client learns *why*, and we log the diagnosis.
2. Identity: the peer's leaf (DER) is parsed once into :class:`PeerIdentity`.
3. Authorization: the allow-list decides. A refusal is an application-level
   ``ERR forbidden`` line naming the identity, then close_notify.
4. Protocol: ALPN ``http/1.1`` means HTTP (``server/http.py``); ALPN
   ``mtls-ref/1`` means the line protocol. A client with no ALPN gets
   ``protocol_sniff`` seconds to speak first: an HTTP request line means HTTP
   (``openssl s_client`` sending ``GET / HTTP/1.0``); anything else, or silence,
   means the line protocol.
5. Line protocol, greeting first: under TLS 1.3 the client finishes its
   handshake before the server has judged its certificate, so the greeting is
   the client's proof that it was accepted.
6. Request loop: each read waits at most ``idle_timeout``; lines are bounded by
   ``max_line``; a protocol violation gets one ``ERR`` line and a close.
7. Close: close_notify when the handshake completed (bounded, shielded from
   cancellation so shutdown still says goodbye), a plain close otherwise.

The handler takes a ``trio.SocketStream``: the server's TCP connections, and in
tests one end of a ``socketpair()``, so tests run the engines' own adapters.
"""

from __future__ import annotations

import contextlib
import json
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, NoReturn

import trio
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from mtls_ref.shared.core.errors import ProtocolError
from mtls_ref.shared.core.protocol import (
    HELP_TEXT,
    Command,
    LineBuffer,
    LineTooLong,
    Reply,
    encode_reply,
    parse_request,
)
from mtls_ref.shared.core.proxy_protocol import ProxyHeader
from mtls_ref.shared.tls.connection import ServerContext, TLSConnection
from mtls_ref.shared.tls.context import ALPN_HTTP, ALPN_LINE
from mtls_ref.shared.tls.diagnose import (
    Category,
    alert_from_reason,
    certificate_fact,
    diagnose_ssl_error,
    load_chain,
    topic_for,
)
from mtls_ref.shared.tls.identity import AllowList, PeerIdentity, identity_from_der
from mtls_ref.shared.tls.render import render_terminal
from mtls_ref.shared.tls.trace import HandshakeRecorder, PeerCertificateCatcher, Role, recording

from .admission import HandshakeSlot
from .forward import ForwardTarget, forward
from .forward_headers import XFCC, Headers, client_cert_headers, unforwardable_name, xfcc_value
from .forward_http import forward_http
from .http import HTTP_REQUEST_LINE, serve_http
from .log import EventLog
from .record import Code, ConnectionRecord, ConnectionReport, Outcome
from .views import SessionInfo, whoami_document

__all__ = ["ConnectionRecord", "HandlerSettings", "handle_connection"]  # the record: see .record

# Bound on saying goodbye (close_notify or a final ERR line) to a peer that may not read.
CLOSE_TIMEOUT: Final = 2.0
RECEIVE_SIZE: Final = 16384  # one maximal TLS record


@dataclass(frozen=True, slots=True, kw_only=True)
class HandlerSettings:
    handshake_timeout: float = 10.0
    idle_timeout: float = 60.0  # also: a reply the peer does not read within this drops it
    request_timeout: float = 10.0  # a whole request line (or HTTP head) once it has started
    max_line: int = 4096
    allow: AllowList = field(default_factory=AllowList)
    trace: bool = False  # log each connection's handshake diagram
    record_handshakes: bool = False  # keep each connection's messages for the browser page
    crl: tuple[str, ...] = ()  # the CRLs client leaves are checked against (views.describe_crls)
    protocol_sniff: float = 0.3
    ca_subject: str = "the configured CA"
    trusted: tuple[x509.Certificate, ...] = ()  # the CA file's certificates, to explain refusals
    forward: ForwardTarget | None = None  # forward mode: relay to this backend instead of answering


class _Refused(Exception):
    """Internal: the connection ends here, with ``outcome`` and ``reason`` set."""


class _PeerNotReading(Exception):
    """Internal: a reply could not be written within the deadline; the peer is dropped."""


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
        with recording(recorder):
            await _handshake(tls, settings, record, recorder, slot)
            if slot is not None:
                established = slot.established()
                if not established:
                    cap = slot.budget.max_established
                    _refuse(
                        record,
                        Outcome.REJECTED,
                        Code.CONNECTION_CAP,
                        f"connection cap of {cap} reached (max_connections)",
                    )
            await _serve(tls, settings, record, addresses, recorder)
    except _Refused:
        pass
    except _PeerNotReading as stalled:
        record.reason = str(stalled)
        await tls.abort()
    except trio.Cancelled:
        if record.outcome is Outcome.OPEN:
            record.decide(Outcome.CLOSED, Code.SHUTDOWN, "server shutting down")
        else:
            record.reason = "server shutting down"
        if record.tls_version is not None:  # only a finished handshake can carry a goodbye line
            with trio.CancelScope(shield=True), contextlib.suppress(_PeerNotReading):
                goodbye = Reply(False, "shutting-down", "server is shutting down; reconnect later")
                await _send(tls, goodbye, within=CLOSE_TIMEOUT)
        raise
    finally:
        if slot is not None:
            slot.release()
            if established:
                slot.close_established()
        with trio.CancelScope(shield=True):
            await tls.aclose(goodbye_within=CLOSE_TIMEOUT)
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
        _refuse(record, Outcome.REJECTED, Code.OTHER, "no client certificate after handshake")
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
        verified_chain=lambda: _chain_subjects(tls.verified_chain()),
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
            _refuse(record, Outcome.FORBIDDEN, Code.UNFORWARDABLE, why)
        if decision.allowed:
            await _forward(tls, settings, identity, record, addresses)
        return  # a refused client gets close_notify: the backend's protocol is not ours to speak
    record.protocol, initial = await _choose_protocol(tls, settings)
    if record.protocol == "http":
        record.requests, ended = await serve_http(
            tls, initial, info, idle_timeout=settings.idle_timeout, request_timeout=settings.request_timeout
        )
        if decision.allowed:
            record.reason = ended
        return
    within = settings.idle_timeout
    if not decision.allowed:
        await _send(
            tls, Reply(False, "forbidden", f"{identity.label} is not allowed: {decision.told}"), within
        )
        return
    await _send(tls, Reply(True, "hello", f"{identity.label}; commands: {HELP_TEXT}"), within)
    await _request_loop(tls, settings, record, info, initial)


async def _forward(
    tls: TLSConnection,
    settings: HandlerSettings,
    ident: PeerIdentity,
    record: ConnectionRecord,
    addresses: tuple[tuple[str, int], tuple[str, int]] | None,
) -> None:
    target = settings.forward
    if target is None:  # only called in forward mode
        return
    if target.identity in ("http-header", "client-cert"):
        result = await forward_http(
            tls,
            target,
            _identity_headers(tls, target.identity, ident),
            idle_timeout=settings.idle_timeout,
            connect_timeout=settings.handshake_timeout,
        )
        record.requests = result.requests
        record.dropped_headers = sorted(result.dropped_headers) or None
    else:
        header = b""
        if target.identity == "proxy-v2" and addresses is not None:
            header = _proxy_header(record, ident, addresses)
        result = await forward(
            tls,
            target,
            header,
            idle_timeout=settings.idle_timeout,
            connect_timeout=settings.handshake_timeout,
        )
    record.forwarded = (result.to_backend, result.to_client)
    record.reason = result.ended


def _proxy_header(
    record: ConnectionRecord, ident: PeerIdentity, addresses: tuple[tuple[str, int], tuple[str, int]]
) -> bytes:
    try:
        return ProxyHeader(
            source=addresses[0],
            destination=addresses[1],
            tls_version=record.tls_version,
            cipher=record.cipher,
            common_name=ident.common_name,
            sans=(*(f"URI:{uri}" for uri in ident.uris), *(f"DNS:{name}" for name in ident.dns)),
            resumed=record.resumed,
        ).encode()
    except ValueError as exc:  # a name too long for a TLV: never cut short
        why = f"the certificate's identity does not fit a PROXY v2 header: {exc}"
        _refuse(record, Outcome.FORBIDDEN, Code.UNFORWARDABLE, why)


def _identity_headers(tls: TLSConnection, kind: str, identity: PeerIdentity) -> Headers:
    """The headers every forwarded request carries, computed once per connection."""
    if kind == "http-header":
        return [(XFCC, xfcc_value(identity))]
    chain = tls.verified_chain() or []  # leaf to trust anchor; neither is sent in Client-Cert-Chain
    return client_cert_headers(identity.der, [cert.public_bytes(Encoding.DER) for cert in chain[1:-1]])


async def _choose_protocol(tls: TLSConnection, settings: HandlerSettings) -> tuple[str, bytes]:
    """ALPN decides; without ALPN, a first line that is an HTTP request line means HTTP."""
    alpn = tls.selected_alpn_protocol()
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
        return bytes(await tls.receive_some(RECEIVE_SIZE))
    except trio.BrokenResourceError:
        return b""


async def _handshake(
    tls: TLSConnection,
    settings: HandlerSettings,
    record: ConnectionRecord,
    recorder: HandshakeRecorder | PeerCertificateCatcher,
    slot: HandshakeSlot | None,
) -> None:
    scope = slot.scope if slot is not None else trio.move_on_after(settings.handshake_timeout)
    try:
        await _handshake_within(tls, settings, record, recorder, scope)
    finally:
        record.handshake_seconds = time.monotonic() - record.started
    if scope.cancelled_caught:
        if slot is not None and slot.evicted:
            _refuse(
                record,
                Outcome.DROPPED,
                Code.HANDSHAKE_BUDGET,
                "the handshake budget was full and this connection had waited longest without finishing "
                "its handshake (max_handshakes)",
            )
        _refuse(
            record,
            Outcome.TIMEOUT,
            Code.HANDSHAKE_TIMEOUT,
            f"no complete handshake within {settings.handshake_timeout:g}s",
        )


async def _handshake_within(
    tls: TLSConnection,
    settings: HandlerSettings,
    record: ConnectionRecord,
    recorder: HandshakeRecorder | PeerCertificateCatcher,
    scope: trio.CancelScope,
) -> None:
    with scope:
        try:
            await tls.handshake()
        except trio.BrokenResourceError as exc:
            cause = exc.__cause__
            # A hang-up is a close, whatever words this Python's ssl gives it (3.11.2 reports an
            # EOF before any byte as "TLS/SSL connection has been closed", 3.11.7 as an EOF). No
            # alert is logged or counted for it: the decode_error OpenSSL 4 writes on any EOF goes
            # to a peer that has already left, and a port probe must not count as a refusal.
            record.alert = "none"
            if not isinstance(cause, ssl.SSLError) or isinstance(
                cause, ssl.SSLZeroReturnError | ssl.SSLEOFError
            ):
                _refuse(record, Outcome.CLOSED, Code.PEER_CLOSED, _closed_reason(tls))
            tls13 = recorder.tls13 if recorder.tls13 is not None else _tls13(tls.negotiated_version())
            diagnosis = diagnose_ssl_error(cause, local=Role.SERVER, tls13=tls13)
            if diagnosis.category is Category.CLOSED:
                _refuse(record, Outcome.CLOSED, Code.PEER_CLOSED, _closed_reason(tls))
            # A refusal: the alert that went out, as the engine reported it, never one a table
            # expects ("none": the engine wrote none, as for bytes that are not TLS at all).
            record.alert = tls.sent_alert or "none"
            record.alert_received = alert_from_reason(cause.reason)  # the client refused us
            reason = diagnosis.summary
            if isinstance(cause, ssl.SSLCertVerificationError):
                presented = load_chain(recorder.peer_certificates)
                record.presented = [cert.subject.rfc4514_string() for cert in presented] or None
                fact = certificate_fact(
                    presented,
                    topic_for(verify_code=cause.verify_code),
                    purpose="client",
                    trusted=settings.trusted,
                )
                reason = f"{reason}: {fact}" if fact else reason
            _refuse(record, Outcome.REJECTED, Code.TLS_REFUSAL, reason)


def _closed_reason(tls: TLSConnection) -> str:
    if tls.heard_peer():
        return "the peer closed the connection in the middle of the handshake"
    # A port probe, a load balancer's health check, a browser's preconnect: no alert, no refusal.
    return "the peer closed the connection before a whole ClientHello (a port probe sends none)"


def _tls13(version: str | None) -> bool | None:
    """From the engine's version name, where the trace did not see ServerHello (openssl engine)."""
    return None if version is None else version == "TLSv1.3"


def _chain_subjects(chain: list[x509.Certificate] | None) -> list[str] | None:
    return [cert.subject.rfc4514_string() for cert in chain] if chain else None


def _refuse(record: ConnectionRecord, outcome: Outcome, code: Code, reason: str) -> NoReturn:
    record.decide(outcome, code, reason)
    raise _Refused


async def _request_loop(
    tls: TLSConnection, settings: HandlerSettings, record: ConnectionRecord, info: SessionInfo, initial: bytes
) -> None:
    lines = LineBuffer(settings.max_line)
    data: bytes | None = initial
    line_started: float | None = None  # when the first byte of an unfinished line arrived
    within = settings.idle_timeout
    while True:
        if not data:
            data = await _receive_request_bytes(tls, settings, record, line_started)
            if data is None:
                return
        try:
            received = lines.feed(data)
        except LineTooLong as exc:
            record.reason = str(exc)
            await _send(tls, Reply(False, "line-too-long", f"{exc}; closing"), within)
            return
        except ProtocolError as exc:
            record.reason = str(exc)
            await _send(tls, Reply(False, "bad-encoding", f"{exc}; closing"), within)
            return
        data = None
        if not lines.pending:
            line_started = None
        elif line_started is None or received:
            line_started = trio.current_time()
        for line in received:
            if not line.strip():
                continue
            record.requests += 1
            if not await _answer(tls, line, info, within):
                record.reason = "client said QUIT"
                return


async def _receive_request_bytes(
    tls: TLSConnection, settings: HandlerSettings, record: ConnectionRecord, line_started: float | None
) -> bytes | None:
    """The next bytes from the client, or None (with the reason recorded) when the session ends.

    Between requests the client may be idle for ``idle_timeout``; once a line has
    started, the whole of it must arrive within ``request_timeout`` (a byte every
    few seconds does not keep a connection forever).
    """
    deadline = trio.current_time() + settings.idle_timeout
    if line_started is not None:
        deadline = min(deadline, line_started + settings.request_timeout)
    with trio.CancelScope(deadline=deadline) as scope:
        try:
            data = bytes(await tls.receive_some(RECEIVE_SIZE))
        except trio.BrokenResourceError:
            record.reason = "peer closed the connection abruptly"
            return None
    if scope.cancelled_caught:
        if line_started is not None:
            record.reason = f"request line not finished within {settings.request_timeout:g}s"
            reply = Reply(
                False, "request-timeout", f"a request line takes at most {settings.request_timeout:g}s"
            )
        else:
            record.reason = f"idle for {settings.idle_timeout:g}s"
            reply = Reply(False, "idle-timeout", f"no request for {settings.idle_timeout:g}s; bye")
        await _send(tls, reply, settings.idle_timeout)
        return None
    if not data:
        record.reason = "peer closed the connection"
        return None
    return data


async def _answer(tls: TLSConnection, line: str, info: SessionInfo, within: float) -> bool:
    """Answer one request line; False when the client asked to quit."""
    try:
        request = parse_request(line)
    except ProtocolError as exc:
        await _send(tls, Reply(False, "unknown-command", str(exc)), within)
        return True
    match request.command:
        case Command.WHOAMI:
            document = json.dumps(whoami_document(info), separators=(",", ":"))
            await _send(tls, Reply(True, "whoami", document), within)
        case Command.ECHO:
            await _send(tls, Reply(True, "echo", request.argument), within)
        case Command.PING:
            await _send(tls, Reply(True, "pong"), within)
        case Command.HELP:
            await _send(tls, Reply(True, "help", HELP_TEXT), within)
        case Command.QUIT:
            await _send(tls, Reply(True, "bye"), within)
            return False
    return True


async def _send(tls: TLSConnection, reply: Reply, within: float) -> None:
    """Send one reply within ``within`` seconds, else drop the peer (it does not read).

    A peer that is gone is not an error worth raising here.
    """
    with trio.move_on_after(within) as scope:
        # Not contextlib.suppress: this runs several times per connection, and a bare try is free.
        try:  # noqa: SIM105
            await tls.send_all(encode_reply(reply))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
    if scope.cancelled_caught:
        raise _PeerNotReading(f"the peer did not read a reply within {within:g}s; dropped")
