"""The ``mtls_ca`` fixture's CA: a throwaway root and intermediate that issue role-correct leaves.

In trustme's style: ``configure_trust(ctx)`` on the CA and ``configure_cert(ctx)``
on a leaf set up an ``ssl.SSLContext`` in one call each; unlike trustme, a leaf
carries only its role's EKU (serverAuth or clientAuth) and its subjectAltName is
not critical, as strict verifiers want.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from mtls_ref.shared.core.config import PKIConfig
from mtls_ref.shared.pki.authority import CertificateAuthority
from mtls_ref.shared.pki.leaf_files import IssuedFiles
from mtls_ref.shared.pki.names import parse_san
from mtls_ref.shared.pki.profiles import Profile

__all__ = ["DEFAULT_SERVER_SANS", "MtlsCA", "MtlsLeaf"]

DEFAULT_SERVER_SANS: Final = ("DNS:localhost", "IP:127.0.0.1", "IP:::1")


@dataclass(frozen=True, slots=True)
class MtlsLeaf:
    """An issued certificate and its key, as files."""

    name: str
    files: IssuedFiles

    @property
    def cert_path(self) -> Path:
        return self.files.cert

    @property
    def chain_path(self) -> Path:
        """Leaf + intermediate: what a peer must send."""
        return self.files.chain

    @property
    def key_path(self) -> Path:
        return self.files.key

    def configure_cert(self, ctx: ssl.SSLContext) -> None:
        """Present this certificate (with its chain) from ``ctx``."""
        ctx.load_cert_chain(self.chain_path, self.key_path)


class MtlsCA:
    """A root CA with an intermediate that signs role-correct leaves."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._pki = PKIConfig(dir=directory, ca_common_name="mtls-ref pytest CA")
        self._ca = CertificateAuthority.create(self._pki, intermediate=True)
        self._server: MtlsLeaf | None = None

    def __repr__(self) -> str:
        return f"<MtlsCA {self.directory}>"

    @property
    def ca_cert_path(self) -> Path:
        """The root CA's PEM file: what requests' ``verify=``, curl's ``--cacert`` and
        ``ssl.create_default_context(cafile=...)`` take."""
        return self._pki.path(self._pki.ca_cert)

    def configure_trust(self, ctx: ssl.SSLContext) -> None:
        """Trust this CA (and only what it issues) in ``ctx``."""
        ctx.load_verify_locations(cafile=str(self.ca_cert_path))

    def issue_client(self, name: str = "client", sans: Sequence[str] = ()) -> MtlsLeaf:
        """A clientAuth-only leaf; SANs as ``URI:spiffe://...``, ``email:...``, ``DNS:...``."""
        return self._issue(Profile.CLIENT, name, sans)

    def issue_server(self, name: str = "localhost", sans: Sequence[str] = DEFAULT_SERVER_SANS) -> MtlsLeaf:
        """A serverAuth-only leaf, valid for localhost and the loopback addresses by default."""
        return self._issue(Profile.SERVER, name, sans)

    @property
    def server(self) -> MtlsLeaf:
        """The default server leaf (made on first use)."""
        if self._server is None:
            self._server = self.issue_server()
        return self._server

    def _issue(self, profile: Profile, name: str, sans: Sequence[str]) -> MtlsLeaf:
        files = self._ca.issue(profile, name, out_dir=self.directory, sans=[parse_san(s) for s in sans])
        return MtlsLeaf(name, files)

    def client_context(self, leaf: MtlsLeaf | None = None) -> ssl.SSLContext:
        """A client context trusting this CA, presenting ``leaf`` (none: no certificate)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        self.configure_trust(ctx)
        if leaf is not None:
            leaf.configure_cert(ctx)
        return ctx

    def server_context(self, leaf: MtlsLeaf | None = None) -> ssl.SSLContext:
        """A server context that requires client certificates from this CA."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.verify_mode = ssl.CERT_REQUIRED
        self.configure_trust(ctx)
        (leaf or self.server).configure_cert(ctx)
        return ctx
