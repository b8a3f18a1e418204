"""The openssl engine's floor: a bare trio accept loop on pyOpenSSL, nothing of this project in it.

Run as ``python -m tests.bench.pyopenssl_floor CERT KEY CA``; prints ``PORT <n>`` when listening.
Per connection: the mTLS handshake (client certificate required), one line echoed, close. OpenSSL
does the socket I/O; Python waits with ``wait_readable`` / ``wait_writable`` on WANT_READ / WANT_WRITE.
The same session id context as ours, so both send the same TLS 1.3 tickets. ``GET /bytes/N`` is
served for the bulk figure.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio
from OpenSSL import SSL

CHUNK = bytes(65536)
_T = TypeVar("_T")


async def retry(sock: socket.socket, operation: Callable[..., _T], *args: object) -> _T:
    while True:
        try:
            return operation(*args)
        except SSL.WantReadError:
            await trio.lowlevel.wait_readable(sock)
        except SSL.WantWriteError:
            await trio.lowlevel.wait_writable(sock)


async def send_all(sock: socket.socket, conn: SSL.Connection, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[await retry(sock, conn.send, view) :]


async def read_line(sock: socket.socket, conn: SSL.Connection) -> bytes | None:
    """The first line the client sends (without its newline), or None when it closes first."""
    data = b""
    while b"\n" not in data:
        chunk = await retry(sock, conn.recv, 65536)
        if not chunk:
            return None
        data += chunk
    return data.split(b"\n", 1)[0]


async def handle(sock: socket.socket, ctx: SSL.Context) -> None:
    conn = SSL.Connection(ctx, sock)
    conn.set_accept_state()
    try:
        await retry(sock, conn.do_handshake)
        line = await read_line(sock, conn)
        if line is None:
            return
        if line.startswith(b"GET /bytes/"):
            remaining = int(line.split(b"/")[2].split(b" ")[0])
            await send_all(sock, conn, b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % remaining)
            while remaining:
                piece = CHUNK[: min(remaining, len(CHUNK))]
                await send_all(sock, conn, piece)
                remaining -= len(piece)
        else:
            await send_all(sock, conn, line + b"\n")
    except (SSL.Error, OSError):
        pass
    finally:
        trio.lowlevel.notify_closing(sock)
        sock.close()


Handler = Callable[[socket.socket, SSL.Context], Awaitable[None]]


async def main(cert: str, key: str, ca: str, handler: Handler = handle) -> None:
    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
    ctx.use_certificate_chain_file(cert.encode())
    ctx.use_privatekey_file(key.encode())
    ctx.load_verify_locations(ca.encode())
    ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT)
    ctx.set_session_id(b"mtls-ref")
    listener = trio.socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    await listener.bind(("127.0.0.1", 0))
    listener.listen(socket.SOMAXCONN)
    print(f"PORT {listener.getsockname()[1]}", flush=True)
    async with trio.open_nursery() as nursery:
        while True:
            client, _ = await listener.accept()
            raw = socket.socket(fileno=client.detach())
            raw.setblocking(False)
            nursery.start_soon(handler, raw, ctx)


if __name__ == "__main__":
    cert, key, ca = sys.argv[1:4]
    trio.run(main, cert, key, ca)
