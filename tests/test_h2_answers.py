"""Every header field the HTTP/2 server can send is accepted, as sent, by a strict h2 client.

The server turns h2's outbound checks off (its header lists are its own, and
checking them on every answer cost a sixth of a small request's CPU), so this is
where they are checked: each kind of answer goes out through the server's own h2
configuration into an h2 client that validates what it receives (h2's default).
"""

from __future__ import annotations

import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import ResponseReceived, TrailersReceived
from h2.exceptions import ProtocolError

from mtls_ref.server.grpc_service import grpc_route
from mtls_ref.server.h2_answers import H2_CONFIG, h2_fields
from mtls_ref.server.routes import (
    REMEMBERED,
    TOO_LARGE,
    Answer,
    ConnectionAnswers,
    RequestHead,
    SendBytes,
    plan,
    sink_answer,
)
from mtls_ref.server.views import SessionInfo
from mtls_ref.shared.grpc import frame_message, health_pb2
from mtls_ref.shared.tls.identity import AllowList, PeerIdentity

ALICE = PeerIdentity(subject="CN=alice", common_names=("alice",), serial="01", sha256="00")
HTML = b"text/html"
REQUESTS = [
    (b"GET", b"/", b""),
    (b"GET", b"/", HTML),
    (b"HEAD", b"/whoami", b""),
    (b"GET", b"/healthz", b""),
    (b"GET", b"/nowhere", b""),
    (b"DELETE", b"/whoami", b""),
    (b"GET", b"/bytes/x", b""),
    (b"GET", b"/bytes/10", b""),
    (b"POST", b"/sink", b""),
]
GRPC = ((b"content-type", b"application/grpc"), (b"te", b"trailers"))


def session(*, allowed: bool) -> SessionInfo:
    return SessionInfo(
        identity=ALICE,
        decision=AllowList.parse(() if allowed else ("CN:bob",)).decide(ALICE),
        tls_version="TLSv1.3",
        cipher="TLS_AES_256_GCM_SHA384",
        ca_subject="CN=ca",
    )


def exchange() -> tuple[H2Connection, H2Connection]:
    """A validating h2 client with one request open on a server configured as ours."""
    client = H2Connection(H2Configuration(client_side=True, header_encoding=None))
    client.initiate_connection()
    client.send_headers(1, [(":method", "GET"), (":path", "/"), (":scheme", "https"), (":authority", "a")])
    server = H2Connection(H2_CONFIG)
    server.initiate_connection()
    server.receive_data(client.data_to_send())
    return client, server


def answers() -> list[tuple[list[tuple[bytes, bytes]], tuple[tuple[bytes, bytes], ...]]]:
    """(headers, trailers) of every kind of answer: the routes', allowed and refused, and gRPC's."""
    out: list[tuple[list[tuple[bytes, bytes]], tuple[tuple[bytes, bytes], ...]]] = []
    for allowed in (True, False):
        info = session(allowed=allowed)
        for method, target, accept in REQUESTS:
            todo = plan(RequestHead(method=method, target=target, accept=accept, host=b"h"), info)
            if isinstance(todo, Answer | SendBytes):
                out.append((h2_fields(todo), ()))
        for body in (frame_message(health_pb2.HealthCheckRequest().SerializeToString()), b"\0"):
            for path in (b"/grpc.health.v1.Health/Check", b"/mtls_ref.v1.Identity/WhoAmI", b"/x/y"):
                route = grpc_route(RequestHead(method=b"POST", target=path), GRPC, info)
                assert route is not None and route.too_large is not None
                for response in (route.handler(body), route.too_large):
                    out.append((h2_fields(response), response.trailers))
    out += [(h2_fields(TOO_LARGE), ()), (h2_fields(sink_answer(10)), ())]
    return out


@pytest.mark.parametrize(("headers", "trailers"), answers())
def test_a_strict_client_accepts_every_answer_as_sent(
    headers: list[tuple[bytes, bytes]], trailers: tuple[tuple[bytes, bytes], ...]
) -> None:
    """An h2 client that validates what it receives takes each answer's headers and trailers unchanged."""
    client, server = exchange()
    server.send_headers(1, headers)
    server.send_headers(1, list(trailers or ((b"x-end", b"1"),)), end_stream=True)
    events = client.receive_data(server.data_to_send())
    (response,) = (e for e in events if isinstance(e, ResponseReceived))
    (ended,) = (e for e in events if isinstance(e, TrailersReceived))
    assert list(response.headers or ()) == headers
    assert tuple(ended.headers or ()) == (trailers or ((b"x-end", b"1"),))


def test_the_strict_client_refuses_a_field_no_peer_should_get() -> None:
    """The check above has teeth: an upper-case name or a newline in a value is a protocol error."""
    for bad in ((b"Server", b"x"), (b"x", b"a\nb"), (b"connection", b"close")):
        client, server = exchange()
        server.send_headers(1, [(b":status", b"200"), bad], end_stream=True)
        with pytest.raises(ProtocolError):
            client.receive_data(server.data_to_send())


def test_a_connection_remembers_its_documents_but_not_its_pages() -> None:
    """A repeated /whoami is the same answer, made once; the HTML page (it counts days) is made anew;
    a client inventing targets fills at most REMEMBERED places and still gets right answers."""
    answers = ConnectionAnswers(session(allowed=True))
    whoami = RequestHead(method=b"GET", target=b"/whoami")
    assert answers.plan(whoami) is answers.plan(whoami)
    page = RequestHead(method=b"GET", target=b"/", accept=HTML)
    first, again = answers.plan(page), answers.plan(page)
    assert isinstance(first, Answer) and first.content_type.startswith(HTML) and first is not again
    for n in range(2 * REMEMBERED):
        missing = answers.plan(RequestHead(method=b"GET", target=b"/healthz?%d" % n))
        assert isinstance(missing, Answer) and missing.body == b"ok\n"
    assert len(answers.known) == REMEMBERED
