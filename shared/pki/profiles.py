"""Role profiles: what a certificate is for decides its extensions, never the request.

A root or intermediate gets basicConstraints CA and keyCertSign/cRLSign; a leaf
gets digitalSignature and the one extended key usage of its role: server leaves
serverAuth only, client leaves clientAuth only, because strict verifiers reject
leaves that claim every purpose (trustme puts every EKU in every leaf; we do
not). :class:`LeafOptions` departs from a profile on purpose, to make the bad
credentials of ``mtls-certs badset``.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID

from mtls_ref.shared.core.errors import CertificateError
from mtls_ref.shared.pki.keys import PrivateKey, signature_hash

__all__ = ["LeafOptions", "Profile", "build_certificate"]


class Profile(enum.Enum):
    """What a certificate is for; decides its extensions."""

    ROOT = "root"
    INTERMEDIATE = "intermediate"
    SERVER = "server"
    CLIENT = "client"

    @property
    def is_ca(self) -> bool:
        return self in (Profile.ROOT, Profile.INTERMEDIATE)


@dataclass(frozen=True, slots=True, kw_only=True)
class LeafOptions:
    """Deliberate departures from a profile, to reproduce bad credentials on purpose.

    ``ekus``: None keeps the role's EKU, an empty tuple omits the extension.
    A negative ``days`` (see :meth:`validity`) makes a certificate that has
    already expired.
    """

    not_before: dt.datetime | None = None
    not_after: dt.datetime | None = None
    ekus: tuple[x509.ObjectIdentifier, ...] | None = None

    def validity(self, now: dt.datetime, days: int) -> tuple[dt.datetime, dt.datetime]:
        not_after = self.not_after or now + dt.timedelta(days=days)
        not_before = self.not_before or min(now, not_after - dt.timedelta(days=1))
        if not_before >= not_after:
            raise CertificateError(
                f"validity would be empty: not before {not_before:%Y-%m-%d %H:%M} is not earlier than "
                f"not after {not_after:%Y-%m-%d %H:%M}; fix --not-before/--not-after/--days"
            )
        return not_before, not_after


def build_certificate(
    *,
    subject: x509.Name,
    public_key: CertificatePublicKeyTypes,
    issuer: x509.Name,
    issuer_key: PrivateKey,
    profile: Profile,
    sans: Sequence[x509.GeneralName] = (),
    now: dt.datetime,
    days: int,
    path_length: int | None = None,
    serial: int | None = None,
    options: LeafOptions | None = None,
) -> x509.Certificate:
    """Sign one certificate; validity runs from ``now`` for ``days`` days unless ``options`` say otherwise."""
    options = options or LeafOptions()
    not_before, not_after = options.validity(now, days)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(serial if serial is not None else x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    for ext, critical in _extensions(
        profile=profile,
        public_key=public_key,
        issuer_key=issuer_key,
        sans=sans,
        path_length=path_length,
        ekus=options.ekus,
    ):
        builder = builder.add_extension(ext, critical=critical)
    return builder.sign(issuer_key, signature_hash(issuer_key))


def _extensions(
    *,
    profile: Profile,
    public_key: CertificatePublicKeyTypes,
    issuer_key: PrivateKey,
    sans: Sequence[x509.GeneralName],
    path_length: int | None,
    ekus: Sequence[x509.ObjectIdentifier] | None,
) -> list[tuple[x509.ExtensionType, bool]]:
    """The profile's extensions as (value, critical), per RFC 5280 §4.2."""
    exts: list[tuple[x509.ExtensionType, bool]] = []
    if profile.is_ca:
        exts.append((x509.BasicConstraints(ca=True, path_length=path_length), True))
        exts.append((_key_usage(cert_sign=True), True))
    else:
        exts.append((x509.BasicConstraints(ca=False, path_length=None), True))
        exts.append((_key_usage(digital_signature=True), True))
        if ekus is None:
            role_eku = (
                ExtendedKeyUsageOID.SERVER_AUTH
                if profile is Profile.SERVER
                else ExtendedKeyUsageOID.CLIENT_AUTH
            )
            ekus = [role_eku]
        if ekus:
            exts.append((x509.ExtendedKeyUsage(list(ekus)), False))
        if sans:
            # Non-critical: the subject is not empty, so RFC 5280 §4.2.1.6 does not ask for critical.
            exts.append((x509.SubjectAlternativeName(list(sans)), False))
    exts.append((x509.SubjectKeyIdentifier.from_public_key(public_key), False))
    exts.append((x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False))
    return exts


def _key_usage(*, cert_sign: bool = False, digital_signature: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )
