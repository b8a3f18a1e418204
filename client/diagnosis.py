"""How the connection ended, turned into the client's verdict: an exit code with words and the fix.

The words come from ``shared/tls/diagnose.py`` (server and client say the same
things); this module adds what only the client knows: which certificate to
explain (the server's when we refused it, our own when the server refused us,
read from the handshake trace and our config) and which exit code each ending
gets.
"""

from __future__ import annotations

import dataclasses
import ssl
from typing import Final

import trio

from mtls_ref.shared.core.config import ClientConfig
from mtls_ref.shared.core.errors import MTLSError
from mtls_ref.shared.pki.keys import load_certificates
from mtls_ref.shared.tls.diagnose import (
    Category,
    Diagnosis,
    certificate_fact,
    diagnose_eof,
    diagnose_ssl_error,
    load_chain,
    topic_for,
)
from mtls_ref.shared.tls.trace import HandshakeRecorder, Role

from .outcome import ClientReport, Exit, Stop, fail

__all__ = ["Verdicts"]

_CATEGORY_EXIT: Final = {
    Category.PEER_UNTRUSTED: Exit.SERVER_UNTRUSTED,
    Category.REJECTED_BY_PEER: Exit.CERT_REJECTED,
    Category.NEGOTIATION: Exit.PROTOCOL,
    Category.CLOSED: Exit.PROTOCOL,
    Category.OTHER: Exit.PROTOCOL,
}


class Verdicts:
    """Builds the :class:`Stop` for each way one session's connection can fail."""

    def __init__(self, config: ClientConfig, report: ClientReport, recorder: HandshakeRecorder) -> None:
        self._config = config
        self._report = report
        self._recorder = recorder

    def __repr__(self) -> str:
        return f"<Verdicts for {self._report.target}>"

    def handshake_broken(self, exc: trio.BrokenResourceError) -> Stop:
        """The handshake failed: a TLS error (ours or the server's alert), or the transport broke."""
        if isinstance(exc.__cause__, ssl.SSLError):
            return self.broken(exc)
        return fail(self._report, Exit.PROTOCOL, diagnose_eof(tls13=None, after_handshake=False))

    def broken(self, exc: trio.BrokenResourceError) -> Stop:
        """A read or write failed: the TLS error explains it (an alert received, mostly)."""
        diagnosis = self._diagnose(exc)
        return fail(self._report, _CATEGORY_EXIT[diagnosis.category], diagnosis)

    def closed(self, *, waiting_for: str, first_read: bool) -> Stop:
        """The server ended the stream where ``waiting_for`` was due."""
        if first_read and self._recorder.tls13:
            return fail(self._report, Exit.CERT_REJECTED, diagnose_eof(tls13=True, after_handshake=True))
        return fail(
            self._report,
            Exit.PROTOCOL,
            summary=f"the server closed the connection while we waited for {waiting_for}",
            fix="see the server's log",
        )

    def _diagnose(self, exc: trio.BrokenResourceError) -> Diagnosis:
        """A broken TLS stream, explained by its ssl cause, the trace and the certificate involved."""
        cause = exc.__cause__
        if not isinstance(cause, ssl.SSLError):
            return Diagnosis(
                category=Category.CLOSED,
                summary="the connection broke (no TLS error was reported)",
                fix="see the server's log",
            )
        sent_empty = any(
            e.name == "Certificate" and e.sender is Role.CLIENT and e.detail.startswith("empty")
            for e in self._recorder.events
        )
        diagnosis = diagnose_ssl_error(cause, local=Role.CLIENT, sent_no_certificate=sent_empty)
        fact = self._certificate_fact(cause, diagnosis)
        return dataclasses.replace(diagnosis, summary=f"{diagnosis.summary}: {fact}") if fact else diagnosis

    def _certificate_fact(self, cause: ssl.SSLError, diagnosis: Diagnosis) -> str | None:
        """The server's certificate when we refused it; our own when the server refused us."""
        config = self._config
        try:
            if isinstance(cause, ssl.SSLCertVerificationError):
                return certificate_fact(
                    load_chain(self._recorder.peer_certificates),
                    topic_for(verify_code=cause.verify_code),
                    purpose="server",
                    trusted=load_certificates(config.ca),
                )
            if diagnosis.category is Category.REJECTED_BY_PEER and config.cert is not None:
                own = load_certificates(config.cert)
                fact = certificate_fact(own, topic_for(alert=diagnosis.alert), purpose="client")
                return (
                    f"our certificate {fact.removeprefix(own[0].subject.rfc4514_string() + ' ')}"
                    if fact
                    else None
                )
        except MTLSError:
            return None  # explaining is best effort; the diagnosis stands without it
        return None
