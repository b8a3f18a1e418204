"""Forward mode for HTTP backends: each request carries the client's identity in headers we set.

Theory of operation
-------------------
With ``forward_identity = "http-header"`` (Envoy's ``X-Forwarded-Client-Cert``)
or ``"client-cert"`` (RFC 9440's ``Client-Cert`` and ``Client-Cert-Chain``) the
server speaks HTTP/1.1 on both sides with two h11 connections (sans-I/O): the
client's request head is parsed and checked (:mod:`.forward_headers`: one
framing header, no identity header in any spelling), ours are added, then the
request and the response are relayed event by event, bodies streamed, trailers
cleaned, keep-alive kept as both sides allow.

Every wait has the connection's one :class:`IdleDeadline`, moved on by each
chunk that moves, and the forwarder remembers what it is waiting for, so a
passed deadline gets the answer that is true: a backend that does not read the
request or sends no response is a 504; a client silent between requests is
simply closed; a client or backend that stalls mid-message, or a client that
does not read, ends the connection with that reason in the log.

Refused before the backend sees anything: ambiguous framing and any request
that is not HTTP (400), ``CONNECT`` (405: this is not a tunnel proxy). A
backend that cannot be reached, breaks the connection or answers with
something that is not HTTP gets the client a 502.

``Upgrade`` (websockets): the request goes to the backend with its
``Upgrade`` header; when the backend answers 101 the client gets that 101,
and from then on both streams go to the one relay
(:mod:`mtls_ref.shared.core.relay`) under the same idle deadline, starting
with the bytes h11 had already read past the 101 on either side. A backend
that refuses the upgrade with a normal response keeps the connection in HTTP.
No loop here goes round without awaiting a read or write or ending: an h11
state this relay does not expect ends the connection instead.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

import h11
import trio

from mtls_ref.shared.core.deadline import IdleDeadline
from mtls_ref.shared.core.relay import CHUNK, relay
from mtls_ref.shared.tls.connection import TLSConnection

from .forward import BackendUnreachable, ForwardResult, ForwardTarget, connect_backend
from .forward_headers import Headers, clean_headers, framing_problem

__all__ = ["forward_http"]

MAX_HEAD_BYTES: Final = 16 * 1024  # a request or response head; h11's own default is 16 KiB as well
ERROR_WITHIN: Final = 2.0  # seconds to deliver an error response to a client that may not read


class _Wait(enum.Enum):
    """What the connection waits for; when the idle deadline passes, what answer is true."""

    REQUEST = ("the client's next request", None)  # a silent client between requests: close
    REQUEST_BODY = ("the rest of the request", 408)
    BACKEND_READS = ("the backend to read the request", 504)
    RESPONSE = ("the backend's response", 504)
    RESPONSE_BODY = ("the rest of the backend's response", None)  # its head has gone out already
    CLIENT_READS = ("the client to read the response", None)

    def __init__(self, words: str, status: int | None) -> None:
        self.words = words
        self.status = status


@dataclass(frozen=True, slots=True)
class _Refusal:
    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class _Switch:
    """The backend accepted an upgrade: relay raw bytes from here, these first."""

    protocol: str
    from_client: bytes
    from_backend: bytes


class _ClientGone(Exception):
    pass


class _BackendFailed(Exception):
    pass


async def forward_http(
    tls: TLSConnection,
    target: ForwardTarget,
    identity_headers: Headers,
    *,
    idle_timeout: float,
    connect_timeout: float,
) -> ForwardResult:
    """Relay HTTP exchanges with our identity headers until either side ends; never raises for peers."""
    return await _HttpForwarder(tls, target, identity_headers, idle_timeout, connect_timeout).run()


class _HttpForwarder:
    def __init__(
        self,
        tls: TLSConnection,
        target: ForwardTarget,
        identity_headers: Headers,
        idle_timeout: float,
        connect_timeout: float,
    ) -> None:
        self.tls = tls
        self.target = target
        self.identity_headers = identity_headers
        self.idle_timeout = idle_timeout
        self.connect_timeout = connect_timeout
        self.front = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        self.back = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
        self.backend: trio.SocketStream | None = None
        self.deadline = IdleDeadline(idle_timeout)
        self.wait = _Wait.REQUEST
        self.result = ForwardResult()

    async def run(self) -> ForwardResult:
        outcome: _Refusal | _Switch | None = None
        try:
            with self.deadline.scope:
                outcome = await self._exchanges()
            if self.deadline.expired:
                late = f"waited {self.idle_timeout:g}s for {self.wait.words}"
                outcome = _Refusal(self.wait.status, late) if self.wait.status else None
                self.result.ended = late
            if isinstance(outcome, _Refusal):
                self.result.ended = outcome.reason
                await self._send_error(outcome)
            elif isinstance(outcome, _Switch):
                await self._relay_upgraded(outcome)
        finally:
            if self.backend is not None:
                await trio.aclose_forcefully(self.backend)
        return self.result

    async def _exchanges(self) -> _Refusal | _Switch | None:
        """Request after request until a side ends, a refusal, or a protocol switch."""
        try:
            while True:
                self.wait = _Wait.REQUEST
                request = await self._next_request()
                if request is None:
                    self.result.ended = "client ended the session"
                    return None
                if problem := framing_problem(request):
                    return _Refusal(400, problem)
                if request.method == b"CONNECT":
                    return _Refusal(405, "CONNECT is not forwarded: this server is not a tunnelling proxy")
                self.result.requests += 1
                if self.front.client_is_waiting_for_100_continue:  # answered here, as nginx does
                    await self._to_client(
                        self.front.send(h11.InformationalResponse(status_code=100, headers=[]))
                    )
                if self.backend is None:  # at the first request, so a failure can be answered with 502
                    self.backend = await connect_backend(self.target, self.connect_timeout)
                await self._to_backend(self.back.send(self._outgoing(request)))
                await self._relay_body(up=True)
                response = await self._next_response()
                if isinstance(response, h11.InformationalResponse):  # 101: the backend switched
                    return self._switch(request, response)
                await self._to_client(
                    self.front.send(
                        h11.Response(
                            status_code=response.status_code, headers=response.headers, reason=response.reason
                        )
                    )
                )
                await self._relay_body(up=False)
                if self.front.our_state is h11.MUST_CLOSE or self.back.their_state is h11.MUST_CLOSE:
                    self.result.ended = "the exchange ends the connection (Connection: close)"
                    return None
                self.front.start_next_cycle()
                self.back.start_next_cycle()
        except h11.RemoteProtocolError as exc:  # the client's bytes (the backend's are caught below)
            # h11 hints 501 for a Transfer-Encoding it does not take; RFC 9112 §6.3 says 400.
            status = 400 if exc.error_status_hint == 501 else exc.error_status_hint
            return _Refusal(status, f"not a request we forward: {exc}")
        except BackendUnreachable as exc:
            return _Refusal(504 if exc.timed_out else 502, str(exc))
        except _BackendFailed as exc:
            return _Refusal(502, str(exc))
        except h11.LocalProtocolError as exc:
            return _Refusal(502, f"this exchange cannot be relayed: {exc}")
        except _ClientGone as exc:
            self.result.ended = str(exc)
            return None

    def _outgoing(self, request: h11.Request) -> h11.Request:
        headers, dropped = clean_headers(
            request.headers, keep_underscores=self.target.keep_underscore_headers
        )
        self.result.dropped_headers.update(name.decode("ascii", "replace") for name, _ in dropped)
        if not any(name == b"host" for name, _ in headers):  # HTTP/1.0 may omit it; HTTP/1.1 may not
            headers.append((b"host", str(self.target).encode()))
        return h11.Request(
            method=request.method, target=request.target, headers=headers + self.identity_headers
        )

    def _switch(self, request: h11.Request, response: h11.InformationalResponse) -> _Switch:
        protocol = b",".join(value for name, value in request.headers if name == b"upgrade").decode(
            "ascii", "replace"
        )
        return _Switch(
            protocol=protocol or "?",
            from_client=bytes(self.front.trailing_data[0]),
            from_backend=self.front.send(
                h11.InformationalResponse(status_code=101, headers=response.headers, reason=response.reason)
            )
            + bytes(self.back.trailing_data[0]),
        )

    async def _relay_upgraded(self, switch: _Switch) -> None:
        relayed = await relay(
            self.tls,
            self._backend(),
            idle_timeout=self.idle_timeout,
            up_first=switch.from_client,
            down_first=switch.from_backend,
        )
        self.result.to_backend += relayed.up
        self.result.to_client += relayed.down
        self.result.ended = f"upgraded to {switch.protocol}; then {relayed.ended}"

    # -- h11 events; each loop awaits a read or returns or raises ----------------------------

    async def _next_request(self) -> h11.Request | None:
        """The next request head, or None when the client ends the connection between requests."""
        while True:
            event = self.front.next_event()
            if event is h11.NEED_DATA:
                self.front.receive_data(await self._from_client())
            elif isinstance(event, h11.Request):
                return event
            elif isinstance(event, h11.ConnectionClosed):
                return None
            else:
                raise _ClientGone(f"the client's connection is in h11 state {event!r}")

    async def _next_response(self) -> h11.Response | h11.InformationalResponse:
        """The backend's final response head, or its 101; other 1xx are not passed on."""
        self.wait = _Wait.RESPONSE
        while True:
            try:
                event = self.back.next_event()
            except h11.RemoteProtocolError as exc:
                raise _BackendFailed(f"the backend's response is not HTTP/1.1: {exc}") from exc
            if event is h11.NEED_DATA:
                self.back.receive_data(await self._from_backend())
            elif isinstance(event, h11.Response):
                return event
            elif isinstance(event, h11.InformationalResponse):
                if event.status_code == 101:
                    return event
            elif isinstance(event, h11.ConnectionClosed):
                raise _BackendFailed("the backend closed the connection without a response")
            else:
                raise _BackendFailed(f"the backend's connection is in h11 state {event!r}")

    async def _relay_body(self, *, up: bool) -> None:
        """Stream one message body from one h11 connection to the other, trailers cleaned."""
        source, sink = (self.front, self.back) if up else (self.back, self.front)
        while True:
            try:
                event = source.next_event()
            except h11.RemoteProtocolError as exc:
                if up:
                    raise
                raise _BackendFailed(f"the backend's response body is not HTTP/1.1: {exc}") from exc
            if event is h11.NEED_DATA:
                source.receive_data(await (self._from_client() if up else self._from_backend(body=True)))
            elif isinstance(event, h11.Data):
                await (self._to_backend if up else self._to_client)(sink.send(h11.Data(data=event.data)))
                if up:
                    self.result.to_backend += len(event.data)
                else:
                    self.result.to_client += len(event.data)
            elif isinstance(event, h11.EndOfMessage):
                trailers, dropped = clean_headers(
                    event.headers, keep_underscores=self.target.keep_underscore_headers
                )
                self.result.dropped_headers.update(name.decode("ascii", "replace") for name, _ in dropped)
                await (self._to_backend if up else self._to_client)(
                    sink.send(h11.EndOfMessage(headers=trailers))
                )
                return
            elif up:
                raise _ClientGone("the client closed the connection in the middle of a request")
            else:
                raise _BackendFailed("the backend closed the connection in the middle of a response")

    # -- the four kinds of I/O, each under the deadline and naming its side ---------------------

    def _backend(self) -> trio.SocketStream:
        if self.backend is None:  # the exchanges connect before the first backend I/O
            raise _BackendFailed("no connection to the backend")
        return self.backend

    async def _from_client(self) -> bytes:
        self.wait = _Wait.REQUEST if self.front.their_state is h11.IDLE else _Wait.REQUEST_BODY
        try:
            data = await self.tls.receive_some(CHUNK)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise _ClientGone(
                f"the client broke the connection ({type(exc.__cause__ or exc).__name__})"
            ) from exc
        self.deadline.progress()
        return bytes(data)

    async def _from_backend(self, *, body: bool = False) -> bytes:
        self.wait = _Wait.RESPONSE_BODY if body else _Wait.RESPONSE
        try:
            data = await self._backend().receive_some(CHUNK)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise _BackendFailed(f"the backend broke the connection ({exc.__cause__ or exc})") from exc
        self.deadline.progress()
        return data

    async def _to_backend(self, data: bytes | None) -> None:
        self.wait = _Wait.BACKEND_READS
        try:
            await self._backend().send_all(data or b"")
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise _BackendFailed(
                f"the backend closed the connection before reading the request ({exc})"
            ) from exc
        self.deadline.progress()

    async def _to_client(self, data: bytes | None) -> None:
        self.wait = _Wait.CLIENT_READS
        try:
            await self.tls.send_all(data or b"")
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise _ClientGone(
                f"the client broke the connection ({type(exc.__cause__ or exc).__name__})"
            ) from exc
        self.deadline.progress()

    async def _send_error(self, refusal: _Refusal) -> None:
        """An error response to the client, when the exchange still allows one; then the session ends."""
        if self.front.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        body = f"{refusal.status} {refusal.reason}\n".encode("utf-8", "replace")
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"x-content-type-options", b"nosniff"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        with trio.move_on_after(ERROR_WITHIN):
            try:
                data = self.front.send(h11.Response(status_code=refusal.status, headers=headers)) or b""
                data += (self.front.send(h11.Data(data=body)) or b"") + (
                    self.front.send(h11.EndOfMessage()) or b""
                )
                await self.tls.send_all(data)
            except (h11.LocalProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # a client that is gone or cannot be answered any more
