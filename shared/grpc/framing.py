"""gRPC's wire format over HTTP/2, sans-I/O: length-prefixed messages, status codes, ``grpc-message``.

What the gRPC project's PROTOCOL-HTTP2.md specifies and both our server and our
client need; no trio, ssl, socket or HTTP/2 here (HTTP/2 framing is the ``h2``
library's job, protobuf encoding the ``protobuf`` library's):

* each message travels as a Length-Prefixed-Message: one Compressed-Flag byte
  (0, or 1 when the message is compressed with the call's ``grpc-encoding``),
  a four-byte big-endian length, then the message. We negotiate no compression
  (we send no ``grpc-accept-encoding``), so a flag of 1 is the peer's error,
  as grpc-go treats a compressed flag under the identity encoding: INTERNAL;
* a length over the receiver's bound is refused before anything is buffered:
  RESOURCE_EXHAUSTED, as gRPC implementations answer a message over their
  maximum receive size;
* the status travels in the trailers as ``grpc-status`` (a decimal code, of
  which 17 are defined; any other reads as UNKNOWN) and ``grpc-message``, the
  UTF-8 text percent-encoded: bytes outside ``%x20-%x7E`` and ``%`` itself as
  ``%XX``. A receiver must not fail on a bad encoding: a broken ``%`` escape
  is kept as it is, and bytes that are not UTF-8 become U+FFFD.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Mapping, Sequence
from typing import Final

from mtls_ref.shared.core.errors import ProtocolError

__all__ = [
    "CONTENT_TYPE",
    "HEADER_SIZE",
    "HEALTH_CHECK",
    "IDENTITY_SERVICE",
    "WHOAMI",
    "GrpcError",
    "GrpcStatus",
    "decode_grpc_message",
    "encode_grpc_message",
    "frame_message",
    "is_grpc_content_type",
    "parse_messages",
    "status_from_http",
    "status_from_trailers",
    "unary_message",
]

# The methods' paths (":path" is "/" Service-Name "/" Method-Name, PROTOCOL-HTTP2.md).
HEALTH_CHECK: Final = "/grpc.health.v1.Health/Check"
IDENTITY_SERVICE: Final = "mtls_ref.v1.Identity"
WHOAMI: Final = f"/{IDENTITY_SERVICE}/WhoAmI"

CONTENT_TYPE: Final = b"application/grpc"
# Compressed-Flag (1 byte) + Message-Length (4 bytes, big-endian): PROTOCOL-HTTP2.md, "Requests".
HEADER_SIZE: Final = 5
_HEADER: Final = struct.Struct(">BI")
_MAX_LENGTH: Final = 0xFFFF_FFFF  # what four bytes can say


class GrpcStatus(enum.IntEnum):
    """gRPC's status codes (the gRPC project's doc/statuscodes.md)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class GrpcError(ProtocolError):
    """The peer broke gRPC's framing (or sent more than we take); ``status`` is the answer it earns."""

    def __init__(self, status: GrpcStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def is_grpc_content_type(value: bytes) -> bool:
    """``application/grpc``, ``application/grpc+proto``, ``application/grpc;...``: the spec's forms."""
    value = value.lower()
    return value == CONTENT_TYPE or value[len(CONTENT_TYPE) : len(CONTENT_TYPE) + 1] in (b"+", b";")


def frame_message(message: bytes) -> bytes:
    """One uncompressed Length-Prefixed-Message."""
    if len(message) > _MAX_LENGTH:
        raise ValueError(f"a gRPC message holds at most {_MAX_LENGTH} bytes; this one has {len(message)}")
    return _HEADER.pack(0, len(message)) + message


def parse_messages(data: bytes, *, max_message: int) -> list[bytes]:
    """Every message of a complete body (a request's or a response's DATA, all of it).

    Raises :class:`GrpcError`: a message longer than ``max_message`` (RESOURCE_EXHAUSTED, said
    from its prefix alone), a compressed or unknown flag, or a body that ends inside a message
    (INTERNAL).
    """
    messages = []
    view = memoryview(data)
    offset = 0
    while offset < len(view):
        if len(view) - offset < HEADER_SIZE:
            raise GrpcError(
                GrpcStatus.INTERNAL,
                f"the body ends inside a message prefix ({len(view) - offset} of {HEADER_SIZE} bytes)",
            )
        flag, length = _HEADER.unpack_from(view, offset)
        if flag == 1:
            raise GrpcError(
                GrpcStatus.INTERNAL,
                "a compressed message, but no compression was negotiated (no grpc-encoding)",
            )
        if flag != 0:
            raise GrpcError(GrpcStatus.INTERNAL, f"compressed-flag byte {flag}: only 0 or 1 is defined")
        if length > max_message:
            raise GrpcError(
                GrpcStatus.RESOURCE_EXHAUSTED,
                f"a message of {length} bytes; the limit is {max_message}",
            )
        start = offset + HEADER_SIZE
        if len(view) - start < length:
            raise GrpcError(
                GrpcStatus.INTERNAL,
                f"the body ends inside a message ({len(view) - start} of its {length} bytes)",
            )
        messages.append(bytes(view[start : start + length]))
        offset = start + length
    return messages


def unary_message(data: bytes, *, max_message: int) -> bytes:
    """The one message of a unary call's body; none or several is INTERNAL (as grpc-java says it)."""
    messages = parse_messages(data, max_message=max_message)
    if len(messages) != 1:
        raise GrpcError(
            GrpcStatus.INTERNAL, f"a unary call carries exactly one message; this one has {len(messages)}"
        )
    return messages[0]


# Percent-Byte-Unencoded: %x20-%x24 / %x26-%x7E, space and visible ASCII but '%' (PROTOCOL-HTTP2.md).
_UNENCODED: Final = frozenset(range(0x20, 0x7F)) - {ord("%")}


def encode_grpc_message(text: str) -> bytes:
    """``grpc-message``'s value: ``text`` as UTF-8, percent-encoded where the spec says."""
    return b"".join(
        bytes((byte,)) if byte in _UNENCODED else b"%%%02X" % byte for byte in text.encode("utf-8")
    )


_HEX: Final = frozenset(b"0123456789abcdefABCDEF")


def decode_grpc_message(value: bytes) -> str:
    """``grpc-message`` back to text; never fails (a broken escape stays as it came)."""
    out = bytearray()
    index = 0
    while index < len(value):
        byte = value[index]
        escape = value[index + 1 : index + 3]
        if byte == ord("%") and len(escape) == 2 and all(c in _HEX for c in escape):
            out.append(int(escape, 16))
            index += 3
        else:
            out.append(byte)
            index += 1
    return out.decode("utf-8", errors="replace")


def status_from_trailers(fields: Sequence[tuple[bytes, bytes]]) -> tuple[GrpcStatus, str] | None:
    """``grpc-status`` and ``grpc-message`` from trailers (or a Trailers-Only response's headers).

    None: there is no ``grpc-status``. A code that is not a defined one reads as UNKNOWN.
    """
    found: Mapping[bytes, bytes] = {name.lower(): value for name, value in fields}
    raw = found.get(b"grpc-status")
    if raw is None:
        return None
    message = decode_grpc_message(found.get(b"grpc-message", b""))
    try:
        return GrpcStatus(int(raw.decode("ascii"))), message
    except (UnicodeDecodeError, ValueError):
        said = f"grpc-status {raw!r} is not a status code"
        return GrpcStatus.UNKNOWN, f"{said}: {message}" if message else said


def status_from_http(status: int) -> GrpcStatus:
    """The gRPC status a client infers from an HTTP status that came without ``grpc-status``
    (the gRPC project's doc/http-grpc-status-mapping.md)."""
    return _FROM_HTTP.get(status, GrpcStatus.UNKNOWN)


_FROM_HTTP: Final = {
    400: GrpcStatus.INTERNAL,
    401: GrpcStatus.UNAUTHENTICATED,
    403: GrpcStatus.PERMISSION_DENIED,
    404: GrpcStatus.UNIMPLEMENTED,
    429: GrpcStatus.UNAVAILABLE,
    502: GrpcStatus.UNAVAILABLE,
    503: GrpcStatus.UNAVAILABLE,
    504: GrpcStatus.UNAVAILABLE,
}
