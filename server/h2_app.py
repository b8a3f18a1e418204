"""What an application on the HTTP/2 path provides (gRPC plugs in here), and what it is shown.

:func:`.http2.serve_http2` asks its :data:`App` first about each request of a
client the allow-list admits: the App sees the request's :class:`RequestHead`
and its header fields, and returns None (the request goes to :mod:`.routes`)
or an :data:`AppHandler`. The loop then reads the whole request body (at most
MAX_APP_BODY; more is a 413), calls the handler, and sends its
:class:`Response`: headers, body as the peer's flow-control windows allow, then
the trailers, which end the stream (gRPC's ``grpc-status``). The handler is
plain code, no I/O: the loop does all of that. Set it as ``HandlerSettings.h2_app``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from .routes import Headers, RequestHead

__all__ = ["MAX_APP_BODY", "App", "AppHandler", "Response", "request_head"]

MAX_APP_BODY: Final = 4 * 1024 * 1024  # gRPC's default max receive message size


@dataclass(frozen=True, slots=True, kw_only=True)
class Response:
    """A whole response from an :data:`App`: ``trailers``, when given, end the stream (gRPC's status)."""

    status: int
    headers: Headers = ()
    body: bytes = b""
    trailers: Headers = ()


# Given the whole request body, the response.
AppHandler = Callable[[bytes], Response]
# Given a request's head and its header fields (no pseudo-headers), None (not mine) or its handler.
App = Callable[[RequestHead, Headers], AppHandler | None]


def request_head(fields: list[tuple[bytes, bytes]]) -> tuple[RequestHead, Headers]:
    """The routing view of a request (h2 has checked its pseudo-headers), and its regular fields."""
    pseudo = {name: value for name, value in fields if name.startswith(b":")}
    regular = tuple((name, value) for name, value in fields if not name.startswith(b":"))
    host = pseudo.get(b":authority") or next((value for name, value in regular if name == b"host"), None)
    head = RequestHead(
        method=pseudo.get(b":method", b""),
        target=pseudo.get(b":path", b""),
        accept=b",".join(value for name, value in regular if name == b"accept"),
        host=host,
    )
    return head, regular
