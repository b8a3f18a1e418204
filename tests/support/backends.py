"""Plain services behind our server in forward mode: a TCP echo, HTTP servers that record what they
read (http.server, wsgiref, trio + h11) and a websocket echo, each on a loopback port it reports."""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import threading
import wsgiref.simple_server
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import h11
import trio

from mtls_ref.server.proxy_protocol import SIGNATURE

from .forward import WAIT


@asynccontextmanager
async def echo_backend(received: list[bytes]) -> AsyncIterator[int]:
    """A plain TCP service that records what it gets and echoes it back, line by line."""

    async def handle(stream: trio.SocketStream) -> None:
        async with stream:
            try:
                while data := await stream.receive_some(65536):
                    received.append(data)
                    await stream.send_all(data.split(SIGNATURE, 1)[0] if data.startswith(SIGNATURE) else data)
            except trio.BrokenResourceError:
                pass

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
        yield int(listeners[0].socket.getsockname()[1])
        nursery.cancel_scope.cancel()


@dataclass(slots=True)
class Seen:
    """One request as a backend read it."""

    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes
    trailers: list[tuple[str, str]] = field(default_factory=list)

    def values(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


class _Echo(http.server.BaseHTTPRequestHandler):
    """Python's http.server, framing bodies by Content-Length only (as many small backends do)."""

    protocol_version = "HTTP/1.1"
    server: _EchoServer

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        # A GET's body is left unread when asked: the backend that a smuggled request hides in.
        body = b"" if self.command == "GET" and self.server.ignore_get_bodies else self.rfile.read(length)
        seen = Seen(self.command, self.path, list(self.headers.items()), body)
        self.server.seen.append(seen)
        reply = json.dumps({"target": seen.target, "headers": seen.headers, "body": body.decode()}).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _EchoServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    seen: list[Seen]
    ignore_get_bodies: bool = False


@contextmanager
def _in_thread(server: Any) -> Iterator[int]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(WAIT)


@contextmanager
def http_server_backend(seen: list[Seen], *, ignore_get_bodies: bool = False) -> Iterator[int]:
    """``http.server`` on a loopback port, recording what it read."""
    server = _EchoServer(("127.0.0.1", 0), _Echo)
    server.seen = seen
    server.ignore_get_bodies = ignore_get_bodies
    with _in_thread(server) as port:
        yield port


@contextmanager
def wsgi_backend(environs: list[dict[str, str]]) -> Iterator[int]:
    """A WSGI app under wsgiref: records the ``HTTP_*`` variables of each request's environ."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        environs.append({k: v for k, v in environ.items() if k.startswith("HTTP_")})
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]

    class Quiet(wsgiref.simple_server.WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = wsgiref.simple_server.make_server("127.0.0.1", 0, app, handler_class=Quiet)
    with _in_thread(server) as port:
        yield port


@asynccontextmanager
async def h11_backend(seen: list[Seen], *, answer: bool = True, read: bool = True) -> AsyncIterator[int]:
    """A trio + h11 backend that records requests with their trailers.

    ``answer=False``: reads the request and never answers (a hung backend);
    ``read=False``: accepts and never reads (a backend that does not read).
    """

    async def handle(stream: trio.SocketStream) -> None:
        async with stream:
            # A proxy may hang up, and what reaches a backend may not be HTTP: neither is this test's failure.
            with contextlib.suppress(trio.BrokenResourceError, h11.ProtocolError):
                await serve(stream)

    async def serve(stream: trio.SocketStream) -> None:
        if not read:
            await trio.sleep_forever()
        conn = h11.Connection(h11.SERVER)
        while True:
            request, body, trailers = None, b"", []
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await stream.receive_some(65536))
                elif isinstance(event, h11.Request):
                    request = event
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    trailers = [(k.decode(), v.decode()) for k, v in event.headers]
                    break
                else:
                    return
            assert request is not None
            seen.append(
                Seen(
                    request.method.decode(),
                    request.target.decode(),
                    [(k.decode(), v.decode()) for k, v in request.headers],
                    body,
                    trailers,
                )
            )
            if not answer:
                await trio.sleep_forever()
            reply = b"seen"
            headers = [("content-length", str(len(reply)))]
            await stream.send_all(conn.send(h11.Response(status_code=200, headers=headers)) or b"")
            await stream.send_all(
                (conn.send(h11.Data(data=reply)) or b"") + (conn.send(h11.EndOfMessage()) or b"")
            )
            if conn.our_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
        yield int(listeners[0].socket.getsockname()[1])
        nursery.cancel_scope.cancel()


@contextmanager
def websocket_echo_backend() -> Iterator[int]:
    """A websocket echo server (the ``websockets`` package) on a loopback port."""
    from websockets.sync.server import ServerConnection, serve

    def echo(connection: ServerConnection) -> None:
        for message in connection:
            connection.send(message)

    server = serve(echo, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.socket.getsockname()[1])
    finally:
        server.shutdown()
        thread.join(WAIT)
