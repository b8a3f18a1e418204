"""A trio stream over a non-blocking ``ssl.SSLSocket``: OpenSSL does the socket I/O itself.

Theory of operation
-------------------
``trio.SSLStream`` drives an ``SSLObject`` through two memory BIOs, so every
TLS record is copied through Python twice and every step of the handshake is a
Python-level loop. For a server whose hot path is the handshake that is most of
its CPU (measured in ``make bench``). Here OpenSSL reads and writes the socket
directly; Python only waits, with ``trio.lowlevel.wait_readable`` /
``wait_writable``, when OpenSSL says ``SSL_ERROR_WANT_READ`` / ``WANT_WRITE``.
A side effect is that fatal alerts go out the moment OpenSSL queues them.

The stream implements the part of ``trio.abc.Stream`` (and of ``SSLStream``'s
attribute forwarding) that this project uses. Like ``SSLStream`` it must not be
read from (or written to) by two tasks at once; the handler never does. A
cancelled ``send_all`` leaves the stream unusable, as with any trio stream;
``receive_some`` may be cancelled freely (OpenSSL keeps its state).

References: SSL_get_error(3) for the retry rules (a write that wants to retry
is retried with the same bytes; CPython sets SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER
so the buffer may move), SSL_shutdown(3) for the one-way close_notify.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from typing import Any, Final

import trio
from cryptography import x509

from .stream import RECEIVE_SIZE

__all__ = ["SocketOwner", "SocketTLSStream", "restore_send_buffering"]

# trio.SocketStream sets TCP_NOTSENT_LOWAT to 16 KiB (latency for its own buffered
# streams). With OpenSSL writing to the socket itself that only makes a bulk sender
# wake up for every record: the kernel's default (no limit) gives the throughput back.
_NOTSENT_LOWAT_DEFAULT: Final = 2**31 - 1  # as good as the default (UINT_MAX), and fits a C int


def restore_send_buffering(sock: socket.socket) -> None:
    """Undo trio's TCP_NOTSENT_LOWAT on a socket that OpenSSL will write to directly."""
    option = getattr(socket, "TCP_NOTSENT_LOWAT", None)
    if option is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, option, _NOTSENT_LOWAT_DEFAULT)


class SocketOwner:
    """What both socket-backed TLS streams do with the socket itself: linger, close, wake waiters."""

    _sock: socket.socket
    _closed: bool

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.wait_writable(self._sock)

    async def linger_close(self, linger: float) -> None:
        """Half-close, then read and discard until the peer closes (bounded), then close.

        Closing a socket with unread input makes the kernel send RST, and a peer
        that gets RST may drop data it had not read yet: the alert explaining why
        its handshake failed. Lingering lets the alert arrive (as nginx's
        lingering_close does).
        """
        if self._closed:
            return
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_WR)  # also drops the TLS layer: reads below are raw
        with trio.move_on_after(linger):
            while True:
                await trio.lowlevel.wait_readable(self._sock)
                try:
                    if not self._sock.recv(RECEIVE_SIZE):
                        break
                except BlockingIOError:
                    continue
                except OSError:
                    break
        self.close_now()

    def close_notify(self) -> None:
        """Send close_notify once, in one try that never waits, and close the socket (per engine)."""
        raise NotImplementedError

    async def aclose(self, *, yield_after: bool = True) -> None:
        """Send close_notify (once, without waiting for the peer's) and close the socket."""
        self.close_notify()
        if yield_after:
            await trio.lowlevel.checkpoint()

    def close_now(self) -> None:
        """Drop the connection without any TLS goodbye (wakes any task waiting on it)."""
        if self._closed:
            return
        self._closed = True
        trio.lowlevel.notify_closing(self._sock)
        self._sock.close()


class SocketTLSStream(SocketOwner, trio.abc.Stream):
    """TLS over a connected socket taken from a ``trio.SocketStream``."""

    _sock: ssl.SSLSocket

    def __init__(self, sock: ssl.SSLSocket) -> None:
        self._sock = sock
        self._closed = False
        self._handshake_done = False

    @classmethod
    def wrap(
        cls,
        transport: trio.SocketStream,
        context: ssl.SSLContext,
        *,
        server_side: bool,
        server_hostname: str | None = None,
    ) -> SocketTLSStream:
        """Take over ``transport``'s socket (the transport must not be used afterwards)."""
        fd = transport.socket.detach()
        raw = socket.socket(fileno=fd)
        raw.setblocking(False)
        restore_send_buffering(raw)
        sock = context.wrap_socket(
            raw, server_side=server_side, server_hostname=server_hostname, do_handshake_on_connect=False
        )
        return cls(sock)

    def __repr__(self) -> str:
        return f"<SocketTLSStream fd={self._sock.fileno()} closed={self._closed}>"

    # -- what SSLStream forwards to its SSLObject, and we use ---------------------

    def version(self) -> str | None:
        return self._sock.version()

    def cipher(self) -> tuple[str, str, int] | None:
        return self._sock.cipher()

    def getpeercert(self, binary_form: bool = False) -> Any:
        return self._sock.getpeercert(binary_form=binary_form)

    def selected_alpn_protocol(self) -> str | None:
        return self._sock.selected_alpn_protocol()

    def session_reused(self) -> bool:
        return bool(self._sock.session_reused)

    def negotiated_version(self) -> str | None:
        """Python's ssl names the version only once the handshake is done."""
        return self._sock.version() if self._handshake_done else None

    def verified_chain(self) -> list[x509.Certificate] | None:
        """Python 3.11's ssl gives the peer's leaf only (get_verified_chain came in 3.13)."""
        return None

    def heard_peer(self) -> bool | None:
        """Not told by Python's ssl; the message callback (:mod:`.trace`) sees the peer's messages."""
        return None

    # -- I/O ------------------------------------------------------------------------

    async def _retry(self, operation: Any, *args: Any) -> Any:
        while True:
            if self._closed:
                raise trio.ClosedResourceError("this TLS stream was closed")
            try:
                return operation(*args)
            except ssl.SSLWantReadError:
                await trio.lowlevel.wait_readable(self._sock)
            except ssl.SSLWantWriteError:
                await trio.lowlevel.wait_writable(self._sock)

    async def do_handshake(self) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            await self._retry(self._sock.do_handshake)
        except (ssl.SSLError, OSError) as exc:
            raise trio.BrokenResourceError from exc
        self._handshake_done = True
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            data: bytes = await self._retry(self._sock.recv, max_bytes or RECEIVE_SIZE)
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            data = b""  # close_notify, or a peer that hung up without one: end of stream either way
        except (ssl.SSLError, OSError) as exc:
            raise trio.BrokenResourceError from exc
        await trio.lowlevel.cancel_shielded_checkpoint()
        return data

    async def send_all(self, data: bytes | bytearray | memoryview, *, yield_after: bool = True) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        view = memoryview(data)
        try:
            while view:
                sent: int = await self._retry(self._sock.send, view)
                view = view[sent:]
        except (ssl.SSLError, OSError) as exc:
            raise trio.BrokenResourceError from exc
        if yield_after:
            await trio.lowlevel.cancel_shielded_checkpoint()

    def close_notify(self) -> None:
        """:meth:`aclose` without its scheduling point: nothing in it waits."""
        if self._closed:
            return
        with contextlib.suppress(ssl.SSLError, OSError, ValueError):
            # unwrap() sends our close_notify; the WantRead that follows only means the peer's
            # close_notify has not arrived, which we do not wait for (as trio's SSLStream).
            self._sock.unwrap()
        self.close_now()
