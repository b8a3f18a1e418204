"""The one bad-server row our server cannot be: a server that does not ask for a client certificate.

:class:`~mtls_ref.server.app.Server` requires a client certificate by design
(its handler refuses a connection without one), so the control row "no
certificate requested" is this small HTTPS responder instead. It builds its
context with the openssl engine's own builder, then turns client verification
off (``VERIFY_NONE``: no CertificateRequest is sent at all), answers one HTTP
request per connection with h11, and reports each connection to the row's
recorder in the same shape as the handler's ``connection`` record.
"""

from __future__ import annotations

import json
from typing import Any, Final

import h11
import trio
from OpenSSL import SSL

from mtls_ref.server.engine.openssl_context import openssl_server_context
from mtls_ref.shared.core.config import ServerConfig
from mtls_ref.shared.tls.connection import TLSConnection
from mtls_ref.shared.tls.stream import RECORD_SIZE

from .recorder import RowRecorder, host_port

__all__ = ["AnonymousServer"]

BODY: Final = {
    "client_certificate": "not requested",
    "note": "this server sent no CertificateRequest; a correct client connects without a certificate",
}


class AnonymousServer:
    """An HTTPS server on ``config``'s address and credential that asks nobody for a certificate."""

    def __init__(self, config: ServerConfig, recorder: RowRecorder) -> None:
        self.config = config
        self.recorder = recorder
        self.context = openssl_server_context(config)
        self.context.set_verify(SSL.VERIFY_NONE)
        self._accepting = trio.CancelScope()

    def __repr__(self) -> str:
        return f"<AnonymousServer {self.config.host}:{self.config.port}>"

    def shutdown(self) -> None:
        self._accepting.cancel()

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until :meth:`shutdown`; ``task_status.started`` gets the bound (host, port) list."""
        listeners = await trio.open_tcp_listeners(self.config.port, host=self.config.host)
        task_status.started([listener.socket.getsockname()[:2] for listener in listeners])
        async with trio.open_nursery() as handlers:
            with self._accepting:
                await trio.serve_listeners(self._handle, listeners, handler_nursery=handlers)
            handlers.cancel_scope.deadline = trio.current_time() + self.config.shutdown_grace

    async def _handle(self, stream: trio.SocketStream) -> None:
        record: dict[str, Any] = {"peer": host_port(stream.socket.getpeername()), "requests": 0}
        tls = TLSConnection(stream, self.context, server_side=True)
        try:
            with trio.move_on_after(self.config.handshake_timeout) as scope:
                await tls.handshake()
            if scope.cancelled_caught:
                record["reason"] = f"no complete handshake within {self.config.handshake_timeout:g}s"
                return
            record["tls"] = tls.version()
            with trio.move_on_after(self.config.idle_timeout):
                record["requests"] = await _answer(tls)
        except trio.BrokenResourceError as exc:
            record["reason"] = str(exc.__cause__ or exc)
        finally:
            with trio.CancelScope(shield=True):
                await tls.aclose()
            self.recorder.finished(record)


async def _answer(tls: TLSConnection) -> int:
    """Read one HTTP request and answer it (then close); 0 when none came."""
    conn = h11.Connection(h11.SERVER)
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError:  # not HTTP: nothing to answer
            return 0
        if event is h11.NEED_DATA:
            data = await tls.receive_some(RECORD_SIZE)
            if not data:
                return 0
            conn.receive_data(data)
            continue
        if isinstance(event, h11.Request):
            break
        return 0  # not HTTP, or the peer closed
    body = (json.dumps(BODY) + "\n").encode()
    headers = [
        ("content-type", "application/json"),
        ("content-length", str(len(body))),
        ("connection", "close"),
    ]
    await tls.send_all(conn.send(h11.Response(status_code=200, headers=headers)) or b"")
    await tls.send_all(conn.send(h11.Data(data=body)) or b"")
    await tls.send_all(conn.send(h11.EndOfMessage()) or b"")
    return 1
