"""Keys and PEM files: generate, describe, load and write them, safely.

Private keys are written with mode 0600 from the first byte, atomically
(temporary file, fsync, then link or rename), and nothing existing is replaced
unless asked. Passphrases come from a file or an environment variable, never a
terminal prompt.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)

from mtls_ref.shared.core.config import KEY_TYPES
from mtls_ref.shared.core.errors import CertificateError

__all__ = [
    "PASSPHRASE_ENV",
    "PrivateKey",
    "atomic_write",
    "describe_key",
    "generate_key",
    "load_certificates",
    "load_csr",
    "load_private_key",
    "pem",
    "private_key_pem",
    "read_passphrase",
    "signature_hash",
    "utcnow",
    "write_private_key",
]

PrivateKey = CertificateIssuerPrivateKeyTypes
PASSPHRASE_ENV: Final = "MTLS_KEY_PASSPHRASE"  # noqa: S105 - a variable name, not a secret
# RSA public exponent: 65537 is what every tool (openssl genrsa included) uses.
_RSA_EXPONENT: Final = 65537
_CURVES: Final[Mapping[str, ec.EllipticCurve]] = {"p256": ec.SECP256R1(), "p384": ec.SECP384R1()}


def utcnow() -> dt.datetime:
    """The current time, timezone-aware (the one clock everything else is given)."""
    return dt.datetime.now(dt.UTC)


# --- keys -------------------------------------------------------------------


def generate_key(key_type: str) -> PrivateKey:
    """A fresh private key: ``rsa2048`` (what the docs show) ... ``ed25519``."""
    if key_type.startswith("rsa") and key_type in KEY_TYPES:
        return rsa.generate_private_key(public_exponent=_RSA_EXPONENT, key_size=int(key_type[3:]))
    if key_type in _CURVES:
        return ec.generate_private_key(_CURVES[key_type])
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise CertificateError(f"unknown key type {key_type!r}; use one of {', '.join(KEY_TYPES)}")


def signature_hash(key: PrivateKey) -> hashes.SHA256 | hashes.SHA384 | None:
    """The digest to sign with: SHA-384 for P-384, none for Ed25519, else SHA-256."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()


def describe_key(key: CertificatePublicKeyTypes | PrivateKey) -> str:
    """``RSA 2048``, ``ECDSA P-256``, ``Ed25519``: for people and logs."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        names = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
        return f"ECDSA {names.get(key.curve.name, key.curve.name)}"
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "Ed25519"
    return type(key).__name__


def read_passphrase(
    passphrase_file: Path | None,
    *,
    env_var: str | None = PASSPHRASE_ENV,
    environ: Mapping[str, str] | None = None,
) -> bytes | None:
    """A key passphrase from a file (its first line), else from ``env_var``; never a prompt."""
    if passphrase_file is not None:
        try:
            text = passphrase_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise CertificateError(
                f"cannot read passphrase file {str(passphrase_file)!r}: {exc.strerror}; "
                "check the path given with --passphrase-file"
            ) from exc
        line = text.splitlines()[0] if text else ""
        if not line:
            raise CertificateError(f"passphrase file {str(passphrase_file)!r} is empty")
        return line.encode()
    if env_var is None:
        return None
    env = os.environ if environ is None else environ
    value = env.get(env_var)
    return value.encode() if value else None


def load_private_key(path: Path, passphrase: bytes | None = None) -> PrivateKey:
    """Read a PEM private key (PKCS#1, SEC1 or PKCS#8, encrypted or not)."""
    data = _read(path, "private key")
    try:
        key = serialization.load_pem_private_key(data, password=passphrase)
    except TypeError as exc:
        if passphrase is None:
            raise CertificateError(
                f"{str(path)!r} is encrypted: give its passphrase with --passphrase-file "
                f"or the {PASSPHRASE_ENV} environment variable"
            ) from exc
        raise CertificateError(f"{str(path)!r} is not encrypted: drop the passphrase") from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        hint = "wrong passphrase, or " if passphrase else ""
        raise CertificateError(
            f"{str(path)!r} is not a readable PEM private key ({hint}not PEM); "
            "expected a file starting with '-----BEGIN ... PRIVATE KEY-----'"
        ) from exc
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise CertificateError(f"{str(path)!r}: key type {type(key).__name__} is not supported")
    return key


def private_key_pem(key: PrivateKey, passphrase: bytes | None = None) -> bytes:
    """PKCS#8 PEM, encrypted with the best available scheme when a passphrase is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def write_private_key(
    path: Path, key: PrivateKey, *, passphrase: bytes | None = None, force: bool = False
) -> None:
    """Write a key 0600, atomically; refuse to replace an existing file unless ``force``."""
    atomic_write(path, private_key_pem(key, passphrase), mode=0o600, force=force)


# --- files ------------------------------------------------------------------


def atomic_write(path: Path, data: bytes, *, mode: int = 0o644, force: bool = False) -> None:
    """Write ``data`` so that ``path`` is either absent, old, or complete: never half-written.

    The temporary file gets ``mode`` before any byte is written, so a key is never
    readable by others even for a moment. Without ``force`` the final step is a hard
    link, which fails if ``path`` appeared meanwhile (no check-then-write race).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if not force and path.exists():
        raise CertificateError(f"{str(path)!r} already exists; not overwriting it (use --force to replace)")
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if force:
            tmp.replace(path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise CertificateError(
                    f"{str(path)!r} already exists; not overwriting it (use --force to replace)"
                ) from None
    finally:
        tmp.unlink(missing_ok=True)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CertificateError(f"{what} {str(path)!r} not found; check the path") from None
    except OSError as exc:
        raise CertificateError(f"cannot read {what} {str(path)!r}: {exc.strerror}") from exc


def load_certificates(path: Path) -> list[x509.Certificate]:
    """All certificates in a PEM file (leaf first in a chain file), or a single DER one."""
    data = _read(path, "certificate")
    try:
        if b"-----BEGIN" in data:
            certs = x509.load_pem_x509_certificates(data)
        else:
            certs = [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise CertificateError(
            f"{str(path)!r} holds no readable certificate; expected PEM '-----BEGIN CERTIFICATE-----' blocks"
        ) from exc
    return certs


def load_csr(path: Path) -> x509.CertificateSigningRequest:
    """A PEM (or DER) certificate signing request."""
    data = _read(path, "CSR")
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_csr(data)
        return x509.load_der_x509_csr(data)
    except ValueError as exc:
        raise CertificateError(
            f"{str(path)!r} is not a readable CSR; expected '-----BEGIN CERTIFICATE REQUEST-----'"
        ) from exc


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
