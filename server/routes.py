"""What the server's HTTP resources answer, whichever HTTP carries the request (h11 or h2).

The protocol loops (:mod:`.http` for HTTP/1.1, :mod:`.http2` for HTTP/2) parse
the request and move bytes; this module decides, without I/O: which resource,
which document, which status and headers, and which streaming plan
(``GET /bytes/N`` sends N zero bytes, ``POST /sink`` counts a body). A client
refused by the allow-list gets 403 with a JSON body naming the identity and
the rule missed; a request whose Accept names text/html (a browser) gets ``/``
and the 403 as the HTML pages of :mod:`.page`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final, Protocol

from .page import PAGE_HEADERS, accepts_html, forbidden_html, home_html, request_host
from .views import SessionInfo, forbidden_document, home_page, whoami_document

__all__ = [
    "BULK_CHUNK",
    "BULK_MAX_BYTES",
    "MAX_BODY_BYTES",
    "SERVER_HEADER",
    "TOO_LARGE",
    "Answer",
    "ConnectionAnswers",
    "Headers",
    "Plan",
    "RequestHead",
    "RequestTally",
    "SendBytes",
    "Sink",
    "body_limit",
    "plan",
    "sink_answer",
]

Headers = tuple[tuple[bytes, bytes], ...]
# We serve no uploads; a body is read and discarded up to this, then 413.
MAX_BODY_BYTES: Final = 64 * 1024
# Throughput tests (GET /bytes/N, POST /sink) move at most 1 GiB per request,
# in 256 KiB pieces (sixteen full TLS records, one send per piece).
BULK_MAX_BYTES: Final = 1 << 30
BULK_CHUNK: Final = 256 * 1024
SERVER_HEADER: Final = (b"server", b"mtls-ref")
HTML: Final = b"text/html; charset=utf-8"
# The methods each resource answers: a 405 names the target's own in Allow (RFC 9110 §15.5.6),
# and a path that is none of these is a 404 whatever the method. HEAD /bytes/N would have to
# skip the count, so no.
_METHODS: Final = {
    b"/": (b"GET", b"HEAD"),
    b"/whoami": (b"GET", b"HEAD"),
    b"/healthz": (b"GET", b"HEAD"),
    b"/sink": (b"POST",),
}
_BYTES_METHODS: Final = (b"GET",)
# Answers one connection remembers (ConnectionAnswers): a client asks for a handful of resources;
# one inventing targets (queries) only stops being remembered.
REMEMBERED: Final = 32
# / and the 403 come as HTML or as text/JSON, chosen by Accept: every variant says so, or a cache
# could hand a browser the text (RFC 9110 §12.5.5). The HTML variants carry it in PAGE_HEADERS.
VARY_ACCEPT: Final = ((b"vary", b"Accept"),)


class RequestTally(Protocol):
    """Where an HTTP loop counts the requests it takes, as it takes them (the connection's record), so
    the count stands even when the server cuts the connection at the end of its shutdown grace."""

    requests: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestHead:
    """What routing needs of a request, from HTTP/1.1's head or HTTP/2's pseudo-headers."""

    method: bytes
    target: bytes  # path and query, as sent
    accept: bytes = b""  # every Accept field, joined with ","
    host: bytes | None = None  # Host (HTTP/1.1) or :authority (HTTP/2)

    @property
    def path(self) -> bytes:
        return self.target.split(b"?", 1)[0]


@dataclass(frozen=True, slots=True)
class Answer:
    """A whole response: status, content type, body and extra header fields."""

    status: int
    content_type: bytes
    body: bytes
    extra: Headers = ()

    def headers(self) -> list[tuple[bytes, bytes]]:
        """The response's header fields (no framing beyond Content-Length: that is the loop's)."""
        return [
            SERVER_HEADER,
            (b"content-type", self.content_type),
            (b"content-length", str(len(self.body)).encode()),
            *self.extra,
        ]


@dataclass(frozen=True, slots=True)
class SendBytes:
    """``GET /bytes/N``: stream ``count`` zero bytes in BULK_CHUNK pieces."""

    count: int

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [
            SERVER_HEADER,
            (b"content-type", b"application/octet-stream"),
            (b"content-length", str(self.count).encode()),
        ]


@dataclass(frozen=True, slots=True)
class Sink:
    """``POST /sink``: read and count the body (up to BULK_MAX_BYTES), answer with :func:`sink_answer`."""

    limit: int = BULK_MAX_BYTES


Plan = Answer | SendBytes | Sink


def plan(request: RequestHead, info: SessionInfo) -> Plan:
    """What to do with ``request`` on a connection whose client ``info`` describes."""
    path = request.path
    if not info.decision.allowed:
        if accepts_html(request.accept):
            return Answer(403, HTML, forbidden_html(info, host=_host(request)).encode(), PAGE_HEADERS)
        return Answer(403, b"application/json", _json(forbidden_document(info)), VARY_ACCEPT)
    methods = _BYTES_METHODS if path.startswith(b"/bytes/") else _METHODS.get(path)
    if methods is None:
        return Answer(404, b"text/plain", b"not found: try /, /whoami, /healthz, /bytes/N or POST /sink\n")
    if request.method not in methods:
        allow = b", ".join(methods)
        body = b"method not allowed here; this resource answers " + allow + b"\n"
        return Answer(405, b"text/plain", body, ((b"allow", allow),))
    if path.startswith(b"/bytes/"):
        return _bytes_plan(path.removeprefix(b"/bytes/"))
    if path == b"/sink":
        return Sink()
    if path == b"/whoami":
        return Answer(200, b"application/json", _json(whoami_document(info)))
    if path == b"/" and accepts_html(request.accept):
        return Answer(200, HTML, home_html(info, host=_host(request)).encode(), PAGE_HEADERS)
    if path == b"/":
        return Answer(200, b"text/plain; charset=utf-8", home_page(info).encode(), VARY_ACCEPT)
    return Answer(200, b"text/plain", b"ok\n")  # /healthz


class ConnectionAnswers:
    """:func:`plan` for one connection's requests, remembering the whole answers that depend only on the
    request and the connection (whoami's JSON, /, /healthz, the errors), so a client repeating a request
    costs a lookup. The HTML pages are made anew: they count the days a certificate has left."""

    __slots__ = ("info", "known")

    def __init__(self, info: SessionInfo) -> None:
        self.info = info
        self.known: dict[tuple[bytes, bytes, bytes], Answer] = {}

    def __repr__(self) -> str:
        return f"<ConnectionAnswers known={len(self.known)}>"

    def plan(self, request: RequestHead) -> Plan:
        key = (request.method, request.target, request.accept)
        if (known := self.known.get(key)) is not None:
            return known
        todo = plan(request, self.info)
        if isinstance(todo, Answer) and todo.content_type != HTML and len(self.known) < REMEMBERED:
            self.known[key] = todo
        return todo


def sink_answer(received: int) -> Answer:
    """What ``POST /sink`` answers once the whole body is in."""
    return Answer(200, b"application/json", _json({"received": received}))


def body_limit(request_plan: Plan) -> int:
    """The most request body a plan reads before answering 413."""
    return request_plan.limit if isinstance(request_plan, Sink) else MAX_BODY_BYTES


TOO_LARGE: Final = Answer(413, b"text/plain", b"request body too large\n")


def _bytes_plan(count_text: bytes) -> Answer | SendBytes:
    # The length first: int() of thousands of digits raises (Python's integer-string limit).
    too_long = len(count_text) > len(str(BULK_MAX_BYTES))
    if not count_text.isdigit() or too_long or int(count_text) > BULK_MAX_BYTES:
        return Answer(400, b"text/plain", f"use /bytes/N with N <= {BULK_MAX_BYTES}\n".encode())
    return SendBytes(int(count_text))


def _host(request: RequestHead) -> str:
    """The host the client used, for the page's commands (HTTP/1.0 may send none)."""
    return request_host(request.host, fallback="localhost:8443")


def _json(document: object) -> bytes:
    return json.dumps(document, indent=2).encode() + b"\n"
