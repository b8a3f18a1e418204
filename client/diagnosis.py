"""How the connection ended, turned into the client's verdict: an exit code with words and the fix.

Theory of operation
-------------------
The words come from ``shared/tls/diagnose.py`` (server and client say the same
things); this module adds what only the client knows, from the handshake trace
and its own config:

* which certificate to explain: the server's when we refused it, our own when
  the server refused us;
* that the end of the stream is not a verdict on our certificate. Under TLS 1.3
  the server judges our certificate after our side of the handshake is done, and
  a refusal arrives as an alert on our first read (certificate_required,
  unknown_ca, bad_certificate...): ``receive_some`` raises with the alert as the
  cause. A close_notify, a bare EOF or a reset carries no verdict: a server that
  refuses a certificate must say so with an alert (RFC 8446 §4.4.2.4). Without
  one the likely causes are our server in forward mode whose backend hung up,
  or a server that does not speak the mode's protocol (a TLS stack that loses
  its alert looks the same; the fix says so). That is :attr:`Exit.PROTOCOL`,
  never :attr:`Exit.CERT_REJECTED`;
* whether an alert from the server can be about our certificate at all. An
  alert that arrives before our Certificate message went out cannot be (the
  server has not seen it): it refuses the parameters we offered, the TLS
  version (``protocol_version``, RFC 8446 §6.2), the cipher suites or groups
  (``handshake_failure``). That is :attr:`Exit.NEGOTIATION`, never
  :attr:`Exit.CERT_REJECTED`. ``protocol_version`` means exactly that whenever
  it comes; the timing rule needs a trace that saw our ClientHello.
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

# Alerts that refuse what we offered, not who we are, whenever they arrive (RFC 8446 §6.2):
# no TLS version in common; the server requires stronger parameters than we offer.
_PARAMETER_ALERTS: Final = frozenset({"protocol_version", "insufficient_security"})

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

    def broken(self, exc: trio.BrokenResourceError, *, first_read: bool = False) -> Stop:
        """A read or write failed: the TLS error explains it (an alert received, mostly).

        ``first_read``: nothing has come from the server since the handshake. A break
        without a TLS error then is a reset where a close would have done: no alert; an EOF
        that OpenSSL calls a violation of the protocol (a write after the server hung up) is
        the server's close without an alert too.
        """
        if first_read and not isinstance(exc.__cause__, ssl.SSLError):
            return self._closed_without_alert("reset")
        if first_read and isinstance(exc.__cause__, ssl.SSLEOFError):
            return self._closed_without_alert("closed")
        diagnosis = self._diagnose(exc)
        if diagnosis.category is Category.REJECTED_BY_PEER and (
            diagnosis.alert in _PARAMETER_ALERTS or self._before_our_certificate()
        ):
            return fail(self._report, Exit.NEGOTIATION, self._parameters_refused(diagnosis))
        return fail(self._report, _CATEGORY_EXIT[diagnosis.category], diagnosis)

    def closed(self, *, waiting_for: str, first_read: bool) -> Stop:
        """The server ended the stream (close_notify, or a bare EOF) where ``waiting_for`` was due."""
        if first_read:
            return self._closed_without_alert("closed")
        return fail(
            self._report,
            Exit.PROTOCOL,
            summary=f"the server closed the connection while we waited for {waiting_for}",
            fix="see the server's log",
        )

    def _closed_without_alert(self, how: str) -> Stop:
        """Only the end of the stream after the handshake: whatever it is, not a certificate verdict."""
        self._report.closed_without_alert = True
        return fail(
            self._report,
            Exit.PROTOCOL,
            summary=f"the server {how} the connection without an alert after the handshake: "
            "not a certificate rejection; a forward-mode backend that closed, "
            "or a server that does not speak this protocol",
            fix="see the server's log; against a server that is not mtls-server use --raw or --http; "
            "if the log says it refused our certificate, its alert was lost on the way",
        )

    def _before_our_certificate(self) -> bool:
        """The trace saw our ClientHello go out, and no Certificate of ours (not even an empty one)."""
        return self._recorder.saw("ClientHello", Role.CLIENT) and not self._recorder.saw(
            "Certificate", Role.CLIENT
        )

    def _parameters_refused(self, diagnosis: Diagnosis) -> Diagnosis:
        """The diagnosis of an alert about what we offered, saying what that was."""
        if diagnosis.alert == "protocol_version":
            low, high = self._config.tls_min, self._config.tls_max
            offered = f"TLS {low} only" if low == high else f"TLS {low} to {high}"
            summary = f"{diagnosis.summary} (we offered {offered})"
        else:
            summary = f"{diagnosis.summary}, before we sent a certificate (so not because of it)"
        return dataclasses.replace(diagnosis, category=Category.NEGOTIATION, summary=summary)

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
