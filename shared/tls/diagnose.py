"""What went wrong with a TLS connection, in plain language, with the fix.

One table maps what OpenSSL reports (a local verification error, an alert the
peer sent, a local handshake error, EOF where a reply was due) to a
:class:`Diagnosis`. The client prints it, the server logs it; both read it from
here so the words stay the same everywhere.
"""

from __future__ import annotations

import datetime as dt
import enum
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from mtls_ref.shared.pki.authority import verify_signed_by
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

_ALERT_PREFIXES: Final = ("SSLV3_ALERT_", "TLSV1_ALERT_", "TLSV13_ALERT_")


class Category(enum.Enum):
    """Coarse outcome, which also picks the client's exit code."""

    PEER_UNTRUSTED = "peer-untrusted"  # we refused the peer's certificate
    REJECTED_BY_PEER = "rejected-by-peer"  # the peer refused our certificate (or its absence)
    NEGOTIATION = "negotiation"  # versions, ciphers, not TLS at all
    CLOSED = "closed"  # the peer went away
    OTHER = "other"


@dataclass(frozen=True, slots=True, kw_only=True)
class Diagnosis:
    category: Category
    summary: str  # what happened
    fix: str  # what to do
    alert: str | None = None  # the TLS alert sent or received, e.g. "unknown_ca"

    def line(self) -> str:
        alert = f" [alert {self.alert}]" if self.alert else ""
        return f"{self.summary}{alert}; fix: {self.fix}"


def alert_from_reason(reason: str | None) -> str | None:
    """``TLSV1_ALERT_UNKNOWN_CA`` -> ``unknown_ca``; None when the reason is not an alert."""
    for prefix in _ALERT_PREFIXES:
        if reason and reason.startswith(prefix):
            return reason[len(prefix) :].lower()
    return None


# Alerts the peer sent about *our* certificate: (what happened, fix).
_REMOTE_ALERTS: Final[dict[str, tuple[str, str]]] = {
    "unknown_ca": (
        "the {peer} does not trust the CA that issued our certificate",
        "present a certificate issued by the CA the {peer} trusts (its 'ca' setting), "
        "and send the intermediate with it (a -chain.pem file)",
    ),
    "certificate_required": (
        "the {peer} requires a client certificate and we sent none",
        "pass --cert and --key (or set [client] cert and key)",
    ),
    "bad_certificate": (
        "the {peer} rejected our certificate (bad_certificate: often missing, malformed or no "
        "client certificate under TLS 1.2)",
        "present a client certificate from the trusted CA with --cert/--key; check it with "
        "'mtls-certs verify CERT --purpose client'",
    ),
    "certificate_expired": (
        "the {peer} says our certificate has expired (or is not yet valid)",
        "reissue it with 'mtls-certs issue', and check the clocks",
    ),
    "unsupported_certificate": (
        "the {peer} says our certificate may not be used for this purpose (EKU)",
        "use a certificate whose extended key usage includes clientAuth ('mtls-certs issue client')",
    ),
    "certificate_revoked": (
        "the {peer} says our certificate has been revoked",
        "ask the CA for a new certificate",
    ),
    "certificate_unknown": (
        "the {peer} could not accept our certificate",
        "check it with 'mtls-certs verify CERT --purpose client' against the {peer}'s CA",
    ),
    "decrypt_error": (
        "the {peer} could not verify our CertificateVerify signature",
        "make sure --key is the private key of --cert",
    ),
    "handshake_failure": (
        "the {peer} found no acceptable parameters (or refused the handshake)",
        "compare TLS versions and key types on both sides",
    ),
    "protocol_version": (
        "the {peer} does not accept the TLS versions we offer",
        "align tls_min/tls_max (or --tls) with the {peer}",
    ),
    "access_denied": (
        "the {peer} authenticated us but denies access",
        "ask for this identity to be put on the {peer}'s allow-list",
    ),
}

# Local certificate verification errors (X509_V_ERR_*), by verify_code.
_VERIFY_ERRORS: Final[dict[int, tuple[str, str]]] = {
    2: ("the {peer}'s issuer certificate is missing", "the {peer} must send its intermediate (a chain file)"),
    9: (
        "the {peer}'s certificate is not yet valid",
        "check the clocks, or reissue it with a start in the past",
    ),
    10: ("the {peer}'s certificate has expired", "reissue it with 'mtls-certs issue'"),
    18: (
        "the {peer}'s certificate is self-signed",
        "issue the {peer}'s certificate from the CA we trust (--ca), not self-signed",
    ),
    19: (
        "the {peer}'s chain ends in a CA we do not trust",
        "point --ca at the CA that issued the {peer}'s certificate",
    ),
    20: (
        "the {peer}'s certificate was not issued by a CA we trust (or its intermediate was not sent)",
        "point --ca at the CA that issued it, and have the {peer} send its chain file",
    ),
    21: (
        "the {peer} sent only its leaf; the intermediate is missing",
        "configure the {peer} with its -chain.pem file (leaf + intermediate)",
    ),
    23: ("the {peer}'s certificate has been revoked", "the {peer} needs a new certificate"),
    24: ("a CA in the {peer}'s chain is not allowed to sign (not a CA)", "reissue from a real CA"),
    26: (
        "the {peer}'s certificate is not for this purpose (its EKU lacks {eku})",
        "reissue it with the right role ('mtls-certs issue {role} ...')",
    ),
    62: (
        "the {peer}'s certificate does not name the host we connected to",
        "connect with the name in its SANs (--server-name), or reissue it with --san DNS:<host>",
    ),
    64: (
        "the {peer}'s certificate does not name the IP address we connected to",
        "reissue it with --san IP:<address>, or connect by a name it carries",
    ),
}

_LOCAL_REASONS: Final[dict[str, tuple[Category, str, str]]] = {
    "PEER_DID_NOT_RETURN_A_CERTIFICATE": (
        Category.PEER_UNTRUSTED,
        "the client sent no certificate; this server requires one",
        "run the client with a certificate from the trusted CA (--cert/--key)",
    ),
    "WRONG_VERSION_NUMBER": (
        Category.NEGOTIATION,
        "the peer did not speak TLS (or an unsupported version)",
        "connect with TLS (openssl s_client, curl https://, mtls-client), not plain TCP",
    ),
    "HTTP_REQUEST": (
        Category.NEGOTIATION,
        "the peer sent a plain HTTP request to a TLS port",
        "use https:// and a client certificate",
    ),
    "UNSUPPORTED_PROTOCOL": (
        Category.NEGOTIATION,
        "the peer offered only TLS versions we do not accept",
        "use TLS 1.2 or 1.3",
    ),
    "NO_SHARED_CIPHER": (
        Category.NEGOTIATION,
        "no cipher suite in common with the peer",
        "enable modern ECDHE AES-GCM or ChaCha20 suites on the peer",
    ),
    "NO_PROTOCOLS_AVAILABLE": (
        Category.NEGOTIATION,
        "no TLS version is enabled",
        "check tls_min and tls_max",
    ),
    "UNEXPECTED_MESSAGE": (
        Category.NEGOTIATION,
        "the peer sent a TLS message that makes no sense at this point (garbage or a broken client)",
        "check the peer: it is not following the TLS handshake",
    ),
    "UNEXPECTED_RECORD": (
        Category.NEGOTIATION,
        "the peer sent a TLS record of the wrong type for this point of the handshake",
        "check the peer: it is not following the TLS handshake",
    ),
    "LENGTH_MISMATCH": (
        Category.NEGOTIATION,
        "the peer sent a malformed TLS message (its lengths do not add up)",
        "check the peer: it sent a truncated or corrupted handshake",
    ),
    "UNEXPECTED_EOF_WHILE_READING": (
        Category.CLOSED,
        "the peer closed the connection in the middle of the handshake",
        "check the peer's log: it may have refused us without sending an alert",
    ),
    "ASN1_LIB": (
        Category.NEGOTIATION,
        "the peer sent a certificate (or another encoded structure) that does not parse",
        "check the peer's certificate with 'openssl x509 -in FILE -text -noout'",
    ),
    "BAD_PACKET_LENGTH": (
        Category.NEGOTIATION,
        "the peer sent a TLS record whose length is impossible (garbage or a broken client)",
        "check the peer: it sent a corrupted record",
    ),
    "BAD_LENGTH": (
        Category.NEGOTIATION,
        "the peer sent a malformed TLS message (a length field is wrong)",
        "check the peer: it sent a truncated or corrupted handshake",
    ),
    "BAD_EXTENSION": (
        Category.NEGOTIATION,
        "the peer sent a malformed or forbidden TLS extension",
        "check the peer: its ClientHello extensions are broken",
    ),
    "PARSE_TLSEXT": (
        Category.NEGOTIATION,
        "the peer sent TLS extensions that do not parse",
        "check the peer: its ClientHello extensions are broken",
    ),
    "RECORD_LAYER_FAILURE": (
        Category.NEGOTIATION,
        "the TLS record layer failed on what the peer sent",
        "check the peer: it sent records that do not decode",
    ),
    "DECRYPTION_FAILED_OR_BAD_RECORD_MAC": (
        Category.NEGOTIATION,
        "a record from the peer failed its integrity check (tampered, or a broken implementation)",
        "check the network path and the peer",
    ),
    "PACKET_LENGTH_TOO_LONG": (
        Category.NEGOTIATION,
        "the peer sent a TLS record longer than TLS allows",
        "check the peer: it is not speaking TLS correctly",
    ),
    "ENCRYPTED_LENGTH_TOO_LONG": (
        Category.NEGOTIATION,
        "the peer sent an encrypted record longer than TLS allows",
        "check the peer: it is not speaking TLS correctly",
    ),
    "BAD_SIGNATURE": (
        Category.NEGOTIATION,
        "a signature in the handshake did not verify (CertificateVerify does not match the certificate)",
        "make sure the peer's private key belongs to the certificate it sends",
    ),
    "NO_SHARED_GROUPS": (
        Category.NEGOTIATION,
        "no key-exchange group (curve) in common with the peer",
        "enable X25519 or P-256 on the peer",
    ),
    "MISSING_EXTENSION": (
        Category.NEGOTIATION,
        "the peer left out a TLS extension this version requires",
        "check the peer: its ClientHello is incomplete",
    ),
}

# The alert OpenSSL sends itself for each local failure (its SSLfatal() calls); None: no alert
# at all (bytes that are not TLS get none). Used where the engine does not report the alert
# it sent (the openssl engine without --trace); the stdlib engine records the real one.
SENT_ALERTS: Final[dict[str, str | None]] = {
    "WRONG_VERSION_NUMBER": None,
    "HTTP_REQUEST": None,
    "UNEXPECTED_EOF_WHILE_READING": None,
    "UNSUPPORTED_PROTOCOL": "protocol_version",
    "NO_SHARED_CIPHER": "handshake_failure",
    "NO_SHARED_GROUPS": "handshake_failure",
    "UNEXPECTED_MESSAGE": "unexpected_message",
    "UNEXPECTED_RECORD": "unexpected_message",
    "LENGTH_MISMATCH": "decode_error",
    "BAD_LENGTH": "decode_error",
    "BAD_PACKET_LENGTH": "decode_error",
    "ASN1_LIB": "decode_error",
    "BAD_EXTENSION": "illegal_parameter",
    "PARSE_TLSEXT": "decode_error",
    "DECRYPTION_FAILED_OR_BAD_RECORD_MAC": "bad_record_mac",
    "PACKET_LENGTH_TOO_LONG": "record_overflow",
    "ENCRYPTED_LENGTH_TOO_LONG": "record_overflow",
    "BAD_SIGNATURE": "decrypt_error",
    "MISSING_EXTENSION": "missing_extension",
}


# Alerts with which servers refuse a client that sent an empty Certificate message:
# TLS 1.3 says certificate_required (RFC 8446 §4.4.2.4); OpenSSL's TLS 1.2 says handshake_failure.
_NO_CERT_ALERTS: Final = frozenset({"certificate_required", "handshake_failure", "bad_certificate"})


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
        code = exc.verify_code
        message = exc.verify_message or "verification failed"
        summary, fix = _VERIFY_ERRORS.get(
            code,
            (f"the {{peer}}'s certificate failed verification: {message}", "check it with mtls-certs verify"),
        )
        eku = "clientAuth" if local is Role.SERVER else "serverAuth"
        fields = {"peer": peer, "eku": eku, "role": local.peer.value}
        return Diagnosis(
            category=Category.PEER_UNTRUSTED,
            summary=f"{summary.format(**fields)} (OpenSSL: {message})",
            fix=fix.format(**fields),
            alert=_alert_for_verify(code),
        )
    reason = getattr(exc, "reason", None)
    alert = alert_from_reason(reason)
    if alert is not None:
        if sent_no_certificate and alert in _NO_CERT_ALERTS:
            alert_key = "certificate_required"
            summary, fix = _REMOTE_ALERTS[alert_key]
            return Diagnosis(
                category=Category.REJECTED_BY_PEER,
                summary=summary.format(peer=peer),
                fix=fix.format(peer=peer),
                alert=alert,
            )
        summary, fix = _REMOTE_ALERTS.get(
            alert, (f"the {{peer}} ended the handshake with alert {alert}", "see the {peer}'s log")
        )
        return Diagnosis(
            category=Category.REJECTED_BY_PEER,
            summary=summary.format(peer=peer),
            fix=fix.format(peer=peer),
            alert=alert,
        )
    reason = reason or _reason_from_text(str(exc))
    if reason in _LOCAL_REASONS:
        category, summary, fix = _LOCAL_REASONS[reason]
        sent = SENT_ALERTS.get(reason)
        if reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE":  # OpenSSL's alert differs by version
            sent = "handshake_failure" if tls13 is False else "certificate_required"
        return Diagnosis(category=category, summary=summary, fix=fix, alert=sent)
    words = (reason or "").replace("_", " ").lower() or "no reason given"
    return Diagnosis(
        category=Category.OTHER,
        summary=f"OpenSSL ended the handshake ({words})",
        fix="run with --trace to see where the handshake stopped",
    )


def _reason_from_text(message: str) -> str | None:
    """``[SSL] ASN1 lib (_ssl.c:1006)``: CPython found no reason code; read the words it printed."""
    words = message.split("]", 1)[-1].split("(", 1)[0].strip()
    return words.upper().replace(" ", "_") if words else None


def _alert_for_verify(code: int) -> str:
    """The alert OpenSSL sends for a local verification failure (ssl_verify_alarm_type)."""
    return {
        2: "unknown_ca",
        9: "bad_certificate",  # not yet valid: OpenSSL's ssl_x509err2alert says bad_certificate
        10: "certificate_expired",
        18: "unknown_ca",
        19: "unknown_ca",
        20: "unknown_ca",
        21: "unknown_ca",
        23: "certificate_revoked",
        26: "unsupported_certificate",
    }.get(code, "bad_certificate")


def diagnose_eof(*, tls13: bool | None, after_handshake: bool) -> Diagnosis:
    """The server closed where a reply was due."""
    if after_handshake and tls13:
        return Diagnosis(
            category=Category.REJECTED_BY_PEER,
            summary="the server closed the connection right after the handshake: under TLS 1.3 this is "
            "how a server rejects a client certificate when its alert is lost",
            fix="check that --cert was issued by the CA the server trusts ('mtls-certs verify CERT "
            "--purpose client') and see the server's log",
        )
    return Diagnosis(
        category=Category.CLOSED,
        summary="the server closed the connection without a reply",
        fix="see the server's log; it may have refused this client or hit a limit",
    )


# --- facts about the certificate involved ----------------------------------------

# Which fact explains an alert (received) or a verification error code (local).
_ALERT_TOPIC: Final = {
    "unknown_ca": "issuer",
    "certificate_expired": "validity",
    "bad_certificate": "validity",
    "unsupported_certificate": "purpose",
    "certificate_revoked": "revoked",
}
_VERIFY_TOPIC: Final = {
    2: "issuer",
    18: "issuer",
    19: "issuer",
    20: "issuer",
    21: "issuer",
    9: "validity",
    10: "validity",
    26: "purpose",
    23: "revoked",
    24: "purpose",
}
_PURPOSE_EKU: Final = {"client": ExtendedKeyUsageOID.CLIENT_AUTH, "server": ExtendedKeyUsageOID.SERVER_AUTH}
_EKU_LABEL: Final = {
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
}


def topic_for(*, alert: str | None = None, verify_code: int | None = None) -> str | None:
    if verify_code is not None and verify_code in _VERIFY_TOPIC:
        return _VERIFY_TOPIC[verify_code]
    return _ALERT_TOPIC.get(alert or "")


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
    if topic == "issuer":
        return _issuer_fact(chain, subject, trusted)
    if topic == "validity":
        if now > leaf.not_valid_after_utc:
            days = (now - leaf.not_valid_after_utc).days
            ago = "less than a day ago" if days == 0 else f"{days} day{'s' if days > 1 else ''} ago"
            return f"{subject} expired on {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC ({ago})"
        if now < leaf.not_valid_before_utc:
            return f"{subject} is not valid until {leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
        return None
    if topic == "purpose":
        return _purpose_fact(leaf, subject, purpose)
    if topic == "revoked":
        return f"{subject} (serial {leaf.serial_number:X}) is on its CA's revocation list"
    return None


def _issuer_fact(
    chain: Sequence[x509.Certificate], subject: str, trusted: Sequence[x509.Certificate]
) -> str:
    """Why the chain does not reach a trusted CA: self-signed, a different key behind the same
    CA name, a missing intermediate, or simply another CA."""
    leaf, top = chain[0], chain[-1]
    if leaf.issuer == leaf.subject:
        return f"{subject} is self-signed"
    issuer = top.issuer.rfc4514_string()
    namesakes = [ca for ca in trusted if ca.subject == top.issuer]
    if namesakes and not any(verify_signed_by(top, ca) for ca in namesakes):
        return (
            f"{subject} chains to a CA named {issuer}, the same name as the trusted CA, but signed "
            f"with a different key (key id {_key_id(top)} vs {_key_id(namesakes[0], own=True)}): "
            "a different CA that shares the name, e.g. one made again with 'mtls-certs init'"
        )
    sentence = f"{subject} was issued by {leaf.issuer.rfc4514_string()}"
    if trusted:
        sentence += f", but the trusted CA is {' / '.join(ca.subject.rfc4514_string() for ca in trusted)}"
    if len(chain) == 1 and not namesakes:
        sentence += "; no intermediate was sent with it"
    return sentence


def _key_id(cert: x509.Certificate, *, own: bool = False) -> str:
    """8 hex digits of the issuer's key id that ``cert`` names (its own with ``own``), or '?'."""
    try:
        if own:
            digest = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        else:
            aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
            digest = aki.key_identifier or b""
    except x509.ExtensionNotFound:
        return "?"
    return digest[:4].hex().upper() or "?"


def _purpose_fact(leaf: x509.Certificate, subject: str, purpose: str) -> str | None:
    try:
        if leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            return f"{subject} is a CA certificate (CA:TRUE), not a {purpose} certificate"
    except x509.ExtensionNotFound:
        pass
    try:
        ekus = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return None
    names = ", ".join(_EKU_LABEL.get(oid, oid.dotted_string) for oid in ekus)
    return f"{subject} has EKU {names}, which lacks {_EKU_LABEL[_PURPOSE_EKU[purpose]]}"


def load_chain(ders: Sequence[bytes]) -> list[x509.Certificate]:
    """Parse DER certificates, skipping any that do not parse (a report must not fail)."""
    chain = []
    for der in ders:
        try:
            chain.append(x509.load_der_x509_certificate(der))
        except ValueError:
            continue
    return chain
