"""One TLS connection, whichever engine made its context: the one boundary the handler and client see.

Theory of operation
-------------------
Each engine has one adapter implementing :class:`~mtls_ref.shared.tls.stream.TLSStream`
over a real socket taken from a ``trio.SocketStream``: OpenSSL reads and writes
the socket itself and Python only waits when OpenSSL says ``WANT_READ`` /
``WANT_WRITE``. :func:`open_tls_stream` picks the adapter from the context's
type, the only place the engines part; everything else asks the adapter. The
stdlib adapter is built in (the client uses it); an engine that lives with its
only user registers its adapter with :func:`register_adapter` (the server's
openssl engine, :mod:`mtls_ref.server.engine`, whose pyOpenSSL a client never loads).

Alert delivery. Because OpenSSL writes to the socket itself, a fatal alert
("unknown ca", "certificate required") leaves the moment it is queued; a
refused peer learns why. (``trio.SSLStream``, which keeps OpenSSL's output in a
memory BIO, raises before sending it: a known gap in trio, and why neither
engine uses it.) After a failed handshake :meth:`TLSConnection.abort` lingers,
reading until the peer closes, so a TCP reset cannot overtake the alert.

The alert that went out is reported by the engine itself (OpenSSL's info
callback, filtered to alerts written, on the openssl engine, or its message
callback when tracing; CPython's message callback on the stdlib engine) to
the recorder of the task driving the connection (:mod:`~mtls_ref.shared.tls.trace`);
:attr:`TLSConnection.sent_alert` reads it.

Tests drive these same adapters, over ``socketpair()`` where they need no
listening port: no code path exists only for tests.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Final, TypeAlias

import trio
from cryptography import x509

from mtls_ref.shared.tls import trace
from mtls_ref.shared.tls.socket_stream import SocketTLSStream
from mtls_ref.shared.tls.stream import TLSStream

__all__ = ["AdapterFactory", "TLSConnection", "open_tls_stream", "register_adapter"]

# How long a failed handshake may spend delivering its alert before we hang up.
ALERT_FLUSH_TIMEOUT: Final = 1.0

# (transport, context, server_side, server_hostname) -> the engine's stream over transport's socket.
AdapterFactory: TypeAlias = Callable[[trio.SocketStream, object, bool, "str | None"], TLSStream]


def _stdlib_adapter(
    transport: trio.SocketStream, context: object, server_side: bool, server_hostname: str | None
) -> TLSStream:
    if not isinstance(context, ssl.SSLContext):  # registered for this type only
        raise TypeError(f"a stdlib adapter for a {type(context).__qualname__}")
    return SocketTLSStream.wrap(transport, context, server_side=server_side, server_hostname=server_hostname)


# Context type -> its engine's adapter; a subclass (an ssl.SSLContext subclass) finds its base's.
_ADAPTERS: dict[type, AdapterFactory] = {ssl.SSLContext: _stdlib_adapter}


def register_adapter(context_type: type, factory: AdapterFactory) -> None:
    """Serve contexts of ``context_type`` with ``factory`` (an engine outside shared/ calls this once)."""
    _ADAPTERS[context_type] = factory


def open_tls_stream(
    transport: trio.SocketStream,
    context: object,
    *,
    server_side: bool,
    server_hostname: str | None = None,
) -> TLSStream:
    """The engine's adapter for ``context``, taking over ``transport``'s socket."""
    factory = next((_ADAPTERS[kind] for kind in type(context).__mro__ if kind in _ADAPTERS), None)
    if factory is None:
        raise TypeError(
            f"no TLS engine adapter is registered for {type(context).__qualname__} contexts "
            f"(registered: {', '.join(kind.__qualname__ for kind in _ADAPTERS)})"
        )
    return factory(transport, context, server_side, server_hostname)


class TLSConnection(trio.abc.Stream):
    """A TLS stream that tells a rejected peer why, closes politely, and reports its handshake."""

    def __init__(
        self,
        transport: trio.SocketStream,
        context: object,
        *,
        server_side: bool,
        server_hostname: str | None = None,
    ) -> None:
        self.handshake_done = False
        self._stream = open_tls_stream(
            transport, context, server_side=server_side, server_hostname=server_hostname
        )

    def __repr__(self) -> str:
        return f"<TLSConnection {self._stream!r} handshake_done={self.handshake_done}>"

    # -- the stream: what the handler, the HTTP loop, the relays and the client read and write ------

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        return await self._stream.receive_some(max_bytes)

    async def send_all(self, data: bytes | bytearray | memoryview, *, yield_after: bool = True) -> None:
        """``yield_after=False``: for a caller whose next step is itself a checkpoint (a receive):
        a write that did not have to wait then skips its own trip through the scheduler."""
        await self._stream.send_all(data, yield_after=yield_after)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    # -- what the handshake established ------------------------------------------------------------

    def version(self) -> str | None:
        """``TLSv1.3`` or ``TLSv1.2`` once the handshake is done."""
        return self._stream.version()

    def negotiated_version(self) -> str | None:
        """``TLSv1.3``, ``TLSv1.2``, or None, also after a failed handshake where the engine knows."""
        return self._stream.negotiated_version()

    def cipher(self) -> str | None:
        """The cipher suite's name once the handshake is done."""
        cipher = self._stream.cipher()
        return cipher[0] if cipher else None

    def selected_alpn_protocol(self) -> str | None:
        return self._stream.selected_alpn_protocol()

    def peer_certificate_der(self) -> bytes | None:
        """The peer's leaf (DER) after the handshake; resumed sessions carry it too."""
        der: bytes | None = self._stream.getpeercert(binary_form=True)
        return der

    def verified_chain(self) -> list[x509.Certificate] | None:
        """The chain the library verified, leaf to root, where the engine can tell (the openssl
        engine; Python 3.11's ssl gives the leaf only); None on a resumed session too."""
        return self._stream.verified_chain()

    def session_reused(self) -> bool:
        """Whether the handshake resumed an earlier session."""
        return self._stream.session_reused()

    @property
    def sent_alert(self) -> str | None:
        """The alert this side wrote on the wire, as the engine reported it (None: none written)."""
        recorder = trace.current_recorder()
        return recorder.sent_alert if recorder is not None else None

    def heard_peer(self) -> bool:
        """Whether the peer sent any TLS at all (a port probe sends none)."""
        heard = self._stream.heard_peer()
        if heard is None:  # the stdlib engine cannot tell; its message callback can
            recorder = trace.current_recorder()
            heard = bool(recorder and recorder.heard_peer)
        return heard

    # -- handshake and close ---------------------------------------------------------------------

    async def handshake(self) -> None:
        """Run the handshake; on failure the engine has already sent its alert."""
        await self._stream.do_handshake()
        self.handshake_done = True

    def close_politely(self) -> bool:
        """close_notify and close after a completed handshake, and True; False (nothing done) otherwise.

        Both engines send close_notify in one try without waiting for the peer's, so this never
        blocks and needs neither a deadline nor a shield: a task can say goodbye while cancelled."""
        if not self.handshake_done:
            return False
        self._stream.close_notify()
        return True

    async def aclose(self, *, yield_after: bool = True) -> None:
        """close_notify after a completed handshake; otherwise :meth:`abort` (a bounded linger).

        ``yield_after=False``: for a task that ends here, no scheduling point after close_notify."""
        if not self.close_politely():
            await self.abort()
        elif yield_after:
            await trio.lowlevel.checkpoint()

    async def abort(self) -> None:
        """Close without a TLS goodbye, lingering briefly so an alert already sent is not lost to a RST."""
        await self._stream.linger_close(ALERT_FLUSH_TIMEOUT)
