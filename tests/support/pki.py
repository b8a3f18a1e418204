"""A real PKI built in code for the tests: CA with intermediate, role-correct leaves, a foreign CA."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mtls_ref.shared.core.config import PKIConfig
from mtls_ref.shared.pki.authority import CertificateAuthority, IssuedFiles, Profile, parse_san

NOW = dt.datetime(2026, 6, 1, 12, 0, 0, tzinfo=dt.UTC)
LOOPBACK_SANS = ("DNS:localhost", "IP:127.0.0.1")
SERVER_SANS = (*LOOPBACK_SANS, "IP:::1")
CLIENT_SANS = ("URI:spiffe://mtls-ref.test/alice", "email:alice@mtls-ref.test")


@dataclass(frozen=True, slots=True, kw_only=True)
class Pki:
    """A CA with intermediate and role-correct leaves, as files on disk."""

    dir: Path
    ca: CertificateAuthority
    ca_cert: Path
    server: IssuedFiles
    client: IssuedFiles
    clients_by_key_type: dict[str, IssuedFiles]
    foreign_ca_cert: Path
    foreign_client: IssuedFiles


def issue_server(
    ca: CertificateAuthority, pki: PKIConfig, *, sans: Sequence[str] = SERVER_SANS, key_type: str = "p256"
) -> IssuedFiles:
    """The leaf ``server`` under ``pki.dir``, named for loopback."""
    return ca.issue(
        Profile.SERVER, "server", out_dir=pki.dir, key_type=key_type, sans=[parse_san(s) for s in sans]
    )


def issue_client(
    ca: CertificateAuthority, pki: PKIConfig, name: str, *sans: str, key_type: str = "p256"
) -> IssuedFiles:
    """The client leaf ``name`` under ``pki.dir``, with ``sans`` (e.g. "URI:spiffe://mtls-ref.test/alice")."""
    return ca.issue(
        Profile.CLIENT, name, out_dir=pki.dir, key_type=key_type, sans=[parse_san(s) for s in sans]
    )


def build_pki(base: Path, *, key_type: str = "p256") -> Pki:
    """The session's PKI: a root with an intermediate, server and alice, a client of each other key
    type, and mallory from a foreign root."""
    pki = PKIConfig(dir=base / "pki", key_type=key_type)
    ca = CertificateAuthority.create(pki, intermediate=True)
    server = issue_server(ca, pki)
    client = issue_client(ca, pki, "alice", *CLIENT_SANS)
    by_type = {
        kt: issue_client(ca, pki, f"client-{kt}", f"URI:spiffe://mtls-ref.test/{kt}", key_type=kt)
        for kt in ("rsa2048", "p384", "ed25519")
    }
    foreign_pki = dataclasses.replace(pki, dir=base / "foreign", ca_common_name="Foreign Root CA")
    foreign = CertificateAuthority.create(foreign_pki)
    mallory = issue_client(foreign, foreign_pki, "mallory", "URI:spiffe://elsewhere.test/mallory")
    return Pki(
        dir=pki.dir,
        ca=ca,
        ca_cert=pki.path(pki.ca_cert),
        server=server,
        client=client,
        clients_by_key_type=by_type,
        foreign_ca_cert=foreign_pki.path(foreign_pki.ca_cert),
        foreign_client=mallory,
    )


def demo_certs_folder(pki: Pki, folder: Path) -> None:
    """``folder/certs`` holding the session PKI under the names `make certs` writes (the page and the
    README name them in their commands)."""
    certs = folder / "certs"
    certs.mkdir()
    for name, source in {
        "ca.pem": pki.ca_cert,
        "client.pem": pki.client.cert,
        "client-chain.pem": pki.client.chain,
        "client.key": pki.client.key,
        "intermediate.pem": pki.dir / "intermediate.pem",
    }.items():
        (certs / name).symlink_to(source)
