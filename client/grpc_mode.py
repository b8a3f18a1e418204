"""``mtls-client --grpc``: ``grpc.health.v1.Health/Check``, then ``mtls_ref.v1.Identity/WhoAmI``, over HTTP/2.

Each call is one HTTP/2 request (:mod:`~.h2_exchange`) carrying one framed
protobuf message (:mod:`mtls_ref.shared.grpc`). How a call ended decides the
verdict, in this order:

* an HTTP status other than 200 with no ``grpc-status`` is not gRPC's answer
  but the HTTP server's, judged as ``--http`` judges it (nginx's 400 for a
  missing certificate is a certificate refusal);
* a gRPC status other than OK is reported with its name and message;
  PERMISSION_DENIED is the authorization's refusal (:attr:`Exit.FORBIDDEN`),
  UNAUTHENTICATED the certificate's (:attr:`Exit.CERT_REJECTED`), the rest
  :attr:`Exit.PROTOCOL`;
* OK with a body that is not exactly one well-formed message is a protocol
  error; Check must say SERVING.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, TypeVar

from google.protobuf.json_format import MessageToJson
from google.protobuf.message import DecodeError, Message

from mtls_ref.shared.grpc import (
    HEADER_SIZE,
    HEALTH_CHECK,
    WHOAMI,
    GrpcError,
    GrpcStatus,
    frame_message,
    health_pb2,
    identity_pb2,
    is_grpc_content_type,
    status_from_trailers,
    unary_message,
)

from .channel import Channel
from .h2_exchange import H2Client, H2Response
from .http_mode import judge_status, page_reason
from .outcome import Exit, fail

__all__ = ["exchange"]

# A WhoAmI answer is a few hundred bytes; 64 KiB leaves room for a long chain of subjects.
MAX_MESSAGE: Final = 65536
_STATUS_EXIT: Final = {
    GrpcStatus.PERMISSION_DENIED: Exit.FORBIDDEN,
    GrpcStatus.UNAUTHENTICATED: Exit.CERT_REJECTED,
}
_NOT_GRPC_FIX: Final = "is this a gRPC server? for other HTTP/2 servers use --http2"

M = TypeVar("M", bound=Message)


async def exchange(channel: Channel, messages: Sequence[str]) -> None:
    """Check the server's health, then ask who it says we are; ``messages`` are not used."""
    client = H2Client(channel)
    await client.start()
    report = channel.report
    health = await _call(
        client, channel, HEALTH_CHECK, health_pb2.HealthCheckRequest(), health_pb2.HealthCheckResponse
    )
    serving = health_pb2.HealthCheckResponse.ServingStatus.Name(health.status)
    report.exchanges.append((HEALTH_CHECK, serving))
    if health.status != health_pb2.HealthCheckResponse.SERVING:
        raise fail(
            report,
            Exit.PROTOCOL,
            summary=f"the server's health check says {serving}, not SERVING",
            fix="see the server's log",
        )
    identity = await _call(client, channel, WHOAMI, identity_pb2.WhoAmIRequest(), identity_pb2.WhoAmIResponse)
    report.exchanges.append((WHOAMI, MessageToJson(identity, preserving_proto_field_name=True, indent=None)))
    await client.close()


async def _call(client: H2Client, channel: Channel, path: str, request: Message, kind: type[M]) -> M:
    """One unary call: its answer as a ``kind``, or the verdict of how it failed."""
    timeout_ms = max(1, int(channel.config.timeout * 1000))
    response = await client.request(
        "POST",
        path,
        # grpc-timeout: the server may give up when we will (at most 8 digits, PROTOCOL-HTTP2.md).
        [("content-type", "application/grpc"), ("te", "trailers"), ("grpc-timeout", f"{timeout_ms}m")],
        frame_message(request.SerializeToString()),
        max_body=MAX_MESSAGE + HEADER_SIZE,
    )
    status = status_from_trailers(response.trailers or response.headers)  # Trailers-Only: in the headers
    report = channel.report
    if status is None:
        if response.status != 200:
            reason = page_reason(response.body)
            report.http_status = str(response.status) + (f": {reason}" if reason else "")
            report.exchanges.append((path, f"HTTP/2 {report.http_status}"))
            judge_status(report, response.status, f"POST {path}")
        raise fail(report, Exit.PROTOCOL, summary=f"{path}: {_not_grpc(response)}", fix=_NOT_GRPC_FIX)
    code, message = status
    if code is not GrpcStatus.OK:
        said = f"{code.name}" + (f": {message}" if message else "")
        report.exchanges.append((path, said))
        raise fail(
            report,
            _STATUS_EXIT.get(code, Exit.PROTOCOL),
            summary=f"{path} failed with gRPC status {said}",
            fix=_fix(code),
        )
    try:
        return kind.FromString(unary_message(response.body, max_message=MAX_MESSAGE))
    except (GrpcError, DecodeError) as exc:
        raise fail(
            report, Exit.PROTOCOL, summary=f"{path}: a bad answer from the server: {exc}", fix=_NOT_GRPC_FIX
        ) from exc


def _not_grpc(response: H2Response) -> str:
    content_type = dict(response.headers).get(b"content-type", b"")
    if not is_grpc_content_type(content_type):
        shown = content_type.decode("latin-1")
        return f"HTTP/2 {response.status} with content-type {shown!r}, not a gRPC answer"
    return f"HTTP/2 {response.status} without a grpc-status"


def _fix(code: GrpcStatus) -> str:
    if code is GrpcStatus.PERMISSION_DENIED:
        return "ask for this identity to be allowed (the message says which kinds of name count)"
    if code is GrpcStatus.UNAUTHENTICATED:
        return "present a valid client certificate from the CA the server trusts"
    if code is GrpcStatus.UNIMPLEMENTED:
        return "the server does not serve this method: is it an mtls-ref gRPC server?"
    return "see the server's log"
