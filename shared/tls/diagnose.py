"""What went wrong with a TLS connection, in plain language, with the fix.

What OpenSSL reports (a local verification error, an alert the peer sent, a
local handshake error, EOF where a reply was due) becomes a :class:`Diagnosis`,
its words and alert read from the one record per code in :mod:`.codes` (verify
codes) or :mod:`.reasons` (OpenSSL's reasons). The client prints it, the
server logs it; both read it from here so the words stay the same everywhere.
:func:`certificate_fact` adds the value behind the verdict (the date, the EKU,
the issuer), read from :mod:`mtls_ref.shared.pki.facts` as ``mtls-certs
verify`` reads it.
"""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from cryptography import x509

from mtls_ref.shared.pki.facts import (
    EKU_NAMES,
    PURPOSE_EKU,
    SentIssuer,
    Timing,
    namesake,
    purpose_fit,
    self_issued,
    sent_issuer,
    validity,
)
from mtls_ref.shared.tls.codes import (
    NO_ALERT,
    UNKNOWN_ALERT,
    VERIFY_CODES,
    Category,
    Topic,
    VerifyCode,
    alert_from_reason,
)
from mtls_ref.shared.tls.reasons import LOCAL_REASONS, PEER_ALERTS, SENT_ALERTS
from mtls_ref.shared.tls.trace import Role

__all__ = [
    "SENT_ALERTS",
    "Category",
    "Diagnosis",
    "alert_from_reason",
    "certificate_fact",
    "diagnose_eof",
    "diagnose_ssl_error",
    "load_chain",
    "topic_for",
]

# Alerts with which servers refuse a client that sent an empty Certificate message:
# TLS 1.3 says certificate_required (RFC 8446 §4.4.2.4); OpenSSL's TLS 1.2 says handshake_failure.
_NO_CERT_ALERTS: Final = frozenset({"certificate_required", "handshake_failure", "bad_certificate"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Diagnosis:
    category: Category
    summary: str  # what happened
    fix: str  # what to do
    alert: str | None = None  # the TLS alert sent or received, e.g. "unknown_ca"

    def line(self) -> str:
        alert = f" [alert {self.alert}]" if self.alert else ""
        return f"{self.summary}{alert}; fix: {self.fix}"


def diagnose_ssl_error(
    exc: BaseException, *, local: Role, sent_no_certificate: bool = False, tls13: bool | None = None
) -> Diagnosis:
    """Explain an ``ssl.SSLError`` raised on the ``local`` side.

    ``sent_no_certificate``: the trace shows we answered CertificateRequest with an
    empty Certificate, which explains a generic alert better than the alert does.
    ``tls13``: the negotiated version when known (it decides some alerts OpenSSL sends).
    """
    peer = local.peer.value
    if isinstance(exc, ssl.SSLCertVerificationError):
        message = exc.verify_message or "verification failed"
        verify = VERIFY_CODES.get(exc.verify_code) or _unlisted(exc.verify_code, message)
        fields = {"peer": peer, "eku": EKU_NAMES[PURPOSE_EKU[peer]], "role": peer}
        return Diagnosis(
            category=Category.PEER_UNTRUSTED,
            summary=f"{verify.what.format(**fields)} (OpenSSL: {message})",
            fix=verify.fix.format(**fields),
            alert=verify.alert,
        )
    reason = getattr(exc, "reason", None)
    alert = alert_from_reason(reason)
    if alert is not None:
        received = PEER_ALERTS.get(alert)
        if sent_no_certificate and alert in _NO_CERT_ALERTS:
            received = PEER_ALERTS["certificate_required"]  # what the generic alert means here
        if received is None:
            summary, fix = f"the {peer} ended the handshake with alert {alert}", f"see the {peer}'s log"
        else:
            summary, fix = received.what.format(peer=peer), received.fix.format(peer=peer)
        return Diagnosis(category=Category.REJECTED_BY_PEER, summary=summary, fix=fix, alert=alert)
    reason = reason or _reason_from_text(str(exc))
    local_reason = LOCAL_REASONS.get(reason or "")
    if local_reason is not None:
        sent = local_reason.alert
        if tls13 is False and local_reason.alert_tls12 is not None:
            sent = local_reason.alert_tls12
        return Diagnosis(
            category=local_reason.category,
            summary=local_reason.what,
            fix=local_reason.fix,
            alert=None if sent in (NO_ALERT, UNKNOWN_ALERT) else sent,
        )
    words = (reason or "").replace("_", " ").lower() or "no reason given"
    return Diagnosis(
        category=Category.OTHER,
        summary=f"OpenSSL ended the handshake ({words})",
        fix="run with --trace to see where the handshake stopped",
    )


def _unlisted(code: int, message: str) -> VerifyCode:
    """A verify code the table does not explain: OpenSSL's own message is all there is to say."""
    escaped = message.replace("{", "{{").replace("}", "}}")  # the summary is a format string
    return VerifyCode(
        code=code,
        name="unlisted",
        alert="bad_certificate",  # ssl_x509err2alert()'s default
        topic=Topic.NONE,
        what=f"the {{peer}}'s certificate failed verification: {escaped}",
        fix="check it with mtls-certs verify",
    )


def _reason_from_text(message: str) -> str | None:
    """``[SSL] ASN1 lib (_ssl.c:1006)``: CPython found no reason code; read the words it printed."""
    words = message.split("]", 1)[-1].split("(", 1)[0].strip()
    return words.upper().replace(" ", "_") if words else None


def diagnose_eof(*, tls13: bool | None, after_handshake: bool) -> Diagnosis:
    """The server closed where a reply was due.

    A close without an alert is not a certificate rejection: a server refusing a certificate says
    so with an alert (under TLS 1.3 on the client's first read), and ours always delivers it.
    """
    if after_handshake:
        return Diagnosis(
            category=Category.CLOSED,
            summary="the server closed the connection without an alert after the handshake: not a "
            "certificate rejection; a forward-mode backend that closed, or a server shutting down",
            fix="see the server's log; if it says it refused the certificate, its alert was lost on the way",
        )
    return Diagnosis(
        category=Category.CLOSED,
        summary="the server closed the connection without a reply",
        fix="see the server's log; it may have refused this client or hit a limit",
    )


# --- facts about the certificate involved ----------------------------------------


def topic_for(*, alert: str | None = None, verify_code: int | None = None) -> Topic | None:
    """Which certificate fact explains a local verification error, else an alert received."""
    verify = VERIFY_CODES.get(verify_code) if verify_code is not None else None
    if verify is not None and verify.topic is not Topic.NONE:
        return verify.topic
    received = PEER_ALERTS.get(alert or "")
    return received.topic if received is not None and received.topic is not Topic.NONE else None


def certificate_fact(
    chain: Sequence[x509.Certificate],
    topic: str | None,
    *,
    purpose: str,
    trusted: Sequence[x509.Certificate] = (),
    now: dt.datetime | None = None,
) -> str | None:
    """One sentence about ``chain[0]`` that explains ``topic``, with the values shown."""
    if not chain or topic is None:
        return None
    leaf, now = chain[0], now or dt.datetime.now(dt.UTC)
    subject = leaf.subject.rfc4514_string()
    if topic == Topic.ISSUER:
        return _issuer_fact(chain, subject, trusted)
    if topic == Topic.VALIDITY:
        period = validity(leaf, now=now)
        if period.timing is Timing.EXPIRED:
            days = period.days_expired
            ago = "less than a day ago" if days == 0 else f"{days} day{'s' if days > 1 else ''} ago"
            return f"{subject} expired on {period.not_after:%Y-%m-%d %H:%M} UTC ({ago})"
        if period.timing is Timing.NOT_YET_VALID:
            return f"{subject} is not valid until {period.not_before:%Y-%m-%d %H:%M} UTC"
        return None
    if topic == Topic.PURPOSE:
        fit = purpose_fit(leaf, purpose)
        if fit.is_ca:
            return f"{subject} is a CA certificate (CA:TRUE), not a {purpose} certificate"
        if fit.ekus is None or not fit.lacks_eku:
            return None  # nothing in the leaf's purpose explains it: the CA above is the cause
        return f"{subject} has EKU {', '.join(fit.ekus)}, which lacks {fit.wanted}"
    if topic == Topic.REVOKED:
        return f"{subject} (serial {leaf.serial_number:X}) is on its CA's revocation list"
    return None


def _issuer_fact(
    chain: Sequence[x509.Certificate], subject: str, trusted: Sequence[x509.Certificate]
) -> str:
    """Why the chain does not reach a trusted CA: self-signed, a different key behind the same
    CA name, a missing intermediate, or simply another CA."""
    leaf, top = chain[0], chain[-1]
    if self_issued(leaf):
        return f"{subject} is self-signed"
    impostor = namesake(top, trusted)
    if impostor is not None:
        return (
            f"{subject} chains to a CA named {top.issuer.rfc4514_string()}, the same name as the trusted "
            f"CA, but signed with a different key (key id {impostor.named_key_id} vs "
            f"{impostor.trusted_key_id}): a different CA that shares the name, e.g. one made again "
            "with 'mtls-certs init'"
        )
    sentence = f"{subject} was issued by {leaf.issuer.rfc4514_string()}"
    if trusted:
        sentence += f", but the trusted CA is {' / '.join(ca.subject.rfc4514_string() for ca in trusted)}"
    if len(chain) == 1 and sent_issuer(chain, trusted) is SentIssuer.MISSING:
        sentence += "; no intermediate was sent with it"
    return sentence


def load_chain(ders: Sequence[bytes]) -> list[x509.Certificate]:
    """Parse DER certificates, skipping any that do not parse (a report must not fail)."""
    chain = []
    for der in ders:
        try:
            chain.append(x509.load_der_x509_certificate(der))
        except ValueError:
            continue
    return chain
