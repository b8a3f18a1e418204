"""The floor: the least a trio SSLStream mTLS server can do (handshake, echo one line, close).

Run as ``python -m tests.bench.floor_server CERT KEY CA``; prints ``PORT <n>`` when listening.
Also serves ``GET /bytes/N`` and ``POST /sink`` for the throughput figures, minimally.
"""

from __future__ import annotations

import ssl
import sys

import trio

CHUNK = bytes(65536)


async def handle(stream: trio.SSLStream[trio.SocketStream]) -> None:
    try:
        data = b""
        while b"\n" not in data:
            chunk = await stream.receive_some(65536)
            if not chunk:
                return
            data += chunk
        line = data.split(b"\n", 1)[0]
        if line.startswith(b"GET /bytes/"):
            remaining = int(line.split(b"/")[2].split(b" ")[0])
            await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % remaining)
            while remaining:
                piece = CHUNK[: min(remaining, len(CHUNK))]
                await stream.send_all(piece)
                remaining -= len(piece)
        elif line.startswith(b"POST /sink"):
            head, _, body = data.partition(b"\r\n\r\n")
            while b"\r\n\r\n" not in data:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    return
                data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
            length = int(
                next(h.split(b":")[1] for h in head.split(b"\r\n") if h.lower().startswith(b"content-length"))
            )
            received = len(body)
            while received < length:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    return
                received += len(chunk)
            await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n")
        else:
            await stream.send_all(line + b"\n")
    except trio.BrokenResourceError:
        pass
    finally:
        await trio.aclose_forcefully(stream)


async def main(cert: str, key: str, ca: str) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(ca)
    listeners = await trio.open_ssl_over_tcp_listeners(0, ctx, host="127.0.0.1")
    tcp = listeners[0].transport_listener
    assert isinstance(tcp, trio.SocketListener)  # what open_ssl_over_tcp_listeners wraps (typed Listener)
    print(f"PORT {tcp.socket.getsockname()[1]}", flush=True)
    await trio.serve_listeners(handle, listeners)


if __name__ == "__main__":
    cert, key, ca = sys.argv[1:4]
    trio.run(main, cert, key, ca)
