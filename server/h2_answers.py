"""What an HTTP/2 answer is made of, without I/O: each request's state, and the fields, body and
trailers it is answered with (:mod:`.http2` sends them).

h2 checks and normalizes what it receives; what we send is built here from our
own constants and encoded values, so h2's outbound checks are off (they cost a
sixth of a small request's CPU) and the tests show every kind of answer to a
strict h2 client instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import trio
from h2.config import H2Configuration

from .h2_app import AppRoute, Response
from .routes import SERVER_HEADER, TOO_LARGE, Answer, Headers, Plan, SendBytes, Sink, sink_answer

__all__ = ["H2_CONFIG", "Stream", "h2_fields", "whole_answer"]

# The server side, headers as bytes, outbound checks off (the module docstring says why).
H2_CONFIG: Final = H2Configuration(
    client_side=False, header_encoding=None, validate_outbound_headers=False, normalize_outbound_headers=False
)


@dataclass(slots=True, eq=False)
class Stream:
    """One request in flight: what answers it, and what of its body has come."""

    id: int
    limit: int  # most body bytes read before a 413
    head_only: bool  # HEAD: the answer's headers without its body
    todo: Plan | None  # ours to answer, or the App's:
    route: AppRoute | None
    body: bytearray | None  # kept only for an App
    since: float = 0.0  # when its last byte of request (head or body) came
    received: int = 0
    too_large: bool = False
    stalled: bool = False  # answered 408 (no byte of its body for idle_timeout), then reset
    scope: trio.CancelScope | None = None  # its task's, once the answer needs one

    def stall(self, idle_timeout: float) -> None:
        """Its body stopped: from now on it is answered with a 408 (and reset after it)."""
        said = f"no byte of the request body in {idle_timeout:g}s\n".encode()
        self.todo, self.route, self.body, self.stalled = Answer(408, b"text/plain", said), None, None, True


def whole_answer(stream: Stream) -> tuple[list[tuple[bytes, bytes]], bytes, Headers]:
    """The whole answer to a complete request (or one over its limit): headers, body, trailers."""
    route, todo = stream.route, stream.todo
    if route is not None:
        if not stream.too_large:
            response = route.handler(bytes(stream.body or b""))
            return h2_fields(response), response.body, response.trailers
        if route.too_large is not None:
            return h2_fields(route.too_large), route.too_large.body, route.too_large.trailers
    if stream.too_large:
        answer = TOO_LARGE
    elif isinstance(todo, Sink):
        answer = sink_answer(stream.received)
    elif isinstance(todo, Answer):
        answer = todo
    else:  # a SendBytes is never answered whole
        raise TypeError(f"no whole answer for {todo!r}")
    body = b"" if stream.head_only and not stream.too_large else answer.body
    return h2_fields(answer), body, ()


def h2_fields(answer: Answer | SendBytes | Response) -> list[tuple[bytes, bytes]]:
    """The header fields HTTP/2 sends for ``answer``, ``:status`` first."""
    if isinstance(answer, SendBytes):
        return [(b":status", b"200"), *answer.headers()]
    if isinstance(answer, Answer):
        return [(b":status", str(answer.status).encode()), *answer.headers()]
    return [(b":status", str(answer.status).encode()), SERVER_HEADER, *answer.headers]
