"""PKCS#12 bundles: a key, its certificate and the chain in one file that browsers, Java and OSes import.

Written with cryptography's ``pkcs12`` module and encrypted with PBES2
(AES-256-CBC, PBKDF2-HMAC-SHA256) and a SHA-256 MAC: what Firefox, Chromium
(NSS), current macOS and Windows, Java 11+ and ``openssl pkcs12`` (3.0) read.
The file is written 0600, atomically, never over an existing one without
``force``. Most importers refuse a bundle without a passphrase, so one is always
set: taken from a file, or generated and handed back to be shown once.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import PrivateFormat, pkcs12

from mtls_ref.shared.core.errors import CertificateError
from mtls_ref.shared.pki.keys import PrivateKey, atomic_write

__all__ = ["Bundle", "generate_passphrase", "read_bundle", "write_bundle"]

# OWASP's 2023 floor for PBKDF2-HMAC-SHA256 is far higher, but importers run this
# once; 200,000 keeps an import under a second on a laptop.
KDF_ROUNDS: Final = 200_000


def generate_passphrase() -> str:
    """A passphrase people can type: 16 URL-safe characters (96 bits)."""
    return secrets.token_urlsafe(12)


def write_bundle(
    path: Path,
    *,
    name: str,
    key: PrivateKey,
    cert: x509.Certificate,
    chain: Sequence[x509.Certificate],
    passphrase: str,
    force: bool = False,
) -> None:
    """Write ``key`` + ``cert`` + ``chain`` as an encrypted PKCS#12 file, mode 0600."""
    if not passphrase:
        raise CertificateError("a PKCS#12 bundle needs a passphrase: most importers refuse one without")
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise CertificateError(f"{type(key).__name__} keys cannot go into a PKCS#12 bundle here")
    encryption = (
        PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(KDF_ROUNDS)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(passphrase.encode())
    )
    data = pkcs12.serialize_key_and_certificates(name.encode(), key, cert, list(chain), encryption)
    atomic_write(path, data, mode=0o600, force=force)


class Bundle:
    """What a PKCS#12 file holds, read back."""

    def __init__(
        self,
        *,
        name: str | None,
        key: PrivateKeyTypes | None,
        cert: x509.Certificate | None,
        chain: list[x509.Certificate],
    ) -> None:
        self.name = name
        self.key = key
        self.cert = cert
        self.chain = chain

    def __repr__(self) -> str:
        subject = self.cert.subject.rfc4514_string() if self.cert else None
        return f"<Bundle {self.name!r} cert={subject!r} chain={len(self.chain)} key={self.key is not None}>"


def read_bundle(path: Path, passphrase: bytes | None) -> Bundle:
    """Open a PKCS#12 file; a missing or wrong passphrase is one clear error."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CertificateError(f"cannot read {str(path)!r}: {exc.strerror}; check the path") from exc
    try:
        loaded = pkcs12.load_pkcs12(data, passphrase)
    except ValueError as exc:
        hint = "wrong passphrase" if passphrase else "encrypted: give its passphrase with --passphrase-file"
        raise CertificateError(f"cannot open PKCS#12 file {str(path)!r}: {hint} (or not PKCS#12)") from exc
    leaf = loaded.cert
    return Bundle(
        name=leaf.friendly_name.decode(errors="replace") if leaf and leaf.friendly_name else None,
        key=loaded.key,
        cert=leaf.certificate if leaf else None,
        chain=[c.certificate for c in loaded.additional_certs],
    )
