"""HTTP/2 on the mTLS port, with h2 (sans-I/O): the resources of :mod:`.routes`, multiplexed.

Theory of operation
-------------------
Chosen when the client negotiates ALPN ``h2``. One task reads: bytes in,
``h2`` events out. A request is answered by the reader itself when it is
complete and its answer fits the peer's window (every small answer: a task
switch costs more than the answer), and all the frames of one read leave in one
TLS write. A streamed body (``/bytes/N``) or an answer waiting for a window gets
a task of its own, so it never holds up a ``/whoami`` on the same connection; a
stream the client resets has its task cancelled. Whoever writes holds the send
lock and takes everything h2 has queued, so frames leave in h2's order. What an
answer is made of (fields, body, trailers) is :mod:`.h2_answers`'.

Flow control: a response body goes out as far as the peer's window allows (the
smaller of the stream's and the connection's), then its task waits for a
WINDOW_UPDATE (the write side is :mod:`.h2_writes`). Received DATA is
counted and acknowledged at once, so the client's window reopens; a body is
never kept beyond its request's limit (:func:`.routes.body_limit`; an App's
requests up to its route's ``max_body``).

Every read and write is under the connection's one :class:`IdleDeadline`:
``idle_timeout`` without progress either way ends it (a peer that does not
read is dropped), and bytes that complete no frame or header block must be
followed by one that does within ``request_timeout`` (a slow header block).
A request body is a stream's own affair, which other streams' traffic hides
from that deadline: ``idle_timeout`` without a byte of it gets 408 and
RST_STREAM, as an HTTP/1.1 body that stalls ends its connection.

Shutdown and reload: when the server stops, or reloads its credentials, the
client gets a GOAWAY naming the last stream we took (:class:`GoAwayOn`); those
streams finish within ``shutdown_grace`` (the server's own deadline at
shutdown, which cuts a write to a peer that does not read too; the
connection's after a reload), later ones are refused, and the connection ends
with its last stream. A reload so reaches long-lived HTTP/2 and gRPC
connections too: their clients reconnect, and the new CA and CRL judge them. h2's
``close_connection`` would also close its state machine (no DATA could follow
on the streams in flight), so that GOAWAY is built by hyperframe, h2's own
framing layer, and queued after what h2 has pending.

Limits: MAX_CONCURRENT_STREAMS and MAX_HEADER_LIST_SIZE are advertised and
enforced by h2 (with what else it bounds: see :mod:`.h2_guard`, which adds the
budgets it lacks). A peer that breaks the protocol gets h2's GOAWAY with the
fitting code; one over a budget gets GOAWAY ENHANCE_YOUR_CALM; both are dropped.

Other applications (gRPC) plug in as an App (:mod:`.h2_app`): asked first for
each request, it may take it; its response's trailers end the stream.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Final

import trio
from h2 import events as h2e
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.exceptions import ProtocolError, StreamClosedError
from h2.settings import SettingCodes, Settings
from hyperframe.frame import GoAwayFrame

from mtls_ref.shared.core.deadline import IdleDeadline
from mtls_ref.shared.tls.connection import TLSConnection
from mtls_ref.shared.tls.stream import RECEIVE_SIZE

from .h2_answers import H2_CONFIG, Stream, h2_fields, whole_answer
from .h2_app import App, request_head
from .h2_guard import FloodGuard
from .h2_writes import H2Writes
from .routes import (
    BULK_CHUNK,
    ConnectionAnswers,
    Headers,
    Plan,
    RequestTally,
    SendBytes,
    body_limit,
)
from .views import SessionInfo

__all__ = ["GoAwayOn", "serve_http2"]

# nginx's http2_max_concurrent_streams is 128, Go's 250; h2 refuses a stream beyond it.
MAX_CONCURRENT_STREAMS: Final = 100
# As HTTP/1.1's request head limit (http.MAX_HEAD_BYTES): h2 refuses a larger header list.
MAX_HEADER_LIST_SIZE: Final = 16 * 1024
CLOSE_WITHIN: Final = 2.0  # a goodbye (GOAWAY) to a peer that may not read
_ZEROS: Final = memoryview(bytes(BULK_CHUNK))  # /bytes/N's pieces: one for all streams, never copied


@dataclass(frozen=True, slots=True)
class GoAwayOn:
    """When ``event`` is set the connection sends GOAWAY, saying ``why``; its streams in flight then
    have ``grace`` seconds (None: until the server's own deadline, as at shutdown)."""

    event: trio.Event
    why: str
    grace: float | None = None


async def serve_http2(
    tls: TLSConnection,
    info: SessionInfo,
    tally: RequestTally,
    *,
    idle_timeout: float,
    request_timeout: float,
    go_away: Sequence[GoAwayOn] = (),
    app: App | None = None,
) -> str:
    """Serve streams until the client or the server ends the connection, counting the requests taken
    in ``tally``; returns how it ended."""
    server = _H2Server(tls, info, tally, idle_timeout=idle_timeout, request_timeout=request_timeout, app=app)
    return await server.run(go_away)


class _H2Server(H2Writes):
    def __init__(
        self,
        tls: TLSConnection,
        info: SessionInfo,
        tally: RequestTally,
        *,
        idle_timeout: float,
        request_timeout: float,
        app: App | None,
    ) -> None:
        self.tls, self.info, self.tally, self.app = tls, info, tally, app
        self.idle_timeout, self.request_timeout = idle_timeout, request_timeout
        self.conn = H2Connection(config=H2_CONFIG)
        self.conn.local_settings = Settings(
            client=False,
            initial_values={
                SettingCodes.MAX_CONCURRENT_STREAMS: MAX_CONCURRENT_STREAMS,
                SettingCodes.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST_SIZE,
            },
        )
        # Initial values need no ACK, so h2 never applies this one to its HPACK decoder (it does so
        # on an ACKed change): without this line the decoder keeps h2's default of 64 KiB.
        self.conn.decoder.max_header_list_size = MAX_HEADER_LIST_SIZE
        self.guard = FloodGuard()
        self.answers = ConnectionAnswers(info)
        self.streams: dict[int, Stream] = {}
        self.send_lock = trio.Lock()
        self.window_opened = trio.Event()
        self.outbox = bytearray()  # taken from h2, not yet written (with our own GOAWAY, in order)
        self.last_stream: int | None = None  # set by our GOAWAY: streams above it are refused
        self.going_away = ""  # why our GOAWAY went out
        self.ended: str | None = None
        self.broken = False  # a write did not finish in time: the TLS stream is unusable
        self.bound = math.inf  # when bytes that completed nothing must be followed by some that do
        self.deadline = IdleDeadline(idle_timeout)
        self.writing: trio.CancelScope | None = None  # the shielded write under way
        self.stall_check = 0.0  # when to look for request bodies that stalled next
        self.nursery: trio.Nursery  # set in run(), before anything reads it

    def __repr__(self) -> str:
        return f"<H2 server streams={len(self.streams)} {self.guard!r}>"

    async def run(self, go_away: Sequence[GoAwayOn]) -> str:
        with self.deadline.scope:
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                self.conn.initiate_connection()  # our SETTINGS go out with the first answer
                for signal in go_away:
                    nursery.start_soon(self._go_away_on, signal)
                try:
                    self._end(await self._read())
                except trio.Cancelled:
                    if self.ended is None and self.writing is not None:
                        # Cancelled from outside (shutdown_grace): a shielded write waiting on a peer
                        # that does not read would otherwise outlast it, up to idle_timeout.
                        self.writing.cancel()
                    raise
        if self.broken:  # a write cut short leaves the TLS stream unusable: no GOAWAY, no close_notify
            await self.tls.abort()
        elif self.deadline.expired and self.ended is None:
            self.ended = (
                f"idle for {self.idle_timeout:g}s"
                if self.bound == math.inf
                else f"a frame or header block not complete within {self.request_timeout:g}s"
            )
            with contextlib.suppress(ProtocolError):  # h2 had closed already (a GOAWAY went out)
                self.conn.close_connection()
            await self._goodbye()
        return self.ended or "connection ended"

    def _end(self, reason: str) -> None:
        if self.ended is None:
            self.ended = reason
        self.nursery.cancel_scope.cancel()

    async def _goodbye(self) -> None:
        """Send what is queued (a GOAWAY) within CLOSE_WITHIN, whatever the connection's deadline."""
        with trio.CancelScope(deadline=trio.current_time() + CLOSE_WITHIN, shield=True):
            await self._flush(within=CLOSE_WITHIN)

    async def _drop(self) -> None:
        """GOAWAY, then close our side and read (bounded) until the peer closes: a peer still sending
        would otherwise get a TCP reset, which can discard the GOAWAY before it reads it."""
        await self._goodbye()
        await self.tls.abort()

    # -- reading -----------------------------------------------------------------------------------

    async def _read(self) -> str:
        while True:
            try:
                data = await self.tls.receive_some(RECEIVE_SIZE)
            except trio.BrokenResourceError:
                return "peer closed the connection abruptly"
            if not data:
                return "peer closed the connection"
            try:
                events = self.conn.receive_data(data)
            except ProtocolError as exc:  # h2 has queued its GOAWAY with the fitting code
                await self._drop()
                return f"HTTP/2 protocol error: {exc}"
            replied = self._take()
            flood = self.guard.received(len(data), events, replied=replied)
            if flood is not None:
                self.conn.close_connection(ErrorCodes.ENHANCE_YOUR_CALM, additional_data=b"too many frames")
                await self._drop()
                return flood
            self._progress(done=bool(events))
            for event in events:
                if isinstance(event, h2e.ConnectionTerminated):
                    await self._flush()
                    return f"client sent GOAWAY ({_code_name(event.error_code)})"
                self._dispatch(event)
            if self.streams and (now := trio.current_time()) >= self.stall_check:
                self.stall_check = now + self.idle_timeout / 4
                self._answer_stalled(now)
            # Everything this read caused (answers, SETTINGS ACK, WINDOW_UPDATE) in one write.
            await self._flush()
            if self.last_stream is not None and not self.streams:
                return f"{self.going_away}: GOAWAY sent, streams finished"

    def _progress(self, *, done: bool) -> None:
        if done:
            self.bound = math.inf
        elif self.bound == math.inf:
            self.bound = trio.current_time() + self.request_timeout
        self.deadline.progress(bound=self.bound)

    def _dispatch(self, event: h2e.Event) -> None:
        if isinstance(event, h2e.RequestReceived) and event.headers is not None:
            self._open(event.stream_id, event.headers)
        elif isinstance(event, h2e.DataReceived):
            self._data(event)
        elif isinstance(event, h2e.StreamEnded):
            if (stream := self.streams.get(event.stream_id)) is not None and stream.scope is None:
                self._finish(stream)
        elif isinstance(event, h2e.StreamReset):
            if (stream := self.streams.pop(event.stream_id, None)) is not None and stream.scope is not None:
                stream.scope.cancel()
        elif isinstance(event, h2e.WindowUpdated | h2e.RemoteSettingsChanged):
            self.window_opened.set()  # every waiting stream looks at its window again
            self.window_opened = trio.Event()

    def _open(self, stream_id: int, fields: list[tuple[bytes, bytes]]) -> None:
        if self.last_stream is not None and stream_id > self.last_stream:
            self.conn.reset_stream(stream_id, ErrorCodes.REFUSED_STREAM)  # after our GOAWAY
            return
        self.tally.requests += 1
        head, regular = request_head(fields)
        route = self.app(head, regular, self.info) if self.app is not None else None
        todo: Plan | None = None
        if route is not None:
            limit = route.max_body
        else:
            todo = self.answers.plan(head)
            limit = body_limit(todo)
        body = bytearray() if route is not None else None
        stream = Stream(stream_id, limit, head.method == b"HEAD", todo, route, body, trio.current_time())
        self.streams[stream_id] = stream

    def _data(self, event: h2e.DataReceived) -> None:
        if event.stream_id is None or event.data is None:
            return
        # Counted and dropped (or kept for an App, within its limit): the window reopens at once.
        self.conn.acknowledge_received_data(event.flow_controlled_length or 0, event.stream_id)
        stream = self.streams.get(event.stream_id)
        if stream is None or stream.too_large or stream.scope is not None:
            return
        stream.received += len(event.data)
        stream.since = trio.current_time()
        if stream.received > stream.limit:
            stream.too_large = True
            stream.body = None
            self._finish(stream)
        elif stream.body is not None:
            stream.body += event.data

    def _answer_stalled(self, now: float) -> None:
        """408 to each request body with no byte for idle_timeout (looked at as reads come: a stream
        alone on its connection is ended by the connection's deadline)."""
        waiting = [s for s in self.streams.values() if s.scope is None and now - s.since >= self.idle_timeout]
        for stream in waiting:
            stream.stall(self.idle_timeout)
            self._finish(stream)

    # -- answering ---------------------------------------------------------------------------------

    def _finish(self, stream: Stream) -> None:
        """The request is complete (or over its limit): answer it now, or hand what must wait to a task."""
        todo = stream.todo
        try:
            if isinstance(todo, SendBytes) and not stream.too_large:
                self._spawn(stream, self._send_bytes(stream.id, todo))
                return
            headers, body, trailers = whole_answer(stream)
            self.conn.send_headers(stream.id, headers, end_stream=not body and not trailers)
            # A 413 leaves before its RST_STREAM, in a write of its own: curl reports a reset that
            # comes with the answer as a stream error, not as the answer.
            waits = bool(body) and len(body) > self.conn.local_flow_control_window(stream.id)
            if stream.too_large or stream.stalled or waits:
                self._spawn(stream, self._send_rest(stream, body, trailers))
                return
            if body:
                self._queue_data(stream.id, memoryview(body), end=not trailers)
            self._ended(stream, trailers)
        except ProtocolError:
            pass  # the stream was reset, or the connection closed, under us: nothing more to say on it
        if stream.scope is None:
            self.streams.pop(stream.id, None)

    def _ended(self, stream: Stream, trailers: Headers) -> None:
        """The body is queued: the trailers, and after a 413 a reset; one more answer counted."""
        if trailers:
            self.conn.send_headers(stream.id, list(trailers), end_stream=True)
        if stream.too_large or stream.stalled:  # RFC 9113 §8.1: stop sending (unless END_STREAM came)
            with contextlib.suppress(StreamClosedError):
                self.conn.reset_stream(stream.id, ErrorCodes.NO_ERROR)
        self.guard.answered += 1

    def _spawn(self, stream: Stream, work: Coroutine[Any, Any, None]) -> None:
        stream.scope = scope = trio.CancelScope()
        self.nursery.start_soon(self._run_stream, stream, scope, work)

    async def _run_stream(
        self, stream: Stream, scope: trio.CancelScope, work: Coroutine[Any, Any, None]
    ) -> None:
        try:
            with scope:
                await work
                await self._flush()
        except ProtocolError:
            pass  # the stream was reset, or the connection closed, under us: nothing more to say on it
        finally:
            work.close()  # never started if the scope was cancelled first
            self.streams.pop(stream.id, None)
            if self.last_stream is not None and not self.streams:
                self._end(f"{self.going_away}: GOAWAY sent, streams finished")

    async def _send_rest(self, stream: Stream, body: bytes, trailers: Headers) -> None:
        """The body of an answer whose headers went out, as the windows open."""
        await self._send_body(stream.id, body, end=not trailers)
        self._ended(stream, trailers)

    async def _send_bytes(self, stream_id: int, todo: SendBytes) -> None:
        """``GET /bytes/N``: N zero bytes, as fast as the peer's windows let them go."""
        self.conn.send_headers(stream_id, h2_fields(todo), end_stream=not todo.count)
        remaining = todo.count
        while remaining:
            piece = min(remaining, BULK_CHUNK)
            remaining -= piece
            await self._send_body(stream_id, _ZEROS[:piece], end=not remaining)
        self.guard.answered += 1

    async def _go_away_on(self, signal: GoAwayOn) -> None:
        """GOAWAY naming the last stream taken (once); the connection ends with its last stream, or
        when the signal's grace is over."""
        await signal.event.wait()
        if self.last_stream is not None:
            return  # the other signal's GOAWAY went out first
        self.last_stream = self.conn.highest_inbound_stream_id
        self.going_away = signal.why
        goaway = GoAwayFrame(stream_id=0, last_stream_id=self.last_stream, error_code=ErrorCodes.NO_ERROR)
        goaway.additional_data = signal.why.encode()
        self._take()
        self.outbox += goaway.serialize()
        # The grace starts now: a write to a peer that does not read may hold the send lock.
        with trio.move_on_after(math.inf if signal.grace is None else signal.grace):
            await self._flush()
            if not self.streams:
                self._end(f"{signal.why}: GOAWAY sent")
            await trio.sleep_forever()  # the last stream ends the connection (or the grace does)
        self._end(f"{signal.why}: GOAWAY sent, streams still open after {signal.grace:g}s cut")
        if self.writing is not None:  # a write to a peer that does not read is cut too
            self.writing.cancel()


def _code_name(code: ErrorCodes | int | None) -> str:
    return code.name if isinstance(code, ErrorCodes) else f"error code {code}"
