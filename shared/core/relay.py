"""The one relay: two byte streams, one idle deadline, half-close both ways.

Theory of operation
-------------------
Forward mode (client over TLS, backend over TCP), an HTTP upgrade in forward
mode (after the backend's 101, the same two streams carry websocket frames)
and the tunnel (local client over TCP, service over TLS) all copy bytes both
ways between a *near* stream (the side that came to us) and a *far* one:

* near to far until the near side ends its stream; then the far side gets a
  half-close (FIN) when it can take one (a TCP stream), and its answer keeps
  flowing back: a client that sends a request and shuts its write side is
  served. A far side that cannot be half-closed (TLS: trio's TLS streams have
  no ``send_eof``) gets ``half_close_grace`` seconds to finish answering, as
  socat does, instead of the whole idle deadline;
* far to near until the far side closes, which ends the session;
* one :class:`~mtls_ref.shared.core.deadline.IdleDeadline` for both
  directions: ``idle_timeout`` without a byte either way ends the session, and
  so does a write that cannot complete within it (a side that does not read).

Nothing here spins: every step awaits a read or a write, so a relayed
connection can never keep the event loop from serving others. Peers breaking
the connection end the session with :attr:`RelayResult.error` kept for the
caller's diagnosis (the tunnel turns a TLS alert there into words); this
function never raises for what the peers do.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

import trio

from .deadline import IdleDeadline

__all__ = ["CHUNK", "RelayEnd", "RelayResult", "relay"]

CHUNK: Final = 65536  # per read: large enough for bulk, small enough to keep both directions moving


class RelayEnd(enum.Enum):
    """How a relayed session ended."""

    FAR_CLOSED = "far side closed"
    NEAR_ENDED = "near side ended its stream and the far side's grace ran out"
    IDLE = "idle deadline"
    BROKEN = "a side broke the connection"


@dataclass(slots=True)
class RelayResult:
    up: int = 0  # bytes near -> far
    down: int = 0  # bytes far -> near
    end: RelayEnd | None = None
    ended: str = ""  # the end in words, naming the sides as the caller named them
    error: BaseException | None = None  # what broke the session (end is BROKEN)


async def relay(
    near: trio.abc.Stream,
    far: trio.abc.Stream,
    *,
    idle_timeout: float,
    names: tuple[str, str] = ("client", "backend"),
    half_close_grace: float | None = None,
    up_first: bytes = b"",
    down_first: bytes = b"",
) -> RelayResult:
    """Copy bytes both ways until the far side closes, the deadline passes or a side breaks.

    ``up_first`` / ``down_first``: bytes to deliver before relaying (a PROXY
    header for the backend; what h11 had already read past an upgrade).
    """
    result = RelayResult()
    near_name, far_name = names
    deadline = IdleDeadline(idle_timeout)
    near_ended = False

    async def upstream() -> None:
        nonlocal near_ended
        while data := await near.receive_some(CHUNK):
            await far.send_all(data)
            result.up += len(data)
            deadline.progress()
        near_ended = True
        if isinstance(far, trio.abc.HalfCloseableStream):
            await far.send_eof()
        elif half_close_grace is not None:
            deadline.shorten(half_close_grace)

    with deadline.scope:
        try:
            if up_first:
                await far.send_all(up_first)
            if down_first:
                await near.send_all(down_first)
                result.down += len(down_first)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(upstream)
                while data := await far.receive_some(CHUNK):
                    await near.send_all(data)
                    result.down += len(data)
                    deadline.progress()
                result.end, result.ended = RelayEnd.FAR_CLOSED, f"the {far_name} closed the connection"
                nursery.cancel_scope.cancel()
        except* (trio.BrokenResourceError, trio.ClosedResourceError) as group:
            result.error = group.exceptions[0]
            cause = result.error.__cause__ or result.error
            result.end, result.ended = RelayEnd.BROKEN, f"connection broken ({type(cause).__name__})"
    if deadline.expired:
        if near_ended and half_close_grace is not None:
            result.end, result.ended = RelayEnd.NEAR_ENDED, f"the {near_name} ended its stream"
        else:
            result.end = RelayEnd.IDLE
            result.ended = f"no byte either way for {idle_timeout:g}s (or a side that does not read)"
    return result
