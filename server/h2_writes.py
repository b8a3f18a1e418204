"""The write side of one HTTP/2 connection (:mod:`.http2`): one outbox, one lock, one deadline.

Whoever writes holds the send lock and takes everything h2 has queued, so frames
leave in h2's order (with our own GOAWAY where it was queued). A body goes out
as far as the peer's windows allow, then waits for a WINDOW_UPDATE; a stream
that finds MAX_QUEUED bytes waiting writes them before queuing more, so a peer
that opens its windows and reads nothing holds one piece of response, not one
per stream. A write is shielded from its stream's cancellation (a write cut in
half would break the connection for every stream) and bounded by the
connection's deadline instead; one that does not finish in time marks the TLS
stream broken and ends the connection.
"""

from __future__ import annotations

from typing import Final

import trio
from h2.connection import H2Connection

from mtls_ref.shared.core.deadline import IdleDeadline
from mtls_ref.shared.tls.connection import TLSConnection

from .h2_guard import FloodGuard
from .routes import BULK_CHUNK

__all__ = ["MAX_QUEUED", "H2Writes"]

# What a stream may find queued and still add to: more waits for the write (one piece of /bytes/N).
MAX_QUEUED: Final = BULK_CHUNK


class H2Writes:
    """The writing half of the HTTP/2 server; :class:`.http2._H2Server` sets these up and reads."""

    conn: H2Connection
    tls: TLSConnection
    guard: FloodGuard
    deadline: IdleDeadline
    idle_timeout: float
    bound: float  # the reader's bound on bytes that completed nothing (math.inf: none)
    send_lock: trio.Lock
    window_opened: trio.Event
    outbox: bytearray  # taken from h2, not yet written (with our own GOAWAY, in order)
    broken: bool  # a write did not finish in time: the TLS stream is unusable
    writing: trio.CancelScope | None  # the shielded write under way

    def _end(self, reason: str) -> None:
        raise NotImplementedError  # the server ends the connection

    async def _send_body(self, stream_id: int, body: bytes | memoryview, *, end: bool) -> None:
        """Queue ``body`` in frames as the flow-control windows allow, flushing as it goes."""
        view = memoryview(body)
        while view:
            self._take()
            if len(self.outbox) >= MAX_QUEUED:
                # Another stream's piece waits to be written: write it first. Else a peer that opens
                # its windows and reads nothing has every stream queue a piece (100 x 256 KiB, twice).
                await self._flush()
                continue
            window = self.conn.local_flow_control_window(stream_id)
            if window <= 0:
                opened = self.window_opened
                await self._flush()
                await opened.wait()
                continue
            size = min(window, len(view))
            self._queue_data(stream_id, view[:size], end=end and size == len(view))
            view = view[size:]
            await self._flush()

    def _queue_data(self, stream_id: int, view: memoryview, *, end: bool) -> None:
        """``view`` (within the window) as DATA frames of the peer's largest frame size."""
        frame = self.conn.max_outbound_frame_size
        size = len(view)
        for start in range(0, size, frame):
            last = start + frame >= size
            self.conn.send_data(stream_id, view[start : start + frame], end_stream=end and last)
        self.guard.sent += size

    async def _flush(self, *, within: float | None = None) -> None:
        """Write whatever h2 (and our GOAWAY) queued, in order, by the connection's deadline (or
        ``within`` seconds). A failed or late write ends the connection (the callers are cancelled)."""
        async with self.send_lock:
            self._take()
            data = bytes(self.outbox)
            self.outbox.clear()
            if not data or self.broken:
                return
            deadline = self.deadline.scope.deadline if within is None else trio.current_time() + within
            # Shielded: a reset stream's task is cancelled, and a write it had begun, cut in half,
            # would leave the TLS stream unusable for every other stream. The deadline bounds it.
            with trio.CancelScope(deadline=deadline, shield=True) as scope:
                self.writing = scope
                try:
                    await self.tls.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    self._end("peer closed the connection during a response")
                    return
                finally:
                    self.writing = None
            if scope.cancelled_caught:
                self.broken = True
                self._end(f"the peer did not read within {self.idle_timeout:g}s; dropped")
                return
            self.deadline.progress(bound=self.bound)

    def _take(self) -> bool:
        """Move what h2 queued to the outbox, keeping the order; whether there was any."""
        data = self.conn.data_to_send()
        self.outbox += data
        return bool(data)
