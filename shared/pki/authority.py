"""A small certificate authority, the way the OpenSSL docs teach it.

The flow is the docs' one, step by step, each step a standard PEM file:
``openssl genrsa`` (:func:`mtls_ref.shared.pki.keys.generate_key`) -> ``openssl req -new``
(:func:`~mtls_ref.shared.pki.names.make_csr`) -> the CA signs
(:meth:`CertificateAuthority.sign`) -> ``openssl x509 -text`` (see
:mod:`mtls_ref.shared.pki.inspect`).

Profiles (:mod:`~mtls_ref.shared.pki.profiles`), not requests, decide
extensions: a CSR only contributes its subject, its public key and (when asked)
its requested SANs. A leaf's files are written all or none
(:mod:`~mtls_ref.shared.pki.leaf_files`). Time (``now``) and serial numbers are
injectable so tests pin boundaries.

This module also re-exports the names that used to live here, so
``from mtls_ref.shared.pki.authority import Profile, parse_san, ...`` keeps working.
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.x509.oid import NameOID

from mtls_ref.shared.core.config import PKIConfig
from mtls_ref.shared.core.errors import CertificateError
from mtls_ref.shared.pki.keys import (
    PrivateKey,
    atomic_write,
    generate_key,
    load_certificates,
    load_private_key,
    pem,
    utcnow,
    write_private_key,
)
from mtls_ref.shared.pki.leaf_files import IssuedFiles, check_file_name, refuse_existing, write_leaf_files
from mtls_ref.shared.pki.names import ca_common_name, make_csr, name_for, parse_san, requested_sans
from mtls_ref.shared.pki.profiles import LeafOptions, Profile, build_certificate
from mtls_ref.shared.pki.san_rules import general_name_problem

__all__ = [
    "CertificateAuthority",
    "IssuedFiles",
    "LeafOptions",
    "Profile",
    "SelfSigned",
    "build_certificate",
    "check_file_name",
    "issue_self_signed",
    "make_csr",
    "parse_san",
    "requested_sans",
    "verify_signed_by",
    "write_leaf_files",
]


class LeafIssuer(abc.ABC):
    """The docs' flow for one leaf (key, CSR, signature, files); a subclass says who signs."""

    chain: tuple[x509.Certificate, ...] = ()  # sent after the leaf: the intermediate, if any

    @abc.abstractmethod
    def _issuer(self, own_name: x509.Name, own_key: PrivateKey) -> tuple[x509.Name, PrivateKey]:
        """Who signs a new leaf (given the leaf's own name and key): the issuer's name and key."""

    def issue(
        self,
        profile: Profile,
        name: str,
        *,
        out_dir: Path,
        sans: Sequence[x509.GeneralName] = (),
        key_type: str = "p256",
        days: int = 365,
        now: dt.datetime | None = None,
        passphrase: bytes | None = None,
        force: bool = False,
        options: LeafOptions | None = None,
    ) -> IssuedFiles:
        """The whole docs flow for one leaf: key, CSR, signature, certificate, chain file."""
        _leaf_only(profile)
        files = IssuedFiles.named(name, out_dir)
        refuse_existing(files.all(), force)
        key = generate_key(key_type)
        csr = make_csr(key, name, sans)
        issuer, issuer_key = self._issuer(csr.subject, key)
        cert = build_certificate(
            subject=csr.subject,
            public_key=key.public_key(),
            issuer=issuer,
            issuer_key=issuer_key,
            profile=profile,
            sans=sans,
            now=now or utcnow(),
            days=days,
            options=options,
        )
        write_leaf_files(files, key, csr, cert, self.chain, passphrase=passphrase, force=force)
        return files


def _leaf_only(profile: Profile) -> None:
    if profile.is_ca:
        raise CertificateError("this CA signs leaves only: use --profile server or client")


class CertificateAuthority(LeafIssuer):
    """A root CA, optionally with an intermediate that signs the leaves.

    ``root`` is the trust anchor everyone configures as ``ca``; ``chain`` holds
    the certificates a leaf must send after itself (the intermediate, if any).
    """

    def __init__(
        self,
        *,
        root: x509.Certificate,
        signer_cert: x509.Certificate,
        signer_key: PrivateKey,
        chain: Sequence[x509.Certificate] = (),
        root_key: PrivateKey | None = None,
    ) -> None:
        self.root = root
        # The root's key, when it is at hand: with an intermediate, the root signs a CRL too.
        self.root_key = root_key if root_key is not None else (signer_key if not chain else None)
        self.signer_cert = signer_cert
        self.signer_key = signer_key
        self.chain = tuple(chain)

    def __repr__(self) -> str:
        return f"<CertificateAuthority root={self.root.subject.rfc4514_string()!r} chain={len(self.chain)}>"

    @classmethod
    def create(
        cls,
        pki: PKIConfig,
        *,
        intermediate: bool = False,
        now: dt.datetime | None = None,
        passphrase: bytes | None = None,
        force: bool = False,
    ) -> CertificateAuthority:
        """``mtls-certs init``: write a self-signed root (and an intermediate) under ``pki.dir``."""
        now = now or utcnow()
        root_files = (pki.path(pki.ca_key), pki.path(pki.ca_cert))
        inter_files = (pki.path(pki.intermediate_key), pki.path(pki.intermediate_cert))
        refuse_existing([*root_files, *(inter_files if intermediate else ())], force)
        root_key = generate_key(pki.key_type)
        common_name = ca_common_name(pki.ca_common_name, root_key.public_key())
        root_name = name_for(common_name, "mtls-ref")

        def certify(
            profile: Profile, subject: x509.Name, key: PrivateKey, path_length: int, files: tuple[Path, Path]
        ) -> x509.Certificate:
            """A CA certificate signed by the root key, written with its key (0600) to ``files``."""
            cert = build_certificate(
                subject=subject,
                public_key=key.public_key(),
                issuer=root_name,
                issuer_key=root_key,
                profile=profile,
                now=now,
                days=pki.ca_days,
                path_length=path_length,
            )
            write_private_key(files[0], key, passphrase=passphrase, force=force)
            atomic_write(files[1], pem(cert), force=force)
            return cert

        # The root's path length allows the one intermediate, when there is one (RFC 5280 §4.2.1.9).
        root = certify(Profile.ROOT, root_name, root_key, 1 if intermediate else 0, root_files)
        if not intermediate:
            return cls(root=root, signer_cert=root, signer_key=root_key)
        inter_key = generate_key(pki.key_type)
        inter_name = name_for(f"{common_name} Intermediate", "mtls-ref")
        inter = certify(Profile.INTERMEDIATE, inter_name, inter_key, 0, inter_files)
        return cls(root=root, signer_cert=inter, signer_key=inter_key, chain=[inter], root_key=root_key)

    @classmethod
    def load(cls, pki: PKIConfig, *, passphrase: bytes | None = None) -> CertificateAuthority:
        """The CA under ``pki.dir``; signs with the intermediate when there is one."""
        root_path = pki.path(pki.ca_cert)
        if not root_path.exists():
            raise CertificateError(f"no CA at {str(root_path)!r}; create one first with 'mtls-certs init'")
        root = load_certificates(root_path)[0]
        inter_path = pki.path(pki.intermediate_cert)
        if inter_path.exists():
            inter = load_certificates(inter_path)[0]
            key = load_private_key(pki.path(pki.intermediate_key), passphrase)
            root_key_path = pki.path(pki.ca_key)
            root_key = load_private_key(root_key_path, passphrase) if root_key_path.exists() else None
            return cls(root=root, signer_cert=inter, signer_key=key, chain=[inter], root_key=root_key)
        key = load_private_key(pki.path(pki.ca_key), passphrase)
        return cls(root=root, signer_cert=root, signer_key=key)

    def sign(
        self,
        csr: x509.CertificateSigningRequest,
        profile: Profile,
        *,
        sans: Sequence[x509.GeneralName] = (),
        sans_from_csr: bool = False,
        days: int = 365,
        now: dt.datetime | None = None,
        serial: int | None = None,
        options: LeafOptions | None = None,
    ) -> x509.Certificate:
        """Sign a CSR under ``profile``: the profile, not the request, decides what is certified.

        The subject is reduced to the CSR's one common name (a leaf's subject in our
        profiles); the SANs are ``sans``, and the CSR's requested SANs only with
        ``sans_from_csr`` (a CSR must not choose names such as a SPIFFE ID or a
        wildcard for itself).
        """
        _leaf_only(profile)
        if not csr.is_signature_valid:
            raise CertificateError(
                "CSR signature does not verify: the request was altered or was not signed by "
                "the key it contains; make a new one with 'openssl req -new -key KEY -out CSR'"
            )
        try:
            public_key = csr.public_key()
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise CertificateError(f"CSR public key is not usable: {exc}") from exc
        requested = requested_sans(csr) if sans_from_csr else []
        for name in requested:
            shown, problem = general_name_problem(name)
            if problem is not None:
                raise CertificateError(
                    f"the CSR requests SAN {shown!r}, which {problem}. Ask for a CSR without it, or sign "
                    "without --san-from-csr and give the names with --san"
                )
        common_names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if len(common_names) != 1:
            raise CertificateError(
                f"the CSR's subject {csr.subject.rfc4514_string() or '(empty)'} has {len(common_names)} "
                "common names; a leaf needs exactly one: make the CSR with -subj '/CN=NAME'"
            )
        return build_certificate(
            subject=name_for(str(common_names[0].value)),
            public_key=public_key,
            issuer=self.signer_cert.subject,
            issuer_key=self.signer_key,
            profile=profile,
            sans=[*sans, *requested],
            now=now or utcnow(),
            days=days,
            serial=serial,
            options=options,
        )

    def _issuer(self, own_name: x509.Name, own_key: PrivateKey) -> tuple[x509.Name, PrivateKey]:
        return self.signer_cert.subject, self.signer_key


class SelfSigned(LeafIssuer):
    """Leaves signed by their own key (no CA at all): a classic misconfiguration, made on purpose."""

    def __repr__(self) -> str:
        return "<SelfSigned>"

    def _issuer(self, own_name: x509.Name, own_key: PrivateKey) -> tuple[x509.Name, PrivateKey]:
        return own_name, own_key


# ``issue_self_signed(profile, name, out_dir=..., ...)``: a self-signed leaf, the same flow and
# arguments as :meth:`CertificateAuthority.issue`.
issue_self_signed: Final = SelfSigned().issue


def verify_signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True when ``issuer`` names and signed ``cert``."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
