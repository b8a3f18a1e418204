"""The ``mtls_badset`` fixture's set: every bad client credential, one client context per case."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from mtls_ref.shared.pki.badset import Manifest, write_badset

__all__ = ["MtlsBadSet"]


class MtlsBadSet:
    """The bad-credential set (``mtls-certs badset``): one client context per case."""

    def __init__(self, directory: Path) -> None:
        self.manifest: Manifest = write_badset(directory)

    def __repr__(self) -> str:
        return f"<MtlsBadSet {self.manifest.root}>"

    @property
    def cases(self) -> list[str]:
        """Client cases: good, no-cert, untrusted-ca, expired, ..., not-allowed."""
        return [c.name for c in self.manifest.cases]

    def expectation(self, case: str) -> str:
        """accepted, refused, forbidden, or local (a correct client will not even load it)."""
        return self.manifest.case(case).expect

    def client_context(self, case: str) -> ssl.SSLContext:
        """A client context presenting the case's credential and trusting the set's CA."""
        spec, m = self.manifest.case(case), self.manifest
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(cafile=str(m.path(m.ca)))
        if spec.cert and spec.key:
            ctx.load_cert_chain(m.path(spec.cert), m.path(spec.key))
        return ctx

    def server_settings(self) -> dict[str, Any]:
        """``[server]`` settings that make our server enforce the whole set (CA, CRL, allow rule)."""
        return self.manifest.server_settings()
