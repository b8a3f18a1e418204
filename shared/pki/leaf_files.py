"""A leaf's files in the PKI folder: their names, and writing them all or none.

One leaf is four standard PEM files, in the order the docs make them:
``NAME.key`` (mode 0600), ``NAME.csr``, ``NAME.pem`` and ``NAME-chain.pem``
(the leaf, then the intermediate a peer must be sent). Every target is
checked before any is written (:func:`refuse_existing`), so a refusal leaves
nothing half-made; nothing existing is replaced unless ``force`` is set.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mtls_ref.shared.core.errors import CertificateError
from mtls_ref.shared.pki.keys import PrivateKey, atomic_write, pem, write_private_key

__all__ = ["IssuedFiles", "check_file_name", "refuse_existing", "write_leaf_files"]

# A leaf's name becomes its file names (NAME.key, NAME.pem, NAME.p12...) in the PKI folder, so
# it must be one plain, portable file name: no folder, no markup, not hidden. 64 is also X.520's
# upper bound for the CN (RFC 5280 ub-common-name) that ``issue`` makes of the same name.
_FILE_NAME: Final = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}")


def check_file_name(name: str) -> str:
    """``name``, if it is safe as the stem of a leaf's files; else an error saying how to name it."""
    if not _FILE_NAME.fullmatch(name):
        raise CertificateError(
            f"certificate name {name!r} cannot be used as a file name: it becomes NAME.key, NAME.pem... "
            "in the PKI folder, so use letters, digits, '.', '_' and '-' only, not starting with '.', "
            "at most 64 characters (e.g. alice, web-01). 'issue' also makes NAME the certificate's CN; "
            "for another CN, make a CSR with it (openssl req -new -subj '/CN=...') and sign that with "
            "'mtls-certs sign CSR --profile ... --out FILE'"
        )
    return name


@dataclass(frozen=True, slots=True, kw_only=True)
class IssuedFiles:
    """The files one ``issue`` wrote, in the order the docs make them."""

    key: Path
    csr: Path
    cert: Path
    chain: Path

    @classmethod
    def named(cls, name: str, out_dir: Path) -> IssuedFiles:
        """The files of leaf ``name`` in ``out_dir``; ``name`` must pass :func:`check_file_name`."""
        check_file_name(name)
        return cls(
            key=out_dir / f"{name}.key",
            csr=out_dir / f"{name}.csr",
            cert=out_dir / f"{name}.pem",
            chain=out_dir / f"{name}-chain.pem",
        )

    def all(self) -> list[Path]:
        return [self.key, self.csr, self.cert, self.chain]


def write_leaf_files(
    files: IssuedFiles,
    key: PrivateKey,
    csr: x509.CertificateSigningRequest,
    cert: x509.Certificate,
    chain: Sequence[x509.Certificate],
    *,
    passphrase: bytes | None = None,
    force: bool = False,
) -> None:
    """Key (0600) first, then CSR, certificate and chain: each atomic."""
    write_private_key(files.key, key, passphrase=passphrase, force=force)
    atomic_write(files.csr, csr.public_bytes(serialization.Encoding.PEM), force=force)
    atomic_write(files.cert, pem(cert), force=force)
    atomic_write(files.chain, pem(cert, *chain), force=force)


def refuse_existing(paths: Iterable[Path], force: bool) -> None:
    """Check every target before writing any, so a refusal leaves nothing half-made."""
    if force:
        return
    existing = [str(p) for p in paths if p.exists()]
    if existing:
        raise CertificateError(f"refusing to overwrite {', '.join(existing)}: remove them or pass --force")
