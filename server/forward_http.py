"""Forward mode for HTTP backends: each request carries the client's identity in headers we set.

Theory of operation
-------------------
With ``forward_identity = "http-header"`` (Envoy's ``X-Forwarded-Client-Cert``)
or ``"client-cert"`` (RFC 9440's ``Client-Cert`` and ``Client-Cert-Chain``) the
server speaks HTTP/1.1 on both sides with h11 (sans-I/O). The client's request
head is parsed and checked (:mod:`.forward_headers`: one framing header, no
identity header in any spelling, no hop-by-hop field), ours are added, and the
request and its response are relayed event by event, bodies streamed.

**One backend connection per request**, sent with ``Connection: close`` (as
nginx does by default). A backend connection is never reused, so a backend
that answers twice, sends a body after a HEAD response, or ignores a body it
did not expect can never put the client's next request out of step with its
response: whatever it sends past the response is never read. The client's own
connection stays keep-alive as it asks. Request trailers are not passed on
(nginx neither); response trailers are.

**A deadline on every byte.** The connection's one :class:`IdleDeadline` moves
on with each chunk; the forwarder remembers what it waits for, so a passed
deadline gets the true answer: a backend that does not accept, read or answer
is a 504; a client silent between requests is closed; a stall elsewhere ends
the connection with its reason in the log. On top of it, absolute bounds that
progress cannot stretch: a request head within ``request_timeout`` of its
first byte (408), a request body no slower than ``MIN_BODY_RATE`` after that
(408, Apache's mod_reqtimeout rule), a response head within ``idle_timeout``
of the request and after at most ``MAX_INTERIM`` 1xx responses (504, 502).

Refused before the backend sees anything: ambiguous framing, a head over
``MAX_HEAD_BYTES`` and anything that is not HTTP/1.0 or 1.1 (400, 431, 505),
``CONNECT`` in any case (405: this is not a tunnelling proxy). A backend that
cannot be reached, breaks the connection or answers with something that is not
HTTP gets the client a 502. A 5xx tells the client what kind of failure it was;
the details (the backend's address) go to the log only.

``Upgrade: websocket`` goes to the backend; when it answers 101 with the same
protocol the client gets that 101, and from then on both streams go to the
one relay (:mod:`mtls_ref.shared.core.relay`) under the same idle deadline,
starting with the bytes h11 had read past the 101 on either side. No other
upgrade is passed on (an ``h2c`` upgrade would carry requests this relay never
sees). No loop here goes round without awaiting a read or write or ending.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import h11
import trio

from mtls_ref.shared.core.relay import CHUNK, relay
from mtls_ref.shared.tls.connection import TLSConnection

from .forward import BackendUnreachable, ForwardResult, ForwardTarget, connect_backend
from .forward_ends import MAX_HEAD_BYTES, BackendFailed, ClientGone, Ends, Late, Refusal, Switch, Wait
from .forward_headers import Headers, clean_headers, framing_problem, head_size, requested_upgrade

__all__ = ["MAX_DROPPED_NAMES", "forward_http"]

MAX_INTERIM: Final = 16  # 1xx responses a backend may send before its final one
MIN_BODY_RATE: Final = 500  # bytes/s a request body must average (mod_reqtimeout's MinRate default)
MAX_DROPPED_NAMES: Final = 32  # distinct dropped header names kept for the log line; then "(more)"
ERROR_WITHIN: Final = 2.0  # seconds to deliver an error response to a client that may not read
# Lingering close, as nginx's lingering_timeout / lingering_time: after an error answer to a client
# still sending, read on while it keeps sending (each read within ERROR_WITHIN), LINGER_TOTAL at most.
LINGER_TOTAL: Final = 10.0
_VERSIONS: Final = (b"1.0", b"1.1")


async def forward_http(
    tls: TLSConnection,
    target: ForwardTarget,
    identity_headers: Headers,
    *,
    idle_timeout: float,
    connect_timeout: float,
    request_timeout: float,
) -> ForwardResult:
    """Relay HTTP exchanges with our identity headers until either side ends; never raises for peers."""
    limits = _Limits(idle=idle_timeout, connect=connect_timeout, request=request_timeout)
    return await _HttpForwarder(tls, target, identity_headers, limits).run()


@dataclass(frozen=True, slots=True, kw_only=True)
class _Limits:
    idle: float  # idle_timeout: no byte either way
    connect: float  # a backend connection
    request: float  # request_timeout: a whole request head


class _HttpForwarder(Ends):
    def __init__(
        self, tls: TLSConnection, target: ForwardTarget, identity_headers: Headers, limits: _Limits
    ) -> None:
        super().__init__(tls, limits.idle)
        self.target = target
        self.identity_headers = identity_headers
        self.connect_timeout = limits.connect
        self.request_timeout = limits.request
        self.back = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
        self.result = ForwardResult()

    async def run(self) -> ForwardResult:
        outcome: Refusal | Switch | None = None
        try:
            with self.deadline.scope:
                outcome = await self._exchanges()
            if self.deadline.expired:
                late = f"waited {self.idle_timeout:g}s for {self.wait.words}"
                outcome = Refusal(self.wait.status, late) if self.wait.status else None
                self.result.ended = late
            if isinstance(outcome, Refusal):
                self.result.ended = outcome.reason
                await self._send_error(outcome)
            elif isinstance(outcome, Switch):
                await self._relay_upgraded(outcome)
        finally:
            await self._close_backend()
        return self.result

    async def _exchanges(self) -> Refusal | Switch | None:
        """Request after request until a side ends, a refusal, or a protocol switch."""
        try:
            while True:
                request = await self._next_request()
                if request is None:
                    self.result.ended = "client ended the session"
                    return None
                if refusal := _refusal_for(request):
                    return refusal
                self.result.requests += 1
                if self.front.client_is_waiting_for_100_continue:  # answered here, as nginx does
                    await self._to_client(
                        self.front.send(h11.InformationalResponse(status_code=100, headers=[]))
                    )
                if switch := await self._exchange(request):
                    return switch
                if self.front.our_state is h11.MUST_CLOSE:
                    self.result.ended = "the client asked to close (Connection: close, or HTTP/1.0)"
                    return None
                self.front.start_next_cycle()
        except h11.RemoteProtocolError as exc:  # the client's bytes (the backend's are caught below)
            # h11 hints 501 for a Transfer-Encoding it does not take; RFC 9112 §6.3 says 400.
            status = 400 if exc.error_status_hint == 501 else exc.error_status_hint
            return Refusal(status, f"not a request we forward: {exc}")
        except BackendUnreachable as exc:
            return Refusal(504 if exc.timed_out else 502, str(exc))
        except BackendFailed as exc:
            return Refusal(502, str(exc))
        except Late as late:
            return late.refusal
        except h11.LocalProtocolError as exc:
            return Refusal(502, f"this exchange cannot be relayed: {exc}")
        except ClientGone as exc:
            self.result.ended = str(exc)
            return None

    async def _exchange(self, request: h11.Request) -> Switch | None:
        """One request on a backend connection of its own; a switch keeps that connection."""
        self.back = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
        self.wait = Wait.CONNECT
        self.backend = await connect_backend(self.target, self.connect_timeout)
        upgrade = requested_upgrade(request.headers)
        await self._to_backend(self.back.send(self._outgoing(request, upgrade)))
        await self._relay_body(up=True)
        response = await self._next_response()
        if isinstance(response, h11.InformationalResponse):  # 101: the backend switched
            if upgrade is None or requested_upgrade(response.headers) != upgrade:
                raise BackendFailed("the backend switched to a protocol the client did not ask for")
            return self._switch(upgrade, response)
        headers, _ = clean_headers(response.headers, keep_underscores=True)  # hop-by-hop: ours to set
        head = h11.Response(status_code=response.status_code, headers=headers, reason=response.reason)
        await self._to_client(self.front.send(head))
        await self._relay_body(up=False)
        await self._close_backend()  # never reused: what it sends past the response is never read
        return None

    def _outgoing(self, request: h11.Request, upgrade: bytes | None) -> h11.Request:
        headers, dropped = clean_headers(
            request.headers, keep_underscores=self.target.keep_underscore_headers
        )
        self._note_dropped(dropped)
        if not any(name == b"host" for name, _ in headers):  # HTTP/1.0 may omit it; HTTP/1.1 may not
            headers.append((b"host", str(self.target).encode()))
        if upgrade is not None:
            headers += [(b"connection", b"upgrade"), (b"upgrade", upgrade)]
        else:
            headers.append((b"connection", b"close"))
        return h11.Request(
            method=request.method, target=request.target, headers=headers + self.identity_headers
        )

    def _note_dropped(self, dropped: Headers) -> None:
        names = self.result.dropped_headers
        for name, _ in dropped:
            if len(names) < MAX_DROPPED_NAMES:
                names.add(name.decode("ascii", "replace"))
            elif name.decode("ascii", "replace") not in names:
                names.add("(more)")  # not a header name: h11 accepts tokens only

    def _switch(self, upgrade: bytes, response: h11.InformationalResponse) -> Switch:
        return Switch(
            protocol=upgrade.decode("ascii"),
            from_client=bytes(self.front.trailing_data[0]),
            from_backend=self.front.send(
                h11.InformationalResponse(status_code=101, headers=response.headers, reason=response.reason)
            )
            + bytes(self.back.trailing_data[0]),
        )

    async def _relay_upgraded(self, switch: Switch) -> None:
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
        """The next request head, whole within ``request_timeout`` of its first byte; None at a close."""
        self.wait = Wait.REQUEST
        started = trio.current_time() if self.front.trailing_data[0] else None
        while True:
            event = self.front.next_event()
            if event is h11.NEED_DATA:
                limit = None if started is None else started + self.request_timeout
                data = await self._from_client(limit, f"the request head took over {self.request_timeout:g}s")
                if data and started is None:
                    started = trio.current_time()
                self.front.receive_data(data)
            elif isinstance(event, h11.Request):
                return event
            elif isinstance(event, h11.ConnectionClosed):
                return None
            else:
                raise ClientGone(f"the client's connection is in h11 state {event!r}")

    async def _next_response(self) -> h11.Response | h11.InformationalResponse:
        """The backend's final response head, or its 101; other 1xx are not passed on."""
        self.wait = Wait.RESPONSE
        limit = trio.current_time() + self.idle_timeout  # not moved by 1xx or a byte at a time
        interim = 0
        while True:
            try:
                event = self.back.next_event()
            except h11.RemoteProtocolError as exc:
                raise BackendFailed(f"the backend's response is not HTTP/1.1: {exc}") from exc
            if event is h11.NEED_DATA:
                data = await self._from_backend(limit)
                if not data:
                    raise BackendFailed("the backend closed the connection without a response")
                self.back.receive_data(data)
            elif isinstance(event, h11.Response):
                return event
            elif isinstance(event, h11.InformationalResponse):
                if event.status_code == 101:
                    return event
                interim += 1
                if interim > MAX_INTERIM:
                    raise BackendFailed(f"the backend sent more than {MAX_INTERIM} interim (1xx) responses")
            else:
                raise BackendFailed(f"the backend's connection is in h11 state {event!r}")

    async def _relay_body(self, *, up: bool) -> None:
        """Stream one message body from one h11 connection to the other (request trailers dropped)."""
        source, sink = (self.front, self.back) if up else (self.back, self.front)
        started, moved = trio.current_time(), 0
        while True:
            try:
                event = source.next_event()
            except h11.RemoteProtocolError as exc:
                if not up:
                    raise BackendFailed(f"the backend's response body is not HTTP/1.1: {exc}") from exc
                if self.front.their_state is h11.ERROR and source.trailing_data[1]:
                    raise ClientGone("the client closed the connection in the middle of a request") from exc
                raise
            if event is h11.NEED_DATA:
                if up:  # a body may be slow, not slower than MIN_BODY_RATE once request_timeout has passed
                    limit = started + self.request_timeout + moved / MIN_BODY_RATE
                    why = f"the request body came slower than {MIN_BODY_RATE} bytes/s"
                    source.receive_data(await self._from_client(limit, why))
                else:
                    self.wait = Wait.RESPONSE_BODY
                    source.receive_data(await self._from_backend(None))
            elif isinstance(event, h11.Data):
                moved += len(event.data)
                await (self._to_backend if up else self._to_client)(sink.send(h11.Data(data=event.data)))
                if up:
                    self.result.to_backend += len(event.data)
                else:
                    self.result.to_client += len(event.data)
            elif isinstance(event, h11.EndOfMessage):
                trailers = list(event.headers)
                if up:
                    self._note_dropped(trailers)
                    trailers = []
                await (self._to_backend if up else self._to_client)(
                    sink.send(h11.EndOfMessage(headers=trailers))
                )
                return
            elif up:
                raise ClientGone("the client closed the connection in the middle of a request")
            else:
                raise BackendFailed("the backend closed the connection in the middle of a response")

    def _client_still_sending(self) -> bool:
        """Whether the refused client has more of its request to send: a body not yet all here, or a
        head cut short. What h11 holds already is parsed first (a request without a body is complete
        once its head is), so a client that sent all of it is not kept waiting for a lingering close."""
        try:
            for _ in range(64):  # bounded: no new data is fed, so this only walks what is buffered
                event = self.front.next_event()
                if event is h11.NEED_DATA or event is h11.PAUSED or isinstance(event, h11.EndOfMessage):
                    break
        except h11.RemoteProtocolError:
            return True  # broken framing: whatever else it sends, read it away before closing
        # Bytes h11 holds past a complete request (a pipelined or smuggled one) are read already:
        # only a body still due, or a head cut short, means more is on its way.
        state = self.front.their_state
        return state is h11.SEND_BODY or (state is h11.IDLE and bool(self.front.trailing_data[0]))

    async def _send_error(self, refusal: Refusal) -> None:
        """An error response to the client, when the exchange still allows one; then the session ends."""
        if self.front.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        mid_request = self._client_still_sending()
        body = f"{refusal.status} {refusal.told}\n".encode("utf-8", "replace")
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"x-content-type-options", b"nosniff"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        with trio.move_on_after(LINGER_TOTAL):
            try:
                data = self.front.send(h11.Response(status_code=refusal.status, headers=headers)) or b""
                data += (self.front.send(h11.Data(data=body)) or b"") + (
                    self.front.send(h11.EndOfMessage()) or b""
                )
                with trio.fail_after(ERROR_WITHIN):
                    await self.tls.send_all(data)
                # Lingering close (nginx's lingering_close): a client cut off in the middle of its
                # request is still sending; read on while it does, so that closing with unread input
                # (a TCP reset) does not destroy the answer before the client reads it.
                while mid_request:
                    with trio.move_on_after(ERROR_WITHIN) as pause:
                        mid_request = bool(await self.tls.receive_some(CHUNK))
                    if pause.cancelled_caught:
                        break
            except (
                h11.LocalProtocolError,
                trio.BrokenResourceError,
                trio.ClosedResourceError,
                trio.TooSlowError,
            ):
                pass  # a client that is gone, does not read, or cannot be answered any more


def _refusal_for(request: h11.Request) -> Refusal | None:
    """Why a request is refused before the backend sees it, or None."""
    if problem := framing_problem(request):
        return Refusal(400, problem)
    if request.http_version not in _VERSIONS:
        return Refusal(505, f"HTTP/{request.http_version.decode()} is not forwarded: HTTP/1.0 and 1.1 only")
    if head_size(request) > MAX_HEAD_BYTES:
        return Refusal(431, f"the request head is over {MAX_HEAD_BYTES} bytes")
    if request.method.upper() == b"CONNECT":
        return Refusal(405, "CONNECT is not forwarded: this server is not a tunnelling proxy")
    return None
