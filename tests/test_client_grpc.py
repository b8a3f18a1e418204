"""``mtls-client --grpc`` against a grpcio server (a peer nobody here wrote) requiring client certificates.

grpcio's server runs on its own threads: a sync fixture starts it on 127.0.0.1, port 0, with our generated
messages behind ``grpc.method_handlers_generic_handler``, and stops it after the test.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
import trio
from google.protobuf.message import Message

from mtls_ref.client.cli import main as client_main
from mtls_ref.client.h2_exchange import ALPN_OFFER
from mtls_ref.client.report import render_report
from mtls_ref.client.session import ClientReport, Exit, run_client
from mtls_ref.shared.core.config import ClientConfig
from mtls_ref.shared.grpc import HEALTH_CHECK, WHOAMI, health_pb2, identity_pb2
from mtls_ref.shared.tls.context import client_context

from .support.pki import Pki
from .support.tls import client_config, no_cert

pytestmark = pytest.mark.interop


@dataclass(slots=True)
class GrpcPeer:
    """The running grpcio server's port, and what its WhoAmI refuses with (None: it answers)."""

    port: int
    deny: tuple[grpc.StatusCode, str] | None = None


def check(
    request: health_pb2.HealthCheckRequest, context: grpc.ServicerContext
) -> health_pb2.HealthCheckResponse:
    return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


def unary_service(
    service: str,
    method: str,
    behaviour: Callable[[Any, grpc.ServicerContext], Message],
    request: type[Message],
) -> grpc.GenericRpcHandler:
    """One service of one unary method, taking ``request`` messages, as grpcio serves it."""
    handler: grpc.RpcMethodHandler[Any, Message] = grpc.unary_unary_rpc_method_handler(
        behaviour,
        request_deserializer=request.FromString,
        response_serializer=lambda message: message.SerializeToString(),
    )
    return grpc.method_handlers_generic_handler(service, {method: handler})


@pytest.fixture
def grpc_peer(pki: Pki) -> Iterator[GrpcPeer]:
    """grpcio with ssl_server_credentials(require_client_auth=True), trusting the test CA."""
    peer = GrpcPeer(port=0)

    def whoami(
        request: identity_pb2.WhoAmIRequest, context: grpc.ServicerContext
    ) -> identity_pb2.WhoAmIResponse:
        if peer.deny is not None:
            context.abort(*peer.deny)
        [name] = context.auth_context()["x509_common_name"]  # what grpcio verified
        assert isinstance(name, bytes)
        return identity_pb2.WhoAmIResponse(subject=f"CN={name.decode()}")

    handlers = [
        unary_service("grpc.health.v1.Health", "Check", check, health_pb2.HealthCheckRequest),
        unary_service("mtls_ref.v1.Identity", "WhoAmI", whoami, identity_pb2.WhoAmIRequest),
    ]
    credentials = grpc.ssl_server_credentials(
        [(pki.server.key.read_bytes(), pki.server.chain.read_bytes())],
        root_certificates=pki.ca_cert.read_bytes(),
        require_client_auth=True,
    )
    with futures.ThreadPoolExecutor(max_workers=2) as executor:
        server = grpc.server(executor, handlers=handlers)
        peer.port = server.add_secure_port("127.0.0.1:0", credentials)
        server.start()
        try:
            yield peer
        finally:
            server.stop(grace=None).wait(timeout=10)


async def call(config: ClientConfig) -> ClientReport:
    with trio.fail_after(15):
        return await run_client(config, client_context(config, alpn=ALPN_OFFER), mode="grpc")


async def test_health_then_whoami_against_grpcio(pki: Pki, grpc_peer: GrpcPeer) -> None:
    """grpcio verifies our certificate, says SERVING, and names us by the CN it verified."""
    report = await call(client_config(pki, port=grpc_peer.port))
    assert report.result is Exit.OK, render_report(report, trace="off")
    assert report.exchanges[0] == (HEALTH_CHECK, "SERVING")
    assert report.exchanges[1][0] == WHOAMI
    assert json.loads(report.exchanges[1][1]) == {"subject": "CN=alice"}
    assert f"> {HEALTH_CHECK}\n< SERVING\n> {WHOAMI}\n< " in render_report(report, trace="off")


async def test_a_certificate_from_another_ca_is_named_though_grpcio_sends_no_alert(
    pki: Pki, grpc_peer: GrpcPeer
) -> None:
    """grpcio hangs up on a certificate it cannot verify, with no alert: the report says that this is how
    gRPC core refuses a certificate, and names the certificate we sent and its issuer."""
    report = await call(client_config(pki, pki.foreign_client, port=grpc_peer.port))
    assert report.result is Exit.PROTOCOL, render_report(report, trace="off")
    assert (report.alert, report.closed_without_alert, report.exchanges) == (None, True, [])
    assert "gRPC servers built on gRPC core (grpcio) refuse a client certificate this way" in report.summary
    assert report.summary.endswith("we sent CN=mallory, issued by O=mtls-ref,CN=Foreign Root CA"), (
        report.summary
    )
    assert report.fix.startswith("check that --cert was issued by a CA the server trusts")
    anonymous = await call(no_cert(client_config(pki, port=grpc_peer.port)))
    assert anonymous.result is Exit.PROTOCOL
    assert anonymous.summary.endswith("we sent no certificate"), anonymous.summary


@pytest.mark.parametrize(
    ("code", "message", "result"),
    [
        (grpc.StatusCode.PERMISSION_DENIED, "CN=alice is not allowed: 100% não", Exit.FORBIDDEN),
        (grpc.StatusCode.UNAUTHENTICATED, "who are you?", Exit.CERT_REJECTED),
        (grpc.StatusCode.UNAVAILABLE, "come back later", Exit.PROTOCOL),
    ],
)
async def test_a_status_other_than_ok_is_named_with_its_message(
    pki: Pki, grpc_peer: GrpcPeer, code: grpc.StatusCode, message: str, result: Exit
) -> None:
    """grpcio aborts WhoAmI: the status's name and its (percent-decoded) message, and its exit code."""
    grpc_peer.deny = (code, message)
    report = await call(client_config(pki, port=grpc_peer.port))
    assert report.result is result, render_report(report, trace="off")
    assert report.exchanges[-1] == (WHOAMI, f"{code.name}: {message}")
    assert report.summary == f"{WHOAMI} failed with gRPC status {code.name}: {message}"


def test_grpc_on_the_command_line(pki: Pki, grpc_peer: GrpcPeer, capsys: pytest.CaptureFixture[str]) -> None:
    """`mtls-client --grpc` prints SERVING and the identity, and exits 0; a refusal prints the status and
    exits 6, as --http does for a 403."""
    argv = [
        *("--host", "127.0.0.1", "--port", str(grpc_peer.port), "--server-name", "localhost"),
        *("--cert", str(pki.client.chain), "--key", str(pki.client.key), "--ca", str(pki.ca_cert)),
        *("--grpc", "--trace", "off", "--timeout", "5"),
    ]
    assert client_main(argv) == 0
    out = capsys.readouterr().out
    assert f'> {HEALTH_CHECK}\n< SERVING\n> {WHOAMI}\n< {{"subject": "CN=alice"}}\n' in out
    assert "result: OK: the server accepted our certificate and answered" in out
    grpc_peer.deny = (grpc.StatusCode.PERMISSION_DENIED, "not you")
    assert client_main(argv) == 6
    out = capsys.readouterr().out
    assert f"result: FAILED (forbidden): {WHOAMI} failed with gRPC status PERMISSION_DENIED: not you" in out
