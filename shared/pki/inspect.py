"""Describe certificates, CSRs and keys for people and scripts (``mtls-certs show``).

``describe_file`` is the ``openssl x509 -text -noout`` of this project, minus the
hex dumps: the fields people actually read, plus days left and a fingerprint.
A private key is described by type, size and public-key fingerprint only: no
key material ever reaches the output.
The offline checks (``mtls-certs verify``) are :mod:`.checks`.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from mtls_ref.shared.core.errors import CertificateError
from mtls_ref.shared.pki.bundle import read_bundle
from mtls_ref.shared.pki.facts import basic_constraints, eku_names, validity
from mtls_ref.shared.pki.keys import (
    PrivateKey,
    describe_key,
    load_certificates,
    load_csr,
    load_private_key,
    utcnow,
)

__all__ = [
    "Report",
    "describe_certificate",
    "describe_file",
    "fingerprint",
    "format_san",
    "render_report",
    "san_names",
]

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


def san_names(exts: x509.Extensions) -> list[str]:
    """The subjectAltName entries of a certificate's or CSR's extensions, spelt by :func:`format_san`."""
    try:
        return [format_san(n) for n in exts.get_extension_for_class(x509.SubjectAlternativeName).value]
    except x509.ExtensionNotFound:
        return []


def _key_usage(cert: x509.Certificate) -> list[str] | None:
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None
    return [label for attr, label in _KEY_USAGE_FIELDS if getattr(usage, attr)]


def describe_certificate(cert: x509.Certificate, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """The fields a person checks, as plain data."""
    period = validity(cert, now=now or utcnow())
    der = cert.public_bytes(serialization.Encoding.DER)
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "serial": format(cert.serial_number, "X"),
        "not_before": period.not_before.isoformat(),
        "not_after": period.not_after.isoformat(),
        "days_left": period.days_left,
        "key": describe_key(cert.public_key()),
        "signature_algorithm": cert.signature_algorithm_oid._name,
        "sans": san_names(cert.extensions),
        "extended_key_usage": list(ekus) if (ekus := eku_names(cert)) is not None else None,
        "key_usage": _key_usage(cert),
        "basic_constraints": basic_constraints(cert),
        "sha256_fingerprint": fingerprint(der),
    }


def _describe_csr(csr: x509.CertificateSigningRequest) -> dict[str, Any]:
    return {
        "subject": csr.subject.rfc4514_string(),
        "key": describe_key(csr.public_key()),
        "requested_sans": san_names(csr.extensions),
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
