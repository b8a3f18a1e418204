"""Forward mode: mutual TLS in front of any TCP service.

Theory of operation
-------------------
After the handshake and the allow-list (the handler's job), the server opens a
plain TCP connection to the backend, sends the PROXY v2 header first when
``forward_identity = "proxy-v2"``, and hands both streams to the one relay
(:mod:`mtls_ref.shared.core.relay`): bytes both ways, the client's end of
stream passed on as a TCP half-close, the backend closing ends the session,
and ``idle_timeout`` without a byte either way (or a side that does not read)
ends it too. A backend that cannot be reached within ``connect_timeout`` ends
the session with that reason in the log.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import trio

from mtls_ref.shared.core.addresses import HostPort
from mtls_ref.shared.core.relay import relay
from mtls_ref.shared.tls.connection import TLSConnection

__all__ = ["BackendUnreachable", "ForwardResult", "ForwardTarget", "connect_backend", "forward"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ForwardTarget:
    host: str
    port: int
    identity: str  # one of config.FORWARD_IDENTITIES
    keep_underscore_headers: bool = False  # http modes: pass on header names holding '_'

    @classmethod
    def parse(
        cls, text: str, identity: str, *, keep_underscore_headers: bool = False
    ) -> ForwardTarget | None:
        """``HOST:PORT`` (``[v6]:PORT``), or None for an empty setting."""
        if not text:
            return None
        address = HostPort.parse(text)
        return cls(
            host=address.host,
            port=address.port,
            identity=identity,
            keep_underscore_headers=keep_underscore_headers,
        )

    def __str__(self) -> str:
        return str(HostPort(self.host, self.port))


@dataclass(slots=True)
class ForwardResult:
    to_backend: int = 0
    to_client: int = 0
    ended: str = ""
    requests: int = 0  # http modes: requests relayed
    dropped_headers: set[str] = field(default_factory=set)  # http modes: names removed from requests


class BackendUnreachable(Exception):
    """The backend refused the connection or did not accept it in time (``timed_out``)."""

    def __init__(self, message: str, *, timed_out: bool) -> None:
        super().__init__(message)
        self.timed_out = timed_out


async def connect_backend(target: ForwardTarget, within: float) -> trio.SocketStream:
    """A TCP connection to the backend within ``within`` seconds, or :class:`BackendUnreachable`."""
    try:
        with trio.fail_after(within):
            return await trio.open_tcp_stream(target.host, target.port)
    except trio.TooSlowError as exc:
        raise BackendUnreachable(
            f"backend {target} unreachable: no connection within {within:g}s", timed_out=True
        ) from exc
    except OSError as exc:
        raise BackendUnreachable(
            f"backend {target} unreachable: {exc.strerror or exc}", timed_out=False
        ) from exc


async def forward(
    tls: TLSConnection, target: ForwardTarget, header: bytes, *, idle_timeout: float, connect_timeout: float
) -> ForwardResult:
    """Relay between the TLS client and the backend until the session ends; never raises for peers."""
    try:
        backend = await connect_backend(target, connect_timeout)
    except BackendUnreachable as exc:
        return ForwardResult(ended=str(exc))
    async with backend:
        relayed = await relay(tls, backend, idle_timeout=idle_timeout, up_first=header)
    return ForwardResult(to_backend=relayed.up, to_client=relayed.down, ended=relayed.ended)
