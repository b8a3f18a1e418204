"""Forward mode for HTTP backends: each request carries ``X-Forwarded-Client-Cert`` (Envoy's format).

Theory of operation
-------------------
With ``forward_identity = "http-header"`` the server speaks HTTP/1.1 on both
sides, with two h11 connections (sans-I/O): the client's requests are parsed,
any ``X-Forwarded-Client-Cert`` the client sent is dropped (a client must not
name itself), ours is added, and request and response are relayed event by
event, bodies streamed, keep-alive kept as both sides allow. The header's value
follows Envoy's XFCC format:

    Hash=<sha256 of the certificate's DER, hex>;Subject="<RFC 4514>";URI=<uri SAN>;DNS=<dns SAN>...

A request that is not HTTP gets 400, an unreachable or broken backend 502, and
the session ends.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

import h11
import trio

from mtls_ref.shared.tls.connection import TLSConnection
from mtls_ref.shared.tls.identity import PeerIdentity

from .forward import ForwardResult, ForwardTarget

__all__ = ["forward_http", "xfcc_value"]

XFCC: Final = b"x-forwarded-client-cert"
CHUNK: Final = 65536
MAX_HEAD_BYTES: Final = 16 * 1024


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def xfcc_value(identity: PeerIdentity) -> bytes:
    """The XFCC element for one verified client certificate."""
    parts = [f"Hash={identity.sha256.replace(':', '').lower()}", f"Subject={_quoted(identity.subject)}"]
    parts += [f"URI={_quoted(uri) if ';' in uri or ',' in uri else uri}" for uri in identity.uris]
    parts += [f"DNS={name}" for name in identity.dns]
    return ";".join(parts).encode()


Receive = Callable[[int], Awaitable[bytes | bytearray]]
Send = Callable[[bytes], Awaitable[None]]


class _BackendGone(Exception):
    pass


async def forward_http(
    tls: TLSConnection,
    target: ForwardTarget,
    identity: PeerIdentity,
    *,
    idle_timeout: float,
    connect_timeout: float,
) -> ForwardResult:
    """Relay HTTP requests with the client's identity in XFCC until either side ends the session."""
    result = ForwardResult()
    front = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
    back = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
    header = xfcc_value(identity)
    backend: trio.SocketStream | None = None
    try:
        while True:
            with trio.move_on_after(idle_timeout) as idle:
                request = await _next(front, tls.stream.receive_some)
            if idle.cancelled_caught or not isinstance(request, h11.Request):
                result.ended = (
                    f"idle for {idle_timeout:g}s" if idle.cancelled_caught else "client ended the session"
                )
                return result
            if backend is None:  # connected at the first request, so a failure can be answered with 502
                backend = await _connect(target, connect_timeout)
            headers = [(k, v) for k, v in request.headers if k.lower() != XFCC] + [(XFCC, header)]
            outgoing = h11.Request(method=request.method, target=request.target, headers=headers)
            await _relay_message(
                front, back, outgoing, tls.stream.receive_some, backend.send_all, result, up=True
            )
            response = await _next(back, backend.receive_some)
            if not isinstance(response, h11.Response):
                raise _BackendGone("the backend closed without a response")  # noqa: TRY301 - one handler for all
            passed = h11.Response(
                status_code=response.status_code, headers=response.headers, reason=response.reason
            )
            await _relay_message(
                back, front, passed, backend.receive_some, tls.stream.send_all, result, up=False
            )
            if front.our_state is h11.MUST_CLOSE or back.their_state is h11.MUST_CLOSE:
                result.ended = "the response ends the connection"
                return result
            front.start_next_cycle()
            back.start_next_cycle()
    except h11.RemoteProtocolError as exc:
        result.ended = f"not HTTP: {exc}"
        await _send(tls, front, exc.error_status_hint, result)
    except (_BackendGone, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        result.ended = f"session broken: {exc or type(exc).__name__}"
        await _send(tls, front, 502, result)
    finally:
        if backend is not None:
            await trio.aclose_forcefully(backend)
    return result


async def _connect(target: ForwardTarget, within: float) -> trio.SocketStream:
    try:
        with trio.fail_after(within):
            return await trio.open_tcp_stream(target.host, target.port)
    except (OSError, trio.TooSlowError) as exc:
        raise _BackendGone(
            f"backend {target} unreachable: {getattr(exc, 'strerror', None) or 'timeout'}"
        ) from exc


async def _next(conn: h11.Connection, receive: Receive) -> h11.Request | h11.Response | None:
    """The next request or response head, or None at the end of the stream."""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(bytes(await receive(CHUNK)))
            continue
        if isinstance(event, h11.Request | h11.Response):
            return event
        if isinstance(event, h11.ConnectionClosed):
            return None
        if isinstance(event, h11.InformationalResponse):
            continue  # 1xx: nothing to pass on in this relay


async def _relay_message(  # noqa: PLR0917 - the two ends, and how to read and write each
    source: h11.Connection,
    sink: h11.Connection,
    head: h11.Request | h11.Response,
    receive: Receive,
    send: Send,
    result: ForwardResult,
    *,
    up: bool,
) -> None:
    """Send ``head``, then stream the body events from ``source`` to ``sink`` through to the end."""
    await send(sink.send(head) or b"")
    while True:
        event = source.next_event()
        if event is h11.NEED_DATA:
            source.receive_data(bytes(await receive(CHUNK)))
            continue
        if isinstance(event, h11.Data):
            if up:
                result.to_backend += len(event.data)
            else:
                result.to_client += len(event.data)
            await send(sink.send(h11.Data(data=event.data)) or b"")
        elif isinstance(event, h11.EndOfMessage):
            await send(sink.send(h11.EndOfMessage(headers=event.headers)) or b"")
            return
        elif isinstance(event, h11.ConnectionClosed):
            raise _BackendGone("the other side closed in the middle of a message")


async def _send(tls: TLSConnection, front: h11.Connection, status: int, result: ForwardResult) -> None:
    """An error response to the client, when the exchange still allows one."""
    if front.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
        return
    body = f"{status} {result.ended}\n".encode()
    headers = [
        (b"content-type", b"text/plain"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    try:
        data = front.send(h11.Response(status_code=status, headers=headers)) or b""
        data += (front.send(h11.Data(data=body)) or b"") + (front.send(h11.EndOfMessage()) or b"")
        await tls.stream.send_all(data)
    except (h11.LocalProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
        pass
