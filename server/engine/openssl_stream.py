"""A trio stream over a pyOpenSSL connection on a non-blocking socket (the openssl engine).

Theory of operation
-------------------
The same shape as :class:`~mtls_ref.shared.tls.socket_stream.SocketTLSStream`:
OpenSSL reads and writes the socket itself, and Python only waits, with
``trio.lowlevel.wait_readable`` / ``wait_writable``, when OpenSSL says
``WANT_READ`` / ``WANT_WRITE`` (SSL_get_error(3)). A fatal alert leaves the
moment OpenSSL queues it, so a refused client always learns why.

Errors are converted at this one boundary into what the rest of the project
already speaks: a failed handshake or read raises ``trio.BrokenResourceError``
whose cause is an :class:`ssl.SSLError` (an :class:`ssl.SSLCertVerificationError`
with ``verify_code`` and ``verify_message`` when the peer's chain failed), with
``reason`` spelled as CPython spells it (``CERTIFICATE_VERIFY_FAILED``,
``TLSV13_ALERT_CERTIFICATE_REQUIRED``). The pyOpenSSL error stays attached as
that exception's ``__cause__``. So :mod:`.diagnose` has one table for both
engines.

pyOpenSSL sets ``SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER``, so a write that must be
retried may be retried from a new memoryview of the same bytes.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Callable
from typing import Any, TypeVar

import trio
from cryptography import x509
from OpenSSL import SSL, crypto

from mtls_ref.shared.tls.socket_stream import SocketOwner, restore_send_buffering
from mtls_ref.shared.tls.stream import RECEIVE_SIZE

from . import openssl_lowlevel

__all__ = ["OpenSSLSocketStream"]

_T = TypeVar("_T")
def _as_ssl_error(exc: SSL.Error, connection: SSL.Connection) -> ssl.SSLError:
    """The stdlib exception that CPython would raise for the same OpenSSL failure."""
    if isinstance(exc, SSL.SysCallError):
        eof = ssl.SSLEOFError(ssl.SSL_ERROR_EOF, "EOF occurred in violation of protocol")
        eof.reason, eof.library = "UNEXPECTED_EOF_WHILE_READING", "SSL"
        return eof
    details = exc.args[0] if exc.args and isinstance(exc.args[0], list) else []
    library, reason = ("SSL", str(exc))
    if details and isinstance(details[-1], tuple) and len(details[-1]) == 3:
        library, _, text = details[-1]
        reason = text.upper().replace(" ", "_")
    code, message = openssl_lowlevel.verify_result(connection)
    if reason == "CERTIFICATE_VERIFY_FAILED" and code != 0:
        error: ssl.SSLError = ssl.SSLCertVerificationError(
            ssl.SSL_ERROR_SSL, f"[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: {message}"
        )
        error.verify_code, error.verify_message = code, message  # type: ignore[attr-defined]
    else:
        error = ssl.SSLError(ssl.SSL_ERROR_SSL, f"[{library}: {reason}] {exc!s}")
    error.reason, error.library = reason, library
    return error


class OpenSSLSocketStream(SocketOwner, trio.abc.Stream):
    """Server-side TLS over a connected socket taken from a ``trio.SocketStream``."""

    def __init__(self, connection: SSL.Connection, sock: socket.socket) -> None:
        self._conn = connection
        self._sock = sock
        self._closed = False

    @classmethod
    def wrap(cls, transport: trio.SocketStream, context: SSL.Context) -> OpenSSLSocketStream:
        """Take over ``transport``'s socket (the transport must not be used afterwards)."""
        source = transport.socket
        # Family, type and protocol given, so Python does not ask the kernel for them again.
        sock = socket.socket(source.family, source.type, source.proto, fileno=source.detach())
        sock.setblocking(False)
        restore_send_buffering(sock)
        connection = SSL.Connection(context, sock)
        connection.set_accept_state()
        return cls(connection, sock)

    def __repr__(self) -> str:
        return f"<OpenSSLSocketStream fd={self._sock.fileno()} closed={self._closed}>"

    # -- what the handler asks, as SSLStream / SSLObject spell it ------------------

    def version(self) -> str | None:
        return self._conn.get_protocol_version_name()

    def cipher(self) -> tuple[str, str, int] | None:
        name = self._conn.get_cipher_name()
        if name is None:
            return None
        return name, self._conn.get_cipher_version() or "", self._conn.get_cipher_bits() or 0

    def getpeercert(self, binary_form: bool = False) -> bytes | None:
        """The peer's leaf as DER (as ``SSLObject.getpeercert(True)``); no parsing on the way."""
        if not binary_form:
            raise ValueError("the openssl engine gives the peer certificate in binary form only")
        cert = self._conn.get_peer_certificate()
        return crypto.dump_certificate(crypto.FILETYPE_ASN1, cert) if cert is not None else None

    def selected_alpn_protocol(self) -> str | None:
        return self._conn.get_alpn_proto_negotiated().decode("ascii", "replace") or None

    def verified_chain(self) -> list[x509.Certificate] | None:
        """The chain OpenSSL verified, leaf to root; None on a resumed session (verified back then)."""
        return self._conn.get_verified_chain(as_cryptography=True)

    def session_reused(self) -> bool:
        return openssl_lowlevel.session_reused(self._conn)

    def negotiated_version(self) -> str | None:
        """Known from ServerHello on, so also after a handshake that failed later."""
        return self._conn.get_protocol_version_name() if self._conn.client_random() is not None else None

    def heard_peer(self) -> bool:
        """A ClientHello arrived: OpenSSL makes the session (and keeps its client random) on reading one."""
        return self._conn.client_random() is not None

    # -- I/O ----------------------------------------------------------------------

    async def _retry(self, operation: Callable[..., _T], *args: Any) -> _T:
        """Run ``operation`` until OpenSSL stops asking to wait; a checkpoint either way.

        As trio's own sockets do: a cancellation is noticed first; an operation that
        had to wait has been through the scheduler already, and one that did not is
        given one shielded yield, so no I/O call ever skips a checkpoint.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        waited = False
        while True:
            if self._closed:
                raise trio.ClosedResourceError("this TLS stream was closed")
            try:
                result = operation(*args)
            except SSL.WantReadError:
                await trio.lowlevel.wait_readable(self._sock)
            except SSL.WantWriteError:
                await trio.lowlevel.wait_writable(self._sock)
            else:
                if not waited:
                    await trio.lowlevel.cancel_shielded_checkpoint()
                return result
            waited = True

    async def do_handshake(self) -> None:
        try:
            await self._retry(self._conn.do_handshake)
        except SSL.Error as exc:
            raise trio.BrokenResourceError from _as_ssl_error(exc, self._conn)
        except OSError as exc:
            raise trio.BrokenResourceError from exc

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        try:
            data = await self._retry(self._conn.recv, max_bytes or RECEIVE_SIZE)
        except SSL.ZeroReturnError:
            data = b""  # close_notify
        except SSL.SysCallError as exc:
            if exc.args and exc.args[0] == -1:
                data = b""  # the peer hung up without close_notify: end of stream all the same
            else:
                raise trio.BrokenResourceError from exc
        except SSL.Error as exc:
            raise trio.BrokenResourceError from _as_ssl_error(exc, self._conn)
        except OSError as exc:
            raise trio.BrokenResourceError from exc
        return data

    async def send_all(self, data: bytes | bytearray | memoryview, *, yield_after: bool = True) -> None:
        # One checkpoint for the whole buffer, not one per record: with partial writes
        # (pyOpenSSL's default) OpenSSL returns after each 16 KiB record, and a yield to
        # the scheduler after each would cost bulk transfers a third of their speed.
        await trio.lowlevel.checkpoint_if_cancelled()
        view = memoryview(data)
        waited = False
        try:
            while view:
                if self._closed:
                    raise trio.ClosedResourceError("this TLS stream was closed")
                try:
                    view = view[self._conn.send(view) :]
                except SSL.WantWriteError:
                    await trio.lowlevel.wait_writable(self._sock)
                    waited = True
                except SSL.WantReadError:
                    await trio.lowlevel.wait_readable(self._sock)
                    waited = True
        except SSL.Error as exc:
            raise trio.BrokenResourceError from _as_ssl_error(exc, self._conn)
        except OSError as exc:
            raise trio.BrokenResourceError from exc
        if not waited and yield_after:
            await trio.lowlevel.cancel_shielded_checkpoint()

    def close_notify(self) -> None:
        """:meth:`aclose` without its scheduling point: nothing in it waits."""
        if self._closed:
            return
        with contextlib.suppress(SSL.Error, OSError):
            # One call queues and tries to send our close_notify; a full socket buffer
            # (WantWrite) or a peer already gone only means it is not delivered.
            self._conn.shutdown()
        self.close_now()
