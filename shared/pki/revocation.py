"""Revocation: a small record of revoked serials and the CRL the CA signs from it.

``mtls-certs revoke CERT`` adds the certificate to ``revoked.json`` in the PKI
folder and rewrites the CRL; ``mtls-certs crl`` rewrites the CRL alone (a CRL
expires: ``nextUpdate`` is ``crl_days`` ahead, and OpenSSL refuses an expired
one). The CRL is signed by the CA that signs the leaves (the intermediate when
there is one), which is whose CRL OpenSSL looks up for ``VERIFY_CRL_CHECK_LEAF``.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mtls_ref.shared.core.config import PKIConfig
from mtls_ref.shared.core.errors import CertificateError
from mtls_ref.shared.pki.authority import CertificateAuthority
from mtls_ref.shared.pki.keys import atomic_write, signature_hash, utcnow

__all__ = ["RevokedEntry", "build_crl", "load_crls", "load_revoked", "revoke", "write_crl"]

REVOKED_DB: Final = "revoked.json"


@dataclass(frozen=True, slots=True, kw_only=True)
class RevokedEntry:
    serial: int
    subject: str
    revoked_at: dt.datetime


def load_revoked(pki: PKIConfig) -> list[RevokedEntry]:
    path = pki.path(REVOKED_DB)
    if not path.exists():
        return []
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
        return [
            RevokedEntry(
                serial=int(r["serial"], 16),
                subject=r["subject"],
                revoked_at=dt.datetime.fromisoformat(r["revoked_at"]),
            )
            for r in rows
        ]
    except (ValueError, KeyError, TypeError) as exc:
        raise CertificateError(f"{str(path)!r} is not a revocation list this tool wrote: {exc}") from exc


def load_crls(path: Path) -> list[x509.CertificateRevocationList]:
    """Every CRL in a PEM file (a server's CRL file may hold one per issuing CA)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CertificateError(f"cannot read CRL {str(path)!r}: {exc.strerror}; check the path") from exc
    blocks = [b for b in data.split(b"-----END X509 CRL-----") if b"-----BEGIN X509 CRL-----" in b]
    try:
        return [x509.load_pem_x509_crl(b + b"-----END X509 CRL-----\n") for b in blocks]
    except ValueError as exc:
        raise CertificateError(f"{str(path)!r} holds a CRL that does not parse: {exc}") from exc


def _save_revoked(pki: PKIConfig, entries: list[RevokedEntry]) -> None:
    rows = [
        {"serial": format(e.serial, "X"), "subject": e.subject, "revoked_at": e.revoked_at.isoformat()}
        for e in entries
    ]
    atomic_write(pki.path(REVOKED_DB), json.dumps(rows, indent=2).encode() + b"\n", force=True)


def build_crl(
    ca: CertificateAuthority, entries: list[RevokedEntry], *, now: dt.datetime, days: int
) -> x509.CertificateRevocationList:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.signer_cert.subject)
        .last_update(now)
        .next_update(now + dt.timedelta(days=days))
        .add_extension(x509.CRLNumber(int(now.timestamp())), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.signer_key.public_key()), critical=False
        )
    )
    for entry in entries:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(entry.serial)
            .revocation_date(entry.revoked_at)
            .build()
        )
    return builder.sign(ca.signer_key, signature_hash(ca.signer_key))


def write_crl(pki: PKIConfig, ca: CertificateAuthority, *, now: dt.datetime | None = None) -> Path:
    """(Re)write the CRL from the revocation record; returns its path."""
    crl = build_crl(ca, load_revoked(pki), now=now or utcnow(), days=pki.crl_days)
    path = pki.path(pki.crl)
    atomic_write(path, crl.public_bytes(serialization.Encoding.PEM), force=True)
    return path


def revoke(
    pki: PKIConfig, ca: CertificateAuthority, cert: x509.Certificate, *, now: dt.datetime | None = None
) -> Path:
    """Record ``cert`` as revoked and rewrite the CRL."""
    if cert.issuer != ca.signer_cert.subject:
        raise CertificateError(
            f"{cert.subject.rfc4514_string()} was issued by {cert.issuer.rfc4514_string()}, not by this "
            f"CA's signer {ca.signer_cert.subject.rfc4514_string()}; revoke it with the CA that issued it"
        )
    now = now or utcnow()
    entries = load_revoked(pki)
    if all(e.serial != cert.serial_number for e in entries):
        entries.append(
            RevokedEntry(serial=cert.serial_number, subject=cert.subject.rfc4514_string(), revoked_at=now)
        )
        _save_revoked(pki, entries)
    return write_crl(pki, ca, now=now)
