"""What the connection handler is told: the server's per-connection settings, in one frozen value."""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography import x509

from mtls_ref.shared.tls.identity import AllowList

from .forward import ForwardTarget

__all__ = ["HandlerSettings"]


@dataclass(frozen=True, slots=True, kw_only=True)
class HandlerSettings:
    handshake_timeout: float = 10.0
    idle_timeout: float = 60.0  # also: a reply the peer does not read within this drops it
    request_timeout: float = 10.0  # a whole request line (or HTTP head) once it has started
    max_line: int = 4096
    allow: AllowList = field(default_factory=AllowList)
    trace: bool = False  # log each connection's handshake diagram
    record_handshakes: bool = False  # keep each connection's messages for the browser page
    crl: tuple[str, ...] = ()  # the CRLs client leaves are checked against (views.describe_crls)
    protocol_sniff: float = 0.3
    ca_subject: str = "the configured CA"
    trusted: tuple[x509.Certificate, ...] = ()  # the CA file's certificates, to explain refusals
    forward: ForwardTarget | None = None  # forward mode: relay to this backend instead of answering
