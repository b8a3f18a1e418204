"""Forward mode: mTLS in front of a plain TCP service, with the PROXY v2 header checked byte for byte."""

from __future__ import annotations

import contextlib
import ipaddress
import struct
import subprocess
import sys
import tempfile

import pytest
import trio
from cryptography.hazmat.primitives.serialization import Encoding

from mtls_ref.client.session import ClientReport, Exit, run_client
from mtls_ref.server.proxy_protocol import SIGNATURE
from mtls_ref.shared.pki.keys import load_certificates
from mtls_ref.shared.tls.context import client_context
from mtls_ref.shared.tls.identity import identity_from_der

from .support.backends import echo_backend
from .support.peer_flags import curl_with
from .support.pki import Pki
from .support.ports import free_port, wait_for_port
from .support.processes import stop_process
from .support.tls import client_config, log_events, start_server


async def raw_client(pki: Pki, port: int, *, alice: bool = True) -> ClientReport:
    config = client_config(pki, None if alice else pki.foreign_client, port=port)
    with trio.fail_after(15):
        return await run_client(config, client_context(config), messages=["ping through"], mode="raw")


def parse_tlvs(data: bytes) -> dict[int, bytes]:
    """Type (1 byte), length (2), value: the TLV layout of PROXY v2 (section 2.2.7)."""
    tlvs: dict[int, bytes] = {}
    pos = 0
    while pos < len(data):
        kind, size = struct.unpack("!BH", data[pos : pos + 3])
        tlvs[kind] = data[pos + 3 : pos + 3 + size]
        pos += 3 + size
    return tlvs


def parse_proxy_v2(data: bytes) -> tuple[dict[str, object], bytes]:
    """The header as the specification lays it out (section 2.2), and what follows it."""
    assert data[:12] == SIGNATURE
    version_command, family, length = struct.unpack("!BBH", data[12:16])
    body, rest = data[16 : 16 + length], data[16 + length :]
    assert (version_command, family) == (0x21, 0x11)  # v2 PROXY, TCP over IPv4
    source = str(ipaddress.IPv4Address(body[0:4]))
    destination = str(ipaddress.IPv4Address(body[4:8]))
    source_port, destination_port = struct.unpack("!HH", body[8:12])
    tlvs = parse_tlvs(body[12:])
    ssl = tlvs[0x20]
    client, verify = struct.unpack("!BI", ssl[:5])
    sub = parse_tlvs(ssl[5:])  # PP2_TYPE_SSL carries its own TLVs after client and verify
    fields: dict[str, object] = {
        "source": (source, source_port),
        "destination": (destination, destination_port),
        "client": client,
        "verify": verify,
        "version": sub.get(0x21, b"").decode(),
        "cn": sub.get(0x22, b"").decode(),
        "cipher": sub.get(0x23, b"").decode(),
        "sans": tlvs.get(0xE0, b"").decode(),
    }
    return fields, rest


@pytest.mark.usefixtures("tls_engine")
async def test_forward_relays_both_ways(pki: Pki) -> None:
    """An allowed client's bytes reach the backend and its answers come back; the log counts both."""
    received: list[bytes] = []
    async with echo_backend(received) as backend, trio.open_nursery() as nursery:
        server, port, log = await start_server(nursery, pki, forward=f"127.0.0.1:{backend}")
        report = await raw_client(pki, port)
        server.shutdown()
    assert report.result is Exit.OK, report.summary
    assert report.exchanges == [("ping through", "ping through")]
    assert b"".join(received) == b"ping through\n"
    (entry,) = log_events(log, "connection")
    assert entry["protocol"] == "forward" and entry["to_backend"] == 13 and entry["to_client"] == 13


@pytest.mark.usefixtures("tls_engine")
async def test_proxy_v2_header_names_the_client_and_its_tls(pki: Pki) -> None:
    """With forward_identity = proxy-v2 the backend first reads a PROXY v2 header: the client's address,
    ours, SSL client bits with verify 0, version, CN, cipher, and the URI SAN in TLV 0xE0."""
    received: list[bytes] = []
    async with echo_backend(received) as backend, trio.open_nursery() as nursery:
        server, port, log = await start_server(
            nursery, pki, forward=f"127.0.0.1:{backend}", forward_identity="proxy-v2"
        )
        report = await raw_client(pki, port)
        server.shutdown()
    assert report.result is Exit.OK, report.summary
    header, rest = parse_proxy_v2(b"".join(received))
    assert rest == b"ping through\n"
    client_port = int(log_events(log, "connection")[0]["peer"].rsplit(":", 1)[1])
    assert header["source"] == ("127.0.0.1", client_port)
    assert header["destination"] == ("127.0.0.1", port)
    assert header["client"] == 0x01 | 0x02 and header["verify"] == 0
    assert header["version"] == report.tls_version and header["cipher"] == report.cipher
    assert header["cn"] == "alice"
    assert header["sans"] == "URI:spiffe://mtls-ref.test/alice"


@pytest.mark.usefixtures("tls_engine")
async def test_forward_refuses_before_the_backend(pki: Pki) -> None:
    """A client the allow-list refuses never reaches the backend; an unreachable backend is named."""
    received: list[bytes] = []
    async with echo_backend(received) as backend, trio.open_nursery() as nursery:
        server, port, log = await start_server(
            nursery, pki, forward=f"127.0.0.1:{backend}", allow=("CN:bob",)
        )
        refused = await raw_client(pki, port)
        server.shutdown()
    assert refused.result is not Exit.OK and not received
    assert log_events(log, "connection")[0]["outcome"] == "forbidden"
    async with trio.open_nursery() as nursery:
        server, port, log = await start_server(nursery, pki, forward="127.0.0.1:9")  # discard: closed
        await raw_client(pki, port)
        server.shutdown()
    assert log_events(log, "connection")[0]["reason"].startswith("backend 127.0.0.1:9 unreachable")


@pytest.mark.interop
async def test_haproxy_accepts_our_proxy_v2_header(pki: Pki, haproxy: str) -> None:
    """HAProxy 2.6 with accept-proxy in front of the backend takes our header and logs the client's
    original address from it."""
    received: list[bytes] = []
    async with echo_backend(received) as backend:
        with tempfile.TemporaryDirectory() as folder:
            front = free_port()
            conf = trio.Path(folder) / "haproxy.cfg"
            await conf.write_text(
                "global\n  log stdout format raw local0\n"
                "defaults\n  mode tcp\n  log global\n  timeout connect 5s\n  timeout client 10s\n"
                '  timeout server 10s\n  log-format "client=%ci:%cp"\n'
                f"frontend f\n  bind 127.0.0.1:{front} accept-proxy\n  default_backend b\n"
                f"backend b\n  server echo 127.0.0.1:{backend}\n",
                encoding="utf-8",
            )
            process = await trio.lowlevel.open_process(
                [haproxy, "-db", "-f", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
            assert process.stdout is not None
            try:
                await wait_for_port(front, process, "haproxy")
                async with trio.open_nursery() as nursery:
                    server, port, log = await start_server(
                        nursery, pki, forward=f"127.0.0.1:{front}", forward_identity="proxy-v2"
                    )
                    report = await raw_client(pki, port)
                    server.shutdown()
                said = b""
                with trio.move_on_after(10):
                    while b"client=" not in said:
                        said += await process.stdout.receive_some(4096)
            finally:
                await stop_process(process)
                await process.stdout.aclose()
    assert report.result is Exit.OK, report.summary
    assert b"".join(received) == b"ping through\n"  # HAProxy consumed the header itself
    peer = log_events(log, "connection")[0]["peer"]
    assert f"client={peer}".encode() in said, said


HEADER_ECHO = """
import http.server, sys

class Echo(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = "".join(f"{k}: {v}\\n" for k, v in self.headers.items()).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

server = http.server.HTTPServer(("127.0.0.1", 0), Echo)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


@pytest.mark.interop
@pytest.mark.usefixtures("tls_engine")
async def test_http_header_identity_replaces_a_forged_xfcc(pki: Pki, curl: str) -> None:
    """forward_identity = http-header: Python's http.server behind us sees our X-Forwarded-Client-Cert
    on every request of a keep-alive connection, and never the one curl was told to forge."""
    backend = await trio.lowlevel.open_process(
        [sys.executable, "-c", HEADER_ECHO], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert backend.stdout is not None
    try:
        with trio.fail_after(15):
            backend_port = int((await backend.stdout.receive_some(64)).split()[0])
        async with trio.open_nursery() as nursery:
            server, port, log = await start_server(
                nursery, pki, forward=f"127.0.0.1:{backend_port}", forward_identity="http-header"
            )
            with trio.fail_after(30):
                done = await trio.run_process(
                    [
                        *curl_with(curl, pki),
                        "-H",
                        'X-Forwarded-Client-Cert: Hash=0;Subject="CN=admin"',
                        f"https://localhost:{port}/one",
                        f"https://localhost:{port}/two",
                    ],
                    capture_stdout=True,
                )
            server.shutdown()
    finally:
        backend.kill()
        await backend.wait()
        await backend.stdout.aclose()
    seen = done.stdout.decode()
    xfcc = [line for line in seen.splitlines() if line.lower().startswith("x-forwarded-client-cert:")]
    assert len(xfcc) == 2, seen  # one per request, on one connection
    ident = identity_from_der(load_certificates(pki.client.cert)[0].public_bytes(Encoding.DER))
    expected = (
        f'Hash={ident.sha256.replace(":", "").lower()};Subject="CN=alice";URI=spiffe://mtls-ref.test/alice'
    )
    assert all(line.split(": ", 1)[1] == expected for line in xfcc), xfcc
    assert "CN=admin" not in seen
    (entry,) = log_events(log, "connection")
    assert entry["protocol"] == "forward" and entry["outcome"] == "accepted"


async def test_a_relay_cut_at_the_end_of_the_grace_period_is_logged_as_shutdown(pki: Pki) -> None:
    """A relayed connection still open when shutdown_grace ends is cut there, and its log line says the
    server shut it down, as for the line protocol and HTTP/2."""
    received: list[bytes] = []
    async with echo_backend(received) as backend, trio.open_nursery() as nursery:
        server, port, log = await start_server(
            nursery, pki, forward=f"127.0.0.1:{backend}", forward_identity="none", shutdown_grace=0.2
        )
        with trio.fail_after(10):
            config = client_config(pki, port=port)
            tls = await trio.open_ssl_over_tcp_stream("127.0.0.1", port, ssl_context=client_context(config))
            await tls.send_all(b"held open\n")
            assert await tls.receive_some(100) == b"held open\n"  # relayed: the client is in
            server.shutdown()
            with contextlib.suppress(trio.BrokenResourceError):
                while await tls.receive_some(100):  # until the cut at the grace's end
                    pass
            await tls.aclose()
    (entry,) = log_events(log, "connection")
    assert (entry["protocol"], entry["reason"]) == ("forward", "server shutting down"), entry
