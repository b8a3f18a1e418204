"""Route OpenSSL's message callback to the recorder of the connection being driven.

Theory of operation
-------------------
CPython exposes OpenSSL's message callback only through the private
``SSLContext._msg_callback`` hook (CPython's own ``test_ssl`` uses it). It fires
synchronously inside ``do_handshake()``/``read()``/``write()`` for every record
header, every handshake message (decrypted, in TLS 1.3), every alert and every
ChangeCipherSpec, in both directions, with memory BIOs as with sockets.

One context serves many connections, so the callback must find the recorder of
*this* connection. trio runs each connection in its own task with its own copy
of the ``contextvars`` context, and the callback runs in the task that drives the
TLS object; so the recorder is a :class:`~contextvars.ContextVar` set by the task
(:func:`recording`). No private trio attribute is touched.

What a recorder does with the reports is :mod:`~mtls_ref.shared.tls.recorder`'s
business; the wire formats it reads are in :mod:`~mtls_ref.shared.tls.wire`.

If the hook disappears from CPython, :func:`install` raises
:class:`TraceUnavailable` and ``tests/test_trace.py`` fails loudly.

The recorder types, ``Role`` and the wire parsers are re-exported here, where
the rest of the project and the tests import them from.
"""

from __future__ import annotations

import _ssl  # the C module: see install()
import contextvars
import ssl
from typing import Generic, Protocol, TypeVar

from mtls_ref.shared.tls.recorder import MAX_EVENTS, HandshakeRecorder, PeerCertificateCatcher, TraceEvent
from mtls_ref.shared.tls.role import Role
from mtls_ref.shared.tls.wire import ALERT_NAMES, parse_certificate_message, server_hello_is_tls13

__all__ = [
    "ALERT_NAMES",
    "MAX_EVENTS",
    "HandshakeRecorder",
    "PeerCertificateCatcher",
    "Recorder",
    "Role",
    "TraceEvent",
    "TraceUnavailable",
    "available",
    "current_recorder",
    "install",
    "parse_certificate_message",
    "recording",
    "server_hello_is_tls13",
]


class TraceUnavailable(RuntimeError):
    """This Python's ssl module has no message callback hook."""


class Recorder(Protocol):
    """What the callback feeds: a :class:`HandshakeRecorder`, a :class:`PeerCertificateCatcher`."""

    peer_certificates: list[bytes]
    sent_alert: str | None
    heard_peer: bool

    def record(self, direction: str, version: int, content_type: int, msg_type: int, data: bytes) -> None: ...


# -- wiring ---------------------------------------------------------------------

_current: contextvars.ContextVar[Recorder | None] = contextvars.ContextVar(
    "mtls_trace_recorder", default=None
)


def _dispatch(  # noqa: PLR0917 - the signature CPython calls
    conn: object, direction: str, version: int, content_type: int, msg_type: int, data: bytes
) -> None:
    recorder = _current.get()
    if recorder is not None:
        recorder.record(direction, int(version), int(content_type), int(msg_type), bytes(data))


def current_recorder() -> Recorder | None:
    """The recorder of the running task, for engines that deliver messages themselves."""
    return _current.get()


def available() -> bool:
    return hasattr(ssl.SSLContext, "_msg_callback")


def install(context: ssl.SSLContext) -> None:
    """Route ``context``'s message callback to the recorder of the running task."""
    if not available():
        raise TraceUnavailable(
            "this Python's ssl module has no message callback (SSLContext._msg_callback); "
            "handshake tracing needs CPython 3.8 or newer"
        )
    # CPython's public-ish setter wraps the callback in a function that turns every
    # number into an Enum, which costs more than the rest of our per-message work
    # together (~0.2 ms per handshake, measured by make bench). The C-level slot of
    # the base class takes the raw integers, so set that one when it exists.
    raw_slot = getattr(_ssl._SSLContext, "_msg_callback", None)
    if raw_slot is not None and hasattr(raw_slot, "__set__"):
        raw_slot.__set__(context, _dispatch)
    else:
        context._msg_callback = _dispatch  # type: ignore[attr-defined]


RecorderT = TypeVar("RecorderT", bound=Recorder)


class recording(Generic[RecorderT]):
    """``with recording(recorder):`` sends the callbacks of TLS work done in this task to ``recorder``.

    A class rather than ``@contextmanager``: it is entered once per server connection,
    and the generator machinery cost more than the rest of it.
    """

    __slots__ = ("_recorder", "_token")

    def __init__(self, recorder: RecorderT) -> None:
        self._recorder = recorder
        self._token: contextvars.Token[Recorder | None] | None = None

    def __enter__(self) -> RecorderT:
        self._token = _current.set(self._recorder)
        return self._recorder

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            _current.reset(self._token)
