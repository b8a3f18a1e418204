"""The line protocol's I/O loop: bytes to the protocol, its replies back, under one moving deadline.

Everything the client can observe (replies, limits, which wait it is in, why
the session ended) is decided by the sans-I/O
:class:`~mtls_ref.shared.core.line_protocol.LineConnection`; this loop only
moves its bytes. The connection has one cancel scope, entered once
(:class:`~mtls_ref.shared.core.deadline.IdleDeadline`), whose deadline each
step moves: a write gets ``idle_timeout`` from when it starts; a read gets
``idle_timeout`` from when it starts, and never past the end the protocol set
for a line that has begun (``request_timeout``). When the deadline passes
during a write the client is not reading and is dropped
(:class:`PeerNotReading`); during a read, the protocol says which wait ran out
and its last words get one more ``idle_timeout`` of their own.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable

import trio

from mtls_ref.shared.core.deadline import IdleDeadline
from mtls_ref.shared.core.line_protocol import Close, LineConnection, Step
from mtls_ref.shared.core.protocol import Reply, encode_reply
from mtls_ref.shared.tls.connection import TLSConnection
from mtls_ref.shared.tls.stream import RECORD_SIZE

from .record import ConnectionRecord
from .settings import HandlerSettings
from .views import SessionInfo, whoami_document

__all__ = ["PeerNotReading", "send_reply", "serve_lines"]


class PeerNotReading(Exception):
    """A reply could not be written within the deadline; the peer is dropped."""


async def serve_lines(
    tls: TLSConnection, settings: HandlerSettings, record: ConnectionRecord, info: SessionInfo, initial: bytes
) -> None:
    """Greet the client (or tell it the allow-list's refusal), then answer its lines until the end.

    ``initial``: bytes already read while choosing the protocol. The end's reason
    goes to ``record``; a client that does not read raises :class:`PeerNotReading`.
    """
    protocol = LineConnection(
        whoami=lambda: json.dumps(whoami_document(info), separators=(",", ":")),
        idle_timeout=settings.idle_timeout,
        request_timeout=settings.request_timeout,
        max_line=settings.max_line,
    )
    refusal = None if info.decision.allowed else info.decision.told
    loop = _Loop(tls, protocol, IdleDeadline(settings.idle_timeout))
    try:
        await loop.run(protocol.start(info.identity.label, refusal=refusal), initial)
    finally:
        record.requests = protocol.requests
    if protocol.ended is not None and protocol.ended.reason is not None:
        record.reason = protocol.ended.reason


class _Loop:
    __slots__ = ("deadline", "protocol", "send", "tls", "writing")

    def __init__(self, tls: TLSConnection, protocol: LineConnection, deadline: IdleDeadline) -> None:
        self.tls = tls
        self.protocol = protocol
        self.deadline = deadline
        self.writing = False  # what the deadline interrupted: a write (the peer does not read) or a read
        # No scheduling point after a write: what follows is a receive, or the close, and each is
        # one (cancellation is still checked before writing).
        self.send: Callable[[bytes], Awaitable[None]] = functools.partial(tls.send_all, yield_after=False)

    async def run(self, step: Step, initial: bytes) -> None:
        tls, protocol, deadline = self.tls, self.protocol, self.deadline
        with deadline.scope:
            while True:
                if step.replies:
                    await self._write(step.data)
                then = step.then
                if isinstance(then, Close):
                    return
                deadline.progress(bound=then.until)
                if initial:
                    data, initial = initial, b""
                else:
                    try:
                        data = await tls.receive_some(RECORD_SIZE)
                    except trio.BrokenResourceError:
                        step = protocol.peer_aborted()
                        continue
                step = protocol.receive_data(data, trio.current_time())
        if self.writing:
            raise PeerNotReading(f"the peer did not read a reply within {deadline.seconds:g}s; dropped")
        await _send_within(tls, protocol.timed_out().data, deadline.seconds)

    async def _write(self, data: bytes) -> None:
        self.writing = True
        self.deadline.progress()
        # A peer that is gone is not an error worth raising here: the next read says how it went.
        # Not contextlib.suppress: this runs once per request, and a bare try is free.
        try:  # noqa: SIM105
            await self.send(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        self.writing = False


async def send_reply(tls: TLSConnection, reply: Reply, within: float) -> None:
    """Send one reply within ``within`` seconds, else drop the peer (it does not read).

    For the goodbye of a session whose own deadline is gone (the server shutting down).
    """
    await _send_within(tls, encode_reply(reply), within)


async def _send_within(tls: TLSConnection, data: bytes, within: float) -> None:
    with trio.move_on_after(within) as scope:
        try:  # noqa: SIM105 - see _Loop._write
            await tls.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
    if scope.cancelled_caught:
        raise PeerNotReading(f"the peer did not read a reply within {within:g}s; dropped")
