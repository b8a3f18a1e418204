"""The two ends of an HTTP forward: what it waits for, how each side fails, and bounded I/O on each.

:class:`Ends` holds the client's TLS connection and the current backend
connection, and reads and writes each under the connection's one
:class:`IdleDeadline` (plus, where given, an absolute bound that progress
cannot move), recording what it waits for so a passed deadline gets a true
answer, and turning each side's failures into its own exception.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Final

import h11
import trio

from mtls_ref.shared.core.deadline import IdleDeadline
from mtls_ref.shared.core.relay import CHUNK
from mtls_ref.shared.tls.connection import TLSConnection

__all__ = ["MAX_HEAD_BYTES", "BackendFailed", "ClientGone", "Ends", "Late", "Refusal", "Switch", "Wait"]

MAX_HEAD_BYTES: Final = 16 * 1024  # a request or response head (h11's own default too)


class Wait(enum.Enum):
    """What the connection waits for; when the idle deadline passes, what answer is true."""

    REQUEST = ("the client's next request", None)  # a silent client between requests: close
    REQUEST_BODY = ("the rest of the request", 408)
    CONNECT = ("the backend to accept the connection", 504)
    BACKEND_READS = ("the backend to read the request", 504)
    RESPONSE = ("the backend's response", 504)
    RESPONSE_BODY = ("the rest of the backend's response", None)  # its head has gone out already
    CLIENT_READS = ("the client to read the response", None)

    def __init__(self, words: str, status: int | None) -> None:
        self.words = words
        self.status = status


# What a client is told for a failure on our side of the gateway: the details are for the log.
_TOLD: Final = {
    502: "the backend failed to give a valid response; the server's log says why",
    504: "the backend did not answer in time",
}


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    reason: str  # for the log

    @property
    def told(self) -> str:
        return _TOLD.get(self.status, self.reason)


@dataclass(frozen=True, slots=True)
class Switch:
    """The backend accepted an upgrade: relay raw bytes from here, these first."""

    protocol: str
    from_client: bytes
    from_backend: bytes


class ClientGone(Exception):
    pass


class BackendFailed(Exception):
    pass


class Late(Exception):
    """An absolute bound passed (a slow head or body, a backend that never finishes its head)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.refusal = Refusal(status, reason)


class Ends:
    """The client's connection and the backend's, each read and written under the deadline."""

    def __init__(self, tls: TLSConnection, idle_timeout: float) -> None:
        self.tls = tls
        self.idle_timeout = idle_timeout
        self.front = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        self.backend: trio.SocketStream | None = None
        self.deadline = IdleDeadline(idle_timeout)
        self.wait = Wait.REQUEST

    def _backend(self) -> trio.SocketStream:
        if self.backend is None:  # each exchange connects before its first backend I/O
            raise BackendFailed("no connection to the backend")
        return self.backend

    async def _close_backend(self) -> None:
        if self.backend is not None:
            backend, self.backend = self.backend, None
            await trio.aclose_forcefully(backend)

    async def _from_client(self, limit: float | None, late: str) -> bytes:
        if self.front.their_state is not h11.IDLE:  # past the head: a body is being read
            self.wait = Wait.REQUEST_BODY
        with trio.CancelScope(deadline=math.inf if limit is None else limit) as bound:
            try:
                data = await self.tls.receive_some(CHUNK)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                cause = type(exc.__cause__ or exc).__name__
                raise ClientGone(f"the client broke the connection ({cause})") from exc
        if bound.cancelled_caught:
            raise Late(408, late)
        self.deadline.progress()
        return bytes(data)

    async def _from_backend(self, limit: float | None) -> bytes:
        with trio.CancelScope(deadline=math.inf if limit is None else limit) as bound:
            try:
                data = await self._backend().receive_some(CHUNK)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise BackendFailed(f"the backend broke the connection ({exc.__cause__ or exc})") from exc
        if bound.cancelled_caught:
            raise Late(504, f"the backend sent no whole response head within {self.idle_timeout:g}s")
        self.deadline.progress()
        return data

    async def _to_backend(self, data: bytes | None) -> None:
        self.wait = Wait.BACKEND_READS
        try:
            await self._backend().send_all(data or b"")
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise BackendFailed(
                f"the backend closed the connection before reading the request ({exc})"
            ) from exc
        self.deadline.progress()

    async def _to_client(self, data: bytes | None) -> None:
        self.wait = Wait.CLIENT_READS
        try:
            await self.tls.send_all(data or b"")
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            cause = type(exc.__cause__ or exc).__name__
            raise ClientGone(f"the client broke the connection ({cause})") from exc
        self.deadline.progress()
