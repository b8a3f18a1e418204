"""Describe certificates, CSRs and keys for people and scripts, and check them offline.

``describe_file`` is the ``openssl x509 -text -noout`` of this project, minus the
hex dumps: the fields people actually read, plus days left and a fingerprint.
A private key is described by type, size and public-key fingerprint only: no
key material ever reaches the output.

``check_certificate`` is ``mtls-certs verify``: chain, validity, purpose, key
match, SANs; each failure one :class:`Check` with the fix.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from mtls_ref.shared.core.errors import CertificateError
from mtls_ref.shared.pki.authority import verify_signed_by
from mtls_ref.shared.pki.bundle import read_bundle
from mtls_ref.shared.pki.keys import (
    PrivateKey,
    describe_key,
    load_certificates,
    load_csr,
    load_private_key,
    utcnow,
)

__all__ = [
    "Check",
    "Report",
    "check_certificate",
    "describe_certificate",
    "describe_file",
    "fingerprint",
    "render_report",
]

_EKU_NAMES = {
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    ExtendedKeyUsageOID.CODE_SIGNING: "codeSigning",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
    ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
}
_KEY_USAGE_FIELDS = (
    ("digital_signature", "digitalSignature"),
    ("content_commitment", "nonRepudiation"),
    ("key_encipherment", "keyEncipherment"),
    ("data_encipherment", "dataEncipherment"),
    ("key_agreement", "keyAgreement"),
    ("key_cert_sign", "keyCertSign"),
    ("crl_sign", "cRLSign"),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """What a file is and its readable fields (one entry per certificate in a chain)."""

    path: str
    kind: str  # "certificate", "chain", "csr", "private key"
    items: tuple[dict[str, Any], ...]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str)


def fingerprint(der: bytes) -> str:
    """SHA-256 fingerprint, colon-separated upper-case hex as openssl prints it."""
    digest = hashes.Hash(hashes.SHA256())
    digest.update(der)
    return digest.finalize().hex(":").upper()


def format_san(name: x509.GeneralName) -> str:
    """A SAN the way openssl and our ``--san`` flags spell it."""
    prefixes = {
        x509.DNSName: "DNS",
        x509.IPAddress: "IP",
        x509.UniformResourceIdentifier: "URI",
        x509.RFC822Name: "email",
    }
    for cls, prefix in prefixes.items():
        if isinstance(name, cls):
            return f"{prefix}:{name.value}"
    return str(name.value)


def _sans(exts: x509.Extensions) -> list[str]:
    try:
        return [format_san(n) for n in exts.get_extension_for_class(x509.SubjectAlternativeName).value]
    except x509.ExtensionNotFound:
        return []


def _ekus(cert: x509.Certificate) -> list[str] | None:
    try:
        ext = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return None
    return [_EKU_NAMES.get(oid, oid.dotted_string) for oid in ext]


def _key_usage(cert: x509.Certificate) -> list[str] | None:
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None
    return [label for attr, label in _KEY_USAGE_FIELDS if getattr(usage, attr)]


def _basic_constraints(cert: x509.Certificate) -> str | None:
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return None
    if not bc.ca:
        return "CA:FALSE"
    return "CA:TRUE" + (f", pathlen:{bc.path_length}" if bc.path_length is not None else "")


def describe_certificate(cert: x509.Certificate, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """The fields a person checks, as plain data."""
    now = now or utcnow()
    not_after = cert.not_valid_after_utc
    der = cert.public_bytes(serialization.Encoding.DER)
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "serial": format(cert.serial_number, "X"),
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": not_after.isoformat(),
        "days_left": (not_after - now).days,
        "key": describe_key(cert.public_key()),
        "signature_algorithm": cert.signature_algorithm_oid._name,
        "sans": _sans(cert.extensions),
        "extended_key_usage": _ekus(cert),
        "key_usage": _key_usage(cert),
        "basic_constraints": _basic_constraints(cert),
        "sha256_fingerprint": fingerprint(der),
    }


def _describe_csr(csr: x509.CertificateSigningRequest) -> dict[str, Any]:
    return {
        "subject": csr.subject.rfc4514_string(),
        "key": describe_key(csr.public_key()),
        "requested_sans": _sans(csr.extensions),
        "signature_valid": csr.is_signature_valid,
    }


def _describe_key(key: PrivateKey, encrypted: bool) -> dict[str, Any]:
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {
        "key": describe_key(key),
        "encrypted": encrypted,
        # Fingerprint of the *public* half: lets a person match key to certificate.
        "public_key_sha256": fingerprint(spki),
    }


def describe_file(path: Path, *, passphrase: bytes | None = None, now: dt.datetime | None = None) -> Report:
    """Recognise a PEM file by its armour (or a PKCS#12 bundle) and describe what it holds."""
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise CertificateError(f"cannot read {str(path)!r}: {exc.strerror}; check the path") from exc
    if path.suffix.lower() in (".p12", ".pfx") or (text[:1] == b"\x30" and b"-----BEGIN" not in text):
        return _describe_bundle(path, passphrase, now)
    if b"PRIVATE KEY-----" in text:
        encrypted = b"ENCRYPTED" in text
        if encrypted and passphrase is None:
            return Report(path=str(path), kind="private key", items=({"encrypted": True},))
        key = load_private_key(path, passphrase)
        return Report(path=str(path), kind="private key", items=(_describe_key(key, encrypted),))
    if b"CERTIFICATE REQUEST-----" in text:
        return Report(path=str(path), kind="csr", items=(_describe_csr(load_csr(path)),))
    certs = load_certificates(path)
    items = tuple(describe_certificate(c, now=now) for c in certs)
    return Report(path=str(path), kind="chain" if len(certs) > 1 else "certificate", items=items)


_DESCRIBED_KEYS = (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)


def _describe_bundle(path: Path, passphrase: bytes | None, now: dt.datetime | None) -> Report:
    bundle = read_bundle(path, passphrase)
    contents: dict[str, Any] = {
        "friendly_name": bundle.name,
        "private_key": describe_key(bundle.key) if isinstance(bundle.key, _DESCRIBED_KEYS) else None,
        "certificates": (1 if bundle.cert else 0) + len(bundle.chain),
    }
    certs = [c for c in (bundle.cert, *bundle.chain) if c is not None]
    items = (contents, *(describe_certificate(c, now=now) for c in certs))
    return Report(path=str(path), kind="PKCS#12 bundle", items=items)


_LABELS = {
    "friendly_name": "Friendly name",
    "private_key": "Private key",
    "certificates": "Certificates",
    "subject": "Subject",
    "issuer": "Issuer",
    "serial": "Serial",
    "not_before": "Not before",
    "not_after": "Not after",
    "days_left": "Days left",
    "key": "Public key",
    "signature_algorithm": "Signature",
    "sans": "Subject alt names",
    "requested_sans": "Requested SANs",
    "extended_key_usage": "Extended key usage",
    "key_usage": "Key usage",
    "basic_constraints": "Basic constraints",
    "sha256_fingerprint": "SHA-256 fingerprint",
    "signature_valid": "Signature valid",
    "encrypted": "Encrypted",
    "public_key_sha256": "Public key SHA-256",
}


def render_report(report: Report) -> str:
    """The text form of :class:`Report`, one ``Label: value`` per line."""
    lines = [f"{report.path}: {report.kind}"]
    for index, item in enumerate(report.items):
        if report.kind == "chain":
            lines.append(f"[{index}] {'leaf' if index == 0 else 'issuer'}")
        for key, value in item.items():
            if isinstance(value, list):
                shown = ", ".join(value) if value else "(none)"
            elif value is None:
                shown = "(absent)"
            else:
                shown = str(value)
            lines.append(f"  {_LABELS.get(key, key) + ':':<22}{shown}")
    return "\n".join(lines)


# --- offline verification ------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    """One verification step: what was checked, whether it passed, and the fix if not."""

    name: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        mark = "ok  " if self.ok else "FAIL"
        return f"{mark} {self.name}: {self.detail}" + (f" -> {self.fix}" if self.fix else "")


_PURPOSE_EKU = {"client": ExtendedKeyUsageOID.CLIENT_AUTH, "server": ExtendedKeyUsageOID.SERVER_AUTH}


def check_certificate(
    chain: Sequence[x509.Certificate],
    *,
    trust: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate] = (),
    key: PrivateKey | None = None,
    purpose: str | None = None,
    crls: Sequence[x509.CertificateRevocationList] = (),
    now: dt.datetime | None = None,
) -> list[Check]:
    """Check a leaf (``chain[0]``) against trust anchors; never stops at the first failure."""
    now = now or utcnow()
    leaf = chain[0]
    checks = [_check_chain(leaf, [*chain[1:], *intermediates], trust, now)]
    checks.append(_check_sent_chain(chain, trust))
    checks.append(_check_validity(leaf, now))
    if purpose is not None:
        checks.append(_check_purpose(leaf, purpose))
    if crls:
        checks.append(_check_revocation(leaf, crls))
    if key is not None:
        checks.append(_check_key(leaf, key))
    sans = _sans(leaf.extensions)
    checks.append(
        Check(name="subjectAltName", ok=True, detail=", ".join(sans))
        if sans
        else Check(
            name="subjectAltName",
            ok=False,
            detail="absent; modern clients ignore the CN",
            fix="reissue with --san DNS:<host> (server) or --san URI:/email: (client)",
        )
    )
    return checks


def _check_chain(
    leaf: x509.Certificate,
    pool: Sequence[x509.Certificate],
    trust: Sequence[x509.Certificate],
    now: dt.datetime,
) -> Check:
    """Walk issuer links from the leaf to a trust anchor (at most 8 hops)."""
    current, path = leaf, [leaf.subject.rfc4514_string()]
    for _ in range(8):
        for anchor in trust:
            if verify_signed_by(current, anchor):
                path.append(anchor.subject.rfc4514_string())
                if anchor.not_valid_after_utc < now:
                    return Check(
                        name="chain",
                        ok=False,
                        detail=f"trust anchor expired on {anchor.not_valid_after_utc:%Y-%m-%d}",
                        fix="create a new CA with 'mtls-certs init' and reissue",
                    )
                return Check(name="chain", ok=True, detail=" <- ".join(path))
        parent = next((c for c in pool if c is not current and verify_signed_by(current, c)), None)
        if parent is None:
            break
        path.append(parent.subject.rfc4514_string())
        current = parent
    trusted = "; ".join(a.subject.rfc4514_string() for a in trust)
    issuer = current.issuer.rfc4514_string()
    return Check(
        name="chain",
        ok=False,
        detail=f"issued by {issuer!r}, which does not chain to the trusted CA ({trusted})",
        fix="issue the certificate from the configured CA, or include the missing intermediate in the file",
    )


def _check_sent_chain(chain: Sequence[x509.Certificate], trust: Sequence[x509.Certificate]) -> Check:
    """What a peer receives is this file: it must carry the intermediate the trust anchor needs."""
    leaf = chain[0]
    if leaf.issuer == leaf.subject or any(verify_signed_by(leaf, a) for a in trust):
        return Check(
            name="sent chain", ok=True, detail="issued directly by the trust anchor; nothing else to send"
        )
    if any(verify_signed_by(leaf, c) for c in chain[1:]):
        return Check(
            name="sent chain", ok=True, detail=f"the file carries the issuer ({len(chain) - 1} CA cert)"
        )
    return Check(
        name="sent chain",
        ok=False,
        detail=f"the file holds the leaf but not its issuer {leaf.issuer.rfc4514_string()!r}",
        fix="present the NAME-chain.pem file (leaf + intermediate), or peers cannot build the path",
    )


def _check_revocation(leaf: x509.Certificate, crls: Sequence[x509.CertificateRevocationList]) -> Check:
    mine = [crl for crl in crls if crl.issuer == leaf.issuer]
    if not mine:
        return Check(
            name="revocation",
            ok=False,
            detail=f"no CRL from {leaf.issuer.rfc4514_string()!r}",
            fix="servers that check CRLs will refuse it: write one with 'mtls-certs crl'",
        )
    for crl in mine:
        entry = crl.get_revoked_certificate_by_serial_number(leaf.serial_number)
        if entry is not None:
            return Check(
                name="revocation",
                ok=False,
                detail=f"revoked on {entry.revocation_date_utc:%Y-%m-%d %H:%M} UTC",
                fix="issue a new certificate: a revoked one cannot be reinstated",
            )
    return Check(name="revocation", ok=True, detail="not on the issuer's CRL")


def _check_validity(leaf: x509.Certificate, now: dt.datetime) -> Check:
    start, end = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    if now < start:
        return Check(
            name="validity",
            ok=False,
            detail=f"not valid before {start:%Y-%m-%d %H:%M:%S} UTC",
            fix="check the clocks, or reissue with a start time in the past",
        )
    if now > end:
        return Check(
            name="validity",
            ok=False,
            detail=f"expired on {end:%Y-%m-%d %H:%M:%S} UTC",
            fix="reissue it ('mtls-certs issue ... --days N')",
        )
    return Check(name="validity", ok=True, detail=f"until {end:%Y-%m-%d} ({(end - now).days} days left)")


def _check_purpose(leaf: x509.Certificate, purpose: str) -> Check:
    if _basic_constraints(leaf) not in (None, "CA:FALSE"):
        return Check(
            name="purpose",
            ok=False,
            detail=f"a CA certificate ({_basic_constraints(leaf)}), not a leaf",
            fix=f"issue a {purpose} leaf with 'mtls-certs issue {purpose} NAME'",
        )
    wanted = _PURPOSE_EKU[purpose]
    label = _EKU_NAMES[wanted]
    ekus = _ekus(leaf)
    if ekus is None:
        return Check(name="purpose", ok=True, detail=f"no EKU extension: any purpose, including {label}")
    if label in ekus:
        return Check(name="purpose", ok=True, detail=f"EKU has {label}")
    return Check(
        name="purpose",
        ok=False,
        detail=f"EKU is {', '.join(ekus)}, lacks {label}",
        fix=f"reissue with 'mtls-certs issue {purpose} ...' or sign with --profile {purpose}",
    )


def _check_key(leaf: x509.Certificate, key: PrivateKey) -> Check:
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if leaf.public_key().public_bytes(*fmt) == key.public_key().public_bytes(*fmt):
        return Check(name="key", ok=True, detail="private key matches the certificate")
    return Check(
        name="key",
        ok=False,
        detail="private key does not match the certificate's public key",
        fix="pass the key that was generated with this certificate's CSR",
    )
