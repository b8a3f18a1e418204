"""Record the real TLS messages of one connection, as OpenSSL writes and reads them.

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

Application data is not a message OpenSSL reports, but its records are: a
record header of type 23. Under TLS 1.3 *every* encrypted record has outer type
23; the "inner content type" pseudo-message that follows says what it really
was. So a type-23 header is held back until we know the negotiated version
(from ServerHello) and, under TLS 1.3, until its inner type arrives.

If the hook disappears from CPython, :func:`install` raises
:class:`TraceUnavailable` and ``tests/test_trace.py`` fails loudly.
"""

from __future__ import annotations

import _ssl  # the C module: see install()
import contextvars
import enum
import ssl
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Generic, Protocol, TypeVar

from cryptography import x509

__all__ = [
    "HandshakeRecorder",
    "PeerCertificateCatcher",
    "Role",
    "TraceEvent",
    "TraceUnavailable",
    "current_recorder",
    "install",
    "recording",
    "server_hello_is_tls13",
]

# OpenSSL content types (RFC 8446 §5.1) and the two pseudo types of the callback.
_CHANGE_CIPHER_SPEC: Final = 20
_ALERT: Final = 21
_HANDSHAKE: Final = 22
_APPLICATION_DATA: Final = 23
_HEADER: Final = 256  # SSL3_RT_HEADER: the 5-byte record header
_INNER_CONTENT_TYPE: Final = 257  # SSL3_RT_INNER_CONTENT_TYPE: TLS 1.3 real type
_TLS13: Final = 0x0304
_SERVER_HELLO: Final = 2
_SUPPORTED_VERSIONS: Final = 43  # extension type, RFC 8446 §4.2
_CERTIFICATE: Final = 11
# A connection that stays open keeps recording its records; beyond this many events
# (a handshake is about 15) only a count is kept, so a long download costs no memory.
MAX_EVENTS: Final = 200
# Reports kept undecoded before the recorder decodes them (a full handshake is about 45).
RAW_BATCH: Final = 64

# Handshake message names as RFC 5246 / RFC 8446 spell them.
_MESSAGE_NAMES: Final = {
    0: "HelloRequest",
    1: "ClientHello",
    2: "ServerHello",
    4: "NewSessionTicket",
    5: "EndOfEarlyData",
    8: "EncryptedExtensions",
    11: "Certificate",
    12: "ServerKeyExchange",
    13: "CertificateRequest",
    14: "ServerHelloDone",
    15: "CertificateVerify",
    16: "ClientKeyExchange",
    20: "Finished",
    22: "CertificateStatus",
    24: "KeyUpdate",
    254: "MessageHash",
}
# Alert descriptions (RFC 8446 §6).
ALERT_NAMES: Final = {
    0: "close_notify",
    10: "unexpected_message",
    20: "bad_record_mac",
    22: "record_overflow",
    40: "handshake_failure",
    42: "bad_certificate",
    43: "unsupported_certificate",
    44: "certificate_revoked",
    45: "certificate_expired",
    46: "certificate_unknown",
    47: "illegal_parameter",
    48: "unknown_ca",
    49: "access_denied",
    50: "decode_error",
    51: "decrypt_error",
    70: "protocol_version",
    71: "insufficient_security",
    80: "internal_error",
    86: "inappropriate_fallback",
    90: "user_canceled",
    109: "missing_extension",
    110: "unsupported_extension",
    112: "unrecognized_name",
    113: "bad_certificate_status_response",
    115: "unknown_psk_identity",
    116: "certificate_required",
    120: "no_application_protocol",
}


class TraceUnavailable(RuntimeError):
    """This Python's ssl module has no message callback hook."""


class Role(enum.StrEnum):
    CLIENT = "client"
    SERVER = "server"

    @property
    def peer(self) -> Role:
        return Role.SERVER if self is Role.CLIENT else Role.CLIENT


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

    @property
    def tls13(self) -> bool | None:
        self._decode_pending()
        return self._tls13

    @tls13.setter
    def tls13(self, value: bool | None) -> None:
        self._tls13 = value

    @property
    def sent_alert(self) -> str | None:
        self._decode_pending()
        return self._sent_alert

    @sent_alert.setter
    def sent_alert(self, value: str | None) -> None:
        self._sent_alert = value

    @property
    def peer_certificates(self) -> list[bytes]:
        self._decode_pending()
        return self._peer_certificates

    @peer_certificates.setter
    def peer_certificates(self, value: list[bytes]) -> None:
        self._peer_certificates = value

    def _decode_pending(self) -> None:
        raw, self._raw = self._raw, []
        for at, direction, version, content_type, msg_type, data in raw:
            self._decode(at, direction, version, content_type, msg_type, data)

    def _decode(  # noqa: PLR0917 - one reported message, as the callback gave it
        self, at: float, direction: str, version: int, content_type: int, msg_type: int, data: bytes
    ) -> None:
        sender = self.role if direction == "write" else self.role.peer
        if content_type == _HEADER:
            self._flush_held()
            if data[:1] == bytes([_CHANGE_CIPHER_SPEC]):
                # OpenSSL reports a *received* ChangeCipherSpec only by its record header,
                # so both directions are taken from the header (and the body callback ignored).
                self._add(
                    at, sender, "change_cipher_spec", "ChangeCipherSpec", int.from_bytes(data[3:5], "big")
                )
            elif len(data) >= 5 and data[0] == _APPLICATION_DATA:
                self._held_header = (sender, int.from_bytes(data[3:5], "big"), at)
                if self._tls13 is False:
                    self._flush_held()
            return
        if content_type == _INNER_CONTENT_TYPE:
            held, self._held_header = self._held_header, None
            if held is not None and data[:1] == bytes([_APPLICATION_DATA]):
                self._add(held[2], held[0], "application_data", "ApplicationData", held[1])
            return
        if content_type == _HANDSHAKE:
            self._on_handshake(at, sender, version, msg_type, data)
        elif content_type == _ALERT and len(data) >= 2:
            level = {1: "warning", 2: "fatal"}.get(data[0], str(data[0]))
            if direction == "write" and data[0] == 2:
                self._sent_alert = ALERT_NAMES.get(data[1], str(data[1]))
            detail = f"{level} {ALERT_NAMES.get(data[1], data[1])}"
            self._add(at, sender, "alert", "Alert", len(data), detail)

    def _on_handshake(self, at: float, sender: Role, version: int, msg_type: int, data: bytes) -> None:
        name = _MESSAGE_NAMES.get(msg_type, f"Handshake({msg_type})")
        if name == "ServerHello":
            self._tls13 = server_hello_is_tls13(data)
        detail = ""
        if name == "Certificate":
            certs = parse_certificate_message(data, tls13=bool(self._tls13))
            if sender is self.role.peer:
                self._peer_certificates = certs
            detail = _certificate_detail(certs)
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


def server_hello_is_tls13(data: bytes) -> bool:
    """Whether a ServerHello (header included) chose TLS 1.3.

    Read from the message, not from the callback's version argument: a client
    reports the version it *offered* (1.3) while it reads ServerHello, so a
    server that picked TLS 1.2 would be drawn as 1.3. TLS 1.3 is chosen by the
    supported_versions extension (RFC 8446 §4.2.1); legacy_version says 1.2 in
    both cases. A malformed message counts as not 1.3.
    """
    pos = 4 + 2 + 32  # header, legacy_version, random
    if len(data) < pos + 1:
        return False
    pos += 1 + data[pos] + 2 + 1  # session id, cipher suite, compression method
    if len(data) < pos + 2:
        return False
    end = min(len(data), pos + 2 + int.from_bytes(data[pos : pos + 2], "big"))
    pos += 2
    while pos + 4 <= end:
        kind = int.from_bytes(data[pos : pos + 2], "big")
        size = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if kind == _SUPPORTED_VERSIONS:
            return data[pos + 4 : pos + 4 + size] == _TLS13.to_bytes(2, "big")
        pos += 4 + size
    return False


def parse_certificate_message(data: bytes, *, tls13: bool) -> list[bytes]:
    """DER certificates in a Certificate handshake message (RFC 5246 §7.4.2, RFC 8446 §4.4.2).

    A malformed or truncated message yields ``[]``: the trace reports, it never judges.
    """
    pos = 4  # message type (1) + length (3)
    if tls13:
        if len(data) <= pos:
            return []
        pos += 1 + data[pos]  # certificate_request_context
    if len(data) < pos + 3:
        return []
    end = pos + 3 + int.from_bytes(data[pos : pos + 3], "big")
    pos += 3
    if end > len(data):
        return []
    certs = []
    while pos + 3 <= end:
        size = int.from_bytes(data[pos : pos + 3], "big")
        if size == 0 or pos + 3 + size > end:
            return []
        certs.append(data[pos + 3 : pos + 3 + size])
        pos += 3 + size
        if tls13:
            if pos + 2 > end:
                return []
            pos += 2 + int.from_bytes(data[pos : pos + 2], "big")  # per-entry extensions
    return certs


def _certificate_detail(certs: list[bytes]) -> str:
    if not certs:
        return "empty: no certificate"
    try:
        subject = x509.load_der_x509_certificate(certs[0]).subject.rfc4514_string()
    except ValueError:
        subject = "unparseable certificate"
    return f"{subject} + {len(certs) - 1} CA cert" if len(certs) > 1 else subject


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
        if content_type == _ALERT and direction == "write" and len(data) >= 2:
            self.sent_alert = ALERT_NAMES.get(data[1], str(data[1]))
            return
        if content_type != _HANDSHAKE:
            return
        if msg_type == _SERVER_HELLO:
            self.tls13 = server_hello_is_tls13(data)
        elif msg_type == _CERTIFICATE and direction == "read":  # what the peer sent us
            self.peer_certificates = parse_certificate_message(data, tls13=bool(self.tls13))


class Recorder(Protocol):
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
