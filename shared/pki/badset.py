"""Every way a client credential can be wrong, made on purpose: ``mtls-certs badset DIR``.

The set comes from a throwaway CA written under ``DIR/ca`` (root, intermediate,
CRL), with a server credential for ``localhost`` under ``DIR/servers`` so any
server can be pointed at it, and a ``manifest.json`` the conformance runner
reads. Each client case is a chain file and a key under ``DIR/clients``; each
bad *server* credential (``server_cases``, :mod:`.badset_servers`) a chain and
a key under ``DIR/servers``, which ``mtls-server badservers`` serves to test
clients.

A server under test must trust ``ca/ca.pem``, check ``ca/crl.pem``, and (for
the authorization row) admit only the manifest's ``allow`` rule.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cryptography.x509.oid import ExtendedKeyUsageOID

from mtls_ref.shared.core.config import PKIConfig
from mtls_ref.shared.pki.authority import (
    CertificateAuthority,
    IssuedFiles,
    LeafOptions,
    Profile,
    issue_self_signed,
    parse_san,
)
from mtls_ref.shared.pki.badset_servers import CONTROLS, write_server_credentials
from mtls_ref.shared.pki.keys import atomic_write, load_certificates, pem, utcnow
from mtls_ref.shared.pki.revocation import revoke

__all__ = ["BadCase", "Manifest", "load_manifest", "write_badset"]

MANIFEST: Final = "manifest.json"
TRUST_DOMAIN: Final = "spiffe://badset.test"
ALLOW_RULE: Final = f"URI:{TRUST_DOMAIN}/allowed/*"


@dataclass(frozen=True, slots=True, kw_only=True)
class BadCase:
    """One row of the matrix: a client credential and what a correct server does with it.

    ``expect``: ``accepted``; ``refused`` (TLS refuses it, with an alert);
    ``forbidden`` (authenticated, refused by authorization); ``local`` (a correct
    client refuses to use it at all, so it never reaches the server).
    """

    name: str
    description: str
    expect: str
    cert: str | None = None  # chain file, relative to the set's folder
    key: str | None = None
    authz: bool = False  # meaningful only when the server enforces the manifest's allow rule


@dataclass(frozen=True, slots=True, kw_only=True)
class Manifest:
    root: Path
    ca: str
    crl: str
    server_cert: str
    server_key: str
    allow: str
    cases: tuple[BadCase, ...]
    server_cases: tuple[BadCase, ...]
    other_ca: str = "other-ca/ca.pem"  # the CA nobody trusts (issuer of the untrusted cases)

    def path(self, relative: str) -> Path:
        return self.root / relative

    def server_settings(self) -> dict[str, Any]:
        """``[server]`` settings that make our server enforce the whole set (CA, CRL, allow rule)."""
        return {
            "cert": self.path(self.server_cert),
            "key": self.path(self.server_key),
            "ca": self.path(self.ca),
            "crl": self.path(self.crl),
            "allow": (self.allow,),
        }

    def case(self, name: str) -> BadCase:
        return next(c for c in (*self.cases, *self.server_cases) if c.name == name)

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        data.pop("root")
        return json.dumps(data, indent=2) + "\n"


def load_manifest(root: Path) -> Manifest:
    """Read ``DIR/manifest.json`` written by :func:`write_badset`."""
    data: dict[str, Any] = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    return Manifest(
        root=root,
        ca=data["ca"],
        crl=data["crl"],
        server_cert=data["server_cert"],
        server_key=data["server_key"],
        allow=data["allow"],
        cases=tuple(BadCase(**c) for c in data["cases"]),
        server_cases=tuple(BadCase(**c) for c in data["server_cases"]),
        other_ca=data.get("other_ca", "other-ca/ca.pem"),
    )


def _rel(root: Path, path: Path) -> str:
    return str(path.relative_to(root))


def write_badset(root: Path, *, now: dt.datetime | None = None, key_type: str = "p256") -> Manifest:
    """Write the whole set under ``root`` (which must not hold one already)."""
    now = now or utcnow()
    pki = PKIConfig(dir=root / "ca", ca_common_name="mtls-ref Badset Root CA", key_type=key_type)
    ca = CertificateAuthority.create(pki, intermediate=True, now=now - dt.timedelta(days=30))
    other_pki = dataclasses.replace(pki, dir=root / "other-ca", ca_common_name="Untrusted Other Root CA")
    other = CertificateAuthority.create(
        other_pki,
        now=now - dt.timedelta(days=30),
    )
    clients = root / "clients"

    def leaf(
        name: str,
        *,
        who: CertificateAuthority = ca,
        profile: Profile = Profile.CLIENT,
        sans: tuple[str, ...] | None = None,
        options: LeafOptions | None = None,
    ) -> IssuedFiles:
        return who.issue(
            profile,
            name,
            out_dir=clients,
            sans=[parse_san(s) for s in (sans or (f"URI:{TRUST_DOMAIN}/allowed/{name}",))],
            key_type=key_type,
            now=now,
            options=options,
        )

    def case(
        name: str,
        description: str,
        expect: str,
        files: IssuedFiles | None,
        *,
        chain: Path | None = None,
        key: Path | None = None,
        authz: bool = False,
    ) -> BadCase:
        cert_path = chain or (files.chain if files else None)
        key_path = key or (files.key if files else None)
        return BadCase(
            name=name,
            description=description,
            expect=expect,
            authz=authz,
            cert=_rel(root, cert_path) if cert_path else None,
            key=_rel(root, key_path) if key_path else None,
        )

    good = leaf("good")
    revoked = leaf("revoked")
    revoke(pki, ca, load_certificates(revoked.cert)[0], now=now)
    mismatch = leaf("key-mismatch")
    other_key = leaf("key-mismatch-other-key")
    intermediate_only = clients / "missing-intermediate-leaf-only.pem"
    missing = leaf("missing-intermediate")
    atomic_write(intermediate_only, missing.cert.read_bytes())
    ca_as_client = clients / "ca-as-client-chain.pem"
    atomic_write(ca_as_client, pem(ca.signer_cert))
    day = dt.timedelta(days=1)

    cases = (
        case("good", "control: a correct client certificate from the trusted CA", "accepted", good),
        case("no-cert", "no client certificate at all", "refused", None),
        case(
            "untrusted-ca",
            "issued by a CA the server does not trust",
            "refused",
            leaf("untrusted-ca", who=other),
        ),
        case(
            "expired",
            "validity ended yesterday",
            "refused",
            leaf("expired", options=LeafOptions(not_before=now - 30 * day, not_after=now - day)),
        ),
        case(
            "not-yet-valid",
            "validity starts tomorrow",
            "refused",
            leaf("not-yet-valid", options=LeafOptions(not_before=now + day, not_after=now + 30 * day)),
        ),
        case(
            "server-eku",
            "EKU serverAuth only: a server certificate used as a client",
            "refused",
            leaf("server-eku", options=LeafOptions(ekus=(ExtendedKeyUsageOID.SERVER_AUTH,))),
        ),
        case(
            "self-signed",
            "self-signed leaf, no CA",
            "refused",
            issue_self_signed(
                Profile.CLIENT,
                "self-signed",
                out_dir=clients,
                key_type=key_type,
                now=now,
                sans=[parse_san(f"URI:{TRUST_DOMAIN}/allowed/self-signed")],
            ),
        ),
        case("revoked", "on the CA's CRL", "refused", revoked),
        case(
            "key-mismatch",
            "certificate with someone else's private key",
            "local",
            mismatch,
            key=other_key.key,
        ),
        case(
            "missing-intermediate",
            "leaf sent without its intermediate",
            "refused",
            missing,
            chain=intermediate_only,
        ),
        case(
            "ca-as-client",
            "the intermediate CA certificate presented as a client certificate",
            "refused",
            None,
            chain=ca_as_client,
            key=pki.path(pki.intermediate_key),
        ),
        case(
            "not-allowed",
            "valid, but its identity is not on the allow-list",
            "forbidden",
            leaf("not-allowed", sans=(f"URI:{TRUST_DOMAIN}/outsider/not-allowed",)),
            authz=True,
        ),
    )
    servers = write_server_credentials(root, pki=pki, ca=ca, other=other, now=now, key_type=key_type)
    server = servers[0]  # the good one
    server_cases = tuple(
        BadCase(
            name=s.name,
            description=s.description,
            expect="accepted" if s.name in CONTROLS else "refused",
            cert=_rel(root, s.chain),
            key=_rel(root, s.key),
        )
        for s in servers[1:]
    )
    manifest = Manifest(
        root=root,
        ca=_rel(root, pki.path(pki.ca_cert)),
        crl=_rel(root, pki.path(pki.crl)),
        server_cert=_rel(root, server.chain),
        server_key=_rel(root, server.key),
        other_ca=_rel(root, other_pki.path(other_pki.ca_cert)),
        allow=ALLOW_RULE,
        cases=cases,
        server_cases=server_cases,
    )
    atomic_write(root / MANIFEST, manifest.to_json().encode())
    return manifest
