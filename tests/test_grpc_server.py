"""Our server's gRPC over HTTP/2, called by grpcio's client (nobody here wrote it) and by mtls-client --grpc.

grpcio's client blocks, so each call runs on a worker thread (``trio.to_thread``) while our server serves on
the test's event loop; its channel trusts the test CA and presents alice's certificate (or another, or none).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
import trio
from google.protobuf.message import Message

from mtls_ref.client.cli import main as client_main
from mtls_ref.server.grpc_service import MAX_REQUEST_BODY
from mtls_ref.shared.grpc import HEALTH_CHECK, WHOAMI, health_pb2, identity_pb2
from mtls_ref.shared.pki.authority import IssuedFiles

from .support.docs import fenced_blocks, readme_section
from .support.h2_client import H2Client, h2_context
from .support.pki import Pki
from .support.tls import log_events, start_server

pytestmark = pytest.mark.interop

Outcome = Message | tuple[grpc.StatusCode, str]


def grpcio_calls(
    port: int, pki: Pki, creds: IssuedFiles | None, calls: list[tuple[str, Message, type[Message]]]
) -> list[Outcome]:
    """Each call in turn on one grpcio channel: the answer, or the RpcError's code and details."""
    credentials = grpc.ssl_channel_credentials(
        pki.ca_cert.read_bytes(),
        creds.key.read_bytes() if creds else None,
        creds.chain.read_bytes() if creds else None,
    )
    outcomes: list[Outcome] = []
    with grpc.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
        for path, request, answer in calls:
            method: grpc.UnaryUnaryMultiCallable[Message, Message] = channel.unary_unary(
                path,
                request_serializer=lambda message: message.SerializeToString(),
                response_deserializer=answer.FromString,
            )
            try:
                outcomes.append(method(request, timeout=5))
            except grpc.RpcError as exc:
                assert isinstance(exc, grpc.Call)
                outcomes.append((exc.code(), exc.details() or ""))
    return outcomes


CHECK = (HEALTH_CHECK, health_pb2.HealthCheckRequest(), health_pb2.HealthCheckResponse)
WHOAMI_CALL = (WHOAMI, identity_pb2.WhoAmIRequest(), identity_pb2.WhoAmIResponse)
SERVING = health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


async def serve_and_call(
    pki: Pki, creds: IssuedFiles | None, calls: list[tuple[str, Message, type[Message]]], **changes: Any
) -> tuple[list[Outcome], list[dict[str, Any]]]:
    """Our server (with ``changes`` to its config), grpcio's calls against it, and its connection log."""
    async with trio.open_nursery() as nursery:
        server, port, log = await start_server(nursery, pki, **changes)
        with trio.fail_after(20):
            outcomes = await trio.to_thread.run_sync(grpcio_calls, port, pki, creds, calls)
        server.shutdown()
    return outcomes, log_events(log, "connection")


@pytest.mark.usefixtures("tls_engine")
async def test_grpcio_checks_health_and_asks_whoami(pki: Pki) -> None:
    """Check says SERVING; WhoAmI names alice as /whoami does, over TLS 1.3 and h2."""
    outcomes, connections = await serve_and_call(pki, pki.client, [CHECK, WHOAMI_CALL])
    assert outcomes[0] == SERVING
    who = outcomes[1]
    assert isinstance(who, identity_pb2.WhoAmIResponse), who
    assert who.spiffe_id == "spiffe://mtls-ref.test/alice"
    assert who.subject.endswith("CN=alice") and who.tls_version == "TLSv1.3"
    assert "URI:spiffe://mtls-ref.test/alice" in who.sans
    assert [(c["outcome"], c["protocol"]) for c in connections] == [("accepted", "h2")]


@pytest.mark.usefixtures("tls_engine")
@pytest.mark.parametrize(
    ("who", "reason"),
    [
        ("mallory", "the client's certificate was not issued by a CA we trust"),
        ("nobody", "the client sent no certificate; this server requires one"),
    ],
)
async def test_a_wrong_or_missing_certificate_fails_the_channel(pki: Pki, who: str, reason: str) -> None:
    """grpcio's call fails UNAVAILABLE (gRPC core does not show the alert); our log line names the cause."""
    creds = pki.foreign_client if who == "mallory" else None
    outcomes, connections = await serve_and_call(pki, creds, [CHECK])
    [outcome] = outcomes
    assert isinstance(outcome, tuple), outcome
    code, details = outcome
    assert code is grpc.StatusCode.UNAVAILABLE
    assert details.startswith("failed to connect to all addresses"), details
    assert connections and all(c["outcome"] == "rejected" for c in connections)
    assert connections[0]["reason"].startswith(reason), connections[0]["reason"]


async def test_the_allow_list_refuses_whoami_but_not_the_health_check(pki: Pki) -> None:
    """Not on the allow-list: Check still says SERVING (a probe's question); WhoAmI is PERMISSION_DENIED,
    naming the identity and the kinds of name that count; the log line says why."""
    outcomes, connections = await serve_and_call(pki, pki.client, [CHECK, WHOAMI_CALL], allow=("CN:bob",))
    assert outcomes[0] == SERVING
    assert outcomes[1] == (
        grpc.StatusCode.PERMISSION_DENIED,
        "spiffe://mtls-ref.test/alice is not allowed: no allow rule matched identity "
        "[CN:alice, email:alice@mtls-ref.test, URI:spiffe://mtls-ref.test/alice]; "
        "this server admits by CN name",
    )
    [connection] = connections
    assert connection["outcome"] == "forbidden"
    assert connection["reason"].startswith("no allow rule matched identity")


async def test_a_refused_client_gets_permission_denied_for_any_body_or_method(pki: Pki) -> None:
    """Refused, a WhoAmI with a body over the bound, or sent as GET, is PERMISSION_DENIED (not
    RESOURCE_EXHAUSTED, not 405); Check with that body is still RESOURCE_EXHAUSTED, as for anyone."""
    grpc_type = (("content-type", "application/grpc"),)
    large = b"\x00" * (MAX_REQUEST_BODY + 1)
    async with trio.open_nursery() as nursery:
        server, port, log = await start_server(nursery, pki, allow=("CN:bob",))
        with trio.fail_after(10):
            client = await H2Client.open(port, h2_context(pki))
            answers = [
                await client.request(WHOAMI, method="POST", body=large, extra=grpc_type),
                await client.request(WHOAMI, method="GET", extra=grpc_type),
                await client.request(HEALTH_CHECK, method="POST", body=large, extra=grpc_type),
            ]
            await client.aclose()
        server.shutdown()
    statuses = [(answer.headers[b":status"], answer.trailers[b"grpc-status"]) for answer in answers]
    assert statuses == [(b"200", b"7"), (b"200", b"7"), (b"200", b"8")]
    [connection] = log_events(log, "connection")
    outcome = (connection["outcome"], connection["code"], connection["requests"])
    assert outcome == ("forbidden", "allow-list", 3)


async def test_unknown_methods_and_large_bodies_are_grpc_statuses(pki: Pki) -> None:
    """An unknown method is UNIMPLEMENTED; a request over the body bound is RESOURCE_EXHAUSTED, unread."""
    large = health_pb2.HealthCheckRequest(service="x" * MAX_REQUEST_BODY)
    outcomes, _ = await serve_and_call(
        pki,
        pki.client,
        [
            ("/grpc.health.v1.Health/Watch", health_pb2.HealthCheckRequest(), health_pb2.HealthCheckResponse),
            (HEALTH_CHECK, large, health_pb2.HealthCheckResponse),
            (
                HEALTH_CHECK,
                health_pb2.HealthCheckRequest(service="billing.v1.Ledger"),
                health_pb2.HealthCheckResponse,
            ),
        ],
    )
    assert outcomes[0] == (
        grpc.StatusCode.UNIMPLEMENTED,
        "no method '/grpc.health.v1.Health/Watch' here; "
        "this server serves /grpc.health.v1.Health/Check and /mtls_ref.v1.Identity/WhoAmI",
    )
    assert outcomes[1] == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        f"a request body over {MAX_REQUEST_BODY} bytes: this server takes messages of 4096 bytes at most",
    )
    assert outcomes[2] == (grpc.StatusCode.NOT_FOUND, "unknown service 'billing.v1.Ledger'")


@pytest.mark.usefixtures("tls_engine")
async def test_mtls_client_grpc_against_our_server(pki: Pki, capsys: pytest.CaptureFixture[str]) -> None:
    """`mtls-client --grpc --trace off` (as the README shows it): SERVING and alice's identity, exit 0; with
    alice off the allow-list, PERMISSION_DENIED and exit 6."""

    def argv(port: int) -> list[str]:
        return [
            *("--host", "127.0.0.1", "--port", str(port), "--server-name", "localhost"),
            *("--cert", str(pki.client.chain), "--key", str(pki.client.key), "--ca", str(pki.ca_cert)),
            *("--grpc", "--trace", "off", "--timeout", "5"),
        ]

    run: Callable[[list[str]], int] = client_main
    async with trio.open_nursery() as nursery:
        server, port, _ = await start_server(nursery, pki)
        refusing, refusing_port, _ = await start_server(nursery, pki, allow=("CN:bob",))
        with trio.fail_after(20):
            served = await trio.to_thread.run_sync(run, argv(port))
            refused = await trio.to_thread.run_sync(run, argv(refusing_port))
        server.shutdown()
        refusing.shutdown()
    out = capsys.readouterr().out
    assert (served, refused) == (0, 6), out
    assert f"> {HEALTH_CHECK}\n< SERVING\n> {WHOAMI}\n< {{" in out
    assert '"spiffe_id": "spiffe://mtls-ref.test/alice"' in out
    assert f"result: FAILED (forbidden): {WHOAMI} failed with gRPC status PERMISSION_DENIED: " in out


async def test_the_readme_grpcio_script_runs_as_written(pki: Pki, tmp_path: Path) -> None:
    """The README's grpc_check.py, as written but for the port, run by Python in a folder whose certs/ holds
    the test PKI's CA, client key and chain: it prints SERVING and the client's SPIFFE ID, the lines the
    README shows after `python grpc_check.py` (there for the demo client)."""
    blocks = fenced_blocks(readme_section("HTTP/2 and gRPC"))
    [script] = ["\n".join(lines) for language, lines in blocks if language == "python"]
    [shown] = [
        lines for language, lines in blocks if language == "console" and "$ python grpc_check.py" in lines
    ]
    assert shown == ["$ python grpc_check.py", "SERVING", "spiffe://mtls-ref.test/demo-client"]
    assert script.count('"localhost:8443"') == 1
    (tmp_path / "certs").mkdir()
    for name, source in (
        ("ca.pem", pki.ca_cert),
        ("client.key", pki.client.key),
        ("client-chain.pem", pki.client.chain),
    ):
        (tmp_path / "certs" / name).symlink_to(source)
    async with trio.open_nursery() as nursery:
        server, port, _ = await start_server(nursery, pki)
        (tmp_path / "grpc_check.py").write_text(script.replace("localhost:8443", f"localhost:{port}"))
        with trio.fail_after(30):
            done = await trio.run_process(
                [sys.executable, "grpc_check.py"],
                cwd=tmp_path,
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
        server.shutdown()
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().splitlines() == ["SERVING", "spiffe://mtls-ref.test/alice"]
