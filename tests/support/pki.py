"""A real PKI built in code for the tests: CA with intermediate, role-correct leaves, a foreign CA."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from mtls_ref.shared.core.config import PKIConfig
from mtls_ref.shared.pki.authority import CertificateAuthority, IssuedFiles, Profile, parse_san

NOW = dt.datetime(2026, 6, 1, 12, 0, 0, tzinfo=dt.UTC)
SERVER_SANS = ("DNS:localhost", "IP:127.0.0.1", "IP:::1")
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


def build_pki(base: Path, *, key_type: str = "p256") -> Pki:
    pki = PKIConfig(dir=base / "pki", key_type=key_type)
    ca = CertificateAuthority.create(pki, intermediate=True)
    issue = ca.issue
    server = issue(Profile.SERVER, "server", out_dir=pki.dir, sans=[parse_san(s) for s in SERVER_SANS])
    client = issue(Profile.CLIENT, "alice", out_dir=pki.dir, sans=[parse_san(s) for s in CLIENT_SANS])
    by_type = {
        kt: issue(
            Profile.CLIENT,
            f"client-{kt}",
            out_dir=pki.dir,
            key_type=kt,
            sans=[parse_san(f"URI:spiffe://mtls-ref.test/{kt}")],
        )
        for kt in ("rsa2048", "p384", "ed25519")
    }
    foreign_pki = dataclasses.replace(pki, dir=base / "foreign", ca_common_name="Foreign Root CA")
    foreign = CertificateAuthority.create(foreign_pki)
    mallory = foreign.issue(
        Profile.CLIENT,
        "mallory",
        out_dir=foreign_pki.dir,
        sans=[parse_san("URI:spiffe://elsewhere.test/mallory")],
    )
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
