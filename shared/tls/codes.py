"""What OpenSSL's failure codes mean: one record per verify code and per OpenSSL reason.

Theory of operation
-------------------
A failed handshake reaches Python as one of two codes:

* a verify code, ``X509_V_ERR_*`` (``ssl.SSLCertVerificationError.verify_code``):
  we refused the peer's certificate;
* OpenSSL's reason (``SSLError.reason``): a local handshake error such as
  ``WRONG_VERSION_NUMBER`` (the peer did not speak TLS, or we share nothing
  with it), or an alert the peer sent, such as ``TLSV1_ALERT_UNKNOWN_CA``.

Everything the project says or records about one code is one frozen record:
the words (what happened, and the fix), the category, the alert on the wire,
and the certificate fact (:class:`Topic`) that explains it. The verify codes
are :data:`VERIFY_CODES` below, the reasons :data:`.reasons.REASONS`. A new
code is one record; the lookups by alert and ``SENT_ALERTS`` are derived, and
:mod:`.diagnose` turns a record into a sentence. Every record states every
field, so that the tables read as tables.

The alert is the peer's for a received alert, otherwise the one OpenSSL
sends: its ``ssl_x509err2alert()`` (``ssl/statem/statem_lib.c``;
``bad_certificate`` for codes it does not list), or the ``SSLfatal()`` that
raises the reason; ``"none"`` when it sends none, ``"unknown"`` when that
depends on where the error arose (the words of the server's log). A log shows
it where the engine does not report the alert it sent (the openssl engine
without ``--trace``). One entry differs from OpenSSL and is kept as it was
until a test pins the alert on the wire: for ``INVALID_CA`` (24) OpenSSL's
table says ``unknown_ca``.

Words hold ``{peer}`` ("client" or "server", the other side), and a verify
record's also ``{eku}`` (the EKU the peer's role needs) and ``{role}``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, TypeVar

__all__ = [
    "NO_ALERT",
    "UNKNOWN_ALERT",
    "VERIFY_CODES",
    "Category",
    "Reason",
    "Topic",
    "VerifyCode",
    "alert_from_reason",
    "index_records",
]

NO_ALERT: Final = "none"  # OpenSSL sends no alert (bytes that are not TLS get none)
UNKNOWN_ALERT: Final = "unknown"  # which alert OpenSSL sends depends on where the error arose
_ALERT_PREFIXES: Final = ("SSLV3_ALERT_", "TLSV1_ALERT_", "TLSV13_ALERT_")


class Category(enum.Enum):
    """Coarse outcome, which also picks the client's exit code."""

    PEER_UNTRUSTED = "peer-untrusted"  # we refused the peer's certificate
    REJECTED_BY_PEER = "rejected-by-peer"  # the peer refused our certificate (or its absence)
    NEGOTIATION = "negotiation"  # versions, ciphers, not TLS at all
    CLOSED = "closed"  # the peer went away
    OTHER = "other"


class Topic(enum.StrEnum):
    """Which certificate fact explains a failure (see ``diagnose.certificate_fact``)."""

    ISSUER = "issuer"
    VALIDITY = "validity"
    PURPOSE = "purpose"
    REVOKED = "revoked"
    NONE = "none"  # no fact about the certificate explains it


def alert_from_reason(reason: str | None) -> str | None:
    """``TLSV1_ALERT_UNKNOWN_CA`` -> ``unknown_ca``; None when the reason is not an alert received."""
    for prefix in _ALERT_PREFIXES:
        if reason and reason.startswith(prefix):
            return reason[len(prefix) :].lower()
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyCode:
    """A local certificate verification error: we refused the peer's certificate."""

    code: int
    name: str  # X509_V_ERR_<name>, for people reading the table
    alert: str  # what OpenSSL sends
    topic: Topic
    what: str  # what happened
    fix: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Reason:
    """An OpenSSL reason: a local handshake error, or an alert the peer sent (its reason names it)."""

    reason: str
    category: Category
    alert: str  # the alert received, or the one OpenSSL sends (or NO_ALERT, UNKNOWN_ALERT)
    topic: Topic
    what: str
    fix: str
    alert_tls12: str | None = None  # where OpenSSL's TLS 1.2 code sends another alert

    def __post_init__(self) -> None:
        received = alert_from_reason(self.reason)
        if received is not None and received != self.alert:
            raise ValueError(f"{self.reason} is the alert {received}, not {self.alert}")

    @property
    def received(self) -> bool:
        """The peer sent this alert (rather than OpenSSL failing here)."""
        return alert_from_reason(self.reason) is not None


_R = TypeVar("_R")
_K = TypeVar("_K")


def index_records(code: Callable[[_R], _K], *records: _R) -> Mapping[_K, _R]:
    """Records by their code; a code listed twice is a slip in the table, caught at import."""
    table: dict[_K, _R] = {}
    for record in records:
        if code(record) in table:
            raise ValueError(f"{code(record)!r} has two records in {__name__}")
        table[code(record)] = record
    return MappingProxyType(table)


VERIFY_CODES: Final = index_records(
    lambda record: record.code,
    VerifyCode(
        code=2, name="UNABLE_TO_GET_ISSUER_CERT", alert="unknown_ca", topic=Topic.ISSUER,
        what="the {peer}'s issuer certificate is missing",
        fix="the {peer} must send its intermediate (a chain file)",
    ),
    VerifyCode(
        code=9, name="CERT_NOT_YET_VALID", alert="bad_certificate", topic=Topic.VALIDITY,
        what="the {peer}'s certificate is not yet valid",
        fix="check the clocks, or reissue it with a start in the past",
    ),
    VerifyCode(
        code=10, name="CERT_HAS_EXPIRED", alert="certificate_expired", topic=Topic.VALIDITY,
        what="the {peer}'s certificate has expired",
        fix="reissue it with 'mtls-certs issue'",
    ),
    VerifyCode(
        code=18, name="DEPTH_ZERO_SELF_SIGNED_CERT", alert="unknown_ca", topic=Topic.ISSUER,
        what="the {peer}'s certificate is self-signed",
        fix="issue the {peer}'s certificate from the CA we trust (--ca), not self-signed",
    ),
    VerifyCode(
        code=19, name="SELF_SIGNED_CERT_IN_CHAIN", alert="unknown_ca", topic=Topic.ISSUER,
        what="the {peer}'s chain ends in a CA we do not trust",
        fix="point --ca at the CA that issued the {peer}'s certificate",
    ),
    VerifyCode(
        code=20, name="UNABLE_TO_GET_ISSUER_CERT_LOCALLY", alert="unknown_ca", topic=Topic.ISSUER,
        what="the {peer}'s certificate was not issued by a CA we trust (or its intermediate was not sent)",
        fix="point --ca at the CA that issued it, and have the {peer} send its chain file",
    ),
    VerifyCode(
        code=21, name="UNABLE_TO_VERIFY_LEAF_SIGNATURE", alert="unknown_ca", topic=Topic.ISSUER,
        what="the {peer} sent only its leaf; the intermediate is missing",
        fix="configure the {peer} with its -chain.pem file (leaf + intermediate)",
    ),
    VerifyCode(
        code=23, name="CERT_REVOKED", alert="certificate_revoked", topic=Topic.REVOKED,
        what="the {peer}'s certificate has been revoked",
        fix="the {peer} needs a new certificate",
    ),
    VerifyCode(
        code=24, name="INVALID_CA", alert="bad_certificate", topic=Topic.PURPOSE,
        what="a CA in the {peer}'s chain is not allowed to sign (not a CA)",
        fix="reissue from a real CA",
    ),
    VerifyCode(
        code=26, name="INVALID_PURPOSE", alert="unsupported_certificate", topic=Topic.PURPOSE,
        what="the {peer}'s certificate is not for this purpose (its EKU lacks {eku})",
        fix="reissue it with the right role ('mtls-certs issue {role} ...')",
    ),
    VerifyCode(
        code=62, name="HOSTNAME_MISMATCH", alert="bad_certificate", topic=Topic.NONE,
        what="the {peer}'s certificate does not name the host we connected to",
        fix="connect with the name in its SANs (--server-name), or reissue it with --san DNS:<host>",
    ),
    VerifyCode(
        code=64, name="IP_ADDRESS_MISMATCH", alert="bad_certificate", topic=Topic.NONE,
        what="the {peer}'s certificate does not name the IP address we connected to",
        fix="reissue it with --san IP:<address>, or connect by a name it carries",
    ),
)
