"""The few TLS wire facts the handshake trace reads, without I/O.

Numbers as OpenSSL's message callback reports them (content types, handshake
message types, alert descriptions, with the names RFC 5246 and RFC 8446 give
them), and two parsers of handshake messages: which version a ServerHello chose,
and the DER certificates of a Certificate message. A malformed message never
raises here: the trace reports, it never judges.
"""

from __future__ import annotations

from typing import Final

from cryptography import x509

__all__ = [
    "ALERT",
    "ALERT_NAMES",
    "APPLICATION_DATA",
    "CERTIFICATE",
    "CHANGE_CIPHER_SPEC",
    "HANDSHAKE",
    "HEADER",
    "INNER_CONTENT_TYPE",
    "MESSAGE_NAMES",
    "SERVER_HELLO",
    "certificate_detail",
    "parse_certificate_message",
    "server_hello_is_tls13",
]

# OpenSSL content types (RFC 8446 §5.1) and the two pseudo types of the callback.
CHANGE_CIPHER_SPEC: Final = 20
ALERT: Final = 21
HANDSHAKE: Final = 22
APPLICATION_DATA: Final = 23
HEADER: Final = 256  # SSL3_RT_HEADER: the 5-byte record header
INNER_CONTENT_TYPE: Final = 257  # SSL3_RT_INNER_CONTENT_TYPE: TLS 1.3 real type
_TLS13: Final = 0x0304
SERVER_HELLO: Final = 2
_SUPPORTED_VERSIONS: Final = 43  # extension type, RFC 8446 §4.2
CERTIFICATE: Final = 11

# Handshake message names as RFC 5246 / RFC 8446 spell them.
MESSAGE_NAMES: Final = {
    0: "HelloRequest",
    1: "ClientHello",
    2: "ServerHello",
    4: "NewSessionTicket",
    5: "EndOfEarlyData",
    8: "EncryptedExtensions",
    11: "Certificate",
    12: "ServerKeyExchange",
    13: "CertificateRequest",
    14: "ServerHelloDone",
    15: "CertificateVerify",
    16: "ClientKeyExchange",
    20: "Finished",
    22: "CertificateStatus",
    24: "KeyUpdate",
    254: "MessageHash",
}
# Alert descriptions (RFC 8446 §6).
ALERT_NAMES: Final = {
    0: "close_notify",
    10: "unexpected_message",
    20: "bad_record_mac",
    22: "record_overflow",
    40: "handshake_failure",
    42: "bad_certificate",
    43: "unsupported_certificate",
    44: "certificate_revoked",
    45: "certificate_expired",
    46: "certificate_unknown",
    47: "illegal_parameter",
    48: "unknown_ca",
    49: "access_denied",
    50: "decode_error",
    51: "decrypt_error",
    70: "protocol_version",
    71: "insufficient_security",
    80: "internal_error",
    86: "inappropriate_fallback",
    90: "user_canceled",
    109: "missing_extension",
    110: "unsupported_extension",
    112: "unrecognized_name",
    113: "bad_certificate_status_response",
    115: "unknown_psk_identity",
    116: "certificate_required",
    120: "no_application_protocol",
}


def server_hello_is_tls13(data: bytes) -> bool:
    """Whether a ServerHello (header included) chose TLS 1.3.

    Read from the message, not from the callback's version argument: a client
    reports the version it *offered* (1.3) while it reads ServerHello, so a
    server that picked TLS 1.2 would be drawn as 1.3. TLS 1.3 is chosen by the
    supported_versions extension (RFC 8446 §4.2.1); legacy_version says 1.2 in
    both cases. A malformed message counts as not 1.3.
    """
    pos = 4 + 2 + 32  # header, legacy_version, random
    if len(data) < pos + 1:
        return False
    pos += 1 + data[pos] + 2 + 1  # session id, cipher suite, compression method
    if len(data) < pos + 2:
        return False
    end = min(len(data), pos + 2 + int.from_bytes(data[pos : pos + 2], "big"))
    pos += 2
    while pos + 4 <= end:
        kind = int.from_bytes(data[pos : pos + 2], "big")
        size = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if kind == _SUPPORTED_VERSIONS:
            return data[pos + 4 : pos + 4 + size] == _TLS13.to_bytes(2, "big")
        pos += 4 + size
    return False


def parse_certificate_message(data: bytes, *, tls13: bool) -> list[bytes]:
    """DER certificates in a Certificate handshake message (RFC 5246 §7.4.2, RFC 8446 §4.4.2).

    A malformed or truncated message yields ``[]``: the trace reports, it never judges.
    """
    pos = 4  # message type (1) + length (3)
    if tls13:
        if len(data) <= pos:
            return []
        pos += 1 + data[pos]  # certificate_request_context
    if len(data) < pos + 3:
        return []
    end = pos + 3 + int.from_bytes(data[pos : pos + 3], "big")
    pos += 3
    if end > len(data):
        return []
    certs = []
    while pos + 3 <= end:
        size = int.from_bytes(data[pos : pos + 3], "big")
        if size == 0 or pos + 3 + size > end:
            return []
        certs.append(data[pos + 3 : pos + 3 + size])
        pos += 3 + size
        if tls13:
            if pos + 2 > end:
                return []
            pos += 2 + int.from_bytes(data[pos : pos + 2], "big")  # per-entry extensions
    return certs


def certificate_detail(certs: list[bytes]) -> str:
    """A Certificate message in the trace's words: the leaf's subject and how many CA certificates follow."""
    if not certs:
        return "empty: no certificate"
    try:
        subject = x509.load_der_x509_certificate(certs[0]).subject.rfc4514_string()
    except ValueError:
        subject = "unparseable certificate"
    return f"{subject} + {len(certs) - 1} CA cert" if len(certs) > 1 else subject
