"""--http reads the response with h11: interim 1xx responses, split heads and non-HTTP replies, over real TLS.

The peer is a scripted HTTPS server on loopback (stdlib ssl through trio, client certificates required)
that reads the request head and answers with exactly the bytes a test gives, in the pieces it gives.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import h11
import pytest
import trio

from mtls_ref.client.session import ClientReport, Exit, run_client
from mtls_ref.shared.tls.context import ALPN_HTTP, client_context

from .support.pki import Pki
from .support.tls import client_config


@asynccontextmanager
async def scripted_https(
    pki: Pki, pieces: Sequence[bytes], requests: list[h11.Request], *, hold: bool = False, pause: float = 0.0
) -> AsyncIterator[int]:
    """An HTTPS server that records each request (read with h11), answers with ``pieces``, one send
    each (``pause`` seconds apart: a server that trickles), then closes (or, with ``hold``, keeps the
    connection until the client closes it)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.server.chain, pki.server.key)
    context.load_verify_locations(pki.ca_cert)
    context.verify_mode = ssl.CERT_REQUIRED

    async def handle(stream: trio.SocketStream) -> None:
        tls = trio.SSLStream(stream, context, server_side=True)
        http = h11.Connection(h11.SERVER)
        with trio.move_on_after(10):
            while (event := http.next_event()) is h11.NEED_DATA:
                http.receive_data(bytes(await tls.receive_some(65536)))
            assert isinstance(event, h11.Request), event
            requests.append(event)
            for piece in pieces:
                await tls.send_all(piece)
                await trio.testing.wait_all_tasks_blocked()  # one record each; let the client take it
                await trio.sleep(pause)  # the trickling server's own pace, not a wait for the client
            while hold and await tls.receive_some(65536):
                pass
            await tls.aclose()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
        yield int(listeners[0].socket.getsockname()[1])
        nursery.cancel_scope.cancel()


async def get(
    pki: Pki, pieces: Sequence[bytes], *, hold: bool = False, pause: float = 0.0, deadline: float = 5.0
) -> tuple[ClientReport, list[h11.Request]]:
    requests: list[h11.Request] = []
    async with scripted_https(pki, pieces, requests, hold=hold, pause=pause) as port:
        config = client_config(pki, port=port, timeout=deadline)
        with trio.fail_after(15):
            report = await run_client(config, client_context(config, alpn=[ALPN_HTTP]), mode="http")
    return report, requests


PAGE_403 = b"<html>\r\n<head><title>403 Forbidden</title></head>\r\n<body>no</body></html>\r\n"


async def test_interim_responses_are_skipped_for_the_final_one(pki: Pki) -> None:
    """A 100 Continue and a 103 Early Hints before 200: the client judges by the 200 (RFC 9110 §15.2)."""
    report, requests = await get(
        pki,
        [
            b"HTTP/1.1 100 Continue\r\n\r\n",
            b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
        ],
    )
    assert report.result is Exit.OK, report.summary
    assert report.http_status == "200 OK"
    assert report.exchanges == [("GET / HTTP/1.1", "HTTP/1.1 200 OK")]
    (request,) = requests
    assert (request.method, request.target, request.http_version) == (b"GET", b"/", b"1.1")
    assert (b"host", b"localhost") in request.headers


async def test_endless_interim_responses_end_the_session(pki: Pki) -> None:
    """A server that sends 1xx after 1xx, each in time, never a final response: the count ends it."""
    report, _ = await get(pki, [b"HTTP/1.1 100 Continue\r\n\r\n" * 40])
    assert report.result is Exit.PROTOCOL
    assert "more than 16 1xx responses" in report.summary


async def test_a_response_trickled_within_each_read_deadline_is_bounded_as_a_whole(pki: Pki) -> None:
    """A byte every 0.2 s, each read well within the 0.5 s deadline, never a whole head: the exchange's
    own deadline ends it (one byte just inside each read's deadline would hold the client for hours)."""
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    with trio.fail_after(5):
        report, _ = await get(pki, [bytes([byte]) for byte in head], pause=0.2, deadline=0.5)
    assert report.result is Exit.PROTOCOL
    assert report.summary == "no complete response to GET / within 0.5s", report.summary


async def test_a_refusal_split_across_records_is_read_whole(pki: Pki) -> None:
    """A 403 whose status line, headers and error page come in separate TLS records: exit 6, reason named."""
    report, _ = await get(
        pki,
        [
            b"HTTP/1.1 4",
            b"03 Forbidden\r\nContent-Type: text/html\r\n",
            b"Content-Length: %d\r\n\r\n" % len(PAGE_403),
            PAGE_403[:20],
            PAGE_403[20:],
        ],
    )
    assert report.result is Exit.FORBIDDEN, report.summary
    assert report.http_status == "403 Forbidden: Forbidden"
    assert (
        report.summary
        == "the TLS handshake passed, but the server denied the request: HTTP 403 Forbidden: Forbidden"
    )


@pytest.mark.parametrize(
    "reply",
    [
        b"OK hello spiffe://mtls-ref.test/alice\n",  # a line server that greets, then waits for a request
        b"HTTP/1.1 2xx Fine\r\n\r\n",  # a status that is not three digits
    ],
    ids=["greeting", "bad-status"],
)
async def test_a_reply_that_is_not_http_is_a_protocol_error(pki: Pki, reply: bytes) -> None:
    """What is not HTTP: exit 7 at once, showing what came (never OK, never a wait for the deadline)."""
    report, _ = await get(pki, [reply], hold=True)
    assert report.result is Exit.PROTOCOL, report.summary
    assert report.summary.startswith("not an HTTP reply"), report.summary
    assert repr(reply[:20])[2:-1] in report.summary
    assert "--raw" in report.fix
