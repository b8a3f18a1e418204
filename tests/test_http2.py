"""HTTP/2 (ALPN h2) on the mTLS port, driven by clients nobody here wrote: curl, nghttp, httpx."""

from __future__ import annotations

import dataclasses
import json
import ssl
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing
from h2.errors import ErrorCodes
from h2.events import PingAckReceived
from hyperframe.frame import DataFrame, GoAwayFrame

from mtls_ref.server.h2_app import AppRoute, Response
from mtls_ref.server.record import ConnectionRecord, ConnectionReport
from mtls_ref.server.routes import Headers, RequestHead
from mtls_ref.server.views import SessionInfo

from .support.h2_client import H2Client, h2_context
from .support.peer_flags import curl_with
from .support.pki import Pki
from .support.tls import log_events, start_server

pytestmark = pytest.mark.interop

MIB = 1 << 20


async def run(*argv: str) -> tuple[int, str, str]:
    with trio.fail_after(20):
        done = await trio.run_process(list(argv), capture_stdout=True, capture_stderr=True, check=False)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


@pytest.mark.usefixtures("tls_engine")
async def test_curl_http2_with_client_certificate(pki: Pki, curl: str) -> None:
    """curl --http2 with alice's certificate gets /whoami over HTTP/2 (the README's command); the log
    says h2 and the request count."""
    async with trio.open_nursery() as nursery:
        server, port, log = await start_server(nursery, pki)
        flags = ["--http2", "-s", "-o", "/dev/null", "-w", "%{http_version} %{http_code}\n"]
        code, out, err = await run(*curl_with(curl, pki), *flags, f"https://localhost:{port}/whoami")
        server.shutdown()
    assert (code, out) == (0, "2 200\n"), err
    (connection,) = log_events(log, "connection")
    assert connection["protocol"] == "h2" and connection["requests"] == 1


@pytest.mark.usefixtures("tls_engine")
async def test_curl_http2_without_certificate_is_refused_in_the_handshake(pki: Pki, curl: str) -> None:
    """Without a certificate there is no HTTP/2 at all: curl names the alert that refused it."""
    async with trio.open_nursery() as nursery:
        server, port, _ = await start_server(nursery, pki)
        code, _, err = await run(
            curl,
            "--silent",
            "--show-error",
            "--http2",
            "--cacert",
            str(pki.ca_cert),
            f"https://127.0.0.1:{port}/",
        )
        server.shutdown()
    assert code != 0
    assert "alert certificate required" in err, err


@pytest.mark.usefixtures("tls_engine")
async def test_curl_http2_forbidden_is_403(pki: Pki, curl: str) -> None:
    """A verified client outside the allow-list gets 403 over HTTP/2, naming its identity."""
    async with trio.open_nursery() as nursery:
        server, port, _ = await start_server(nursery, pki, allow=("CN:bob",))
        _, out, _ = await run(
            *curl_with(curl, pki),
            "--http2",
            "--write-out",
            "\n%{http_version} %{http_code}",
            f"https://127.0.0.1:{port}/whoami",
        )
        server.shutdown()
    body, versions = out.rsplit("\n", 1)
    assert versions == "2 403"
    assert json.loads(body)["identity"] == "spiffe://mtls-ref.test/alice"


@pytest.mark.usefixtures("tls_engine")
async def test_nghttp_fetches_several_paths_on_one_connection(pki: Pki, nghttp: str) -> None:
    """nghttp (nghttp2's client) gets three resources as three streams of one connection, one of them
    larger than its initial window (so it arrives only if the server honours WINDOW_UPDATEs)."""
    async with trio.open_nursery() as nursery:
        server, port, log = await start_server(nursery, pki)
        url = f"https://localhost:{port}"
        creds = ["--cert", str(pki.client.chain), "--key", str(pki.client.key)]
        paths = ["/whoami", "/healthz", "/bytes/100000"]
        with trio.fail_after(20):
            done = await trio.run_process(
                [nghttp, "--null-out", "--stat", *creds, *(url + path for path in paths)],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
                env={"SSL_CERT_FILE": str(pki.ca_cert)},  # nghttp trusts OpenSSL's default store
            )
        server.shutdown()
    out = done.stdout.decode()
    assert done.returncode == 0, done.stderr.decode()
    # "id  responseEnd requestStart  process code size request path" rows, once per sort order
    rows = [line.split()[-3:] for line in out.splitlines() if line.strip().endswith(tuple(paths))]
    assert {(code, path) for code, _, path in rows} == {("200", path) for path in paths}
    assert ["200", "97K", "/bytes/100000"] in rows
    (connection,) = log_events(log, "connection")
    assert connection["protocol"] == "h2" and connection["requests"] == 3


def httpx_client(pki: Pki, port: int) -> httpx.AsyncClient:
    """httpx over HTTP/2 (its h2 extra) as alice, trusting the test CA; one connection at a time."""
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    ctx.load_cert_chain(pki.client.chain, pki.client.key)
    return httpx.AsyncClient(
        http2=True,
        verify=ctx,
        base_url=f"https://localhost:{port}",
        timeout=10,
        limits=httpx.Limits(max_connections=1),
    )


@pytest.mark.usefixtures("tls_engine")
async def test_httpx_every_route_over_http2(pki: Pki) -> None:
    """Every HTTP/1.1 route answers the same over HTTP/2: text and HTML home, whoami, healthz, HEAD,
    404 and 405 with Allow; and the HTML page names the protocol the browser used."""
    async with trio.open_nursery() as nursery:
        server, port, log = await start_server(nursery, pki)
        async with httpx_client(pki, port) as client:
            whoami = await client.get("/whoami")
            text = await client.get("/")
            page = await client.get("/", headers={"accept": "text/html"})
            health = await client.get("/healthz")
            head = await client.head("/whoami")
            missing = await client.get("/nope")
            wrong = await client.delete("/whoami")
            bad_count = await client.get("/bytes/x")
        server.shutdown()
    assert {r.http_version for r in (whoami, text, page, health, head, missing, wrong)} == {"HTTP/2"}
    assert whoami.json()["subject"] == "CN=alice"
    assert text.text.startswith("Hello, spiffe://mtls-ref.test/alice.") and text.headers["vary"] == "Accept"
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert '<span id="http-version">HTTP/2</span>' in page.text
    assert (health.status_code, health.text) == (200, "ok\n")
    assert head.status_code == 200 and head.content == b"" and int(head.headers["content-length"]) > 0
    assert missing.status_code == 404
    assert (wrong.status_code, wrong.headers["allow"]) == (405, "GET, HEAD")
    assert bad_count.status_code == 400
    (connection,) = log_events(log, "connection")
    assert connection["protocol"] == "h2" and connection["requests"] == 8


async def test_flow_control_both_ways(pki: Pki) -> None:
    """A /bytes/N sixteen times the initial window arrives whole, and so does a 1 MiB POST /sink: the
    server waits for WINDOW_UPDATEs and acknowledges what it receives so the client's window reopens."""
    async with trio.open_nursery() as nursery:
        server, port, _ = await start_server(nursery, pki)
        async with httpx_client(pki, port) as client:
            download = await client.get(f"/bytes/{MIB}")
            upload = await client.post("/sink", content=bytes(MIB))
        server.shutdown()
    assert download.status_code == 200 and download.content == bytes(MIB)
    assert upload.json() == {"received": MIB}


async def test_a_stalled_stream_does_not_block_another(pki: Pki) -> None:
    """Streams are multiplexed: while a large /bytes stream waits for a window the client does not
    open, a /whoami on the same connection is answered."""
    async with trio.open_nursery() as nursery:
        server, port, log = await start_server(nursery, pki)
        async with httpx_client(pki, port) as client, client.stream("GET", f"/bytes/{64 * MIB}") as big:
            # Its head is in and its body is flowing; read none of it, so its window closes.
            whoami = await client.get("/whoami")
            assert whoami.status_code == 200 and whoami.json()["subject"] == "CN=alice"
        server.shutdown()
    assert big.status_code == 200 and big.http_version == "HTTP/2"
    (connection,) = log_events(log, "connection")
    assert connection["requests"] == 2


async def test_an_app_answers_with_trailers(pki: Pki) -> None:
    """The h2 path's hook (gRPC's way in): an App takes a request, gets its whole body, and its
    response ends with trailers; requests it does not take still go to the routes."""

    def echo(body: bytes) -> Response:
        return Response(
            status=200,
            headers=((b"content-type", b"application/x-echo"),),
            body=body,
            trailers=((b"x-status", b"0"), (b"x-length", str(len(body)).encode())),
        )

    def app(head: RequestHead, fields: Headers, info: SessionInfo) -> AppRoute | None:
        wanted = head.path == b"/echo" and (b"te", b"trailers") in fields
        return AppRoute(handler=echo) if wanted else None

    async with trio.open_nursery() as nursery:
        server, port, _ = await start_server(nursery, pki)
        server.settings = dataclasses.replace(server.settings, h2_app=app)
        with trio.fail_after(10):
            client = await H2Client.open(port, h2_context(pki))
            echoed = await client.request(
                "/echo", method="POST", body=b"ping" * 1000, extra=(("te", "trailers"),)
            )
            routed = await client.request("/healthz")
            await client.aclose()
        server.shutdown()
    assert echoed.headers[b":status"] == b"200" and bytes(echoed.body) == b"ping" * 1000
    assert echoed.trailers == {b"x-status": b"0", b"x-length": b"4000"}
    assert bytes(routed.body) == b"ok\n" and routed.trailers == {}


@pytest.mark.usefixtures("tls_engine")
async def test_shutdown_sends_goaway_and_finishes_the_stream_in_flight(pki: Pki) -> None:
    """At shutdown a client with a stream in flight gets GOAWAY (NO_ERROR, naming that stream as the
    last one taken), then the rest of its response, within the grace period."""
    # h2 as a client gives up on DATA after a GOAWAY, so this client reads frames with h2's own frame
    # buffer, and opens its windows wide first so it never has to acknowledge anything.
    size = 8 * MIB
    async with trio.open_nursery() as nursery:
        server, port, log = await start_server(nursery, pki, shutdown_grace=10.0)
        with trio.fail_after(10):
            client = await H2Client.open(port, h2_context(pki), window=2 * size)
            stream_id = client.start(f"/bytes/{size}")
            await client.flush()
            frames = client.raw_frames()
            received, goaway, ended = 0, None, False
            async for frame in frames:
                if isinstance(frame, DataFrame) and frame.stream_id == stream_id:
                    received += len(frame.data)
                    ended = "END_STREAM" in frame.flags
                    if received and not server.draining:
                        server.shutdown()  # the response is under way
                elif isinstance(frame, GoAwayFrame):
                    goaway, at = frame, received
            await client.aclose()
    assert goaway is not None and 0 < at < size  # GOAWAY came while the stream was in flight
    assert (goaway.error_code, goaway.last_stream_id) == (ErrorCodes.NO_ERROR, stream_id)
    assert received == size and ended
    (connection,) = log_events(log, "connection")
    assert connection["reason"] == "server shutting down: GOAWAY sent, streams finished"


@pytest.mark.usefixtures("tls_engine")
async def test_forward_mode_stays_http11(pki: Pki) -> None:
    """Forward mode offers no h2 (its identity headers are HTTP/1.1 to the backend): a client offering
    h2 and http/1.1 gets http/1.1."""
    ctx = h2_context(pki)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    async with trio.open_nursery() as nursery:
        server, port, _ = await start_server(
            nursery, pki, forward="127.0.0.1:9", forward_identity="http-header"
        )
        with trio.fail_after(10):
            tls = trio.SSLStream(
                await trio.open_tcp_stream("127.0.0.1", port), ctx, server_hostname="localhost"
            )
            await tls.do_handshake()
            alpn = tls.selected_alpn_protocol()
            await trio.aclose_forcefully(tls)
        server.shutdown()
    assert alpn == "http/1.1"


async def test_a_body_over_the_limit_is_413_and_the_stream_reset(pki: Pki, curl: str, tmp_path: Path) -> None:
    """A request body over its limit gets 413 and RST_STREAM NO_ERROR (RFC 9113 §8.1: stop sending),
    and the connection goes on; the status port counts the requests as h2."""
    upload = tmp_path / "upload"
    upload.write_bytes(bytes(MIB))
    async with trio.open_nursery() as nursery:
        server, port, _ = await start_server(nursery, pki)
        url = f"https://127.0.0.1:{port}"
        _, out, err = await run(
            *curl_with(curl, pki),
            "--http2",
            "--data-binary",
            f"@{upload}",
            "--write-out",
            "%{http_code}\\n",
            "-o",
            "/dev/null",
            f"{url}/whoami",
            "--next",
            *curl_with(curl, pki)[1:],
            "--http2",
            "--write-out",
            "%{http_code}\\n",
            "-o",
            "/dev/null",
            f"{url}/healthz",
        )
        server.shutdown()
    assert out.split() == ["413", "200"], err
    assert b'mtls_http_requests_total{protocol="h2"} 2.0' in server.metrics.exposition()


async def test_a_stream_cut_at_the_end_of_the_grace_period_is_logged_as_shutdown(pki: Pki) -> None:
    """A stream that outlasts shutdown_grace (its body never ends) is cut there: the connection's log
    line says the server shut it down, as for HTTP/1.1, and not the allow-list's words."""
    async with trio.open_nursery() as nursery:
        server, port, log = await start_server(nursery, pki, shutdown_grace=0.2, idle_timeout=30.0)
        with trio.fail_after(10):
            client = await H2Client.open(port, h2_context(pki))
            stream_id = client.conn.get_next_available_stream_id()
            sink = [(":method", "POST"), (":path", "/sink"), (":scheme", "https"), (":authority", "x")]
            client.conn.send_headers(stream_id, sink)
            client.conn.send_data(stream_id, b"x")  # and no more: the stream stays open
            await client.flush()
            await client.events()  # the server's SETTINGS: it has the request
            server.shutdown()
            async for _ in client.raw_frames():  # GOAWAY, then the close at the grace's end
                pass
            await client.aclose()
    (connection,) = log_events(log, "connection")
    assert (connection["outcome"], connection["reason"]) == ("accepted", "server shutting down"), connection
    assert connection["requests"] == 1, connection  # counted when taken, not when the loop returns


async def test_shutdown_grace_bounds_a_write_to_a_client_that_does_not_read(pki: Pki) -> None:
    """A client that opened its windows and reads nothing holds a write of ours in flight: at the end
    of shutdown_grace the server still stops (not at idle_timeout, however long), and says why."""
    with trio.fail_after(10):  # idle_timeout is 30 s: only the grace period can end it in time
        async with trio.open_nursery() as nursery:
            server, port, log = await start_server(nursery, pki, shutdown_grace=0.2, idle_timeout=30.0)
            client = await H2Client.open(port, h2_context(pki), window=1 << 30)
            client.start(f"/bytes/{1 << 30}")
            await client.flush()
            await trio.testing.wait_all_tasks_blocked(cushion=0.1)  # the server's write waits on us
            server.shutdown()
        await client.aclose()
    (connection,) = log_events(log, "connection")
    assert connection["reason"] == "server shutting down", connection


@pytest.mark.usefixtures("tls_engine")
async def test_a_reload_sends_goaway_and_cuts_what_outlasts_the_grace(pki: Pki) -> None:
    """Reloading the credentials sends GOAWAY to the HTTP/2 connections accepted before it (their clients
    reconnect under the new CA and CRL): one with a stream in flight (a body that never ends) is cut
    after shutdown_grace, and a new connection is served as before."""
    async with trio.open_nursery() as nursery:
        server, port, log = await start_server(nursery, pki, shutdown_grace=0.3, idle_timeout=30.0)
        with trio.fail_after(10):
            held = await H2Client.open(port, h2_context(pki))
            assert (await held.request("/healthz")).headers[b":status"] == b"200"
            stalled = held.conn.get_next_available_stream_id()
            sink = [(":method", "POST"), (":path", "/sink"), (":scheme", "https"), (":authority", "x")]
            held.conn.send_headers(stalled, sink)
            held.conn.send_data(stalled, b"x")  # and no more: the stream stays in flight
            held.conn.ping(b"in order")  # its ACK says the server has taken the stream
            await held.flush()
            while not any(isinstance(event, PingAckReceived) for event in await held.events()):
                assert not held.closed
            assert server.reload("test")
            await held.until(lambda: held.goaway is not None)
            await held.until(lambda: False)  # the cut, after the grace
            fresh = await H2Client.open(port, h2_context(pki))
            assert (await fresh.request("/healthz")).headers[b":status"] == b"200"
            await fresh.aclose()
            await held.aclose()
        server.shutdown()
    assert held.goaway is not None and held.goaway.error_code == ErrorCodes.NO_ERROR
    assert held.goaway.additional_data == b"credentials reloaded"
    first = log_events(log, "connection")[0]
    assert first["reason"] == "credentials reloaded: GOAWAY sent, streams still open after 0.3s cut", first


async def test_a_reload_cuts_a_write_to_a_client_that_does_not_read_after_the_grace(pki: Pki) -> None:
    """After a reload's GOAWAY, a client that opened its windows and reads nothing holds a write of
    ours: the grace still ends the connection (not idle_timeout, however long)."""
    with trio.fail_after(10):  # idle_timeout is 30 s: only the grace can end it in time
        async with trio.open_nursery() as nursery:
            server, port, log = await start_server(nursery, pki, shutdown_grace=0.2, idle_timeout=30.0)
            logged = trio.Event()

            def count(record: ConnectionRecord) -> None:
                server.metrics.record(record)
                logged.set()

            server.report = ConnectionReport(server.log, count)
            client = await H2Client.open(port, h2_context(pki), window=1 << 30)
            client.start(f"/bytes/{1 << 30}")
            await client.flush()
            await trio.testing.wait_all_tasks_blocked(cushion=0.1)  # the server's write waits on us
            assert server.reload("test")
            await logged.wait()  # the connection's end, with the server still serving
            server.shutdown()
        await client.aclose()
    (connection,) = log_events(log, "connection")
    assert connection["reason"].startswith("credentials reloaded: GOAWAY sent"), connection
