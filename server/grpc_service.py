"""The server's gRPC service, sans-I/O: one call's path, headers and body in, its answer out.

Theory of operation
-------------------
The HTTP/2 layer collects a call (``:path``, the request headers, the whole
request body, bounded) and sends back a :class:`GrpcAnswer`: the response
headers, the framed response message (empty when the call failed) and the
trailers, which carry the gRPC status. Nothing here does I/O, so every answer is
tested in memory.

Every refusal is a gRPC status with a message, decided in this order:

1. ``grpc.health.v1.Health/Check`` is answered for every client whose
   certificate verified, the allow-list notwithstanding. A health probe
   (grpc_health_probe, a Kubernetes gRPC probe) asks whether the server
   serves, not what this identity may do; refusing it would make a probe with a
   certificate of its own declare a healthy server dead, and SERVING tells a
   refused client nothing the handshake did not;
2. a client the allow-list refuses gets PERMISSION_DENIED for everything else,
   named and explained as the HTTP 403 and the line protocol's ``ERR
   forbidden`` explain it (``forbidden_document``), before its method, framing
   or body size is even looked at (its body is not read): a refused client
   learns nothing of what the server offers, as routes' 403 comes first too;
3. not a POST: HTTP 405 with INTERNAL, as grpc-go answers it; a content-type
   that is not ``application/grpc``: HTTP 415 and no gRPC status, as
   PROTOCOL-HTTP2.md says, so no plain HTTP client takes a gRPC error for 200 OK;
4. an unknown method is UNIMPLEMENTED; a body that breaks the framing gets the
   status :mod:`~mtls_ref.shared.grpc.framing` gives it; a message protobuf
   cannot parse is INVALID_ARGUMENT; Check on an unknown service is NOT_FOUND
   (the health checking protocol).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, TypeVar

from google.protobuf.message import DecodeError, Message

from mtls_ref.shared.grpc import (
    CONTENT_TYPE,
    HEADER_SIZE,
    HEALTH_CHECK,
    IDENTITY_SERVICE,
    WHOAMI,
    GrpcError,
    GrpcStatus,
    encode_grpc_message,
    frame_message,
    health_pb2,
    identity_pb2,
    is_grpc_content_type,
    unary_message,
)

from .h2_app import AppRoute, Response
from .routes import RequestHead
from .views import SessionInfo, forbidden_document, whoami_document

__all__ = [
    "MAX_REQUEST_MESSAGE",
    "GrpcAnswer",
    "answer_grpc",
    "grpc_error",
    "grpc_route",
    "is_grpc_request",
]

# Our requests are a service name at most (HealthCheckRequest) or empty (WhoAmIRequest): 4 KiB is
# generous, and the HTTP/2 layer bounds the body at this plus the 5-byte prefix before it is parsed.
MAX_REQUEST_MESSAGE: Final = 4096
# The services Check reports SERVING for: "" is the server as a whole (the health checking protocol).
SERVING: Final = frozenset({"", IDENTITY_SERVICE})

Headers = tuple[tuple[bytes, bytes], ...]
M = TypeVar("M", bound=Message)


@dataclass(frozen=True, slots=True)
class GrpcAnswer:
    """One call's answer: headers, then the body (framed messages; may be empty), then the trailers.

    Empty trailers: the stream ends with the body (only the 415 refusal, which is not gRPC's).
    """

    headers: Headers
    body: bytes
    trailers: Headers

    @property
    def status(self) -> GrpcStatus | None:
        """The gRPC status the trailers carry (None: none, the 415 refusal)."""
        for name, value in self.trailers:
            if name == b"grpc-status":
                return GrpcStatus(int(value))
        return None


_OK_HEADERS: Final = ((b":status", b"200"), (b"content-type", CONTENT_TYPE))


def is_grpc_request(headers: Sequence[tuple[bytes, bytes]]) -> bool:
    """Whether a request's content-type says gRPC (what the HTTP/2 layer dispatches on)."""
    return any(name == b"content-type" and is_grpc_content_type(value) for name, value in headers)


def grpc_error(status: GrpcStatus, message: str, *, http_status: int = 200) -> GrpcAnswer:
    """A call that failed with ``status``: no message, the status and its words in the trailers."""
    return GrpcAnswer(
        headers=((b":status", str(http_status).encode()), (b"content-type", CONTENT_TYPE)),
        body=b"",
        trailers=_status_trailers(status, message),
    )


def answer_grpc(
    path: bytes, headers: Sequence[tuple[bytes, bytes]], body: bytes, info: SessionInfo
) -> GrpcAnswer:
    """The answer to one unary call on ``path`` (the order of checks: the module docstring)."""
    name = path.decode("utf-8", "replace")
    if _refused(name, info):
        return _refusal(info)
    method = next((value for name, value in headers if name == b":method"), b"")
    if method != b"POST":
        shown = method.decode("ascii", "replace")
        return grpc_error(GrpcStatus.INTERNAL, f"gRPC calls are POST, not {shown}", http_status=405)
    if not is_grpc_request(headers):
        return GrpcAnswer(
            headers=((b":status", b"415"), (b"content-type", b"text/plain; charset=utf-8")),
            body=b"gRPC calls carry content-type application/grpc\n",
            trailers=(),
        )
    handler = _METHODS.get(name)
    if handler is None:
        served = " and ".join(_METHODS)
        return grpc_error(GrpcStatus.UNIMPLEMENTED, f"no method {name!r} here; this server serves {served}")
    try:
        request = unary_message(body, max_message=MAX_REQUEST_MESSAGE)
    except GrpcError as exc:
        return grpc_error(exc.status, exc.message)
    return handler(request, info)


def _refused(name: str, info: SessionInfo) -> bool:
    """Whether the allow-list refuses this call (Check is answered for every verified client)."""
    return name != HEALTH_CHECK and not info.decision.allowed


def _refusal(info: SessionInfo) -> GrpcAnswer:
    refusal = forbidden_document(info)
    return grpc_error(
        GrpcStatus.PERMISSION_DENIED, f"{refusal['identity']} is not allowed: {refusal['reason']}"
    )


def _check(request: bytes, info: SessionInfo) -> GrpcAnswer:
    asked = _parse(health_pb2.HealthCheckRequest, request)
    if isinstance(asked, GrpcAnswer):
        return asked
    if asked.service not in SERVING:
        return grpc_error(GrpcStatus.NOT_FOUND, f"unknown service {asked.service!r}")
    return _reply(health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING))


def _whoami(request: bytes, info: SessionInfo) -> GrpcAnswer:
    asked = _parse(identity_pb2.WhoAmIRequest, request)
    if isinstance(asked, GrpcAnswer):
        return asked
    document = whoami_document(info)
    chain = document.pop("verified_chain") or ()  # None (unknown) is an empty list on the wire
    # A null of the document is an absent field (proto3 optional): the same document, field for field.
    fields = {key: value for key, value in document.items() if value is not None}
    return _reply(identity_pb2.WhoAmIResponse(**fields, verified_chain=chain))


def _parse(kind: type[M], data: bytes) -> M | GrpcAnswer:
    """``data`` as a ``kind``, or the INVALID_ARGUMENT answer when protobuf cannot read it."""
    try:
        return kind.FromString(data)
    except DecodeError as exc:
        return grpc_error(GrpcStatus.INVALID_ARGUMENT, f"not a {kind.DESCRIPTOR.full_name}: {exc}")


def _reply(message: Message) -> GrpcAnswer:
    return GrpcAnswer(
        headers=_OK_HEADERS,
        body=frame_message(message.SerializeToString()),
        trailers=_status_trailers(GrpcStatus.OK, ""),
    )


def _status_trailers(status: GrpcStatus, message: str) -> Headers:
    trailers: Headers = ((b"grpc-status", str(int(status)).encode()),)
    if message:
        trailers += ((b"grpc-message", encode_grpc_message(message)),)
    return trailers


_METHODS: Final[dict[str, Callable[[bytes, SessionInfo], GrpcAnswer]]] = {
    HEALTH_CHECK: _check,
    WHOAMI: _whoami,
}


# -- the HTTP/2 server's App ---------------------------------------------------------------------------

# The request body we read: one message of MAX_REQUEST_MESSAGE and its prefix; more is refused unread.
MAX_REQUEST_BODY: Final = MAX_REQUEST_MESSAGE + HEADER_SIZE


def grpc_route(head: RequestHead, fields: Headers, info: SessionInfo) -> AppRoute | None:
    """gRPC calls (content-type ``application/grpc``) to :func:`answer_grpc`; other requests to the routes.

    The body is bounded at :data:`MAX_REQUEST_BODY`; a larger one is RESOURCE_EXHAUSTED. A refused
    call's body is not read: its first byte gets the PERMISSION_DENIED it would get whole.
    """
    if not is_grpc_request(fields):
        return None
    if _refused(head.path.decode("utf-8", "replace"), info):
        refused = _response(_refusal(info))
        return AppRoute(handler=lambda _body: refused, max_body=0, too_large=refused)
    request = ((b":method", head.method), *fields)
    return AppRoute(
        handler=lambda body: _response(answer_grpc(head.path, request, body, info)),
        max_body=MAX_REQUEST_BODY,
        too_large=_TOO_LARGE,
    )


def _response(answer: GrpcAnswer) -> Response:
    """The HTTP/2 layer's response: ``:status`` apart, the other fields as they are."""
    return Response(
        status=int(dict(answer.headers)[b":status"]),
        headers=tuple((name, value) for name, value in answer.headers if not name.startswith(b":")),
        body=answer.body,
        trailers=answer.trailers,
    )


_TOO_LARGE: Final = _response(
    grpc_error(
        GrpcStatus.RESOURCE_EXHAUSTED,
        f"a request body over {MAX_REQUEST_BODY} bytes: this server takes messages of "
        f"{MAX_REQUEST_MESSAGE} bytes at most",
    )
)
