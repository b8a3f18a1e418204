"""HTTP/1.1 on the mTLS port, with h11 (sans-I/O): /whoami, /, /healthz, /bytes/N, POST /sink.

Chosen when the client negotiates ALPN ``http/1.1``, or sends no ALPN and its
first line is an HTTP request line. Keep-alive, bounded request heads and
bodies, and the same idle timeout as the line protocol. What each request gets
is decided by :mod:`.routes` (shared with HTTP/2); this loop moves the bytes and
closes after a 403, as after ambiguous framing.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from http import HTTPStatus
from typing import Final

import h11
import trio

from mtls_ref.shared.tls.connection import TLSConnection
from mtls_ref.shared.tls.stream import RECORD_SIZE

from .routes import (
    BULK_CHUNK,
    TOO_LARGE,
    Answer,
    RequestHead,
    RequestTally,
    SendBytes,
    Sink,
    body_limit,
    plan,
    sink_answer,
)
from .views import SessionInfo

__all__ = ["HTTP_REQUEST_LINE", "serve_http"]

# A request head (request line + headers) larger than this is refused with 431;
# 16 KiB is h11's own default and more than any real client sends.
MAX_HEAD_BYTES: Final = 16 * 1024
HTTP_REQUEST_LINE: Final = re.compile(rb"^[A-Z]{3,10} \S+ HTTP/1\.[01]\r?\n")


class _Closed(Exception):
    """Internal: the peer is gone or idle; stop serving."""


@dataclass(frozen=True, slots=True)
class _Limits:
    idle: float  # between requests, and for every write (a peer that does not read is dropped)
    request: float  # a whole request head, from its first byte


async def serve_http(
    tls: TLSConnection,
    initial: bytes,
    info: SessionInfo,
    tally: RequestTally,
    *,
    idle_timeout: float,
    request_timeout: float,
) -> str:
    """Serve requests until the client closes or idles, counting them in ``tally``; returns how it ended."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
    limits = _Limits(idle_timeout, request_timeout)
    if initial:
        conn.receive_data(initial)
    try:
        while True:
            event = await _next_head(conn, tls, limits)
            if isinstance(event, h11.ConnectionClosed):
                return "peer closed the connection"
            if not isinstance(event, h11.Request):
                continue
            tally.requests += 1
            head = _request_head(event)
            todo = plan(head, info)
            received = await _drain_body(conn, tls, idle_timeout, limit=body_limit(todo))
            if received is None:
                await _respond(conn, tls, TOO_LARGE, limits, close=True)
                return "request body too large"
            # RFC 9112 §6.3: a request framed by both Transfer-Encoding and Content-Length
            # may be a smuggling attempt; answer it, then close.
            ambiguous = _header(event, b"transfer-encoding") and _header(event, b"content-length")
            close = not info.decision.allowed or ambiguous
            if isinstance(todo, Sink):
                await _respond(conn, tls, sink_answer(received), limits, close=close)
            elif isinstance(todo, SendBytes):
                await _send_bytes(conn, tls, todo, limits)
            else:
                await _respond(conn, tls, todo, limits, head=event.method == b"HEAD", close=close)
            if close or conn.our_state is h11.MUST_CLOSE:
                if ambiguous:
                    return "request had both Transfer-Encoding and Content-Length; closed"
                return "forbidden" if close else "response ends the connection"
            conn.start_next_cycle()
    except h11.RemoteProtocolError as exc:
        if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            status = exc.error_status_hint
            with contextlib.suppress(h11.LocalProtocolError, _Closed):
                answer = Answer(status, b"text/plain", f"{exc}\n".encode())
                await _respond(conn, tls, answer, limits, close=True)
        return f"bad HTTP request: {exc}"
    except _Closed as closed:
        return str(closed)


async def _next_head(conn: h11.Connection, tls: TLSConnection, limits: _Limits) -> object:
    """The next request head: idle up to ``limits.idle`` before it, then all of it within
    ``limits.request``, and at most MAX_HEAD_BYTES of it (h11 alone lets about two reads in)."""
    started: float | None = None
    received = len(conn.trailing_data[0])  # bytes of this head already here (pipelined)
    while True:
        event = conn.next_event()
        if isinstance(event, h11.Request) and received - len(conn.trailing_data[0]) > MAX_HEAD_BYTES:
            raise h11.RemoteProtocolError("request head too large", error_status_hint=431)
        if event is not h11.NEED_DATA:
            return event
        pending = len(conn.trailing_data[0])
        if pending > MAX_HEAD_BYTES:
            raise h11.RemoteProtocolError("request head too large", error_status_hint=431)
        if pending and started is None:
            started = trio.current_time()
        deadline = trio.current_time() + limits.idle
        if started is not None:
            deadline = min(deadline, started + limits.request)
        with trio.CancelScope(deadline=deadline) as scope:
            try:
                data = await tls.receive_some(RECORD_SIZE)
            except trio.BrokenResourceError:
                raise _Closed("peer closed the connection abruptly") from None
        if scope.cancelled_caught:
            if started is None:
                raise _Closed(f"idle for {limits.idle:g}s")
            raise h11.RemoteProtocolError(
                f"request head not complete within {limits.request:g}s", error_status_hint=408
            )
        conn.receive_data(bytes(data))
        received += len(data)


async def _next_event(conn: h11.Connection, tls: TLSConnection, idle_timeout: float) -> object:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        with trio.move_on_after(idle_timeout) as scope:
            try:
                data = await tls.receive_some(RECORD_SIZE)
            except trio.BrokenResourceError:
                raise _Closed("peer closed the connection abruptly") from None
        if scope.cancelled_caught:
            raise _Closed(f"idle for {idle_timeout:g}s")
        conn.receive_data(bytes(data))


async def _drain_body(
    conn: h11.Connection, tls: TLSConnection, idle_timeout: float, *, limit: int
) -> int | None:
    """Read and discard the request body; its size, or None when it exceeds ``limit``."""
    size = 0
    while True:
        event = await _next_event(conn, tls, idle_timeout)
        if isinstance(event, h11.EndOfMessage):
            return size
        if isinstance(event, h11.Data):
            size += len(event.data)
            if size > limit:
                return None


async def _send_bytes(conn: h11.Connection, tls: TLSConnection, todo: SendBytes, limits: _Limits) -> None:
    """``GET /bytes/N``: N zero bytes, streamed, for throughput tests."""
    response = h11.Response(status_code=200, headers=todo.headers(), reason=b"OK")
    await _send(tls, conn.send(response) or b"", limits.idle)
    chunk = bytes(BULK_CHUNK)
    remaining = todo.count
    while remaining:
        piece = chunk[: min(remaining, BULK_CHUNK)]
        await _send(tls, conn.send(h11.Data(data=piece)) or b"", limits.idle)
        remaining -= len(piece)
    await _send(tls, conn.send(h11.EndOfMessage()) or b"", limits.idle)


async def _send(tls: TLSConnection, data: bytes, within: float) -> None:
    """Write within ``within`` seconds, else drop the peer: one that does not read holds nothing."""
    with trio.move_on_after(within) as scope:
        try:
            await tls.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise _Closed("peer closed the connection during the response") from None
    if scope.cancelled_caught:
        await tls.abort()  # a cancelled write leaves the stream unusable
        raise _Closed(f"the peer did not read the response within {within:g}s; dropped")


def _header(request: h11.Request, name: bytes) -> bool:
    return any(key == name for key, _ in request.headers)


def _request_head(request: h11.Request) -> RequestHead:
    return RequestHead(
        method=request.method,
        target=request.target,
        accept=b",".join(value for key, value in request.headers if key == b"accept"),
        host=next((value for key, value in request.headers if key == b"host"), None),
    )


async def _respond(
    conn: h11.Connection,
    tls: TLSConnection,
    answer: Answer,
    limits: _Limits,
    *,
    head: bool = False,
    close: bool = False,
) -> None:
    headers = answer.headers()
    if close:
        headers.append((b"connection", b"close"))
    reason = HTTPStatus(answer.status).phrase.encode()
    data = conn.send(h11.Response(status_code=answer.status, headers=headers, reason=reason)) or b""
    if not head:
        data += conn.send(h11.Data(data=answer.body)) or b""
    data += conn.send(h11.EndOfMessage()) or b""
    await _send(tls, data, limits.idle)
