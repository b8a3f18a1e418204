"""CSRs and a small certificate authority, the way the OpenSSL docs teach it.

The flow is the docs' one, step by step, each step a standard PEM file:
``openssl genrsa`` (:func:`mtls_ref.shared.pki.keys.generate_key`) -> ``openssl req -new``
(:func:`make_csr`) -> the CA signs (:meth:`CertificateAuthority.sign`) ->
``openssl x509 -text`` (see :mod:`mtls_ref.shared.pki.inspect`).

Profiles, not requests, decide extensions: a CSR only contributes its subject,
its public key and (unless overridden) its requested SANs. Server leaves carry
EKU serverAuth only and client leaves clientAuth only, because strict verifiers
reject leaves that claim every purpose.

Files are written with :func:`mtls_ref.shared.pki.keys.atomic_write` (keys 0600), and a
whole set is checked before any is written: nothing existing is replaced
unless ``force`` is set.
Time (``now``) and serial numbers are injectable so tests pin boundaries.
"""

from __future__ import annotations

import datetime as dt
import enum
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificatePublicKeyTypes,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mtls_ref.shared.core.config import PKIConfig
from mtls_ref.shared.core.errors import CertificateError
from mtls_ref.shared.pki.keys import (
    PrivateKey,
    atomic_write,
    generate_key,
    load_certificates,
    load_private_key,
    pem,
    signature_hash,
    utcnow,
    write_private_key,
)
from mtls_ref.shared.pki.san_rules import general_name_problem, text_problem, value_problem

__all__ = [
    "CertificateAuthority",
    "IssuedFiles",
    "LeafOptions",
    "Profile",
    "build_certificate",
    "check_file_name",
    "issue_self_signed",
    "make_csr",
    "parse_san",
    "verify_signed_by",
]


class Profile(enum.Enum):
    """What a certificate is for; decides its extensions."""

    ROOT = "root"
    INTERMEDIATE = "intermediate"
    SERVER = "server"
    CLIENT = "client"

    @property
    def is_ca(self) -> bool:
        return self in (Profile.ROOT, Profile.INTERMEDIATE)


# --- names ------------------------------------------------------------------


_SAN_KINDS: Final = {"dns": "DNS", "ip": "IP", "uri": "URI", "email": "email"}


def parse_san(text: str) -> x509.GeneralName:
    """``DNS:localhost``, ``IP:127.0.0.1``, ``URI:spiffe://td/wl``, ``email:a@b`` -> GeneralName.

    The value must follow :mod:`~mtls_ref.shared.pki.san_rules`; the error names the rule it breaks.
    """
    kind, sep, value = text.partition(":")
    kind = kind.strip().lower()
    if not sep or not value:
        raise CertificateError(f"SAN {text!r} needs a type prefix: DNS:, IP:, URI: or email:")
    if kind not in _SAN_KINDS:
        raise CertificateError(f"SAN {text!r}: unknown type {kind!r}; use DNS:, IP:, URI: or email:")
    problem = text_problem(text) or value_problem(_SAN_KINDS[kind], value)
    if problem is not None:
        raise CertificateError(f"SAN {text!r} {problem}")
    if kind == "ip":
        try:
            return x509.IPAddress(ipaddress.ip_address(value))
        except ValueError:
            raise CertificateError(f"SAN {text!r}: {value!r} is not an IP address") from None
    try:
        if kind == "dns":
            return x509.DNSName(value)
        if kind == "uri":
            return x509.UniformResourceIdentifier(value)
        return x509.RFC822Name(value)
    except ValueError as exc:  # cryptography's own checks (an email it cannot parse)
        raise CertificateError(f"SAN {text!r} is refused by the X.509 library: {exc}") from exc


def key_identifier(public_key: CertificatePublicKeyTypes) -> str:
    """The first 4 bytes of the subject key identifier (RFC 5280 §4.2.1.2 method 1), as 8 hex digits."""
    return x509.SubjectKeyIdentifier.from_public_key(public_key).digest[:4].hex().upper()


def ca_common_name(template: str, public_key: CertificatePublicKeyTypes) -> str:
    """A CA's common name; ``{key_id}`` in the template becomes :func:`key_identifier`.

    The default name carries it, so two CAs made with the defaults never share a
    name: a peer that trusts one and is shown the other says "different key", not
    "same CA".
    """
    return template.replace("{key_id}", key_identifier(public_key))


def name_for(common_name: str, organization: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


def make_csr(
    key: PrivateKey, common_name: str, sans: Sequence[x509.GeneralName] = ()
) -> x509.CertificateSigningRequest:
    """The ``openssl req -new`` step: a request signed by the key it names."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(name_for(common_name))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(key, signature_hash(key))


def requested_sans(csr: x509.CertificateSigningRequest) -> list[x509.GeneralName]:
    try:
        ext = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return list(ext.value)


# --- signing ----------------------------------------------------------------


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


class CertificateAuthority:
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
        targets = [pki.path(pki.ca_key), pki.path(pki.ca_cert)]
        if intermediate:
            targets += [pki.path(pki.intermediate_key), pki.path(pki.intermediate_cert)]
        _refuse_existing(targets, force)
        root_key = generate_key(pki.key_type)
        common_name = ca_common_name(pki.ca_common_name, root_key.public_key())
        root_name = name_for(common_name, "mtls-ref")
        root = build_certificate(
            subject=root_name,
            public_key=root_key.public_key(),
            issuer=root_name,
            issuer_key=root_key,
            profile=Profile.ROOT,
            now=now,
            days=pki.ca_days,
            path_length=1 if intermediate else 0,
        )
        write_private_key(targets[0], root_key, passphrase=passphrase, force=force)
        atomic_write(targets[1], pem(root), force=force)
        if not intermediate:
            return cls(root=root, signer_cert=root, signer_key=root_key)
        inter_key = generate_key(pki.key_type)
        inter = build_certificate(
            subject=name_for(f"{common_name} Intermediate", "mtls-ref"),
            public_key=inter_key.public_key(),
            issuer=root_name,
            issuer_key=root_key,
            profile=Profile.INTERMEDIATE,
            now=now,
            days=pki.ca_days,
            path_length=0,
        )
        write_private_key(targets[2], inter_key, passphrase=passphrase, force=force)
        atomic_write(targets[3], pem(inter), force=force)
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
        if profile.is_ca:
            raise CertificateError("this CA signs leaves only: use --profile server or client")
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
        """The whole docs flow for one leaf: key, CSR, CA signature, certificate, chain file."""
        files = IssuedFiles.named(name, out_dir)
        _refuse_existing(files.all(), force)
        key = generate_key(key_type)
        csr = make_csr(key, name, sans)
        cert = self.sign(csr, profile, sans=sans, days=days, now=now, options=options)
        write_leaf_files(files, key, csr, cert, self.chain, passphrase=passphrase, force=force)
        return files


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


def issue_self_signed(
    profile: Profile,
    name: str,
    *,
    out_dir: Path,
    sans: Sequence[x509.GeneralName] = (),
    key_type: str = "p256",
    days: int = 365,
    now: dt.datetime | None = None,
    force: bool = False,
    options: LeafOptions | None = None,
) -> IssuedFiles:
    """A leaf signed by its own key (no CA at all): a classic misconfiguration, made on purpose."""
    files = IssuedFiles.named(name, out_dir)
    _refuse_existing(files.all(), force)
    key = generate_key(key_type)
    csr = make_csr(key, name, sans)
    cert = build_certificate(
        subject=csr.subject,
        public_key=key.public_key(),
        issuer=csr.subject,
        issuer_key=key,
        profile=profile,
        sans=sans,
        now=now or utcnow(),
        days=days,
        options=options,
    )
    write_leaf_files(files, key, csr, cert, (), force=force)
    return files


def _refuse_existing(paths: Iterable[Path], force: bool) -> None:
    """Check every target before writing any, so a refusal leaves nothing half-made."""
    if force:
        return
    existing = [str(p) for p in paths if p.exists()]
    if existing:
        raise CertificateError(f"refusing to overwrite {', '.join(existing)}: remove them or pass --force")


def verify_signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True when ``issuer`` names and signed ``cert``."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
