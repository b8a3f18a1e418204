"""The HTTP/2 server's hook for other applications (gRPC plugs in here): what an App is given and gives.

An App is asked first for each HTTP/2 request, with the connection's
:class:`~.views.SessionInfo`; it may take the request (an :class:`AppRoute`)
and answer with a :class:`Response`, whose trailers end the stream. It sees
clients the allow-list refuses too, and answers them itself (gRPC's
PERMISSION_DENIED is a status, not an HTTP 403); it sets the most body it reads
and its own answer to more. No I/O here: :mod:`.http2` does it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from .routes import Headers, RequestHead
from .views import SessionInfo

__all__ = ["MAX_APP_BODY", "App", "AppHandler", "AppRoute", "Response", "request_head"]

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


@dataclass(frozen=True, slots=True, kw_only=True)
class AppRoute:
    """An App's take on one request: its handler, the most body it reads, and its answer to more
    (None: the 413 every route gives)."""

    handler: AppHandler
    max_body: int = MAX_APP_BODY
    too_large: Response | None = None


# Given a request's head, its header fields (no pseudo-headers) and the connection's facts, None (not
# mine) or its route.
App = Callable[[RequestHead, Headers, SessionInfo], AppRoute | None]


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
