"""The recorders the message callback feeds: one connection's TLS messages, from one side.

Theory of operation
-------------------
OpenSSL's message callback reports every record header, every handshake message
(decrypted, in TLS 1.3), every alert and every ChangeCipherSpec, in both
directions (:mod:`~mtls_ref.shared.tls.trace` routes them here).

Application data is not a message OpenSSL reports, but its records are: a
record header of type 23. Under TLS 1.3 *every* encrypted record has outer type
23; the "inner content type" pseudo-message that follows says what it really
was. So a type-23 header is held back until we know the negotiated version
(from ServerHello) and, under TLS 1.3, until its inner type arrives.

:class:`HandshakeRecorder` keeps the whole sequence, decoded lazily (the
callback only appends); :class:`PeerCertificateCatcher` is the cheap one a
server always runs, keeping only what explains a failed verification.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Generic, TypeVar, overload

from mtls_ref.shared.tls.role import Role
from mtls_ref.shared.tls.wire import (
    ALERT,
    ALERT_NAMES,
    APPLICATION_DATA,
    CERTIFICATE,
    CHANGE_CIPHER_SPEC,
    HANDSHAKE,
    HEADER,
    INNER_CONTENT_TYPE,
    MESSAGE_NAMES,
    SERVER_HELLO,
    certificate_detail,
    parse_certificate_message,
    server_hello_is_tls13,
)

__all__ = ["MAX_EVENTS", "RAW_BATCH", "HandshakeRecorder", "PeerCertificateCatcher", "TraceEvent"]

# A connection that stays open keeps recording its records; beyond this many events
# (a handshake is about 15) only a count is kept, so a long download costs no memory.
MAX_EVENTS: Final = 200
# Reports kept undecoded before the recorder decodes them (a full handshake is about 45).
RAW_BATCH: Final = 64

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class TraceEvent:
    """One TLS message (or application-data record) as seen by one side."""

    sender: Role
    kind: str  # "handshake", "change_cipher_spec", "alert", "application_data"
    name: str  # "ClientHello", "ChangeCipherSpec", "Alert", "ApplicationData"
    length: int  # handshake message body length; for application data, the encrypted record length
    at: float  # seconds since the recorder started
    detail: str = ""  # alert "fatal unknown_ca", certificate "CN=alice (2 certs)", ...

    def to_dict(self) -> dict[str, Any]:
        return {key: str(value) if isinstance(value, Role) else value for key, value in asdict(self).items()}


class _Decoded(Generic[T]):
    """A :class:`HandshakeRecorder` fact that is current only once its pending reports are decoded.

    Reading it decodes them first; setting it (an engine that learns the fact another way,
    a test) sets the stored value, the field of the same name with a leading underscore.
    """

    __slots__ = ("_stored",)

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self._stored = f"_{name}"

    @overload
    def __get__(self, recorder: None, owner: type[Any]) -> _Decoded[T]: ...
    @overload
    def __get__(self, recorder: HandshakeRecorder, owner: type[Any] | None = None) -> T: ...
    def __get__(self, recorder: HandshakeRecorder | None, owner: type[Any] | None = None) -> T | _Decoded[T]:
        if recorder is None:
            return self
        recorder._decode_pending()
        value: T = getattr(recorder, self._stored)
        return value

    def __set__(self, recorder: HandshakeRecorder, value: T) -> None:
        setattr(recorder, self._stored, value)


@dataclass(slots=True)
class HandshakeRecorder:
    """Collects the :class:`TraceEvent` list of one connection, from ``role``'s side.

    The callback only appends what OpenSSL reported; the messages are decoded
    when someone asks (the browser page, the trace log, a refusal's words) or
    every ``RAW_BATCH`` reports. Decoding in the callback cost a server with
    ``record_handshakes`` 15-30% of its handshakes per CPU-second (``make bench``).
    """

    role: Role
    omitted: int = 0  # events past MAX_EVENTS, counted but not kept
    _events: list[TraceEvent] = field(default_factory=list)
    _tls13: bool | None = None  # known once ServerHello passes
    _sent_alert: str | None = None  # the alert this side sent, e.g. "unknown_ca"
    _peer_certificates: list[bytes] = field(default_factory=list)  # DER, leaf first
    _start: float = field(default_factory=time.monotonic)
    _held_header: tuple[Role, int, float] | None = None
    _raw: list[tuple[float, str, int, int, int, bytes]] = field(default_factory=list)
    heard_peer: bool = False  # a TLS message from the peer was read

    tls13 = _Decoded[bool | None]()
    sent_alert = _Decoded[str | None]()
    peer_certificates = _Decoded[list[bytes]]()

    # -- the callback -----------------------------------------------------------

    def record(self, direction: str, version: int, content_type: int, msg_type: int, data: bytes) -> None:
        if direction == "read":
            self.heard_peer = True
        raw = self._raw
        raw.append((time.monotonic(), direction, version, content_type, msg_type, data))
        if len(raw) >= RAW_BATCH:
            self._decode_pending()

    # -- what was recorded, decoded on demand -------------------------------------

    @property
    def events(self) -> list[TraceEvent]:
        self._decode_pending()
        return self._events

    def _decode_pending(self) -> None:
        raw, self._raw = self._raw, []
        for at, direction, version, content_type, msg_type, data in raw:
            self._decode(at, direction, version, content_type, msg_type, data)

    def _decode(  # noqa: PLR0917 - one reported message, as the callback gave it
        self, at: float, direction: str, version: int, content_type: int, msg_type: int, data: bytes
    ) -> None:
        sender = self.role if direction == "write" else self.role.peer
        if content_type == HEADER:
            self._flush_held()
            if data[:1] == bytes([CHANGE_CIPHER_SPEC]):
                # OpenSSL reports a *received* ChangeCipherSpec only by its record header,
                # so both directions are taken from the header (and the body callback ignored).
                self._add(
                    at, sender, "change_cipher_spec", "ChangeCipherSpec", int.from_bytes(data[3:5], "big")
                )
            elif len(data) >= 5 and data[0] == APPLICATION_DATA:
                self._held_header = (sender, int.from_bytes(data[3:5], "big"), at)
                if self._tls13 is False:
                    self._flush_held()
            return
        if content_type == INNER_CONTENT_TYPE:
            held, self._held_header = self._held_header, None
            if held is not None and data[:1] == bytes([APPLICATION_DATA]):
                self._add(held[2], held[0], "application_data", "ApplicationData", held[1])
            return
        if content_type == HANDSHAKE:
            self._on_handshake(at, sender, version, msg_type, data)
        elif content_type == ALERT and len(data) >= 2:
            level = {1: "warning", 2: "fatal"}.get(data[0], str(data[0]))
            if direction == "write" and data[0] == 2:
                self._sent_alert = ALERT_NAMES.get(data[1], str(data[1]))
            detail = f"{level} {ALERT_NAMES.get(data[1], data[1])}"
            self._add(at, sender, "alert", "Alert", len(data), detail)

    def _on_handshake(self, at: float, sender: Role, version: int, msg_type: int, data: bytes) -> None:
        name = MESSAGE_NAMES.get(msg_type, f"Handshake({msg_type})")
        if name == "ServerHello":
            self._tls13 = server_hello_is_tls13(data)
        detail = ""
        if name == "Certificate":
            certs = parse_certificate_message(data, tls13=bool(self._tls13))
            if sender is self.role.peer:
                self._peer_certificates = certs
            detail = certificate_detail(certs)
        self._add(at, sender, "handshake", name, max(len(data) - 4, 0), detail)

    def _add(  # noqa: PLR0917 - the fields of one event
        self, at: float, sender: Role, kind: str, name: str, length: int, detail: str = ""
    ) -> None:
        if len(self._events) >= MAX_EVENTS:
            self.omitted += 1
            return
        offset = round(at - self._start, 6)
        self._events.append(
            TraceEvent(sender=sender, kind=kind, name=name, length=length, at=offset, detail=detail)
        )

    def _flush_held(self) -> None:
        held, self._held_header = self._held_header, None
        if held is not None and self._tls13 is False:
            self._add(held[2], held[0], "application_data", "ApplicationData", held[1])

    # -- questions the reports ask ------------------------------------------------

    def finish(self) -> list[TraceEvent]:
        """All events, with any TLS 1.2 application record still held flushed."""
        self._decode_pending()
        self._flush_held()
        return list(self._events)

    def saw(self, name: str, sender: Role) -> bool:
        return any(e.name == name and e.sender is sender for e in self.events)

    @property
    def version_label(self) -> str:
        return {True: "TLS 1.3", False: "TLS 1.2", None: "TLS (version not negotiated)"}[self.tls13]


@dataclass(slots=True)
class PeerCertificateCatcher:
    """The cheap recorder a server always runs: keeps only the peer's certificates.

    They explain a failed verification ("issued by X, but we trust Y") even when
    full tracing is off; parsing happens only on failure.
    """

    role: Role
    tls13: bool | None = None
    peer_certificates: list[bytes] = field(default_factory=list)
    sent_alert: str | None = None  # the alert this side sent, e.g. "decode_error"
    heard_peer: bool = False  # a TLS message from the peer was read (where the engine reports reads)

    def record(self, direction: str, version: int, content_type: int, msg_type: int, data: bytes) -> None:
        if direction == "read":
            self.heard_peer = True
        if content_type == ALERT and direction == "write" and len(data) >= 2:
            self.sent_alert = ALERT_NAMES.get(data[1], str(data[1]))
            return
        if content_type != HANDSHAKE:
            return
        if msg_type == SERVER_HELLO:
            self.tls13 = server_hello_is_tls13(data)
        elif msg_type == CERTIFICATE and direction == "read":  # what the peer sent us
            self.peer_certificates = parse_certificate_message(data, tls13=bool(self.tls13))
