"""Revocation: a small record of revoked serials and the CRL the CA signs from it.

``mtls-certs revoke CERT`` adds the certificate to ``revoked.json`` in the PKI
folder and rewrites the CRL; ``mtls-certs crl`` rewrites the CRL alone (a CRL
expires: ``nextUpdate`` is ``crl_days`` ahead, and OpenSSL refuses an expired
one). The file holds one CRL per CA of the chain: the leaf-signing CA's (the
intermediate when there is one) lists the revoked leaves, and is the one
OpenSSL looks up for ``VERIFY_CRL_CHECK_LEAF``; the root's, empty unless an
intermediate is revoked, is what verifiers that check the whole chain (nginx's
``ssl_crl``, ``openssl verify -crl_check_all``) need as well.

Every reader of a CRL file (the server at start and reload, ``mtls-certs
verify``) goes through :func:`read_crl_file`, which refuses a file holding
anything but CRLs.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mtls_ref.shared.core.config import PKIConfig
from mtls_ref.shared.core.errors import CertificateError, ConfigError
from mtls_ref.shared.pki.authority import CertificateAuthority
from mtls_ref.shared.pki.keys import PrivateKey, atomic_write, signature_hash, utcnow

__all__ = [
    "RevokedEntry",
    "build_crl",
    "load_crls",
    "load_revoked",
    "read_crl_file",
    "revoke",
    "write_crl",
]

REVOKED_DB: Final = "revoked.json"
_PEM_LABEL: Final = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")


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


def read_crl_file(
    path: Path, *, role: str | None = None
) -> tuple[bytes, list[x509.CertificateRevocationList]]:
    """The CRL file's bytes and its CRLs, read once, after checking that every PEM block is a CRL.

    The one CRL loader, strict for every reader: OpenSSL's file loader takes
    certificates as well as CRLs from one file, and a certificate loaded that
    way becomes a trust anchor, so a CRL file holding anything but CRLs is an
    error, not something to skip. The bytes are returned so that a caller hands
    OpenSSL what was checked, never the path again (which could have changed in
    between). ``role`` ("server") is the configuration section the path came
    from, named in the errors' fixes.
    """
    what = f"{role} CRL file" if role else "CRL file"
    if role and not path.is_file():
        # Named by the configuration: a configuration error (exit 2). Named on a command line, a
        # missing file is unreadable, as a missing certificate is (exit 3, below).
        raise ConfigError(
            f"{what} {str(path)!r} not found; write one with 'mtls-certs crl', or unset [{role}] crl"
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CertificateError(f"cannot read {what} {str(path)!r}: {exc.strerror}; check the path") from exc
    labels = _PEM_LABEL.findall(data)
    others = sorted({label.decode("ascii", "replace") for label in labels if label != b"X509 CRL"})
    if others:
        where = f"[{role}] ca" if role else "the CA file"
        raise CertificateError(
            f"{what} {str(path)!r} holds {', '.join(others)} besides CRLs; a CRL file must hold "
            f"CRLs only (a certificate there would become a trusted CA): put CA certificates in {where}"
        )
    if not labels:
        raise CertificateError(f"{what} {str(path)!r} holds no PEM CRL ('-----BEGIN X509 CRL-----')")
    blocks = [b for b in data.split(b"-----END X509 CRL-----") if b"-----BEGIN X509 CRL-----" in b]
    try:
        return data, [x509.load_pem_x509_crl(b + b"-----END X509 CRL-----\n") for b in blocks]
    except ValueError as exc:
        raise CertificateError(f"{what} {str(path)!r} holds a CRL that does not parse: {exc}") from exc


def load_crls(path: Path, *, role: str | None = None) -> list[x509.CertificateRevocationList]:
    """Every CRL in a checked CRL file (one per issuing CA; see :func:`read_crl_file`)."""
    return read_crl_file(path, role=role)[1]


def _save_revoked(pki: PKIConfig, entries: list[RevokedEntry]) -> None:
    rows = [
        {"serial": format(e.serial, "X"), "subject": e.subject, "revoked_at": e.revoked_at.isoformat()}
        for e in entries
    ]
    atomic_write(pki.path(REVOKED_DB), json.dumps(rows, indent=2).encode() + b"\n", force=True)


def build_crl(
    issuer: x509.Certificate,
    issuer_key: PrivateKey,
    entries: list[RevokedEntry],
    *,
    now: dt.datetime,
    days: int,
) -> x509.CertificateRevocationList:
    """A CRL signed by ``issuer`` listing ``entries``, valid ``days`` from ``now``."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(now)
        .next_update(now + dt.timedelta(days=days))
        .add_extension(x509.CRLNumber(int(now.timestamp())), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    )
    for entry in entries:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(entry.serial)
            .revocation_date(entry.revoked_at)
            .build()
        )
    return builder.sign(issuer_key, signature_hash(issuer_key))


def write_crl(pki: PKIConfig, ca: CertificateAuthority, *, now: dt.datetime | None = None) -> Path:
    """(Re)write the CRL file from the revocation record, one CRL per CA; returns its path."""
    now = now or utcnow()
    crls = [build_crl(ca.signer_cert, ca.signer_key, load_revoked(pki), now=now, days=pki.crl_days)]
    if ca.chain:
        if ca.root_key is None:
            raise CertificateError(
                f"the root key {str(pki.path(pki.ca_key))!r} is needed to sign the root's CRL "
                "(verifiers that check the whole chain, such as nginx, require one); put it back"
            )
        crls.append(build_crl(ca.root, ca.root_key, [], now=now, days=pki.crl_days))
    path = pki.path(pki.crl)
    atomic_write(path, b"".join(c.public_bytes(serialization.Encoding.PEM) for c in crls), force=True)
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
