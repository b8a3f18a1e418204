"""The server's per-connection handler with real TLS over a socketpair, on each engine: the full path."""

from __future__ import annotations

import json
import re
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
import trio
import trio.testing

from mtls_ref.server.engine import build_server_context
from mtls_ref.server.handler import ConnectionRecord, HandlerSettings, handle_connection
from mtls_ref.server.log import EventLog
from mtls_ref.shared.core.config import ClientConfig
from mtls_ref.shared.core.protocol import LineBuffer
from mtls_ref.shared.tls.connection import TLSConnection
from mtls_ref.shared.tls.context import ALPN_HTTP, ALPN_LINE, client_context
from mtls_ref.shared.tls.identity import AllowList

from .support.pki import Pki
from .support.tls import client_config, no_cert, server_config, socket_stream_pair, with_version

# Every test once per server engine, through the adapter production uses for it.
pytestmark = pytest.mark.usefixtures("tls_engine")


@dataclass
class Conversation:
    """The client end of one connection, plus what the server logged."""

    tls: TLSConnection
    log: list[str]
    records: list[ConnectionRecord] = field(default_factory=list)
    lines: LineBuffer = field(default_factory=lambda: LineBuffer(1 << 16))
    ready: list[str] = field(default_factory=list)

    async def send(self, line: str) -> None:
        await self.tls.send_all(line.encode() + b"\n")

    async def read(self, deadline: float = 5) -> str | None:
        """The next line, or None at EOF."""
        with trio.fail_after(deadline):
            while not self.ready:
                data = await self.tls.receive_some(65536)
                if not data:
                    return None
                self.ready.extend(self.lines.feed(data))
        return self.ready.pop(0)


@asynccontextmanager
async def conversation(
    pki: Pki,
    client: ClientConfig,
    *,
    settings: HandlerSettings | None = None,
    alpn: tuple[str, ...] = (ALPN_LINE,),
) -> AsyncIterator[Conversation]:
    client_stream, server_stream = socket_stream_pair()
    log: list[str] = []
    conv = Conversation(
        tls=TLSConnection(
            client_stream,
            client_context(client, alpn=list(alpn)),
            server_side=False,
            server_hostname="localhost",
        ),
        log=log,
    )

    async def serve() -> None:
        record = await handle_connection(
            server_stream,
            context=build_server_context(server_config(pki)),
            settings=settings or HandlerSettings(),
            log=EventLog("json", log.append),
            peer="memory",
        )
        conv.records.append(record)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve)
            yield conv
            await conv.tls.aclose()


def connection_log(conv: Conversation) -> dict[str, object]:
    entries = [json.loads(line) for line in conv.log]
    return next(e for e in entries if e["event"] == "connection")


async def test_greeting_whoami_echo_quit(pki: Pki, tls_version: str) -> None:
    """An accepted client is greeted, learns who it is, gets echoes byte-exact, and can quit."""
    async with conversation(pki, with_version(client_config(pki), tls_version)) as conv:
        await conv.tls.handshake()
        greeting = await conv.read()
        assert greeting is not None and greeting.startswith(
            "OK hello spiffe://mtls-ref.test/alice; commands:"
        )
        await conv.send("WHOAMI")
        whoami = await conv.read()
        assert whoami is not None and whoami.startswith("OK whoami ")
        data = json.loads(whoami.removeprefix("OK whoami "))
        assert data["subject"] == "CN=alice"
        assert data["spiffe_id"] == "spiffe://mtls-ref.test/alice"
        assert data["tls_version"] == f"TLSv{tls_version}"
        assert data["cipher"]
        await conv.send("ECHO  spaced  out  ")
        await conv.send("ECHO grüße")
        assert await conv.read() == "OK echo  spaced  out  "
        assert await conv.read() == "OK echo grüße"
        await conv.send("QUIT")
        assert await conv.read() == "OK bye"
        assert await conv.read() is None  # server closed (close_notify)
    entry = connection_log(conv)
    assert entry["outcome"] == "accepted" and entry["requests"] == 4
    assert entry["subject"] == "CN=alice" and entry["tls"] == f"TLSv{tls_version}"
    assert "PRIVATE" not in "".join(conv.log)


async def test_multi_line_burst_and_maximum_line(pki: Pki) -> None:
    """Several requests in one write are answered in order; a line of exactly max_line passes."""
    settings = HandlerSettings(max_line=128)
    async with conversation(pki, client_config(pki), settings=settings) as conv:
        await conv.tls.handshake()
        await conv.read()
        longest = "ECHO " + "x" * (128 - len("ECHO ") - 1)
        await conv.tls.send_all(b"PING\nHELP\n" + longest.encode() + b"\n")
        assert await conv.read() == "OK pong"
        assert (await conv.read() or "").startswith("OK help WHOAMI")
        assert await conv.read() == "OK echo " + "x" * 122
        await conv.send("E" * 200)
        reply = await conv.read()
        assert reply is not None and reply.startswith("ERR line-too-long")
        assert await conv.read() is None


async def test_unknown_command_keeps_the_connection(pki: Pki) -> None:
    """An unknown command gets ERR and the session goes on."""
    async with conversation(pki, client_config(pki)) as conv:
        await conv.tls.handshake()
        await conv.read()
        await conv.send("GET / HTTP/1.0")
        assert (await conv.read() or "").startswith("ERR unknown-command")
        await conv.send("PING")
        assert await conv.read() == "OK pong"


@pytest.mark.parametrize("key_type", ["rsa2048", "p384", "ed25519"])
async def test_whoami_for_every_client_key_type(pki: Pki, key_type: str, tls_version: str) -> None:
    """RSA, ECDSA and Ed25519 client certificates are all accepted and identified."""
    creds = pki.clients_by_key_type[key_type]
    async with conversation(pki, with_version(client_config(pki, creds), tls_version)) as conv:
        await conv.tls.handshake()
        await conv.read()
        await conv.send("WHOAMI")
        data = json.loads((await conv.read() or "").removeprefix("OK whoami "))
        assert data["subject"] == f"CN=client-{key_type}"
        assert data["key"] == {"rsa2048": "RSA 2048", "p384": "ECDSA P-384", "ed25519": "Ed25519"}[key_type]


async def test_allow_list_refusal_names_identity(pki: Pki) -> None:
    """A verified client not on the allow-list is refused at the application level, with a reason."""
    settings = HandlerSettings(allow=AllowList.parse(["URI:spiffe://mtls-ref.test/bob"]))
    async with conversation(pki, client_config(pki), settings=settings) as conv:
        await conv.tls.handshake()
        refusal = await conv.read()
        assert refusal is not None
        assert refusal.startswith("ERR forbidden spiffe://mtls-ref.test/alice is not allowed")
        assert await conv.read() is None
    entry = connection_log(conv)
    assert entry["outcome"] == "forbidden"
    assert "rules: URI:spiffe://mtls-ref.test/bob" in str(entry["reason"])


async def test_allow_list_admits_listed_identity(pki: Pki) -> None:
    """A client matching a wildcard rule is greeted."""
    settings = HandlerSettings(allow=AllowList.parse(["CN:bob", "URI:spiffe://mtls-ref.test/*"]))
    async with conversation(pki, client_config(pki), settings=settings) as conv:
        await conv.tls.handshake()
        assert (await conv.read() or "").startswith("OK hello")


@pytest.mark.parametrize("case", ["no-cert", "foreign-ca"])
async def test_rejected_client_receives_the_alert(pki: Pki, tls_version: str, case: str) -> None:
    """The TLS alert reaches a rejected client (not a bare EOF), on both TLS versions."""
    base = with_version(client_config(pki), tls_version)
    client = (
        no_cert(base)
        if case == "no-cert"
        else client_config(pki, pki.foreign_client, tls_min=tls_version, tls_max=tls_version)
    )
    async with conversation(pki, client) as conv:
        with pytest.raises(trio.BrokenResourceError) as info:
            await conv.tls.handshake()  # TLS 1.2 fails here...
            await conv.read()  # ...TLS 1.3 on the first read
        cause = info.value.__cause__
        assert isinstance(cause, ssl.SSLError)
        expected = {
            ("no-cert", "1.3"): "TLSV13_ALERT_CERTIFICATE_REQUIRED",
            ("no-cert", "1.2"): "SSLV3_ALERT_HANDSHAKE_FAILURE",
            ("foreign-ca", "1.3"): "TLSV1_ALERT_UNKNOWN_CA",
            ("foreign-ca", "1.2"): "TLSV1_ALERT_UNKNOWN_CA",
        }[(case, tls_version)]
        assert cause.reason == expected
    entry = connection_log(conv)
    assert entry["outcome"] == "rejected"
    assert entry["alert"] == expected.split("ALERT_")[1].lower()


async def test_handshake_timeout(pki: Pki, autojump_clock: trio.testing.MockClock) -> None:
    """A peer that never completes the handshake is dropped after handshake_timeout."""
    client_stream, server_stream = socket_stream_pair()
    log: list[str] = []
    record = await handle_connection(
        server_stream,
        context=build_server_context(server_config(pki)),
        settings=HandlerSettings(handshake_timeout=3),
        log=EventLog("json", log.append),
        peer="silent",
    )
    assert record.outcome == "timeout"
    assert "within 3s" in (record.reason or "")
    await client_stream.aclose()


async def test_idle_timeout(pki: Pki, autojump_clock: trio.testing.MockClock) -> None:
    """An authenticated client that goes quiet is told and disconnected after idle_timeout."""
    async with conversation(pki, client_config(pki), settings=HandlerSettings(idle_timeout=7)) as conv:
        await conv.tls.handshake()
        await conv.read()
        start = trio.current_time()
        reply = await conv.read(deadline=30)
        assert reply == "ERR idle-timeout no request for 7s; bye"
        assert trio.current_time() - start == pytest.approx(7, abs=0.5)


async def test_non_tls_bytes_are_refused_and_logged(pki: Pki) -> None:
    """Plain text on the TLS port ends the connection with a logged reason."""
    client_stream, server_stream = socket_stream_pair()
    log: list[str] = []
    await client_stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    with trio.fail_after(5):
        record = await handle_connection(
            server_stream,
            context=build_server_context(server_config(pki)),
            settings=HandlerSettings(),
            log=EventLog("json", log.append),
            peer="plain",
        )
    await client_stream.aclose()
    assert record.outcome == "rejected"
    assert "plain HTTP request" in (record.reason or "")


async def test_client_without_alpn_is_greeted_after_the_sniff(
    pki: Pki, autojump_clock: trio.testing.MockClock
) -> None:
    """A silent client that offers no ALPN (a person at s_client) is greeted with the line protocol."""
    async with conversation(pki, client_config(pki), alpn=()) as conv:
        await conv.tls.handshake()
        assert (await conv.read() or "").startswith("OK hello")
    assert connection_log(conv)["protocol"] == "line"


async def test_client_without_alpn_speaking_first_gets_line_protocol(pki: Pki) -> None:
    """A client that sends a command before the greeting gets the greeting, then the answer."""
    async with conversation(pki, client_config(pki), alpn=()) as conv:
        await conv.tls.handshake()
        await conv.send("PING")
        assert (await conv.read() or "").startswith("OK hello")
        assert await conv.read() == "OK pong"


async def test_http_request_line_without_alpn_switches_to_http(pki: Pki) -> None:
    """`GET / HTTP/1.0` as the first line (openssl s_client style) gets an HTTP response, no greeting."""
    async with conversation(pki, client_config(pki), alpn=()) as conv:
        await conv.tls.handshake()
        await conv.tls.send_all(b"GET /healthz HTTP/1.0\r\n\r\n")
        assert await conv.read() == "HTTP/1.1 200 OK"
    assert connection_log(conv)["protocol"] == "http"


async def test_http_via_alpn_keep_alive_and_errors(pki: Pki) -> None:
    """ALPN http/1.1: keep-alive across requests; 404, 405 and HEAD behave."""
    async with conversation(pki, client_config(pki), alpn=(ALPN_HTTP,)) as conv:
        await conv.tls.handshake()
        assert conv.tls.selected_alpn_protocol() == ALPN_HTTP
        await conv.tls.send_all(
            b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /whoami HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"
            b"HEAD /whoami HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /whoami HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        raw = b""
        with trio.fail_after(5):
            while chunk := await conv.tls.receive_some(65536):
                raw += chunk
    text = raw.decode()
    statuses = re.findall(r"HTTP/1\.1 \d{3} [^\r]*", text)
    assert statuses == [
        "HTTP/1.1 404 Not Found",
        "HTTP/1.1 405 Method Not Allowed",
        "HTTP/1.1 200 OK",
        "HTTP/1.1 200 OK",
    ]
    assert "allow: GET, HEAD" in text
    body = text.rsplit("\r\n\r\n", 1)[1]
    assert json.loads(body)["subject"] == "CN=alice"
    assert connection_log(conv)["requests"] == 4
