"""The server's gRPC service, in memory: each route's answer and every refusal as a gRPC status."""

from __future__ import annotations

import pytest
from cryptography import x509

from mtls_ref.server.grpc_service import GrpcAnswer, answer_grpc, grpc_error, is_grpc_request
from mtls_ref.server.views import SessionInfo, forbidden_document, whoami_document
from mtls_ref.shared.grpc import (
    GrpcStatus,
    decode_grpc_message,
    frame_message,
    health_pb2,
    identity_pb2,
    parse_messages,
)
from mtls_ref.shared.tls.identity import AllowList, Decision, PeerIdentity, identity_from_certificate

from .support.pki import Pki

ALICE = PeerIdentity(
    subject="CN=alice",
    common_names=("alice",),
    uris=("spiffe://mtls-ref.test/alice",),
    serial="01",
    sha256="00",
)
GRPC = ((b":method", b"POST"), (b"content-type", b"application/grpc"), (b"te", b"trailers"))
CHECK = b"/grpc.health.v1.Health/Check"
WHOAMI = b"/mtls_ref.v1.Identity/WhoAmI"


def session(identity: PeerIdentity = ALICE, *, allow: tuple[str, ...] = ()) -> SessionInfo:
    return SessionInfo(
        identity=identity,
        decision=AllowList.parse(allow).decide(identity),
        tls_version="TLSv1.3",
        cipher="TLS_AES_256_GCM_SHA384",
        ca_subject="CN=ca",
    )


def check(service: str) -> bytes:
    return frame_message(health_pb2.HealthCheckRequest(service=service).SerializeToString())


def message(answer: GrpcAnswer) -> str:
    return decode_grpc_message(dict(answer.trailers).get(b"grpc-message", b""))


def reply(answer: GrpcAnswer) -> bytes:
    assert answer.headers == ((b":status", b"200"), (b"content-type", b"application/grpc"))
    assert answer.trailers == ((b"grpc-status", b"0"),)
    [payload] = parse_messages(answer.body, max_message=1 << 16)
    return payload


@pytest.mark.parametrize("service", ["", "mtls_ref.v1.Identity"])
def test_health_check_serves_the_server_and_the_identity_service(service: str) -> None:
    """Check answers SERVING (the bytes 08 01) for "" and for the WhoAmI service's name."""
    assert reply(answer_grpc(CHECK, GRPC, check(service), session())) == b"\x08\x01"


def test_health_check_of_an_unknown_service_is_not_found() -> None:
    """The health checking protocol: an unknown service fails with NOT_FOUND, naming it."""
    answer = answer_grpc(CHECK, GRPC, check("billing.v1.Ledger"), session())
    assert answer.status is GrpcStatus.NOT_FOUND
    assert answer.body == b""
    assert message(answer) == "unknown service 'billing.v1.Ledger'"


def test_whoami_answers_the_whoami_document_field_for_field(pki: Pki) -> None:
    """WhoAmI carries what /whoami's JSON says, for a real client certificate: nulls as absent fields."""
    cert = x509.load_pem_x509_certificate(pki.client.cert.read_bytes())
    info = session(identity_from_certificate(cert))
    answer = identity_pb2.WhoAmIResponse.FromString(
        reply(answer_grpc(WHOAMI, GRPC, frame_message(b""), info))
    )
    document = whoami_document(info)
    assert answer.subject == document["subject"] == cert.subject.rfc4514_string()
    assert list(answer.sans) == document["sans"]
    assert answer.spiffe_id == document["spiffe_id"] == "spiffe://mtls-ref.test/alice"
    assert (answer.serial, answer.sha256, answer.key, answer.not_after) == (
        document["serial"],
        document["sha256"],
        document["key"],
        document["not_after"],
    )
    assert (answer.tls_version, answer.cipher, answer.session_resumed) == (
        "TLSv1.3",
        "TLS_AES_256_GCM_SHA384",
        False,
    )
    assert list(answer.verified_chain) == []  # the document's null: unknown
    assert {f.name for f in identity_pb2.WhoAmIResponse.DESCRIPTOR.fields} == set(document)


def test_an_identity_without_spiffe_id_leaves_the_field_absent() -> None:
    """A null in the document is an absent optional field, not an empty string."""
    info = session(PeerIdentity(subject="CN=bob", common_names=("bob",), serial="02", sha256="11"))
    answer = identity_pb2.WhoAmIResponse.FromString(
        reply(answer_grpc(WHOAMI, GRPC, frame_message(b""), info))
    )
    assert not answer.HasField("spiffe_id")
    assert answer.HasField("tls_version")


def test_the_allow_list_refusal_is_permission_denied_in_the_forbidden_words() -> None:
    """A refused client's WhoAmI: PERMISSION_DENIED naming the identity and the kinds of rule that count."""
    info = session(allow=("CN:bob", "DNS:*.example.org"))
    answer = answer_grpc(WHOAMI, GRPC, frame_message(b""), info)
    assert answer.status is GrpcStatus.PERMISSION_DENIED
    refusal = forbidden_document(info)
    assert message(answer) == f"spiffe://mtls-ref.test/alice is not allowed: {refusal['reason']}"
    assert "this server admits by CN, DNS name" in message(answer)
    assert "CN:bob" not in message(answer)  # the kinds, never the rules


def test_a_refused_client_learns_nothing_of_the_methods() -> None:
    """Refused, an unknown method is PERMISSION_DENIED too, not UNIMPLEMENTED."""
    answer = answer_grpc(b"/x.Y/Z", GRPC, frame_message(b""), session(allow=("CN:bob",)))
    assert answer.status is GrpcStatus.PERMISSION_DENIED


@pytest.mark.parametrize("method", [b"GET", b"PUT"])
def test_a_refused_client_gets_permission_denied_whatever_the_method(method: bytes) -> None:
    """Refused, a call that is not a POST is PERMISSION_DENIED too, not the 405 an allowed client gets."""
    headers = ((b":method", method), (b"content-type", b"application/grpc"))
    answer = answer_grpc(WHOAMI, headers, b"", session(allow=("CN:bob",)))
    assert answer.headers[0] == (b":status", b"200")
    assert answer.status is GrpcStatus.PERMISSION_DENIED


def test_health_check_answers_a_client_the_allow_list_refuses() -> None:
    """A probe's certificate need not be on the allow-list: Check still says SERVING."""
    assert reply(answer_grpc(CHECK, GRPC, check(""), session(allow=("CN:bob",)))) == b"\x08\x01"


@pytest.mark.parametrize("path", [b"/grpc.health.v1.Health/Watch", b"/mtls_ref.v1.Identity/Forget", b"/"])
def test_an_unknown_method_is_unimplemented(path: bytes) -> None:
    """Watch and List (declared, not served) and any other path: UNIMPLEMENTED, naming what is served."""
    answer = answer_grpc(path, GRPC, check(""), session())
    assert answer.status is GrpcStatus.UNIMPLEMENTED
    assert message(answer).endswith(
        "this server serves /grpc.health.v1.Health/Check and /mtls_ref.v1.Identity/WhoAmI"
    )


def test_a_message_protobuf_cannot_read_is_invalid_argument() -> None:
    """A field tag 0 is no protobuf: INVALID_ARGUMENT naming the message type expected."""
    answer = answer_grpc(CHECK, GRPC, frame_message(b"\x00\x00"), session())
    assert answer.status is GrpcStatus.INVALID_ARGUMENT
    assert message(answer).startswith("not a grpc.health.v1.HealthCheckRequest: ")


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"", GrpcStatus.INTERNAL),  # no message at all
        (frame_message(b"") * 2, GrpcStatus.INTERNAL),
        (b"\x01\x00\x00\x00\x00", GrpcStatus.INTERNAL),  # compressed, not negotiated
        (b"\x00\x00\x00\x10\x01", GrpcStatus.RESOURCE_EXHAUSTED),  # 4096 + 1 bytes claimed
        (b"\x00\x00\x00\x00\x05ab", GrpcStatus.INTERNAL),  # cut short
    ],
)
def test_a_body_that_breaks_the_framing_gets_the_framings_status(body: bytes, status: GrpcStatus) -> None:
    """Framing errors answer with the status the framing gives them, and no message."""
    answer = answer_grpc(WHOAMI, GRPC, body, session())
    assert (answer.status, answer.body) == (status, b"")


def test_a_request_that_is_not_a_post_is_405_internal() -> None:
    """GET is no gRPC call: HTTP 405 with INTERNAL, as grpc-go answers it."""
    headers = ((b":method", b"GET"), (b"content-type", b"application/grpc"))
    answer = answer_grpc(CHECK, headers, b"", session())
    assert answer.headers[0] == (b":status", b"405")
    assert answer.status is GrpcStatus.INTERNAL
    assert message(answer) == "gRPC calls are POST, not GET"


def test_a_request_that_is_not_grpc_is_415_without_a_grpc_status() -> None:
    """A wrong content-type is HTTP 415 and ends with its body: no client reads a gRPC status into it."""
    answer = answer_grpc(
        CHECK, ((b":method", b"POST"), (b"content-type", b"application/json")), b"", session()
    )
    assert answer.headers[0] == (b":status", b"415")
    assert (answer.trailers, answer.status) == ((), None)
    assert not is_grpc_request(((b":method", b"POST"), (b"content-type", b"application/json")))
    assert is_grpc_request(GRPC)


def test_grpc_error_percent_encodes_its_message() -> None:
    """The HTTP/2 layer's own refusals (a body over the limit) carry a percent-encoded grpc-message."""
    answer = grpc_error(GrpcStatus.RESOURCE_EXHAUSTED, "body over 4101 bytes: 100% too much")
    assert answer.trailers == (
        (b"grpc-status", b"8"),
        (b"grpc-message", b"body over 4101 bytes: 100%25 too much"),
    )
    assert answer.headers == ((b":status", b"200"), (b"content-type", b"application/grpc"))


def test_a_decision_without_rules_lets_every_verified_client_call() -> None:
    """No allow-list: WhoAmI answers (the decision comes from SessionInfo, not from this module)."""
    info = SessionInfo(
        identity=ALICE,
        decision=Decision(allowed=True, rule=None, reason="no allow-list"),
        tls_version=None,
        cipher=None,
        ca_subject="CN=ca",
    )
    answer = identity_pb2.WhoAmIResponse.FromString(
        reply(answer_grpc(WHOAMI, GRPC, frame_message(b""), info))
    )
    assert not answer.HasField("tls_version")
