"""What every TLS engine's stream offers: the one interface behind :class:`TLSConnection`.

Two adapters implement it, one per engine, both over a real socket that OpenSSL
reads and writes itself: :class:`~mtls_ref.shared.tls.socket_stream.SocketTLSStream`
(Python's ``ssl``, the system OpenSSL) and
:class:`~mtls_ref.server.engine.openssl_stream.OpenSSLSocketStream` (pyOpenSSL, the
OpenSSL that cryptography ships; the server's only, registered by its engine
package). Where an engine cannot tell a fact it says so (``None``) rather than
guess; :class:`EngineTraits` states up front what each engine can tell, for the
banner and the pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Protocol

from cryptography import x509

__all__ = ["RECEIVE_SIZE", "RECORD_SIZE", "EngineTraits", "TLSStream"]

# How much a read asks for. An adapter's default (and a bulk reader's): large enough that one call
# takes several records. A loop that parses what it reads (lines, HTTP/1.1 heads) asks for one
# maximal record's plaintext at a time, so that its limits are checked as the bytes come.
RECEIVE_SIZE: Final = 65536
RECORD_SIZE: Final = 16384  # RFC 8446 §5.1: a record's plaintext is at most 2^14 bytes


class TLSStream(Protocol):
    """A TLS stream over a socket, and what its handshake established."""

    async def do_handshake(self) -> None: ...
    async def receive_some(self, max_bytes: int | None = None) -> bytes: ...
    async def send_all(self, data: bytes | bytearray | memoryview, *, yield_after: bool = True) -> None:
        """Send ``data``; ``yield_after=False`` skips the scheduling point after a write that did not
        have to wait (the caller's next step is one, e.g. a receive); cancellation is checked first."""
    async def wait_send_all_might_not_block(self) -> None: ...
    async def aclose(self, *, yield_after: bool = True) -> None:
        """close_notify and close; ``yield_after=False`` skips the scheduling point after it."""

    def close_notify(self) -> None:
        """Send close_notify once, without waiting for the peer's, and close: never blocks."""

    async def linger_close(self, linger: float) -> None:
        """Close without a TLS goodbye, reading until the peer closes (bounded) so an alert survives."""

    def version(self) -> str | None:
        """``TLSv1.3`` / ``TLSv1.2`` once the handshake is done."""

    def negotiated_version(self) -> str | None:
        """The version, also after a failed handshake where the engine knows it (else None)."""

    def cipher(self) -> tuple[str, str, int] | None: ...
    def selected_alpn_protocol(self) -> str | None: ...
    def getpeercert(self, binary_form: bool = False) -> Any: ...

    def verified_chain(self) -> list[x509.Certificate] | None:
        """The chain the library verified, leaf to root; None where the engine cannot tell."""

    def session_reused(self) -> bool: ...

    def heard_peer(self) -> bool | None:
        """Whether any TLS came from the peer (a ClientHello); None where the engine cannot tell."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineTraits:
    """What an engine can do and tell, stated once instead of asked by name."""

    name: str
    sends_ca_names: bool  # acceptable CA names in CertificateRequest
    knows_verified_chain: bool  # the verified chain per connection (whoami, Client-Cert-Chain)
