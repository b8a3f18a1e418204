"""The TLS handshake of one server connection, under its deadline, and the words for its failure.

OpenSSL verifies the client chain (CA, validity, clientAuth purpose); when it
refuses, the engine has already written its alert, and this module records
the outcome: a refusal with the alert that went on the wire and the diagnosis
in words (naming the certificates the client presented), or a close when the
peer hung up (before a whole ClientHello, or in the middle), or a timeout, or
an eviction from a full handshake budget.
"""

from __future__ import annotations

import ssl
import time

import trio

from mtls_ref.shared.tls.connection import TLSConnection
from mtls_ref.shared.tls.diagnose import (
    Category,
    alert_from_reason,
    certificate_fact,
    diagnose_ssl_error,
    load_chain,
    topic_for,
)
from mtls_ref.shared.tls.trace import HandshakeRecorder, PeerCertificateCatcher, Role

from .admission import HandshakeSlot
from .record import Code, ConnectionRecord, Outcome, refuse
from .settings import HandlerSettings

__all__ = ["handshake"]


async def handshake(
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
            refuse(
                record,
                Outcome.DROPPED,
                Code.HANDSHAKE_BUDGET,
                "the handshake budget was full and this connection had waited longest without finishing "
                "its handshake (max_handshakes)",
            )
        refuse(
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
                refuse(record, Outcome.CLOSED, Code.PEER_CLOSED, _closed_reason(tls))
            tls13 = recorder.tls13 if recorder.tls13 is not None else _tls13(tls.negotiated_version())
            diagnosis = diagnose_ssl_error(cause, local=Role.SERVER, tls13=tls13)
            if diagnosis.category is Category.CLOSED:
                refuse(record, Outcome.CLOSED, Code.PEER_CLOSED, _closed_reason(tls))
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
            refuse(record, Outcome.REJECTED, Code.TLS_REFUSAL, reason)


def _closed_reason(tls: TLSConnection) -> str:
    if tls.heard_peer():
        return "the peer closed the connection in the middle of the handshake"
    # A port probe, a load balancer's health check, a browser's preconnect: no alert, no refusal.
    return "the peer closed the connection before a whole ClientHello (a port probe sends none)"


def _tls13(version: str | None) -> bool | None:
    """From the engine's version name, where the trace did not see ServerHello (openssl engine)."""
    return None if version is None else version == "TLSv1.3"
