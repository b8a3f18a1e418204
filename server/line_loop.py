"""The line protocol's I/O loop: requests read under their deadlines, one reply each, bounded writes.

The protocol itself (framing, parsing, replies) is sans-I/O in
:mod:`mtls_ref.shared.core.protocol`; this loop only moves its bytes. Between
requests a client may be idle for ``idle_timeout``; once a line has started,
the whole of it must arrive within ``request_timeout``; a reply the client does
not read within ``idle_timeout`` drops it (:class:`PeerNotReading`).
"""

from __future__ import annotations

import json
from typing import Final

import trio

from mtls_ref.shared.core.errors import ProtocolError
from mtls_ref.shared.core.protocol import (
    HELP_TEXT,
    Command,
    LineBuffer,
    LineTooLong,
    Reply,
    encode_reply,
    parse_request,
)
from mtls_ref.shared.tls.connection import TLSConnection

from .record import ConnectionRecord
from .settings import HandlerSettings
from .views import SessionInfo, whoami_document

__all__ = ["PeerNotReading", "send_reply", "serve_lines"]

RECEIVE_SIZE: Final = 16384  # one maximal TLS record


class PeerNotReading(Exception):
    """A reply could not be written within the deadline; the peer is dropped."""


async def serve_lines(
    tls: TLSConnection, settings: HandlerSettings, record: ConnectionRecord, info: SessionInfo, initial: bytes
) -> None:
    lines = LineBuffer(settings.max_line)
    data: bytes | None = initial
    line_started: float | None = None  # when the first byte of an unfinished line arrived
    within = settings.idle_timeout
    while True:
        if not data:
            data = await _receive_request_bytes(tls, settings, record, line_started)
            if data is None:
                return
        try:
            received = lines.feed(data)
        except LineTooLong as exc:
            record.reason = str(exc)
            await send_reply(tls, Reply(False, "line-too-long", f"{exc}; closing"), within)
            return
        except ProtocolError as exc:
            record.reason = str(exc)
            await send_reply(tls, Reply(False, "bad-encoding", f"{exc}; closing"), within)
            return
        data = None
        if not lines.pending:
            line_started = None
        elif line_started is None or received:
            line_started = trio.current_time()
        for line in received:
            if not line.strip():
                continue
            record.requests += 1
            if not await _answer(tls, line, info, within):
                record.reason = "client said QUIT"
                return


async def _receive_request_bytes(
    tls: TLSConnection, settings: HandlerSettings, record: ConnectionRecord, line_started: float | None
) -> bytes | None:
    """The next bytes from the client, or None (with the reason recorded) when the session ends.

    Between requests the client may be idle for ``idle_timeout``; once a line has
    started, the whole of it must arrive within ``request_timeout`` (a byte every
    few seconds does not keep a connection forever).
    """
    deadline = trio.current_time() + settings.idle_timeout
    if line_started is not None:
        deadline = min(deadline, line_started + settings.request_timeout)
    with trio.CancelScope(deadline=deadline) as scope:
        try:
            data = bytes(await tls.receive_some(RECEIVE_SIZE))
        except trio.BrokenResourceError:
            record.reason = "peer closed the connection abruptly"
            return None
    if scope.cancelled_caught:
        if line_started is not None:
            record.reason = f"request line not finished within {settings.request_timeout:g}s"
            reply = Reply(
                False, "request-timeout", f"a request line takes at most {settings.request_timeout:g}s"
            )
        else:
            record.reason = f"idle for {settings.idle_timeout:g}s"
            reply = Reply(False, "idle-timeout", f"no request for {settings.idle_timeout:g}s; bye")
        await send_reply(tls, reply, settings.idle_timeout)
        return None
    if not data:
        record.reason = "peer closed the connection"
        return None
    return data


async def _answer(tls: TLSConnection, line: str, info: SessionInfo, within: float) -> bool:
    """Answer one request line; False when the client asked to quit."""
    try:
        request = parse_request(line)
    except ProtocolError as exc:
        await send_reply(tls, Reply(False, "unknown-command", str(exc)), within)
        return True
    match request.command:
        case Command.WHOAMI:
            document = json.dumps(whoami_document(info), separators=(",", ":"))
            await send_reply(tls, Reply(True, "whoami", document), within)
        case Command.ECHO:
            await send_reply(tls, Reply(True, "echo", request.argument), within)
        case Command.PING:
            await send_reply(tls, Reply(True, "pong"), within)
        case Command.HELP:
            await send_reply(tls, Reply(True, "help", HELP_TEXT), within)
        case Command.QUIT:
            await send_reply(tls, Reply(True, "bye"), within)
            return False
    return True


async def send_reply(tls: TLSConnection, reply: Reply, within: float) -> None:
    """Send one reply within ``within`` seconds, else drop the peer (it does not read).

    A peer that is gone is not an error worth raising here.
    """
    with trio.move_on_after(within) as scope:
        # Not contextlib.suppress: this runs several times per connection, and a bare try is free.
        try:  # noqa: SIM105
            await tls.send_all(encode_reply(reply))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
    if scope.cancelled_caught:
        raise PeerNotReading(f"the peer did not read a reply within {within:g}s; dropped")
