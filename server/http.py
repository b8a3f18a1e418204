"""HTTP/1.1 on the mTLS port, with h11 (sans-I/O): /whoami, /, /healthz, /bytes/N, POST /sink.

Chosen when the client negotiates ALPN ``http/1.1``, or sends no ALPN and its
first line is an HTTP request line. Keep-alive, bounded request heads and
bodies, and the same idle timeout as the line protocol. A client refused by the
allow-list gets 403 with a JSON body naming the identity and the rule missed.
A request whose Accept names text/html (a browser) gets ``/`` and the 403 as the
HTML pages of :mod:`.page`.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass
from http import HTTPStatus
from typing import Final

import h11
import trio

from mtls_ref.shared.tls.connection import TLSConnection

from .page import PAGE_HEADERS, accepts_html, forbidden_html, home_html, request_host
from .views import SessionInfo, forbidden_document, home_page, whoami_document

__all__ = ["HTTP_REQUEST_LINE", "serve_http"]

# A request head (request line + headers) larger than this is refused with 431;
# 16 KiB is h11's own default and more than any real client sends.
MAX_HEAD_BYTES: Final = 16 * 1024
# We serve no uploads; a body is read and discarded up to this, then 413.
MAX_BODY_BYTES: Final = 64 * 1024
RECEIVE_SIZE: Final = 16384
# Throughput tests (GET /bytes/N, POST /sink) move at most 1 GiB per request,
# in 256 KiB pieces (sixteen full TLS records, one send per piece).
BULK_MAX_BYTES: Final = 1 << 30
BULK_CHUNK: Final = 256 * 1024
HTTP_REQUEST_LINE: Final = re.compile(rb"^[A-Z]{3,10} \S+ HTTP/1\.[01]\r?\n")
SERVER_HEADER: Final = (b"server", b"mtls-ref")
HTML: Final = b"text/html; charset=utf-8"
Headers = tuple[tuple[bytes, bytes], ...]
# The methods each resource answers: a 405 names the target's own in Allow (RFC 9110 §15.5.6),
# and a path that is none of these is a 404 whatever the method. GET /bytes/N and POST /sink are
# served by serve_http itself (they stream); HEAD /bytes/N would have to skip the count, so no.
_METHODS: Final = {
    b"/": (b"GET", b"HEAD"),
    b"/whoami": (b"GET", b"HEAD"),
    b"/healthz": (b"GET", b"HEAD"),
    b"/sink": (b"POST",),
}
_BYTES_METHODS: Final = (b"GET",)
# / and the 403 come as HTML or as text/JSON, chosen by Accept: every variant says so, or a cache
# could hand a browser the text (RFC 9110 §12.5.5). The HTML variants carry it in PAGE_HEADERS.
VARY_ACCEPT: Final = ((b"vary", b"Accept"),)


class _Closed(Exception):
    """Internal: the peer is gone or idle; stop serving."""


@dataclass(frozen=True, slots=True)
class _Limits:
    idle: float  # between requests, and for every write (a peer that does not read is dropped)
    request: float  # a whole request head, from its first byte


async def serve_http(
    tls: TLSConnection, initial: bytes, info: SessionInfo, *, idle_timeout: float, request_timeout: float
) -> tuple[int, str]:
    """Serve requests until the client closes or idles; returns (requests, how it ended)."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
    limits = _Limits(idle_timeout, request_timeout)
    if initial:
        conn.receive_data(initial)
    requests = 0
    try:
        while True:
            event = await _next_head(conn, tls, limits)
            if isinstance(event, h11.ConnectionClosed):
                return requests, "peer closed the connection"
            if not isinstance(event, h11.Request):
                continue
            requests += 1
            path = event.target.split(b"?", 1)[0]
            sink = info.decision.allowed and event.method == b"POST" and path == b"/sink"
            received = await _drain_body(
                conn, tls, idle_timeout, limit=BULK_MAX_BYTES if sink else MAX_BODY_BYTES
            )
            if received is None:
                await _respond(conn, tls, 413, b"text/plain", b"request body too large\n", limits, close=True)
                return requests, "request body too large"
            # RFC 9112 §6.3: a request framed by both Transfer-Encoding and Content-Length
            # may be a smuggling attempt; answer it, then close.
            ambiguous = _header(event, b"transfer-encoding") and _header(event, b"content-length")
            close = not info.decision.allowed or ambiguous
            if sink:
                body = _json({"received": received})
                await _respond(conn, tls, 200, b"application/json", body, limits, close=close)
            elif info.decision.allowed and event.method == b"GET" and path.startswith(b"/bytes/"):
                await _send_bytes(conn, tls, path.removeprefix(b"/bytes/"), limits)
            else:
                status, ctype, body, extra = _route(event, info)
                await _respond(
                    conn,
                    tls,
                    status,
                    ctype,
                    body,
                    limits,
                    head=event.method == b"HEAD",
                    close=close,
                    extra=extra,
                )
            if close or conn.our_state is h11.MUST_CLOSE:
                if ambiguous:
                    return requests, "request had both Transfer-Encoding and Content-Length; closed"
                return requests, "forbidden" if close else "response ends the connection"
            conn.start_next_cycle()
    except h11.RemoteProtocolError as exc:
        if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            status = exc.error_status_hint
            with contextlib.suppress(h11.LocalProtocolError, _Closed):
                await _respond(conn, tls, status, b"text/plain", f"{exc}\n".encode(), limits, close=True)
        return requests, f"bad HTTP request: {exc}"
    except _Closed as closed:
        return requests, str(closed)


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
                data = await tls.receive_some(RECEIVE_SIZE)
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
                data = await tls.receive_some(RECEIVE_SIZE)
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


async def _send_bytes(conn: h11.Connection, tls: TLSConnection, count_text: bytes, limits: _Limits) -> None:
    """``GET /bytes/N``: N zero bytes, streamed, for throughput tests."""
    # The length first: int() of thousands of digits raises (Python's integer-string limit).
    too_long = len(count_text) > len(str(BULK_MAX_BYTES))
    if not count_text.isdigit() or too_long or int(count_text) > BULK_MAX_BYTES:
        usage = f"use /bytes/N with N <= {BULK_MAX_BYTES}\n".encode()
        await _respond(conn, tls, 400, b"text/plain", usage, limits)
        return
    remaining = int(count_text)
    headers = [
        SERVER_HEADER,
        (b"content-type", b"application/octet-stream"),
        (b"content-length", str(remaining).encode()),
    ]
    await _send(
        tls, conn.send(h11.Response(status_code=200, headers=headers, reason=b"OK")) or b"", limits.idle
    )
    chunk = bytes(BULK_CHUNK)
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


def _route(request: h11.Request, info: SessionInfo) -> tuple[int, bytes, bytes, Headers]:
    """Status, content type, body and extra headers for a request serve_http does not stream."""
    path = request.target.split(b"?", 1)[0]
    if not info.decision.allowed:
        if _wants_html(request):
            return 403, HTML, forbidden_html(info, host=_host(request)).encode(), PAGE_HEADERS
        return 403, b"application/json", _json(forbidden_document(info)), VARY_ACCEPT
    methods = _BYTES_METHODS if path.startswith(b"/bytes/") else _METHODS.get(path)
    if methods is None:
        return 404, b"text/plain", b"not found: try /, /whoami, /healthz, /bytes/N or POST /sink\n", ()
    if request.method not in methods:
        allow = b", ".join(methods)
        body = b"method not allowed here; this resource answers " + allow + b"\n"
        return 405, b"text/plain", body, ((b"allow", allow),)
    if path == b"/whoami":
        return 200, b"application/json", _json(whoami_document(info)), ()
    if path == b"/" and _wants_html(request):
        return 200, HTML, home_html(info, host=_host(request)).encode(), PAGE_HEADERS
    if path == b"/":
        return 200, b"text/plain; charset=utf-8", home_page(info).encode(), VARY_ACCEPT
    return 200, b"text/plain", b"ok\n", ()  # /healthz


def _wants_html(request: h11.Request) -> bool:
    return accepts_html(b",".join(value for key, value in request.headers if key == b"accept"))


def _host(request: h11.Request) -> str:
    """The Host the client used, for the page's commands (HTTP/1.0 may send none)."""
    host = next((value for key, value in request.headers if key == b"host"), None)
    return request_host(host, fallback="localhost:8443")


def _json(document: object) -> bytes:
    return json.dumps(document, indent=2).encode() + b"\n"


async def _respond(  # noqa: PLR0917 - status, type and body read best in that order
    conn: h11.Connection,
    tls: TLSConnection,
    status: int,
    content_type: bytes,
    body: bytes,
    limits: _Limits,
    *,
    head: bool = False,
    close: bool = False,
    extra: Headers = (),
) -> None:
    headers = [SERVER_HEADER, (b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    headers.extend(extra)
    if close:
        headers.append((b"connection", b"close"))
    reason = HTTPStatus(status).phrase.encode()
    data = conn.send(h11.Response(status_code=status, headers=headers, reason=reason)) or b""
    if not head:
        data += conn.send(h11.Data(data=body)) or b""
    data += conn.send(h11.EndOfMessage()) or b""
    await _send(tls, data, limits.idle)
