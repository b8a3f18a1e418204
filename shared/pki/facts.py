"""Facts about a certificate: valid now?, fit for a role?, where is its issuer?, revoked?

Theory of operation
-------------------
Two readers ask the same questions of a certificate. ``mtls-certs verify``
(:func:`~mtls_ref.shared.pki.inspect.check_certificate`) asks them before
anything runs; the runtime diagnosis (:mod:`mtls_ref.shared.tls.diagnose`)
asks them after OpenSSL refused a handshake, to show the value behind the
verdict. They word the answers differently (a check line with its fix, one
sentence in a refusal), so the answers here are frozen values, never words:
each function takes certificates and, where time matters, ``now``; none
reads a clock, a file or the network, so a test pins the time a second
either side of a boundary.

At runtime OpenSSL stays the judge: these functions explain its verdict and do
not re-implement its policy (no signature algorithms, no name constraints).
Offline they are the whole judgement: the validity period includes both ends
(RFC 5280 §4.1.2.5), a certificate without an EKU extension fits any purpose
(RFC 5280 §4.2.1.12), and a CA certificate is never a leaf.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from mtls_ref.shared.pki.authority import verify_signed_by
from mtls_ref.shared.pki.keys import PrivateKey

__all__ = [
    "EKU_NAMES",
    "MAX_CHAIN_DEPTH",
    "PURPOSE_EKU",
    "ChainPath",
    "Namesake",
    "PurposeFit",
    "Revocation",
    "SentIssuer",
    "Timing",
    "Validity",
    "basic_constraints",
    "chain_to_anchor",
    "eku_names",
    "key_matches",
    "namesake",
    "purpose_fit",
    "revocation",
    "self_issued",
    "sent_issuer",
    "validity",
]

# The EKUs a person may meet, by the names openssl prints (RFC 5280 §4.2.1.12); others show dotted.
EKU_NAMES: Final[Mapping[x509.ObjectIdentifier, str]] = MappingProxyType(
    {
        ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
        ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
        ExtendedKeyUsageOID.CODE_SIGNING: "codeSigning",
        ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
        ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping",
        ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
    }
)
# The EKU each TLS role needs: OpenSSL checks a client chain for "SSL client" and a server's for
# "SSL server" (X509_PURPOSE_SSL_CLIENT / _SERVER).
PURPOSE_EKU: Final[Mapping[str, x509.ObjectIdentifier]] = MappingProxyType(
    {"client": ExtendedKeyUsageOID.CLIENT_AUTH, "server": ExtendedKeyUsageOID.SERVER_AUTH}
)
# Issuer links followed from a leaf towards a trust anchor. Our PKI is two deep and public ones
# four or five; the bound keeps a walk over a hostile pool of certificates finite.
MAX_CHAIN_DEPTH: Final = 8


# --- validity ---------------------------------------------------------------------


class Timing(enum.Enum):
    NOT_YET_VALID = "not yet valid"
    VALID = "valid"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True, kw_only=True)
class Validity:
    """Where ``now`` falls in a certificate's validity period."""

    timing: Timing
    not_before: dt.datetime
    not_after: dt.datetime
    now: dt.datetime

    @property
    def days_left(self) -> int:
        """Whole days until notAfter (negative once expired)."""
        return (self.not_after - self.now).days

    @property
    def days_expired(self) -> int:
        """Whole days since notAfter (0 within the first day)."""
        return (self.now - self.not_after).days


def validity(cert: x509.Certificate, *, now: dt.datetime) -> Validity:
    """Whether ``cert`` is valid at ``now``; both ends of the period are inside it."""
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    timing = Timing.NOT_YET_VALID if now < start else Timing.EXPIRED if now > end else Timing.VALID
    return Validity(timing=timing, not_before=start, not_after=end, now=now)


# --- purpose ----------------------------------------------------------------------


def basic_constraints(cert: x509.Certificate) -> str | None:
    """``CA:FALSE``, ``CA:TRUE`` or ``CA:TRUE, pathlen:N`` as openssl prints it; None when absent."""
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return None
    if not bc.ca:
        return "CA:FALSE"
    return "CA:TRUE" + (f", pathlen:{bc.path_length}" if bc.path_length is not None else "")


def eku_names(cert: x509.Certificate) -> tuple[str, ...] | None:
    """The extended key usages by name (dotted when unnamed); None when the extension is absent."""
    try:
        ekus = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return None
    return tuple(EKU_NAMES.get(oid, oid.dotted_string) for oid in ekus)


@dataclass(frozen=True, slots=True, kw_only=True)
class PurposeFit:
    """Whether a certificate may serve as a ``purpose`` ("client" or "server") leaf."""

    purpose: str
    wanted: str  # the EKU name the role needs, e.g. "clientAuth"
    basic_constraints: str | None
    ekus: tuple[str, ...] | None  # None: no EKU extension, so any purpose

    @property
    def is_ca(self) -> bool:
        return self.basic_constraints not in (None, "CA:FALSE")

    @property
    def lacks_eku(self) -> bool:
        return self.ekus is not None and self.wanted not in self.ekus

    @property
    def ok(self) -> bool:
        return not self.is_ca and not self.lacks_eku


def purpose_fit(cert: x509.Certificate, purpose: str) -> PurposeFit:
    """How ``cert`` fits the ``purpose`` role; ``purpose`` is a key of :data:`PURPOSE_EKU`."""
    return PurposeFit(
        purpose=purpose,
        wanted=EKU_NAMES[PURPOSE_EKU[purpose]],
        basic_constraints=basic_constraints(cert),
        ekus=eku_names(cert),
    )


# --- the issuer -------------------------------------------------------------------


def self_issued(cert: x509.Certificate) -> bool:
    """Its issuer is its own name: nothing above it can be found, only trusted as it is."""
    return cert.issuer == cert.subject


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainPath:
    """The issuer links followed from a leaf: ``walked`` starts at it, ``anchor`` ends it if reached."""

    walked: tuple[x509.Certificate, ...]
    anchor: x509.Certificate | None

    @property
    def stuck_at(self) -> x509.Certificate:
        """The last certificate reached (its issuer is the one not found when ``anchor`` is None)."""
        return self.walked[-1]


def chain_to_anchor(
    leaf: x509.Certificate, *, pool: Sequence[x509.Certificate], trust: Sequence[x509.Certificate]
) -> ChainPath:
    """Follow signatures from ``leaf`` through ``pool`` until one of ``trust`` signed the last one."""
    walked = [leaf]
    for _ in range(MAX_CHAIN_DEPTH):
        current = walked[-1]
        anchor = next((a for a in trust if verify_signed_by(current, a)), None)
        if anchor is not None:
            return ChainPath(walked=tuple(walked), anchor=anchor)
        parent = next((c for c in pool if c is not current and verify_signed_by(current, c)), None)
        if parent is None:
            break
        walked.append(parent)
    return ChainPath(walked=tuple(walked), anchor=None)


class SentIssuer(enum.Enum):
    """What a peer receiving ``chain`` has of the leaf's issuer: peers build the path from what is sent."""

    NOT_NEEDED = "not needed"  # self-issued, or issued directly by a trust anchor
    SENT = "sent"  # a certificate sent with the leaf issued it
    MISSING = "missing"


def sent_issuer(chain: Sequence[x509.Certificate], trust: Sequence[x509.Certificate]) -> SentIssuer:
    """Whether ``chain`` (leaf first, as sent) carries what ``trust`` needs to reach the leaf."""
    leaf = chain[0]
    if self_issued(leaf) or any(verify_signed_by(leaf, anchor) for anchor in trust):
        return SentIssuer.NOT_NEEDED
    if any(verify_signed_by(leaf, cert) for cert in chain[1:]):
        return SentIssuer.SENT
    return SentIssuer.MISSING


@dataclass(frozen=True, slots=True, kw_only=True)
class Namesake:
    """A trusted CA with the issuer name a certificate gives, whose key did not sign it.

    The usual cause: the CA was made again ('mtls-certs init') under the same
    name, so the key ids (8 hex digits each, '?' when the extension is absent)
    are what tells the two apart.
    """

    trusted: x509.Certificate
    named_key_id: str  # the certificate's authorityKeyIdentifier
    trusted_key_id: str  # the trusted CA's subjectKeyIdentifier


def namesake(cert: x509.Certificate, trusted: Sequence[x509.Certificate]) -> Namesake | None:
    """The trusted CA that shares ``cert``'s issuer name without having signed it, if that is the case."""
    same_name = [ca for ca in trusted if ca.subject == cert.issuer]
    if not same_name or any(verify_signed_by(cert, ca) for ca in same_name):
        return None
    ca = same_name[0]
    return Namesake(trusted=ca, named_key_id=_key_id(cert), trusted_key_id=_key_id(ca, own=True))


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


# --- revocation and key -------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Revocation:
    """What the CRLs at hand say of a certificate; a verifier without its issuer's CRL refuses it."""

    issuer_has_crl: bool
    revoked_at: dt.datetime | None  # None: not listed


def revocation(cert: x509.Certificate, crls: Sequence[x509.CertificateRevocationList]) -> Revocation:
    """Look ``cert`` up in the CRLs its issuer (by name, as OpenSSL picks them) signed."""
    mine = [crl for crl in crls if crl.issuer == cert.issuer]
    for crl in mine:
        entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
        if entry is not None:
            return Revocation(issuer_has_crl=True, revoked_at=entry.revocation_date_utc)
    return Revocation(issuer_has_crl=bool(mine), revoked_at=None)


def key_matches(cert: x509.Certificate, key: PrivateKey) -> bool:
    """Whether ``key`` is the private half of ``cert``'s public key."""
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return cert.public_key().public_bytes(*fmt) == key.public_key().public_bytes(*fmt)
