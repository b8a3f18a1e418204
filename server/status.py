"""The status port: plain HTTP/1.1 (h11) with ``/healthz`` and ``/metrics``, one request per connection.

Plain HTTP on purpose: Prometheus and health checkers scrape it without a
client certificate, so it belongs on loopback (the default address) or on a
network only they reach. ``/healthz`` answers 200 only while the credentials
the server has loaded are valid (server certificate and CAs not expired, CRLs
not past their next update); otherwise 503 with the reasons.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Final

import h11
import trio
from prometheus_client import CONTENT_TYPE_LATEST

from .metrics import ServerMetrics

__all__ = ["serve_status"]

REQUEST_TIMEOUT: Final = 5.0  # seconds for a scraper to send its request
MAX_HEAD_BYTES: Final = 8 * 1024  # a scrape's request line and headers are tiny


async def serve_status(listeners: list[trio.SocketListener], metrics: ServerMetrics) -> None:
    """Serve the status endpoints until cancelled."""

    async def handle(stream: trio.SocketStream) -> None:
        await _handle(stream, metrics)

    await trio.serve_listeners(handle, listeners)


async def _handle(stream: trio.SocketStream, metrics: ServerMetrics) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
    try:
        with trio.move_on_after(REQUEST_TIMEOUT):
            request = await _read_request(conn, stream)
            if request is not None:
                status, content_type, body = _route(request.target, metrics)
                headers = [
                    (b"content-type", content_type),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ]
                reason = HTTPStatus(status).phrase.encode()
                data = conn.send(h11.Response(status_code=status, headers=headers, reason=reason)) or b""
                if request.method != b"HEAD":
                    data += conn.send(h11.Data(data=body)) or b""
                data += conn.send(h11.EndOfMessage()) or b""
                await stream.send_all(data)
    except (trio.BrokenResourceError, h11.ProtocolError):
        pass  # a scraper that went away or spoke nonsense: nothing to answer
    finally:
        await trio.aclose_forcefully(stream)


async def _read_request(conn: h11.Connection, stream: trio.SocketStream) -> h11.Request | None:
    while True:
        event = conn.next_event()
        if isinstance(event, h11.Request):
            return event
        if event is not h11.NEED_DATA:
            return None
        data = await stream.receive_some(4096)
        if not data:
            return None
        conn.receive_data(data)


def _route(target: bytes, metrics: ServerMetrics) -> tuple[int, bytes, bytes]:
    path = target.split(b"?", 1)[0]
    if path == b"/metrics":
        return 200, CONTENT_TYPE_LATEST.encode(), metrics.exposition()
    if path == b"/healthz":
        problems = metrics.readiness()
        if problems:
            return 503, b"text/plain", ("not ready: " + "; ".join(problems) + "\n").encode()
        return 200, b"text/plain", b"ready\n"
    return 404, b"text/plain", b"not found: /healthz or /metrics\n"
