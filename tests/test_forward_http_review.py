"""Forward mode's HTTP relay against the second review's probes: each test would fail on the relay it found.

h2c upgrades that smuggle HTTP/2 requests, backends that answer past their response, slow heads and
bodies, a server shutdown writing into forwarded streams, floods of dropped names and of 1xx responses,
hop-by-hop fields, and what a 5xx tells the client.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
import trio

from mtls_ref.server.proxy_protocol import ProxyHeader

from .support.backends import Seen, echo_backend, h11_backend, http_server_backend
from .support.forward import WAIT, forward_exchange, open_tls, responses, start_forwarding, tls_exchange
from .support.pki import Pki

Script = Callable[[trio.SocketStream], Awaitable[None]]


@asynccontextmanager
async def scripted_backend(script: Script) -> AsyncIterator[int]:
    """A backend that runs ``script`` on each connection (a misbehaving HTTP server, as written)."""

    async def handle(stream: trio.SocketStream) -> None:
        async with stream:
            with contextlib.suppress(trio.BrokenResourceError):
                await script(stream)

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
        yield int(listeners[0].socket.getsockname()[1])
        nursery.cancel_scope.cancel()


async def read_head(stream: trio.SocketStream) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(65536)
        if not chunk:
            break
        data += chunk
    return data


async def test_an_h2c_upgrade_is_never_passed_on(pki: Pki) -> None:
    """Upgrade: h2c (and HTTP2-Settings) would let HTTP/2 requests with any identity header past the
    relay: the backend never sees them, gets Connection: close, and answers in HTTP/1.1."""
    seen: list[Seen] = []
    request = (
        b"GET /first HTTP/1.1\r\nHost: app\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
        b"HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"
        b"GET /second HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n"
    )
    async with h11_backend(seen) as backend:
        raw, entry = await forward_exchange(pki, backend, request)
    assert [status for status, _, _ in responses(raw)] == [200, 200]
    first = seen[0]
    assert first.values("upgrade") == [] and first.values("http2-settings") == []
    assert first.values("connection") == ["close"]
    assert {"upgrade", "http2-settings"} <= set(entry["dropped_headers"])


async def test_a_101_the_client_did_not_ask_for_is_a_502(pki: Pki) -> None:
    """A backend switching protocols unasked (or to another protocol than asked) is not followed."""

    async def switch(stream: trio.SocketStream) -> None:
        await read_head(stream)
        await stream.send_all(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: evil\r\nConnection: upgrade\r\n\r\n"
        )
        await stream.receive_some(65536)

    async with scripted_backend(switch) as backend:
        raw, entry = await forward_exchange(
            pki, backend, b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"
        )
    assert [status for status, _, _ in responses(raw)] == [502]
    assert entry["reason"] == "the backend switched to a protocol the client did not ask for"


async def test_bytes_past_a_response_never_answer_the_next_request(pki: Pki) -> None:
    """A backend that answers twice, or sends a body after a HEAD response: each request still gets its
    own response, because a backend connection carries one request and is never reused."""

    async def twice(stream: trio.SocketStream) -> None:
        head = await read_head(stream)
        target = head.split(b" ")[1]
        body = b"for " + target
        unasked = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nUNASKED!"
        answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        if head.startswith(b"HEAD"):
            answer = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nEVIL!"
        await stream.send_all(answer + unasked)
        await stream.receive_some(65536)

    requests = (
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
        b"HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    async with scripted_backend(twice) as backend:
        raw, _ = await forward_exchange(pki, backend, requests)
    assert b"UNASKED" not in raw and b"EVIL" not in raw
    assert raw.count(b"HTTP/1.1 200") == 3 and raw.endswith(b"for /b")


async def test_a_body_the_backend_ignores_never_runs_as_a_request(pki: Pki) -> None:
    """http.server ignoring a GET's body would read it as the next request (forged XFCC and all):
    with Connection: close towards it, it never does, and the client's next request gets its own answer."""
    seen: list[Seen] = []
    smuggled = (
        b'GET /admin HTTP/1.1\r\nHost: a\r\nX-Forwarded-Client-Cert: Hash=00;Subject="CN=admin"\r\n\r\n'
    )
    requests = (
        b"GET /public HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(smuggled), smuggled)
        + b"GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    with http_server_backend(seen, ignore_get_bodies=True) as backend:
        async with trio.open_nursery() as nursery:
            server, port, _ = await start_forwarding(nursery, pki, backend)
            raw = await tls_exchange(pki, port, requests)
            server.shutdown()
    assert [s.target for s in seen] == ["/public", "/next"]
    assert [body for _, _, body in responses(raw)][1].startswith(b'{"target": "/next"')


@pytest.mark.parametrize("where", ["head", "body"])
async def test_a_slow_request_is_bounded_by_request_timeout(pki: Pki, where: str) -> None:
    """A byte at a time keeps the idle deadline moving, but not the head's bound (request_timeout) or the
    body's (500 bytes/s after it): 408, and the slot is free again."""
    seen: list[Seen] = []
    async with h11_backend(seen) as backend, trio.open_nursery() as nursery:
        server, port, log = await start_forwarding(
            nursery, pki, backend, idle_timeout=2.0, request_timeout=0.5
        )
        with trio.fail_after(WAIT):
            stream = await open_tls(pki, port)
            async with stream:
                head = b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
                if where == "body":
                    await stream.send_all(head + b"\r\n")
                raw = b""
                answered = trio.Event()

                async def dribble() -> None:
                    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                        for _ in range(40):  # a slow peer: one byte every 0.1 s until answered, 4 s at most
                            if answered.is_set():
                                return
                            await stream.send_all(b"X")
                            await trio.sleep(0.1)  # the pace under test, not a wait for a condition

                async with trio.open_nursery() as sending:
                    sending.start_soon(dribble)
                    with contextlib.suppress(trio.BrokenResourceError):
                        while chunk := await stream.receive_some(65536):
                            raw += chunk
                            answered.set()
                    sending.cancel_scope.cancel()
        entry = await log.connection()
        server.shutdown()
    assert [status for status, _, _ in responses(raw)] == [408], raw
    expected = "the request head took over 0.5s" if where == "head" else "slower than 500 bytes/s"
    assert expected in entry["reason"] and seen == []


async def test_shutdown_writes_nothing_into_a_forwarded_stream(pki: Pki) -> None:
    """On SIGTERM the line protocol says goodbye; a forwarded stream only ends (its bytes are the
    backend's, and ours would be read as theirs)."""
    received: list[bytes] = []
    async with echo_backend(received) as backend, trio.open_nursery() as nursery:
        server, port, _ = await start_forwarding(nursery, pki, backend, identity="none", shutdown_grace=0.2)
        with trio.fail_after(WAIT):
            stream = await open_tls(pki, port)
            async with stream:
                await stream.send_all(b"PING\r\n")
                seen = await stream.receive_some(65536)
                server.shutdown()
                with contextlib.suppress(trio.BrokenResourceError):
                    while chunk := await stream.receive_some(65536):
                        seen += chunk
    assert seen == b"PING\r\n"


async def test_dropped_header_names_are_bounded(pki: Pki) -> None:
    """A flood of distinct '_' names keeps at most 32 names for the log line, then '(more)'."""
    seen: list[Seen] = []
    flood = b"".join(b"x_%05d: 1\r\n" % n for n in range(500))
    async with h11_backend(seen) as backend, trio.open_nursery() as nursery:
        server, port, log = await start_forwarding(nursery, pki, backend)
        await tls_exchange(pki, port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + flood + b"\r\n")
        entry = await log.connection()
        server.shutdown()
    assert len(entry["dropped_headers"]) == 33 and "(more)" in entry["dropped_headers"]


async def test_interim_floods_and_slow_heads_from_the_backend_are_bounded(pki: Pki) -> None:
    """Endless 100 Continue: 502 after 16. A head a byte at a time: 504 when idle_timeout has passed since
    the request, though each byte moved."""

    async def interim(stream: trio.SocketStream) -> None:
        await read_head(stream)
        for _ in range(100):
            await stream.send_all(b"HTTP/1.1 100 Continue\r\n\r\n")
        await stream.receive_some(65536)

    async def dribble(stream: trio.SocketStream) -> None:
        await read_head(stream)
        for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Pad: " + b"a" * 100:
            await stream.send_all(bytes([byte]))
            await trio.sleep(0.05)  # the pace under test

    for script, status, words in ((interim, 502, "interim (1xx)"), (dribble, 504, "no whole response head")):
        async with scripted_backend(script) as backend:
            raw, entry = await forward_exchange(
                pki, backend, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", idle_timeout=1.0
            )
        assert [s for s, _, _ in responses(raw)] == [status] and words in entry["reason"], (raw, entry)


async def test_hop_by_hop_fields_are_ours_to_set(pki: Pki) -> None:
    """Connection and the fields it names, Keep-Alive, Proxy-Connection, TE: removed (RFC 9110 §7.6.1);
    Connection cannot remove Host, the framing or our identity header."""
    seen: list[Seen] = []
    request = (
        b"POST / HTTP/1.1\r\nHost: app\r\n"
        b"Connection: keep-alive, X-Forwarded-Client-Cert, Host, Content-Length, "
        b"X-Secret\r\nKeep-Alive: 5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\nX-Secret: s\r\n"
        b"Content-Length: 2\r\n\r\nok"
    )
    async with h11_backend(seen) as backend, trio.open_nursery() as nursery:
        server, port, _ = await start_forwarding(nursery, pki, backend)
        await tls_exchange(pki, port, request + b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        server.shutdown()
    names = {name for name, _ in seen[0].headers}
    assert not names & {"keep-alive", "proxy-connection", "te", "x-secret"}
    assert seen[0].values("host") == ["app"] and seen[0].body == b"ok"
    assert seen[0].values("connection") == ["close"] and len(seen[0].values("x-forwarded-client-cert")) == 1


@pytest.mark.parametrize(
    ("request_line", "status"),
    [
        (b"connect example.com:443 HTTP/1.1", 405),
        (b"GET / HTTP/2.0", 505),
        (b"GET /" + b"a" * 30_000 + b" HTTP/1.1", 431),
    ],
)
async def test_what_never_reaches_the_backend(pki: Pki, request_line: bytes, status: int) -> None:
    """CONNECT in any case, versions other than HTTP/1.0 and 1.1, and a head over 16 KiB in one write."""
    seen: list[Seen] = []
    async with h11_backend(seen) as backend:
        raw, _ = await forward_exchange(pki, backend, request_line + b"\r\nHost: x\r\n\r\n")
    assert [s for s, _, _ in responses(raw)] == [status] and seen == []


async def test_a_5xx_tells_the_client_no_backend_address(pki: Pki) -> None:
    """An unreachable backend: the client gets 502 and a generic reason; the address is for the log."""
    async with trio.open_nursery() as nursery:
        server, port, log = await start_forwarding(nursery, pki, 9)  # discard: closed on loopback
        raw = await tls_exchange(pki, port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        entry = await log.connection()
        server.shutdown()
    ((status, _, body),) = responses(raw)
    assert status == 502 and b"127.0.0.1" not in body and b":9" not in body
    assert "127.0.0.1:9" in entry["reason"]


def test_a_proxy_header_too_long_for_its_length_field_is_refused() -> None:
    """7000 short SANs fit a certificate but not a PROXY v2 header: a ValueError, never a cut or a crash."""
    header = ProxyHeader(
        source=("127.0.0.1", 1),
        destination=("127.0.0.1", 2),
        tls_version="TLSv1.3",
        cipher=None,
        common_name=None,
        sans=tuple(f"DNS:{n:03d}" for n in range(7000)),
    )
    with pytest.raises(ValueError, match="at most 65535 bytes"):
        header.encode()
