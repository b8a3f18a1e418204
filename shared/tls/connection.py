"""One TLS connection, whichever engine made its context: the one boundary the handler and client see.

Theory of operation
-------------------
Alert delivery. ``trio.SSLStream`` keeps OpenSSL's output in a memory BIO and,
when ``do_handshake`` fails, raises before sending what is in it, which is the
fatal alert OpenSSL just queued ("unknown ca", "certificate required"...). The
rejected peer then sees a bare EOF. (A known gap in trio; other TLS stacks had
the same bug, e.g. boostorg/asio#189.) :class:`TLSConnection` closes it twice:
over real sockets it uses :class:`~mtls_ref.shared.tls.socket_stream.SocketTLSStream`, where
OpenSSL writes the alert to the socket itself (and is cheaper, see ``make
bench``), then lingers so a TCP reset cannot overtake the alert; over other
streams (memory streams in tests) it hands trio a context proxy whose
``wrap_bio`` keeps the outgoing BIO (the stdlib signature, no private trio
attribute) and sends what is left in it.

The openssl engine (a pyOpenSSL context) always runs over a real socket,
through :class:`~mtls_ref.shared.tls.openssl_stream.OpenSSLSocketStream`, where
OpenSSL writes its alerts to the socket itself, as on the stdlib socket path.
"""

from __future__ import annotations

import contextlib
import ssl
from typing import Final, cast

import trio
from cryptography import x509
from OpenSSL import SSL

from mtls_ref.shared.tls import trace
from mtls_ref.shared.tls.openssl_stream import OpenSSLSocketStream
from mtls_ref.shared.tls.socket_stream import SocketTLSStream

__all__ = ["ServerContext", "TLSConnection", "plaintext_alert"]

# How long a failed handshake may spend delivering its alert before we hang up.
ALERT_FLUSH_TIMEOUT: Final = 1.0

# What the server hands each connection: a stdlib context or a pyOpenSSL one (tls_engine).
ServerContext = ssl.SSLContext | SSL.Context


def plaintext_alert(records: bytes) -> str | None:
    """The alert in an unencrypted alert record (TLS 1.2 handshake), else None.

    Record: type 21, version (2), length 2, then level and description (RFC 5246 §7.2).
    Under TLS 1.3 the alert is encrypted (outer type 23) and this returns None.
    """
    if len(records) >= 7 and records[0] == 21 and records[3:5] == b"\x00\x02":
        return trace.ALERT_NAMES.get(records[6], str(records[6]))
    return None


class _BioCapture:
    """Stands in for an SSLContext so we keep the outgoing BIO trio creates."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        self.outgoing: ssl.MemoryBIO | None = None

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
    ) -> ssl.SSLObject:
        self.outgoing = outgoing
        return self._context.wrap_bio(
            incoming, outgoing, server_side=server_side, server_hostname=server_hostname
        )


class TLSConnection(trio.abc.Stream):
    """A TLS stream that always tells a rejected peer why, and closes politely.

    Over a real socket (``trio.SocketStream``) it uses :class:`SocketTLSStream`:
    OpenSSL does the I/O, so alerts leave at once and the handshake costs the
    least CPU. Over any other stream (tests use memory streams) it uses
    ``trio.SSLStream`` and flushes the alert that stream would leave behind.
    """

    def __init__(
        self,
        transport: trio.abc.Stream,
        context: ServerContext,
        *,
        server_side: bool,
        server_hostname: str | None = None,
    ) -> None:
        self.sent_alert: str | None = None  # the alert we sent, when we could see it (plaintext, memory BIO)
        self.handshake_done = False
        self._capture: _BioCapture | None = None
        self._stream: trio.SSLStream[trio.abc.Stream] | SocketTLSStream | OpenSSLSocketStream
        if isinstance(context, SSL.Context):
            if not isinstance(transport, trio.SocketStream) or not server_side:
                raise TypeError("the openssl engine serves TCP sockets (trio.SocketStream), server side only")
            self._stream = OpenSSLSocketStream.wrap(transport, context)
        elif isinstance(transport, trio.SocketStream):
            self._stream = SocketTLSStream.wrap(
                transport, context, server_side=server_side, server_hostname=server_hostname
            )
        else:
            self._capture = _BioCapture(context)
            self._stream = trio.SSLStream(
                transport,
                cast(ssl.SSLContext, self._capture),
                server_side=server_side,
                server_hostname=server_hostname,
            )

    # -- the stream: what the handler, the HTTP loop, the relays and the client read and write ------

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        return bytes(await self._stream.receive_some(max_bytes))

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    # -- what the handshake established ------------------------------------------------------------

    def version(self) -> str | None:
        """``TLSv1.3`` or ``TLSv1.2`` once the handshake is done."""
        version: str | None = self._stream.version()
        return version

    def cipher(self) -> str | None:
        """The cipher suite's name once the handshake is done."""
        cipher = self._stream.cipher()
        return cipher[0] if cipher else None

    def selected_alpn_protocol(self) -> str | None:
        protocol: str | None = self._stream.selected_alpn_protocol()
        return protocol

    def peer_certificate_der(self) -> bytes | None:
        """The peer's leaf (DER) after the handshake; resumed sessions carry it too."""
        der: bytes | None = self._stream.getpeercert(binary_form=True)
        return der

    def verified_chain(self) -> list[x509.Certificate] | None:
        """The chain the library verified, leaf to root, where the engine can tell.

        Python 3.11's ssl gives the peer's leaf only, so the stdlib engine says None;
        so does a resumed session (its chain was verified when it was made).
        """
        if isinstance(self._stream, OpenSSLSocketStream):
            return self._stream.verified_chain()
        return None

    def negotiated_version(self) -> str | None:
        """``TLSv1.3``, ``TLSv1.2``, or None, even after a failed handshake (where ServerHello went out)."""
        if isinstance(self._stream, OpenSSLSocketStream):
            return self._stream.version()
        return self._stream.version() if self.handshake_done else None

    def session_reused(self) -> bool:
        """Whether the handshake resumed an earlier session."""
        if isinstance(self._stream, OpenSSLSocketStream | SocketTLSStream):
            return self._stream.session_reused()
        return bool(self._stream.session_reused)

    async def handshake(self) -> None:
        """Run the handshake; on failure make sure the alert went out, then re-raise."""
        try:
            await self._stream.do_handshake()
        except trio.BrokenResourceError:
            await self.flush_alert()
            raise
        self.handshake_done = True

    async def flush_alert(self) -> None:
        """Send whatever OpenSSL left in trio's outgoing memory BIO (a fatal alert), within a bound."""
        if (
            self._capture is None
            or self._capture.outgoing is None
            or not isinstance(self._stream, trio.SSLStream)
        ):
            return  # the socket-backed stream has sent it already
        pending = self._capture.outgoing.read()
        if not pending:
            return
        self.sent_alert = plaintext_alert(pending)
        # A peer that is already gone cannot be told anything more.
        with (
            trio.move_on_after(ALERT_FLUSH_TIMEOUT),
            contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError),
        ):
            await self._stream.transport_stream.send_all(pending)

    async def aclose(self, *, goodbye_within: float = ALERT_FLUSH_TIMEOUT) -> None:
        """close_notify after a completed handshake (bounded by ``goodbye_within`` s); otherwise just drop."""
        if self.handshake_done:
            with (
                trio.move_on_after(goodbye_within) as scope,
                contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError),
            ):
                await self._stream.aclose()
            if not scope.cancelled_caught:
                return
        await self.abort()

    async def abort(self) -> None:
        """Close without a TLS goodbye, lingering briefly so an alert already sent is not lost to a RST."""
        if isinstance(self._stream, SocketTLSStream | OpenSSLSocketStream):
            await self._stream.linger_close(ALERT_FLUSH_TIMEOUT)
        else:
            await trio.aclose_forcefully(self._stream.transport_stream)
