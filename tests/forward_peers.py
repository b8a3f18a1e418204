"""Backends and clients for the forward-mode tests: real HTTP servers, websockets, and raw TLS requests."""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import subprocess
import tempfile
import threading
import wsgiref.simple_server
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h11
import trio

from mtls_ref.server.app import Server
from mtls_ref.server.log import EventLog
from mtls_ref.shared.tls.context import client_context

from .peers import free_port, stop_process, wait_for_port
from .pkitools import Pki
from .tlstools import client_config, log_events, server_config

WAIT = 15.0  # seconds any single step of these tests may take before it fails


class WatchedLog:
    """The server's JSON log lines, with a way to wait for the n-th connection event (no polling)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._changed = trio.Event()

    def append(self, line: str) -> None:
        self.lines.append(line)
        self._changed.set()
        self._changed = trio.Event()

    def connections(self) -> list[dict[str, Any]]:
        return log_events(self.lines, "connection")

    async def connection(self, count: int = 1) -> dict[str, Any]:
        """The ``count``-th connection event, once it is logged."""
        with trio.fail_after(WAIT):
            while len(self.connections()) < count:
                await self._changed.wait()
        return self.connections()[count - 1]


async def start_forwarding(
    nursery: trio.Nursery, pki: Pki, backend: int, identity: str = "http-header", **changes: object
) -> tuple[Server, int, WatchedLog]:
    """Our server in forward mode in front of ``127.0.0.1:backend``."""
    log = WatchedLog()
    config = server_config(pki, forward=f"127.0.0.1:{backend}", forward_identity=identity, **changes)
    server = Server(config, log=EventLog("json", log.append))
    addresses = await nursery.start(server.serve)
    return server, int(addresses[0][1]), log


async def tls_exchange(pki: Pki, port: int, request: bytes) -> bytes:
    """Send raw bytes over mutual TLS as alice and read until the server closes."""
    config = client_config(pki, port=port)
    with trio.fail_after(WAIT):
        stream = await trio.open_ssl_over_tcp_stream(
            "127.0.0.1", port, ssl_context=client_context(config), https_compatible=True
        )
        async with stream:
            await stream.send_all(request)
            data = b""
            while chunk := await stream.receive_some(65536):
                data += chunk
    return data


def responses(data: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """The HTTP responses in ``data``: (status, headers, body) each, parsed by h11."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(data)
    conn.receive_data(b"")
    found: list[tuple[int, dict[str, str], bytes]] = []
    body = b""
    head: h11.Response | None = None
    for _ in range(10_000):
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError:
            break  # closed without (or in the middle of) a response: what came before is the answer
        if isinstance(event, h11.Response):
            head, body = event, b""
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage) and head is not None:
            found.append((head.status_code, {k.decode(): v.decode() for k, v in head.headers}, body))
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                break
            conn.start_next_cycle()
            conn.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))
            conn.send(h11.EndOfMessage())
        else:
            break  # NEED_DATA after the end, ConnectionClosed, or a response we never asked for
    return found


# -- backends -----------------------------------------------------------------------------------


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


@asynccontextmanager
async def haproxy_http_front(haproxy: str, pki: Pki, backend: int) -> AsyncIterator[int]:
    """HAProxy in our place: ``mode http``, client certificates required and verified against the test
    CA, any X-Forwarded-Client-Cert removed and its own set (as a careful operator configures it)."""
    with tempfile.TemporaryDirectory(prefix="mtls-haproxy-") as folder:
        root = Path(folder)
        bundle = root / "server.pem"
        bundle.write_bytes(pki.server.chain.read_bytes() + pki.server.key.read_bytes())
        port = free_port()
        (root / "haproxy.cfg").write_text(
            f"""
defaults
  mode http
  timeout connect 5s
  timeout client 10s
  timeout server 10s
frontend mtls
  bind 127.0.0.1:{port} ssl crt {bundle} ca-file {pki.ca_cert} verify required
  http-request del-header X-Forwarded-Client-Cert
  http-request set-header X-Forwarded-Client-Cert "Hash=%[ssl_c_der,sha2(256),hex]"
  default_backend app
backend app
  server app 127.0.0.1:{backend}
""",
            encoding="utf-8",
        )
        process = await trio.lowlevel.open_process(
            [haproxy, "-db", "-f", str(root / "haproxy.cfg")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            await wait_for_port(port, process, "haproxy")
            yield port
        finally:
            await stop_process(process)
