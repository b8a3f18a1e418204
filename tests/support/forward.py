"""Our server in forward mode, and the raw client side of its tests: TLS requests, parsed answers, the log."""

from __future__ import annotations

from typing import Any

import h11
import trio

from mtls_ref.server.app import Server
from mtls_ref.server.log import EventLog
from mtls_ref.shared.pki.authority import IssuedFiles
from mtls_ref.shared.tls.context import client_context

from .pki import Pki
from .tls import client_config, log_events, server_config

WAIT = 15.0  # seconds any single step of these tests may take before it fails


class WatchedLog:
    """The server's JSON log lines, with a way to wait for the n-th connection event (no polling)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._changed = trio.Event()

    def append(self, line: str) -> None:
        self.lines.append(line)
        self._changed.set()
        self._changed = trio.Event()

    def connections(self) -> list[dict[str, Any]]:
        return log_events(self.lines, "connection")

    async def connection(self, count: int = 1) -> dict[str, Any]:
        """The ``count``-th connection event, once it is logged."""
        with trio.fail_after(WAIT):
            while len(self.connections()) < count:
                await self._changed.wait()
        return self.connections()[count - 1]


async def start_forwarding(
    nursery: trio.Nursery, pki: Pki, backend: int, identity: str = "http-header", **changes: object
) -> tuple[Server, int, WatchedLog]:
    """Our server in forward mode in front of ``127.0.0.1:backend``."""
    log = WatchedLog()
    config = server_config(pki, forward=f"127.0.0.1:{backend}", forward_identity=identity, **changes)
    server = Server(config, log=EventLog("json", log.append))
    addresses = await nursery.start(server.serve)
    return server, int(addresses[0][1]), log


async def open_tls(
    pki: Pki, port: int, creds: IssuedFiles | None = None
) -> trio.SSLStream[trio.SocketStream]:
    """Mutual TLS to our server on ``port`` as alice (or ``creds``); a close without close_notify is EOF."""
    config = client_config(pki, creds, port=port)
    context = client_context(config)
    return await trio.open_ssl_over_tcp_stream("127.0.0.1", port, ssl_context=context, https_compatible=True)


async def tls_exchange(pki: Pki, port: int, request: bytes) -> bytes:
    """Send raw bytes over mutual TLS as alice and read until the server closes."""
    with trio.fail_after(WAIT):
        stream = await open_tls(pki, port)
        async with stream:
            await stream.send_all(request)
            data = b""
            while chunk := await stream.receive_some(65536):
                data += chunk
    return data


async def forward_exchange(
    pki: Pki, backend: int, request: bytes, identity: str = "http-header", **changes: Any
) -> tuple[bytes, dict[str, Any]]:
    """One client's raw request through our server in forward mode: what it got back, and its log line."""
    async with trio.open_nursery() as nursery:
        server, port, log = await start_forwarding(nursery, pki, backend, identity, **changes)
        raw = await tls_exchange(pki, port, request)
        entry = await log.connection()
        server.shutdown()
    return raw, entry


def responses(data: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """The HTTP responses in ``data``: (status, headers, body) each, parsed by h11."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(data)
    conn.receive_data(b"")
    found: list[tuple[int, dict[str, str], bytes]] = []
    body = b""
    head: h11.Response | None = None
    for _ in range(10_000):
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError:
            break  # closed without (or in the middle of) a response: what came before is the answer
        if isinstance(event, h11.Response):
            head, body = event, b""
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage) and head is not None:
            found.append((head.status_code, {k.decode(): v.decode() for k, v in head.headers}, body))
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                break
            conn.start_next_cycle()
            conn.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))
            conn.send(h11.EndOfMessage())
        else:
            break  # NEED_DATA after the end, ConnectionClosed, or a response we never asked for
    return found
