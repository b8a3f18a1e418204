"""The client's HTTP/2 (h2_exchange) against a scripted h2 server over real TLS: flow control both ways,
resets, GOAWAY, bounds, and a gRPC Trailers-Only answer.

The peer is the ``h2`` library's server side behind stdlib ssl on loopback (client certificates required):
it reads each request whole, then runs the test's script, which says what to send on that stream.
"""

from __future__ import annotations

import contextlib
import functools
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import pytest
import trio

from mtls_ref.client.h2_exchange import ALPN_OFFER
from mtls_ref.client.http2_mode import MAX_BODY
from mtls_ref.client.report import render_report
from mtls_ref.client.session import ClientReport, Exit, run_client
from mtls_ref.shared.grpc import encode_grpc_message, frame_message, health_pb2, identity_pb2
from mtls_ref.shared.tls.context import client_context

from .support.pki import Pki
from .support.tls import client_config

Fields = Sequence[tuple[bytes, bytes]]


@dataclass(slots=True)
class Reply:
    """What the script sends on a stream: headers, body, trailers (none: the body ends the stream)."""

    headers: Fields
    body: bytes = b""
    trailers: Fields = ()


@dataclass(slots=True)
class Seen:
    """What the scripted server received: each request's headers and body."""

    requests: list[tuple[dict[bytes, bytes], bytes]] = field(default_factory=list)


Script = Callable[[h2.connection.H2Connection, int, dict[bytes, bytes], bytes], Reply | None]
Send = Callable[[], Awaitable[None]]
# A task started for each request after its script: it acts on the connection over time, and sends
# what it queued with the Send it is given.
OnRequest = Callable[[h2.connection.H2Connection, int, Send], Awaitable[None]]


@asynccontextmanager
async def scripted_h2(
    pki: Pki, script: Script, *, window: int = 65535, on_request: OnRequest | None = None
) -> AsyncIterator[tuple[int, Seen]]:
    """An HTTP/2 server (ALPN h2) whose ``script`` answers each request; ``window``: its initial window
    for what we send it. A script returning None has acted on the connection itself (reset, GOAWAY)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.server.chain, pki.server.key)
    context.load_verify_locations(pki.ca_cert)
    context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(["h2"])
    seen = Seen()

    async def handle(stream: trio.SocketStream) -> None:
        tls = trio.SSLStream(stream, context, server_side=True)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
        conn.local_settings = h2.settings.Settings(
            client=False, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window}
        )
        conn.initiate_connection()
        bodies: dict[int, bytearray] = {}
        heads: dict[int, dict[bytes, bytes]] = {}
        pending: list[tuple[int, Reply]] = []
        sending = trio.Lock()

        async def send() -> None:
            async with sending:
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await tls.send_all(conn.data_to_send())

        with trio.move_on_after(10):
            async with trio.open_nursery() as tasks:
                await send()
                while data := await tls.receive_some(65536):
                    for event in conn.receive_data(data):
                        if isinstance(event, h2.events.RequestReceived):
                            heads[event.stream_id or 0] = {bytes(k): bytes(v) for k, v in event.headers or ()}
                            bodies[event.stream_id or 0] = bytearray()
                        elif isinstance(event, h2.events.DataReceived):
                            bodies[event.stream_id or 0] += event.data or b""
                            conn.acknowledge_received_data(
                                event.flow_controlled_length or 0, event.stream_id or 0
                            )
                        elif isinstance(event, h2.events.StreamEnded):
                            sid = event.stream_id or 0
                            seen.requests.append((heads[sid], bytes(bodies[sid])))
                            reply = script(conn, sid, heads[sid], bytes(bodies[sid]))
                            if reply is not None:
                                conn.send_headers(sid, reply.headers)
                                pending.append((sid, reply))
                            if on_request is not None:
                                tasks.start_soon(on_request, conn, sid, send)
                    pending = [(sid, reply) for sid, reply in pending if not _send_some(conn, sid, reply)]
                    await send()
                tasks.cancel_scope.cancel()  # the client has gone: so have its requests
            await tls.aclose()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
        yield int(listeners[0].socket.getsockname()[1]), seen
        nursery.cancel_scope.cancel()


def _send_some(conn: h2.connection.H2Connection, sid: int, reply: Reply) -> bool:
    """Send as much of ``reply``'s body as the client's windows allow; True once all of it is sent."""
    while reply.body:
        room = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
        if room <= 0:
            return False  # the client must acknowledge first
        chunk, reply.body = reply.body[:room], reply.body[room:]
        conn.send_data(sid, chunk, end_stream=not reply.body and not reply.trailers)
    if reply.trailers:
        conn.send_headers(sid, reply.trailers, end_stream=True)
    elif not conn.streams[sid].closed:
        conn.end_stream(sid)
    return True


async def run(pki: Pki, script: Script, mode: str, *, window: int = 65535) -> tuple[ClientReport, Seen]:
    async with scripted_h2(pki, script, window=window) as (port, seen):
        config = client_config(pki, port=port)
        with trio.fail_after(15):
            report = await run_client(
                config, client_context(config, alpn=ALPN_OFFER), mode=mode, messages=["/"]
            )
    return report, seen


def ok(body: bytes) -> Reply:
    return Reply(headers=((b":status", b"200"), (b"content-type", b"text/plain")), body=body)


GRPC_OK = ((b":status", b"200"), (b"content-type", b"application/grpc"))


def grpc_server(conn: h2.connection.H2Connection, sid: int, head: dict[bytes, bytes], body: bytes) -> Reply:
    """Check says SERVING, WhoAmI names CN=alice."""
    answer: health_pb2.HealthCheckResponse | identity_pb2.WhoAmIResponse
    if head[b":path"].endswith(b"/Check"):
        answer = health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)
    else:
        answer = identity_pb2.WhoAmIResponse(subject="CN=alice")
    return Reply(GRPC_OK, frame_message(answer.SerializeToString()), ((b"grpc-status", b"0"),))


async def test_a_body_larger_than_the_window_arrives_whole(pki: Pki) -> None:
    """200 KB is three default windows: the client acknowledges what it reads, so the server can go on."""
    body = b"0123456789abcdef" * 12800
    report, _ = await run(pki, lambda *_: ok(body), "http2")
    assert report.result is Exit.OK, render_report(report, trace="off")
    assert report.body == body.decode()


async def test_a_request_body_waits_for_the_servers_window(pki: Pki) -> None:
    """A server window of 4 bytes: the 5-byte gRPC request goes in two DATA frames, after a WINDOW_UPDATE,
    and arrives whole; the gRPC headers are the spec's."""
    report, seen = await run(pki, grpc_server, "grpc", window=4)
    assert report.result is Exit.OK, render_report(report, trace="off")
    head, body = seen.requests[0]
    assert body == frame_message(b"")
    assert (head[b":method"], head[b"content-type"], head[b"te"]) == (
        b"POST",
        b"application/grpc",
        b"trailers",
    )
    assert head[b"grpc-timeout"] == b"5000m"
    assert [request[0][b":path"] for request in seen.requests] == [
        b"/grpc.health.v1.Health/Check",
        b"/mtls_ref.v1.Identity/WhoAmI",
    ]


async def test_a_body_over_the_limit_is_refused(pki: Pki) -> None:
    """--http2 takes 1 MiB of body: one byte more ends the session, saying so."""
    report, _ = await run(pki, lambda *_: ok(b"x" * (MAX_BODY + 1)), "http2")
    assert report.result is Exit.PROTOCOL
    assert report.summary == f"a response body over {MAX_BODY} bytes"


async def test_a_reset_stream_is_named(pki: Pki) -> None:
    """RST_STREAM REFUSED_STREAM: the client names the reset and its code."""

    def reset(conn: h2.connection.H2Connection, sid: int, *_: object) -> None:
        conn.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM)

    report, _ = await run(pki, reset, "http2")
    assert report.result is Exit.PROTOCOL
    assert report.summary == "the server reset the stream (REFUSED_STREAM)"


async def test_goaway_is_named_with_its_words(pki: Pki) -> None:
    """GOAWAY with debug data: the client shows the code and the words."""

    def goaway(conn: h2.connection.H2Connection, *_: object) -> None:
        conn.close_connection(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM, additional_data=b"slow down")

    report, _ = await run(pki, goaway, "http2")
    assert report.result is Exit.PROTOCOL
    assert report.summary == "the server closed the HTTP/2 connection (GOAWAY ENHANCE_YOUR_CALM): slow down"


async def test_a_trailers_only_grpc_error_is_read_from_the_headers(pki: Pki) -> None:
    """A gRPC error with no message may come as headers alone (Trailers-Only): its status is read there."""

    def unimplemented(*_: object) -> Reply:
        return Reply(headers=(*GRPC_OK, (b"grpc-status", b"12"), (b"grpc-message", b"no%20such%20method")))

    report, _ = await run(pki, unimplemented, "grpc")
    assert report.result is Exit.PROTOCOL
    assert report.summary == (
        "/grpc.health.v1.Health/Check failed with gRPC status UNIMPLEMENTED: no such method"
    )
    assert report.fix == "the server does not serve this method: is it an mtls-ref gRPC server?"


async def test_an_http_answer_without_grpc_status_is_judged_as_http(pki: Pki) -> None:
    """A 403 page where a gRPC answer was due: the HTTP verdict (exit 6), not a gRPC one."""

    def forbidden(*_: object) -> Reply:
        page = b"<html><head><title>403 Forbidden</title></head></html>"
        return Reply(headers=((b":status", b"403"), (b"content-type", b"text/html")), body=page)

    report, _ = await run(pki, forbidden, "grpc")
    assert report.result is Exit.FORBIDDEN
    assert report.http_status == "403: Forbidden"


async def test_a_grpc_answer_that_is_not_one_message_is_a_protocol_error(pki: Pki) -> None:
    """OK with two messages in a unary answer: the framing's words, exit 7."""

    def twice(*_: object) -> Reply:
        return Reply(GRPC_OK, frame_message(b"\x08\x01") * 2, ((b"grpc-status", b"0"),))

    report, _ = await run(pki, twice, "grpc")
    assert report.result is Exit.PROTOCOL
    assert report.summary == (
        "/grpc.health.v1.Health/Check: a bad answer from the server: "
        "a unary call carries exactly one message; this one has 2"
    )


@pytest.mark.parametrize("mode", ["grpc", "http2"])
async def test_a_servers_words_cannot_forge_a_line_of_the_report(pki: Pki, mode: str) -> None:
    """A grpc-message or page title holding a newline and terminal escapes is printed escaped, on its
    own line: no second "result:" line, no escape sequence reaches the terminal."""
    forged = "\x1b[2K\rno\nresult: OK: the server accepted our certificate"

    def hostile(*_: object) -> Reply:
        if mode == "grpc":
            said = encode_grpc_message(forged)
            return Reply(headers=(*GRPC_OK, (b"grpc-status", b"7"), (b"grpc-message", said)))
        page = f"<html><title>403 {forged}</title></html>\n{forged}\n".encode()
        return Reply(headers=((b":status", b"403"), (b"content-type", b"text/html")), body=page)

    report, _ = await run(pki, hostile, mode)
    assert report.result is Exit.FORBIDDEN
    printed = render_report(report, trace="off")
    assert "\x1b" not in printed and "\r" not in printed
    [result] = [line for line in printed.splitlines() if line.startswith("result:")]
    assert result.startswith("result: FAILED (forbidden): ")
    assert "\\x1b[2K\\rno\\nresult: OK" in printed


@pytest.mark.parametrize("mode", ["grpc", "http2"])
async def test_a_response_that_never_ends_is_bounded_by_one_deadline(pki: Pki, mode: str) -> None:
    """Headers, then a PING every half deadline and never END_STREAM: each read is within the
    deadline, yet the call ends at the deadline (grpc-timeout promises it), not after MAX_READS reads."""
    timeout = 0.5

    async def trickle(conn: h2.connection.H2Connection, sid: int, send: Send) -> None:
        conn.send_headers(sid, GRPC_OK if mode == "grpc" else ok(b"").headers)
        for count in range(1000):  # bounded, and far longer than the client may wait
            conn.ping(count.to_bytes(8, "big"))
            await send()
            await trio.sleep(timeout / 2)  # the peer's pace, just inside each read's deadline

    async with scripted_h2(pki, _never_answer, on_request=trickle) as (port, _):
        config = client_config(pki, port=port, timeout=timeout)
        with trio.fail_after(10):
            report = await run_client(
                config, client_context(config, alpn=ALPN_OFFER), mode=mode, messages=["/"]
            )
    assert report.result is Exit.PROTOCOL
    assert report.summary.startswith(
        "no complete response to POST " if mode == "grpc" else "no complete response to GET /"
    )
    assert report.summary.endswith(f"within {timeout:g}s"), report.summary


def _never_answer(*_: object) -> None:
    return None
