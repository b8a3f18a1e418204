"""What the server says about an authenticated client: shared by the line protocol and HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from mtls_ref.shared.tls.identity import Decision, PeerIdentity
from mtls_ref.shared.tls.trace import HandshakeRecorder

__all__ = ["SessionInfo", "describe_crls", "forbidden_document", "home_page", "whoami_document"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionInfo:
    """The authenticated facts of one connection."""

    identity: PeerIdentity
    decision: Decision
    tls_version: str | None
    cipher: str | None
    ca_subject: str
    resumed: bool = False
    # Subjects of the verified chain, leaf to root; asked only by whoami and the home page
    # (building it costs more than the rest of a connection's bookkeeping). None: unknown.
    verified_chain: Callable[[], list[str] | None] = field(default=lambda: None, repr=False)
    alpn: Callable[[], str | None] = field(default=lambda: None, repr=False)  # asked by the page only
    # The CRLs the leaf was checked against, as :func:`describe_crls` names them (issuer, next
    # update), computed when the CRL file is loaded, not per request; empty: no revocation check.
    # Never the file's path: that is no business of the server's clients.
    crl: tuple[str, ...] = ()
    # This connection's messages so far, when the server records them (record_handshakes/trace).
    handshake: HandshakeRecorder | None = field(default=None, repr=False)
    http_version: str | None = None  # "HTTP/1.1" or "HTTP/2", once the HTTP loop has it


def describe_crls(crls: Iterable[x509.CertificateRevocationList]) -> tuple[str, ...]:
    """``CRL from O=...,CN=... Intermediate, next update 2027-01-31``, one per CRL: what a client is told."""
    return tuple(
        f"CRL from {crl.issuer.rfc4514_string()}, "
        + (f"next update {crl.next_update_utc:%Y-%m-%d}" if crl.next_update_utc else "no next update")
        for crl in crls
    )


def whoami_document(info: SessionInfo) -> dict[str, Any]:
    """The WHOAMI answer: who the server authenticated, and over what."""
    return {
        **info.identity.to_dict(),
        "tls_version": info.tls_version,
        "cipher": info.cipher,
        "verified_chain": info.verified_chain(),
        "session_resumed": info.resumed,
    }


def forbidden_document(info: SessionInfo) -> dict[str, Any]:
    """Why an authenticated client is refused by the allow-list."""
    return {
        "error": "forbidden",
        "identity": info.identity.label,
        "names": info.identity.names(),
        "reason": info.decision.told,
    }


def home_page(info: SessionInfo) -> str:
    """A short text page: who you are and how you were verified."""
    ident = info.identity
    names = ", ".join(ident.names()) or "(no names)"
    return (
        f"Hello, {ident.label}.\n\n"
        f"You connected over {info.tls_version} ({info.cipher}) and presented a client certificate:\n"
        f"  subject  {ident.subject}\n"
        f"  names    {names}\n"
        f"  issuer   {ident.issuer}\n"
        f"  serial   {ident.serial}\n"
        f"  sha256   {ident.sha256}\n"
        f"  key      {ident.key}, valid until {ident.not_after}\n\n"
        f"How you were verified: OpenSSL built your chain to the trusted CA ({info.ca_subject}),\n"
        f"{_chain_line(info)}"
        "checked every signature and validity period and that the leaf is for clientAuth, and your\n"
        "CertificateVerify proved you hold the private key. Authorization: "
        f"{info.decision.reason}.\n\n"
        "Try GET /whoami for JSON, or the line protocol (WHOAMI, ECHO, QUIT) without HTTP.\n"
    )


def shown_chain(info: SessionInfo) -> list[str] | str:
    """The verified chain to show, leaf to root, or why there is none: "resumed" or "unknown"."""
    if info.resumed:
        return "resumed"
    return info.verified_chain() or "unknown"


def _chain_line(info: SessionInfo) -> str:
    match shown_chain(info):
        case "resumed":
            return "  (this connection resumed a session: the chain was verified when it was made)\n"
        case list(chain):
            return "  verified chain: " + " <- ".join(chain) + "\n"
    return ""
