"""Forward mode's HTTP relay under attack: framing, forged identity headers, CONNECT, upgrades, deadlines.

Each test is a row of the security review: it would fail on the relay that had the finding.
"""

from __future__ import annotations

import contextlib
import functools
import secrets
import subprocess
import threading
from pathlib import Path

import pytest
import trio

from mtls_ref.shared.core.cli_support import SERVER_MODULE, module_command
from mtls_ref.shared.tls.context import client_context

from .support.backends import Seen, h11_backend, http_server_backend, websocket_echo_backend, wsgi_backend
from .support.forward import WAIT, forward_exchange, open_tls, responses, start_forwarding, tls_exchange
from .support.pki import Pki
from .support.processes import read_until
from .support.server_process import stop_server_process, write_config
from .support.tls import client_config

SMUGGLED = b'GET /smuggled HTTP/1.1\r\nHost: x\r\nX-Forwarded-Client-Cert: Hash=0;Subject="CN=admin"\r\n\r\n'

AMBIGUOUS_FRAMING = {
    # The review's probe: read as chunked by the proxy, by Content-Length by http.server.
    "te-and-cl": b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "cl-and-te": b"Transfer-Encoding: chunked\r\nContent-Length: 60\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "te-not-chunked": b"Transfer-Encoding: gzip\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "chunked-not-last": b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "two-te-headers": b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "differing-cls": b"Content-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
    "differing-cl-list": b"Content-Length: 4, 5\r\n\r\nabcde",
}


@pytest.mark.parametrize("probe", list(AMBIGUOUS_FRAMING), ids=list(AMBIGUOUS_FRAMING))
async def test_ambiguous_framing_is_refused_before_the_backend(pki: Pki, probe: str) -> None:
    """Transfer-Encoding with Content-Length, a final coding other than chunked, or differing lengths:
    400 and close (RFC 9112 §6.3); http.server behind us never runs a request, smuggled or not."""
    seen: list[Seen] = []
    with http_server_backend(seen) as backend:
        async with trio.open_nursery() as nursery:
            server, port, log = await start_forwarding(nursery, pki, backend)
            raw = await tls_exchange(pki, port, b"POST /a HTTP/1.1\r\nHost: x\r\n" + AMBIGUOUS_FRAMING[probe])
            entry = await log.connection()
            server.shutdown()
    assert [status for status, _, _ in responses(raw)] == [400], raw
    assert seen == []
    assert entry["outcome"] == "accepted" and entry["to_backend"] == 0, entry


async def test_forwarded_request_has_exactly_the_framing_it_was_read_with(pki: Pki) -> None:
    """A chunked request reaches the backend chunked with no Content-Length; a sized one with its length
    only; request trailers are not passed on (as nginx), and the log names them."""
    seen: list[Seen] = []
    chunked = (
        b"POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\nX-Checksum: 1\r\nX-Forwarded-Client-Cert: forged\r\nClient-Cert: :Zm9v:\r\n\r\n"
    )
    sized = b"POST /sized HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nworld"
    async with h11_backend(seen) as backend:
        raw, _ = await forward_exchange(pki, backend, chunked + sized)
    assert [status for status, _, _ in responses(raw)] == [200, 200]
    first, second = seen
    assert first.values("transfer-encoding") == ["chunked"] and first.values("content-length") == []
    assert first.body == b"hello" and first.trailers == []
    assert second.values("content-length") == ["5"] and second.values("transfer-encoding") == []
    assert second.body == b"world"


FORGED = [
    'X-Forwarded-Client-Cert: Hash=0;Subject="CN=admin"',
    'x_forwarded_client_cert: Hash=0;Subject="CN=admin"',
    "X_FORWARDED-CLIENT_CERT: Hash=0",
    "Client-Cert: :Zm9yZ2Vk:",
    "Client_Cert_Chain: :Zm9yZ2Vk:",
]


async def test_identity_headers_in_any_spelling_never_reach_a_wsgi_app(pki: Pki) -> None:
    """WSGI reads '_' as '-': every spelling of our identity headers is removed, so the app's
    HTTP_X_FORWARDED_CLIENT_CERT is ours alone; other '_' names are dropped and the log names them."""
    environs: list[dict[str, str]] = []
    forged = "".join(f"{line}\r\n" for line in [*FORGED, "X_Role: admin"]).encode()
    with wsgi_backend(environs) as backend:
        async with trio.open_nursery() as nursery:
            server, port, log = await start_forwarding(nursery, pki, backend)
            raw = await tls_exchange(
                pki, port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + forged + b"\r\n"
            )
            entry = await log.connection()
            server.shutdown()
    assert [status for status, _, _ in responses(raw)] == [200], (raw, entry)
    (environ,) = environs
    assert environ["HTTP_X_FORWARDED_CLIENT_CERT"].startswith("Hash=") and "admin" not in str(environ)
    assert "HTTP_CLIENT_CERT" not in environ and "HTTP_CLIENT_CERT_CHAIN" not in environ
    assert "HTTP_X_ROLE" not in environ
    assert set(entry["dropped_headers"]) == {
        "x-forwarded-client-cert",
        "x_forwarded_client_cert",
        "x_forwarded-client_cert",
        "client-cert",
        "client_cert_chain",
        "x_role",
        "connection",  # hop-by-hop: ours to set towards the backend
    }


async def test_underscore_names_pass_when_configured_but_identity_lookalikes_never(pki: Pki) -> None:
    """forward_underscore_headers = true passes X_Role on; X_Forwarded_Client_Cert is still removed."""
    seen: list[Seen] = []
    request = (
        b"GET / HTTP/1.1\r\nHost: x\r\nX_Role: admin\r\nX_Forwarded_Client_Cert: forged\r\n"
        b"Connection: close\r\n\r\n"
    )
    with http_server_backend(seen) as backend:
        async with trio.open_nursery() as nursery:
            server, port, _ = await start_forwarding(nursery, pki, backend, forward_underscore_headers=True)
            await tls_exchange(pki, port, request)
            server.shutdown()
    (request_seen,) = seen
    assert request_seen.values("X_Role") == ["admin"]
    assert request_seen.values("X_Forwarded_Client_Cert") == []
    assert len(request_seen.values("X-Forwarded-Client-Cert")) == 1


async def test_connect_is_refused(pki: Pki) -> None:
    """CONNECT gets 405 and never reaches the backend: this is no tunnelling proxy."""
    seen: list[Seen] = []
    async with h11_backend(seen) as backend:
        raw, entry = await forward_exchange(
            pki, backend, b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
        )
    assert [status for status, _, _ in responses(raw)] == [405]
    assert seen == [] and "CONNECT" in entry["reason"]


async def test_http10_without_host_is_forwarded(pki: Pki) -> None:
    """HTTP/1.0 may omit Host; the backend gets one (its own address, as nginx's default) and answers."""
    seen: list[Seen] = []
    async with h11_backend(seen) as backend:
        raw, entry = await forward_exchange(pki, backend, b"GET /old HTTP/1.0\r\n\r\n")
    assert [status for status, _, _ in responses(raw)] == [200], raw
    assert seen[0].values("host") == [f"127.0.0.1:{backend}"]
    assert entry["outcome"] == "accepted" and entry["requests"] == 1


async def test_websocket_through_the_proxy(pki: Pki) -> None:
    """A real websocket client and server (the websockets package) talk through forward mode: the 101
    switches the connection to the byte relay in both directions."""
    import asyncio

    from websockets.asyncio.client import connect

    context = client_context(client_config(pki))
    big = secrets.token_hex(50_000)  # random: permessage-deflate cannot shrink it
    with websocket_echo_backend() as backend:
        async with trio.open_nursery() as nursery:
            server, port, log = await start_forwarding(nursery, pki, backend)

            # The asyncio client, in a thread of its own: one thread drives its TLS connection. The
            # sync client reads in a second thread while it writes, which OpenSSL does not allow on
            # one connection; twice in many full-suite runs, on a loaded machine, its request never
            # reached the server (the server's log: no byte of a request in idle_timeout).
            async def exchange() -> list[str]:
                async with connect(f"wss://127.0.0.1:{port}/echo", ssl=context, open_timeout=WAIT) as ws:
                    answers = []
                    for text in ("hello", big):
                        await ws.send(text)
                        answers.append(str(await asyncio.wait_for(ws.recv(), WAIT)))
                    return answers

            def talk() -> list[str]:
                return asyncio.run(exchange())

            try:
                answers = await trio.to_thread.run_sync(talk)
            except Exception as exc:  # noqa: BLE001 - any failure of the client: show what the server logged
                with trio.move_on_after(2):
                    await log.connection()
                pytest.fail(f"websocket through the proxy failed: {exc!r}; server log: {log.lines}")
            entry = await log.connection()
            server.shutdown()
    assert answers == ["hello", big]
    assert entry["reason"].startswith("upgraded to websocket; then") and entry["to_backend"] > 50_000


async def test_upgrade_the_backend_refuses_stays_http(pki: Pki) -> None:
    """http.server ignores Upgrade and answers 200: the connection goes on as HTTP (keep-alive)."""
    seen: list[Seen] = []
    upgrade = b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    plain = b"GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with http_server_backend(seen) as backend:
        async with trio.open_nursery() as nursery:
            server, port, _ = await start_forwarding(nursery, pki, backend)
            raw = await tls_exchange(pki, port, upgrade + plain)
            server.shutdown()
    assert [status for status, _, _ in responses(raw)] == [200, 200]
    assert [s.target for s in seen] == ["/a", "/b"]


async def test_a_backend_that_never_answers_gets_the_client_a_504(pki: Pki) -> None:
    """idle_timeout bounds the wait for the response head: 504, and the log says what was late."""
    seen: list[Seen] = []
    async with h11_backend(seen, answer=False) as backend:
        raw, entry = await forward_exchange(
            pki, backend, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", idle_timeout=0.5
        )
    assert [status for status, _, _ in responses(raw)] == [504]
    assert entry["reason"] == "waited 0.5s for the backend's response"


async def test_a_backend_that_never_reads_gets_the_client_a_504(pki: Pki) -> None:
    """A large body towards a backend that does not read: the write is bounded, then 504."""
    async with h11_backend([], read=False) as backend, trio.open_nursery() as nursery:
        server, port, log = await start_forwarding(nursery, pki, backend, idle_timeout=0.5)
        body = b"x" * (32 * 1024 * 1024)  # more than both sockets' buffers hold
        head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
        with trio.fail_after(WAIT):
            stream = await open_tls(pki, port)
            raw = b""
            answered = trio.Event()
            async with stream, trio.open_nursery() as sending:

                async def send() -> None:
                    # A megabyte at a time until the answer comes: a client that sent all of it
                    # while the server closed would find its TLS stream broken before reading.
                    await stream.send_all(head)
                    for start in range(0, len(body), 1 << 20):
                        if answered.is_set():
                            return
                        await stream.send_all(body[start : start + (1 << 20)])

                sending.start_soon(send)
                while chunk := await stream.receive_some(65536):
                    raw += chunk
                    answered.set()
                sending.cancel_scope.cancel()
        entry = await log.connection()
        server.shutdown()
    assert raw.startswith(b"HTTP/1.1 504 "), raw[:200]
    assert entry["reason"] == "waited 0.5s for the backend to read the request"


async def test_a_client_that_never_reads_is_dropped(pki: Pki) -> None:
    """A large response to a client that does not read: the write is bounded and the session ends."""
    big = 32 * 1024 * 1024

    async def huge(stream: trio.SocketStream) -> None:
        async with stream:
            with contextlib.suppress(trio.BrokenResourceError):  # until the server drops us
                await send_huge(stream)

    async def send_huge(stream: trio.SocketStream) -> None:
        await stream.receive_some(65536)
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % big)
        chunk = b"y" * 65536
        for _ in range(big // len(chunk)):
            await stream.send_all(chunk)

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, huge, 0, host="127.0.0.1"))
        backend = int(listeners[0].socket.getsockname()[1])
        server, port, log = await start_forwarding(nursery, pki, backend, idle_timeout=0.5)
        with trio.fail_after(WAIT):
            stream = await open_tls(pki, port)
            async with stream:
                await stream.send_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
                entry = await log.connection()  # without reading a byte
        server.shutdown()
        nursery.cancel_scope.cancel()
    assert entry["reason"] == "waited 0.5s for the client to read the response"
    assert entry["to_client"] < big


async def test_an_upgraded_connection_never_keeps_the_server_from_others(pki: Pki, tmp_path: Path) -> None:
    """With a websocket open through the server process (the review's freeze: a 101 made the relay spin),
    three other clients each get a handshake and an answer within a second, and SIGTERM still stops it."""
    import asyncio

    from websockets.asyncio.client import connect  # one thread drives its TLS (see the test above)

    config = write_config(pki, tmp_path)
    config.write_text(config.read_text().replace("[server]\n", "[server]\nshutdown_grace = 0.5\n"))
    with websocket_echo_backend() as backend:
        server = await trio.lowlevel.open_process(
            module_command(
                SERVER_MODULE,
                *("--config", str(config), "--forward", f"127.0.0.1:{backend}"),
                *("--forward-identity", "http-header", "--log-format", "json"),
            ),
            stderr=subprocess.PIPE,
        )
        assert server.stderr is not None
        try:
            seen = await read_until(server.stderr, b'"event": "listening"', "the server process")
            port = int(seen.split(b'"addresses": ["127.0.0.1:', 1)[1].split(b'"', 1)[0])
            opened, release = threading.Event(), threading.Event()

            async def hold() -> None:
                context = client_context(client_config(pki))
                async with connect(f"wss://127.0.0.1:{port}/", ssl=context, open_timeout=5) as ws:
                    await ws.send("held open")
                    assert await asyncio.wait_for(ws.recv(), 5) == "held open"
                    opened.set()
                    await asyncio.to_thread(release.wait, WAIT)

            def hold_websocket() -> None:
                asyncio.run(hold())

            async with trio.open_nursery() as nursery:
                nursery.start_soon(trio.to_thread.run_sync, hold_websocket)
                try:
                    assert await trio.to_thread.run_sync(opened.wait, WAIT), "no websocket through the proxy"
                    for _ in range(3):
                        with trio.fail_after(1.0):
                            raw = await tls_exchange(
                                pki, port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                            )
                        assert responses(raw), raw  # whatever the websocket server says to a plain GET
                    rest = await stop_server_process(server, server.stderr)  # the websocket still open
                finally:
                    release.set()
                    if not opened.is_set():  # a frozen server holds the client's socket: free it
                        server.kill()
        finally:
            if server.returncode is None:
                server.kill()
                await server.wait()
            await server.stderr.aclose()
    assert b'"event": "stopped"' in rest


async def test_expect_100_continue_is_answered_by_the_server(pki: Pki) -> None:
    """A client that waits for 100 Continue before its body gets it from us at once (not after the
    backend's idle deadline), then the backend's answer to the whole request."""
    seen: list[Seen] = []
    head = (
        b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n"
        b"Connection: close\r\n\r\n"
    )
    async with h11_backend(seen) as backend, trio.open_nursery() as nursery:
        server, port, _ = await start_forwarding(nursery, pki, backend)
        with trio.fail_after(WAIT):
            stream = await open_tls(pki, port)
            async with stream:
                await stream.send_all(head)
                interim = await read_until(stream, b"HTTP/1.1 100 ", "the server")
                await stream.send_all(b"hello")
                raw = interim.split(b"\r\n\r\n", 1)[1]
                while chunk := await stream.receive_some(65536):
                    raw += chunk
        server.shutdown()
    assert [status for status, _, _ in responses(raw)] == [200]
    assert seen[0].body == b"hello"
