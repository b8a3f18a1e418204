"""The bad set's server credentials: every way a server certificate can be wrong, made on purpose.

Written by :func:`~mtls_ref.shared.pki.badset.write_badset` under ``DIR/servers``
and served by ``mtls-server badservers`` (one server per credential) so a
*client* can be tested: a correct client refuses each of them. All are for
``localhost`` (and the loopback addresses) unless wrong names are the point,
and all but the untrusted and self-signed ones come from the set's CA, so the
one thing wrong with each is the thing its name says.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from mtls_ref.shared.core.config import PKIConfig
from mtls_ref.shared.pki.authority import (
    CertificateAuthority,
    IssuedFiles,
    LeafOptions,
    Profile,
    issue_self_signed,
    make_csr,
    parse_san,
    write_leaf_files,
)
from mtls_ref.shared.pki.keys import atomic_write, generate_key, load_certificates
from mtls_ref.shared.pki.legacy import resign_with_sha1
from mtls_ref.shared.pki.revocation import revoke

__all__ = ["CONTROLS", "SERVER_SANS", "ServerCredential", "write_server_credentials"]

SERVER_SANS: Final = ("DNS:localhost", "IP:127.0.0.1", "IP:::1")
# RSA-1024: broken for signatures since NIST SP 800-131A (2013); OpenSSL's security level 2
# (Debian's default) refuses it, so a client on a default OpenSSL does too.
WEAK_RSA_BITS: Final = 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerCredential:
    name: str
    description: str
    chain: Path  # what the server sends
    key: Path


# The server cases a correct client accepts (every other one it refuses).
CONTROLS: Final = ("server-rsa2048",)


def write_server_credentials(
    root: Path,
    *,
    pki: PKIConfig,
    ca: CertificateAuthority,
    other: CertificateAuthority,
    now: dt.datetime,
    key_type: str,
) -> tuple[ServerCredential, ...]:
    """Issue every bad server credential into ``root/servers`` (the good one is ``server``)."""
    out = root / "servers"
    day = dt.timedelta(days=1)

    def issue(name: str, *, who: CertificateAuthority = ca, sans: tuple[str, ...] = SERVER_SANS,
              options: LeafOptions | None = None) -> IssuedFiles:  # fmt: skip
        return who.issue(
            Profile.SERVER,
            name,
            out_dir=out,
            sans=[parse_san(s) for s in sans],
            key_type=key_type,
            now=now,
            options=options,
        )

    def by_hand(name: str, *, common_name: str, sans: tuple[str, ...], key_bits: int | None = None,
                sha1: bool = False) -> IssuedFiles:  # fmt: skip
        """A leaf whose key, CN or signature the usual ``issue`` would not make."""
        files = IssuedFiles.named(name, out)
        key = rsa.generate_private_key(65537, key_bits) if key_bits else generate_key(key_type)
        names = [parse_san(s) for s in sans]
        csr = make_csr(key, common_name, names)
        cert = ca.sign(csr, Profile.SERVER, sans=names, now=now)
        if sha1:
            cert = resign_with_sha1(cert, ca.signer_key)
        write_leaf_files(files, key, csr, cert, ca.chain)
        return files

    revoked = issue("server-revoked")
    revoke(pki, ca, load_certificates(revoked.cert)[0], now=now)
    missing = issue("server-missing-intermediate")
    leaf_only = out / "server-missing-intermediate-leaf-only.pem"
    atomic_write(leaf_only, missing.cert.read_bytes())
    made: list[tuple[str, str, IssuedFiles, Path | None]] = [
        ("server", "control: a correct server certificate for localhost", issue("server"), None),
        (
            # OpenSSL keeps one certificate per key type: the RSA-1024 row's server starts from this
            # one and swaps in the weak RSA key, so no ECDSA certificate is left to be served instead.
            "server-rsa2048",
            "control: a correct RSA-2048 server certificate (the RSA-1024 row's server starts from it)",
            by_hand("server-rsa2048", common_name="server-rsa2048", sans=SERVER_SANS, key_bits=2048),
            None,
        ),
        (
            "server-wrong-name",
            "server certificate for another hostname",
            issue("server-wrong-name", sans=("DNS:elsewhere.test",)),
            None,
        ),
        (
            "server-untrusted",
            "server certificate from an unknown CA",
            issue("server-untrusted", who=other),
            None,
        ),
        (
            "server-expired",
            "expired server certificate",
            issue("server-expired", options=LeafOptions(not_before=now - 30 * day, not_after=now - day)),
            None,
        ),
        (
            "server-not-yet-valid",
            "server certificate valid from tomorrow",
            issue(
                "server-not-yet-valid", options=LeafOptions(not_before=now + day, not_after=now + 30 * day)
            ),
            None,
        ),
        ("server-missing-intermediate", "leaf sent without its intermediate", missing, leaf_only),
        (
            "server-self-signed",
            "self-signed server certificate, no CA",
            issue_self_signed(
                Profile.SERVER,
                "server-self-signed",
                out_dir=out,
                key_type=key_type,
                now=now,
                sans=[parse_san(s) for s in SERVER_SANS],
            ),
            None,
        ),
        (
            "server-client-eku",
            "EKU clientAuth only: a client certificate used as a server's",
            issue("server-client-eku", options=LeafOptions(ekus=(ExtendedKeyUsageOID.CLIENT_AUTH,))),
            None,
        ),
        (
            "server-cn-only",
            "CN=localhost and no subjectAltName",
            by_hand("server-cn-only", common_name="localhost", sans=()),
            None,
        ),
        ("server-revoked", "server certificate on the CA's CRL", revoked, None),
        (
            "server-sha1",
            "server certificate signed with SHA-1",
            by_hand("server-sha1", common_name="server-sha1", sans=SERVER_SANS, sha1=True),
            None,
        ),
        (
            "server-rsa1024",
            f"server certificate with an RSA-{WEAK_RSA_BITS} key",
            by_hand("server-rsa1024", common_name="server-rsa1024", sans=SERVER_SANS, key_bits=WEAK_RSA_BITS),
            None,
        ),
    ]
    return tuple(
        ServerCredential(name=name, description=text, chain=chain or files.chain, key=files.key)
        for name, text, files, chain in made
    )
