"""``mtls-client --http``: any HTTPS server (nginx, a web service): ``GET /``, judged by the status.

Theory of operation
-------------------
HTTP is h11's job, and h11 does no I/O: the request is built as h11 events and
turned into bytes, and what the channel receives is fed to h11 until it yields
the response head. Informational (1xx) responses are skipped, as a client must
(RFC 9110 §15.2). Anything h11 cannot parse is "not an HTTP reply".

The status decides the verdict, because HTTPS servers refuse client
certificates in HTTP as often as in TLS: nginx completes the handshake with
``ssl_verify_client on`` and answers 400 "No required SSL certificate was sent",
or its own 495 (certificate error) and 496 (no certificate) (nginx's
ngx_http_ssl_module, "Error processing"). 401 and 403 refuse an authenticated
client; 2xx and 3xx accept it. After the verdict the body is read, bounded by
size and deadline, for the reason an error page names in its ``<title>``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

import h11

from .channel import Channel
from .outcome import ClientReport, Exit, Stop, fail

__all__ = ["exchange", "judge_status", "page_reason"]

_NOT_HTTP_FIX: Final = "is this an HTTPS server? for line servers use --raw"
# nginx answers a missing, unverifiable or expired client certificate with these (495/496 are its own).
_CERTIFICATE_REFUSALS: Final = frozenset({400, 495, 496})
_ACCESS_REFUSALS: Final = frozenset({401, 403})
# The reason nginx (and many servers) put in an error page: <title>400 No required SSL ...</title>.
_HTML_TITLE: Final = re.compile(r"<title>\s*(?:\d{3}\s+)?(.*?)\s*</title>", re.IGNORECASE | re.DOTALL)
# Every HTTP/1.x response starts with its version (RFC 9112 §4): bytes that cannot begin one are not
# HTTP, and need not wait for the end of a head that will never come (a line server greets and waits).
_HTTP_START: Final = b"HTTP/"
# An error page's title comes in its first lines; nginx's whole error page is under 1 KiB.
_BODY_READ_LIMIT: Final = 16384
# 1xx responses taken before the final one (the server's forward mode allows a backend as many).
_MAX_INTERIM: Final = 16


async def exchange(channel: Channel, messages: Sequence[str]) -> None:
    """Send ``GET /`` and judge the response's status; ``messages`` are not used."""
    report = channel.report
    http = h11.Connection(h11.CLIENT)
    request = h11.Request(
        method="GET", target="/", headers=[("Host", channel.config.expected_name), ("Connection", "close")]
    )
    with channel.exchange("response to GET /"):
        await channel.send((http.send(request) or b"") + (http.send(h11.EndOfMessage()) or b""), what="GET /")
        response = await _response_head(http, channel)
        status = f"{response.status_code} {response.reason.decode('latin-1')}".rstrip()
        report.exchanges.append(("GET / HTTP/1.1", f"HTTP/{response.http_version.decode('ascii')} {status}"))
        reason = await _body_reason(http, channel)
    report.http_status = status + (f": {reason}" if reason else "")
    judge_status(report, response.status_code, "GET /")


def judge_status(report: ClientReport, code: int, request: str) -> None:
    """The verdict of ``request``'s HTTP status (``report.http_status`` says it): refusals raise
    :class:`Stop`."""
    said = f"HTTP {report.http_status}"
    if code in _CERTIFICATE_REFUSALS:
        raise fail(
            report,
            Exit.CERT_REJECTED,
            summary=f"the server refused our certificate in HTTP: {said}",
            fix="present a valid client certificate from the CA the server trusts",
        )
    if code in _ACCESS_REFUSALS:
        raise fail(
            report,
            Exit.FORBIDDEN,
            summary=f"the TLS handshake passed, but the server denied the request: {said}",
            fix="ask for this identity to be allowed (or check what else the server requires)",
        )
    if not 200 <= code < 400:
        raise fail(
            report,
            Exit.PROTOCOL,
            summary=f"the TLS handshake passed, but the server answered {said}",
            fix=f"see the server's log; {request} may not be served there",
        )


async def _response_head(http: h11.Connection, channel: Channel) -> h11.Response:
    """Feed h11 until it yields the final response head; what it cannot parse is the verdict."""
    start = b""  # the first bytes received, to show what came instead of HTTP
    interim = 0
    while True:
        event = _next_event(http, start, channel)
        if event is h11.NEED_DATA:
            data = await channel.receive("an HTTP response", not_ours_fix=_NOT_HTTP_FIX)
            start = (start + data)[:80]
            http.receive_data(data)
        elif isinstance(event, h11.Response):
            return event
        elif isinstance(event, h11.InformationalResponse):
            interim += 1
            if interim > _MAX_INTERIM:  # each arrives in time, so only a count ends an endless run
                raise fail(
                    channel.report,
                    Exit.PROTOCOL,
                    summary=f"the server sent more than {_MAX_INTERIM} 1xx responses and no final one",
                    fix="the server is misbehaving; its HTTP stack should send one final response",
                )
        else:  # cannot happen before the response
            raise fail(
                channel.report, Exit.PROTOCOL, summary=f"unexpected HTTP event {event!r}", fix=_NOT_HTTP_FIX
            )


def _next_event(http: h11.Connection, start: bytes, channel: Channel) -> object:
    """h11's next event while the head is due; bytes that are not HTTP end the session here."""
    if not _HTTP_START.startswith(start[: len(_HTTP_START)]):
        raise _not_http(channel, start, "it does not start with HTTP/")
    try:
        return http.next_event()
    except h11.RemoteProtocolError as exc:
        raise _not_http(channel, start, str(exc)) from exc


def _not_http(channel: Channel, start: bytes, problem: str) -> Stop:
    return fail(
        channel.report, Exit.PROTOCOL, summary=f"not an HTTP reply ({problem}): {start!r}", fix=_NOT_HTTP_FIX
    )


async def _body_reason(http: h11.Connection, channel: Channel) -> str | None:
    """The reason an HTML error page gives in its <title>, from the first bytes of the body (best effort)."""
    body = b""
    while len(body) < _BODY_READ_LIMIT:
        try:
            event = http.next_event()
        except h11.RemoteProtocolError:
            break
        if event is h11.NEED_DATA:
            http.receive_data(await channel.receive_optional())  # b"": the end of the stream, for h11 too
        elif isinstance(event, h11.Data):
            body += bytes(event.data)
        else:  # EndOfMessage, ConnectionClosed, PAUSED: nothing more to read
            break
    return page_reason(body)


def page_reason(body: bytes) -> str | None:
    """The reason an HTML error page names in its <title> ("No required SSL certificate was sent")."""
    match = _HTML_TITLE.search(body[:_BODY_READ_LIMIT].decode("utf-8", errors="replace"))
    return (match.group(1) or None) if match else None
