"""OpenSSL's reasons: one record each, for a local handshake error or an alert the peer sent.

The table, its record type and what each field holds are described in
:mod:`.codes`. Received alerts are keyed by the reason OpenSSL gives them
(``SSLV3_ALERT_`` for those SSL 3.0 defined, ``TLSV1_ALERT_``, ``TLSV13_ALERT_``),
and are looked up by the alert's name (:data:`PEER_ALERTS`), as any of the
three prefixes may carry it.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

from mtls_ref.shared.tls.codes import NO_ALERT, UNKNOWN_ALERT, Category, Reason, Topic, index_records

__all__ = ["LOCAL_REASONS", "PEER_ALERTS", "REASONS", "SENT_ALERTS"]

REASONS: Final = index_records(
    lambda record: record.reason,
    Reason(
        reason="PEER_DID_NOT_RETURN_A_CERTIFICATE", category=Category.PEER_UNTRUSTED,
        alert="certificate_required", topic=Topic.NONE,
        alert_tls12="handshake_failure",
        what="the client sent no certificate; this server requires one",
        fix="run the client with a certificate from the trusted CA (--cert/--key)",
    ),
    Reason(
        reason="WRONG_VERSION_NUMBER", category=Category.NEGOTIATION,
        alert="none", topic=Topic.NONE,
        what="the peer did not speak TLS (or an unsupported version)",
        fix="connect with TLS (openssl s_client, curl https://, mtls-client), not plain TCP",
    ),
    Reason(
        reason="HTTP_REQUEST", category=Category.NEGOTIATION,
        alert="none", topic=Topic.NONE,
        what="the peer sent a plain HTTP request to a TLS port",
        fix="use https:// and a client certificate",
    ),
    Reason(
        reason="UNSUPPORTED_PROTOCOL", category=Category.NEGOTIATION,
        alert="protocol_version", topic=Topic.NONE,
        what="the peer offered only TLS versions we do not accept",
        fix="use TLS 1.2 or 1.3",
    ),
    Reason(
        reason="NO_SHARED_CIPHER", category=Category.NEGOTIATION,
        alert="handshake_failure", topic=Topic.NONE,
        what="no cipher suite in common with the peer",
        fix="enable modern ECDHE AES-GCM or ChaCha20 suites on the peer",
    ),
    Reason(
        reason="NO_PROTOCOLS_AVAILABLE", category=Category.NEGOTIATION,
        alert="unknown", topic=Topic.NONE,
        what="no TLS version is enabled",
        fix="check tls_min and tls_max",
    ),
    Reason(
        reason="UNEXPECTED_MESSAGE", category=Category.NEGOTIATION,
        alert="unexpected_message", topic=Topic.NONE,
        what="the peer sent a TLS message that makes no sense at this point (garbage or a broken client)",
        fix="check the peer: it is not following the TLS handshake",
    ),
    Reason(
        reason="UNEXPECTED_RECORD", category=Category.NEGOTIATION,
        alert="unexpected_message", topic=Topic.NONE,
        what="the peer sent a TLS record of the wrong type for this point of the handshake",
        fix="check the peer: it is not following the TLS handshake",
    ),
    Reason(
        reason="LENGTH_MISMATCH", category=Category.NEGOTIATION,
        alert="decode_error", topic=Topic.NONE,
        what="the peer sent a malformed TLS message (its lengths do not add up)",
        fix="check the peer: it sent a truncated or corrupted handshake",
    ),
    Reason(
        reason="UNEXPECTED_EOF_WHILE_READING", category=Category.CLOSED,
        alert="none", topic=Topic.NONE,
        what="the peer closed the connection in the middle of the handshake",
        fix="check the peer's log: it may have refused us without sending an alert",
    ),
    Reason(
        reason="ASN1_LIB", category=Category.NEGOTIATION,
        alert="decode_error", topic=Topic.NONE,
        what="the peer sent a certificate (or another encoded structure) that does not parse",
        fix="check the peer's certificate with 'openssl x509 -in FILE -text -noout'",
    ),
    Reason(
        reason="BAD_PACKET_LENGTH", category=Category.NEGOTIATION,
        alert="decode_error", topic=Topic.NONE,
        what="the peer sent a TLS record whose length is impossible (garbage or a broken client)",
        fix="check the peer: it sent a corrupted record",
    ),
    Reason(
        reason="BAD_LENGTH", category=Category.NEGOTIATION,
        alert="decode_error", topic=Topic.NONE,
        what="the peer sent a malformed TLS message (a length field is wrong)",
        fix="check the peer: it sent a truncated or corrupted handshake",
    ),
    Reason(
        reason="BAD_EXTENSION", category=Category.NEGOTIATION,
        alert="illegal_parameter", topic=Topic.NONE,
        what="the peer sent a malformed or forbidden TLS extension",
        fix="check the peer: its ClientHello extensions are broken",
    ),
    Reason(
        reason="PARSE_TLSEXT", category=Category.NEGOTIATION,
        alert="decode_error", topic=Topic.NONE,
        what="the peer sent TLS extensions that do not parse",
        fix="check the peer: its ClientHello extensions are broken",
    ),
    Reason(
        reason="RECORD_LAYER_FAILURE", category=Category.NEGOTIATION,
        alert="unknown", topic=Topic.NONE,
        what="the TLS record layer failed on what the peer sent",
        fix="check the peer: it sent records that do not decode",
    ),
    Reason(
        reason="DECRYPTION_FAILED_OR_BAD_RECORD_MAC", category=Category.NEGOTIATION,
        alert="bad_record_mac", topic=Topic.NONE,
        what="a record from the peer failed its integrity check (tampered, or a broken implementation)",
        fix="check the network path and the peer",
    ),
    Reason(
        reason="PACKET_LENGTH_TOO_LONG", category=Category.NEGOTIATION,
        alert="record_overflow", topic=Topic.NONE,
        what="the peer sent a TLS record longer than TLS allows",
        fix="check the peer: it is not speaking TLS correctly",
    ),
    Reason(
        reason="ENCRYPTED_LENGTH_TOO_LONG", category=Category.NEGOTIATION,
        alert="record_overflow", topic=Topic.NONE,
        what="the peer sent an encrypted record longer than TLS allows",
        fix="check the peer: it is not speaking TLS correctly",
    ),
    Reason(
        reason="BAD_SIGNATURE", category=Category.NEGOTIATION,
        alert="decrypt_error", topic=Topic.NONE,
        what="a signature in the handshake did not verify (CertificateVerify does not match the certificate)",
        fix="make sure the peer's private key belongs to the certificate it sends",
    ),
    Reason(
        reason="NO_SHARED_GROUPS", category=Category.NEGOTIATION,
        alert="handshake_failure", topic=Topic.NONE,
        what="no key-exchange group (curve) in common with the peer",
        fix="enable X25519 or P-256 on the peer",
    ),
    Reason(
        reason="MISSING_EXTENSION", category=Category.NEGOTIATION,
        alert="missing_extension", topic=Topic.NONE,
        what="the peer left out a TLS extension this version requires",
        fix="check the peer: its ClientHello is incomplete",
    ),
    Reason(
        reason="TLSV13_ALERT_CERTIFICATE_REQUIRED", category=Category.REJECTED_BY_PEER,
        alert="certificate_required", topic=Topic.NONE,
        what="the {peer} requires a client certificate and we sent none",
        fix="pass --cert and --key (or set [client] cert and key)",
    ),
    Reason(
        reason="TLSV1_ALERT_UNKNOWN_CA", category=Category.REJECTED_BY_PEER,
        alert="unknown_ca", topic=Topic.ISSUER,
        what="the {peer} does not trust the CA that issued our certificate",
        fix="present a certificate issued by the CA the {peer} trusts (its 'ca' setting), and send the "
        "intermediate with it (a -chain.pem file)",
    ),
    Reason(
        reason="SSLV3_ALERT_BAD_CERTIFICATE", category=Category.REJECTED_BY_PEER,
        alert="bad_certificate", topic=Topic.VALIDITY,
        what="the {peer} rejected our certificate (bad_certificate: often missing, malformed or no client "
        "certificate under TLS 1.2)",
        fix="present a client certificate from the trusted CA with --cert/--key; check it with 'mtls-certs "
        "verify CERT --purpose client'",
    ),
    Reason(
        reason="SSLV3_ALERT_CERTIFICATE_EXPIRED", category=Category.REJECTED_BY_PEER,
        alert="certificate_expired", topic=Topic.VALIDITY,
        what="the {peer} says our certificate has expired (or is not yet valid)",
        fix="reissue it with 'mtls-certs issue', and check the clocks",
    ),
    Reason(
        reason="SSLV3_ALERT_UNSUPPORTED_CERTIFICATE", category=Category.REJECTED_BY_PEER,
        alert="unsupported_certificate", topic=Topic.PURPOSE,
        what="the {peer} says our certificate may not be used for this purpose (EKU)",
        fix="use a certificate whose extended key usage includes clientAuth ('mtls-certs issue client')",
    ),
    Reason(
        reason="SSLV3_ALERT_CERTIFICATE_REVOKED", category=Category.REJECTED_BY_PEER,
        alert="certificate_revoked", topic=Topic.REVOKED,
        what="the {peer} says our certificate has been revoked",
        fix="ask the CA for a new certificate",
    ),
    Reason(
        reason="SSLV3_ALERT_CERTIFICATE_UNKNOWN", category=Category.REJECTED_BY_PEER,
        alert="certificate_unknown", topic=Topic.NONE,
        what="the {peer} could not accept our certificate",
        fix="check it with 'mtls-certs verify CERT --purpose client' against the {peer}'s CA",
    ),
    Reason(
        reason="TLSV1_ALERT_DECRYPT_ERROR", category=Category.REJECTED_BY_PEER,
        alert="decrypt_error", topic=Topic.NONE,
        what="the {peer} could not verify our CertificateVerify signature",
        fix="make sure --key is the private key of --cert",
    ),
    Reason(
        reason="SSLV3_ALERT_HANDSHAKE_FAILURE", category=Category.REJECTED_BY_PEER,
        alert="handshake_failure", topic=Topic.NONE,
        what="the {peer} found no acceptable parameters (or refused the handshake)",
        fix="compare TLS versions and key types on both sides",
    ),
    Reason(
        reason="TLSV1_ALERT_PROTOCOL_VERSION", category=Category.REJECTED_BY_PEER,
        alert="protocol_version", topic=Topic.NONE,
        what="the {peer} does not accept the TLS versions we offer",
        fix="align tls_min/tls_max (or --tls) with the {peer}",
    ),
    Reason(
        reason="TLSV1_ALERT_ACCESS_DENIED", category=Category.REJECTED_BY_PEER,
        alert="access_denied", topic=Topic.NONE,
        what="the {peer} authenticated us but denies access",
        fix="ask for this identity to be put on the {peer}'s allow-list",
    ),
)


LOCAL_REASONS: Final = MappingProxyType({k: r for k, r in REASONS.items() if not r.received})
PEER_ALERTS: Final = MappingProxyType({r.alert: r for r in REASONS.values() if r.received})

# The alert OpenSSL sends itself for a local failure; None: no alert at all. Only the reasons
# whose alert is known and the same under both TLS versions: a caller that reads "not listed"
# as "unknown" must not be told a version-dependent guess. A plain dict, as it was before it
# was derived, so that its callers type-check unchanged.
SENT_ALERTS: Final[dict[str, str | None]] = {
    r.reason: None if r.alert == NO_ALERT else r.alert
    for r in LOCAL_REASONS.values()
    if r.alert != UNKNOWN_ALERT and r.alert_tls12 is None
}
