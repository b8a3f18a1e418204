"""A plain TCP backend for the forward-mode figures: echoes lines, serves ``GET /bytes/N``.

Run as ``python -m tests.bench.plain_backend``; prints ``PORT <n>`` when listening. Its own CPU is
not counted: the figures are the front servers' (ours in forward mode, HAProxy).
"""

from __future__ import annotations

import trio

CHUNK = bytes(256 * 1024)


async def handle(stream: trio.SocketStream) -> None:
    try:
        while True:
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
                return
            await stream.send_all(line + b"\n")
    except trio.BrokenResourceError:
        pass
    finally:
        await trio.aclose_forcefully(stream)


async def main() -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    print(f"PORT {listeners[0].socket.getsockname()[1]}", flush=True)
    await trio.serve_listeners(handle, listeners)


if __name__ == "__main__":
    trio.run(main)
