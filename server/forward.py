"""Forward mode: mutual TLS in front of any TCP service.

Theory of operation
-------------------
After the handshake and the allow-list (the handler's job), the server opens a
plain TCP connection to the backend, sends the PROXY v2 header first when
``forward_identity = "proxy-v2"``, and copies bytes both ways:

* client to backend until the client ends its stream (close_notify or EOF),
  then the backend gets a TCP half-close (FIN) and its answer keeps flowing
  back: a client that sends a request and shuts its write side is served;
* backend to client until the backend closes; then the session is over and the
  client gets close_notify (the handler's close).

One deadline covers both directions: ``idle_timeout`` without a byte either way
ends the session, and so does a write that cannot complete within it (a peer,
on either side, that does not read). A backend that cannot be reached within
``handshake_timeout`` ends the session with that reason in the log.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import trio

from mtls_ref.shared.tls.connection import TLSConnection

__all__ = ["ForwardResult", "ForwardTarget", "forward"]

CHUNK: Final = 65536


@dataclass(frozen=True, slots=True, kw_only=True)
class ForwardTarget:
    host: str
    port: int
    identity: str  # "none" | "proxy-v2"

    @classmethod
    def parse(cls, text: str, identity: str) -> ForwardTarget | None:
        """``HOST:PORT`` (``[v6]:PORT``), or None for an empty setting."""
        if not text:
            return None
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit() or not host:
            raise ValueError(f"forward {text!r} is not HOST:PORT")
        return cls(host=host.strip("[]"), port=int(port), identity=identity)

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(slots=True)
class ForwardResult:
    to_backend: int = 0
    to_client: int = 0
    ended: str = ""


async def forward(
    tls: TLSConnection, target: ForwardTarget, header: bytes, *, idle_timeout: float, connect_timeout: float
) -> ForwardResult:
    """Relay between the TLS client and the backend until the session ends; never raises for peers."""
    result = ForwardResult()
    try:
        with trio.fail_after(connect_timeout):
            backend = await trio.open_tcp_stream(target.host, target.port)
    except (OSError, trio.TooSlowError) as exc:
        result.ended = f"backend {target} unreachable: {getattr(exc, 'strerror', None) or exc or 'timeout'}"
        return result
    async with backend:
        with trio.CancelScope(deadline=trio.current_time() + idle_timeout) as idle:

            def progress() -> None:
                idle.deadline = trio.current_time() + idle_timeout

            try:
                if header:
                    await backend.send_all(header)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_upstream, tls, backend, result, progress)
                    await _downstream(tls, backend, result, progress)
                    nursery.cancel_scope.cancel()  # the backend is done: so is the session
            except* (trio.BrokenResourceError, trio.ClosedResourceError) as group:
                broken = group.exceptions[0]
                result.ended = (
                    result.ended or f"connection broken ({type(broken.__cause__ or broken).__name__})"
                )
        if idle.cancelled_caught:
            result.ended = f"no byte either way for {idle_timeout:g}s (or a side that does not read)"
    return result


async def _upstream(
    tls: TLSConnection, backend: trio.SocketStream, result: ForwardResult, progress: Callable[[], None]
) -> None:
    """Client to backend; at the client's end of stream, half-close towards the backend."""
    while data := await tls.stream.receive_some(CHUNK):
        await backend.send_all(data)
        result.to_backend += len(data)
        progress()
    await backend.send_eof()


async def _downstream(
    tls: TLSConnection, backend: trio.SocketStream, result: ForwardResult, progress: Callable[[], None]
) -> None:
    """Backend to client, until the backend closes."""
    while data := await backend.receive_some(CHUNK):
        await tls.stream.send_all(data)
        result.to_client += len(data)
        progress()
    result.ended = "backend closed the connection"
