"""The status port: /metrics in Prometheus' format, parsed by prometheus_client itself; /healthz readiness."""

from __future__ import annotations

import dataclasses
import datetime as dt
import socket
from pathlib import Path

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from mtls_ref.client.session import run_client
from mtls_ref.shared.core.config import PKIConfig
from mtls_ref.shared.pki.authority import CertificateAuthority
from mtls_ref.shared.pki.keys import load_certificates, utcnow
from mtls_ref.shared.pki.revocation import build_crl
from mtls_ref.shared.tls.context import ALPN_LINE, client_context

from .support.pki import Pki
from .support.tls import client_config, log_events, no_cert, start_server

REPO = Path(__file__).resolve().parent.parent


async def http_get(port: int, path: str) -> tuple[int, str]:
    """A plain HTTP/1.1 GET on loopback; (status, body)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    try:
        await stream.send_all(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        answer = b""
        with trio.fail_after(10):
            while chunk := await stream.receive_some(65536):
                answer += chunk
    finally:
        await stream.aclose()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body.decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, by name and labels, read with prometheus_client's own parser."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.mark.usefixtures("tls_engine")
async def test_metrics_move_as_connections_are_accepted_and_refused(pki: Pki) -> None:
    """Two accepted and one refused client: the counters, the alert and the histogram say so."""
    async with trio.open_nursery() as nursery:
        server, port, _ = await start_server(nursery, pki, status="127.0.0.1:0")
        status_port = server.status_addresses[0][1]
        _, before = await http_get(status_port, "/metrics")
        assert (
            samples(before).get(("mtls_connections_total", (("outcome", "accepted"), ("reason", "served"))))
            is None
        )
        for config in (
            client_config(pki, port=port),
            client_config(pki, port=port),
            no_cert(client_config(pki, port=port)),
        ):
            with trio.fail_after(15):
                await run_client(config, client_context(config, alpn=[ALPN_LINE]), messages=["QUIT"])
        status, text = await http_get(status_port, "/metrics")
        server.shutdown()
    assert status == 200
    found = samples(text)
    assert found[("mtls_connections_total", (("outcome", "accepted"), ("reason", "served")))] == 2
    refused = [
        v
        for (name, labels), v in found.items()
        if name == "mtls_connections_total" and ("outcome", "rejected") in labels
    ]
    assert sum(refused) == 1
    assert found[("mtls_alerts_sent_total", (("alert", "certificate_required"),))] == 1
    assert found[("mtls_handshake_seconds_count", ())] == 3
    assert ("mtls_active_connections", ()) in found
    ca = load_certificates(pki.ca_cert)[0]
    seconds = found[("mtls_expiry_seconds", (("subject", ca.subject.rfc4514_string()), ("what", "ca")))]
    assert 3640 * 86400 < seconds < 3651 * 86400
    server_left = found[("mtls_expiry_seconds", (("subject", "CN=server"), ("what", "server_certificate")))]
    assert server_left > 360 * 86400


async def test_promtool_accepts_the_exposition(pki: Pki, promtool: str) -> None:
    """`promtool check metrics`, Prometheus' own linter, finds nothing to say about /metrics once every
    family has samples (an accepted and a refused connection, a CRL loaded): it exits 0, silent."""
    ca = CertificateAuthority.load(PKIConfig(dir=pki.dir))
    crl = build_crl(ca.signer_cert, ca.signer_key, [], now=utcnow(), days=7)
    async with trio.open_nursery() as nursery:
        server, port, _ = await start_server(nursery, pki, status="127.0.0.1:0")
        server.credentials = dataclasses.replace(server.credentials, crls=(crl,))
        for config in (client_config(pki, port=port), no_cert(client_config(pki, port=port))):
            with trio.fail_after(15):
                await run_client(config, client_context(config, alpn=[ALPN_LINE]), messages=["QUIT"])
        _, text = await http_get(server.status_addresses[0][1], "/metrics")
        server.shutdown()
    assert "crl_next_update" in text and "mtls_handshake_seconds_bucket" in text
    with trio.fail_after(30):
        checked = await trio.run_process(
            [promtool, "check", "metrics"],
            stdin=text.encode(),
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    said = (checked.stdout + checked.stderr).decode(errors="replace")
    assert checked.returncode == 0, f"promtool check metrics exited {checked.returncode}: {said}"


@pytest.mark.usefixtures("tls_engine")
async def test_healthz_is_ready_only_with_valid_credentials(pki: Pki) -> None:
    """/healthz is 200 while the loaded credentials are valid, and 503 naming why once a CRL is past
    its next update (the same check covers expired server and CA certificates)."""
    ca = CertificateAuthority.load(PKIConfig(dir=pki.dir))
    stale = build_crl(ca.signer_cert, ca.signer_key, [], now=utcnow() - dt.timedelta(days=3), days=1)
    async with trio.open_nursery() as nursery:
        server, _, _ = await start_server(nursery, pki, status="127.0.0.1:0")
        status_port = server.status_addresses[0][1]
        ready = await http_get(status_port, "/healthz")
        server.credentials = dataclasses.replace(server.credentials, crls=(stale,))
        not_ready = await http_get(status_port, "/healthz")
        missing = await http_get(status_port, "/nope")
        server.shutdown()
    assert ready == (200, "ready\n")
    assert not_ready[0] == 503
    assert not_ready[1].startswith(
        f"not ready: the CRL of {ca.signer_cert.subject.rfc4514_string()} is out of date"
    )
    assert missing[0] == 404


def test_status_address_must_be_host_port(pki: Pki) -> None:
    """A status value that is not HOST:PORT is one clear error at start."""
    from mtls_ref.server.app import Server
    from mtls_ref.server.log import EventLog
    from mtls_ref.shared.core.errors import ConfigError

    from .support.tls import server_config

    async def start() -> None:
        server = Server(server_config(pki, status="localhost"), log=EventLog("json", list[str]().append))
        await server.serve()

    with pytest.raises(ConfigError, match="is not HOST:PORT"):
        trio.run(start)


def test_status_off_loopback_needs_allow_remote(pki: Pki) -> None:
    """A status address off loopback without status_allow_remote stops the server as it is made."""
    from mtls_ref.server.app import Server
    from mtls_ref.server.log import EventLog
    from mtls_ref.shared.core.errors import ConfigError

    from .support.tls import server_config

    with pytest.raises(ConfigError, match=r"status '0\.0\.0\.0:9100' is not a loopback address"):
        Server(server_config(pki, status="0.0.0.0:9100"), log=EventLog("json", list[str]().append))


def test_status_flag_off_loopback_is_refused_before_binding(
    pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    """`mtls-server --status 0.0.0.0:PORT` exits 2 naming --status-allow-remote, before any socket: the
    TLS address (203.0.113.1, TEST-NET-3, never local) would fail to bind if the check came later."""
    from mtls_ref.server.cli import main

    flags = ["--cert", str(pki.server.chain), "--key", str(pki.server.key), "--ca", str(pki.ca_cert)]
    assert main([*flags, "--host", "203.0.113.1", "--port", "0", "--status", "0.0.0.0:9100"]) == 2
    said = capsys.readouterr().err
    assert "status '0.0.0.0:9100' is not a loopback address" in said, said
    assert "--status-allow-remote" in said and "status_allow_remote = true" in said


def test_status_open_to_the_network_is_announced(pki: Pki) -> None:
    """With status_allow_remote the server starts, and its banner and listening event say the status
    port answers the network without authentication (announced without binding 0.0.0.0 in a test)."""
    from mtls_ref.server.app import Server
    from mtls_ref.server.log import EventLog

    from .support.tls import server_config

    lines: list[str] = []
    config = server_config(pki, status="0.0.0.0:9100", status_allow_remote=True)
    server = Server(config, log=EventLog("json", lines.append))
    assert server.posture([("127.0.0.1", 8443)])["status_warning"] == (
        "the status port 0.0.0.0:9100 is open to the network (status_allow_remote): /healthz and "
        "/metrics answer anyone who reaches it, without authentication"
    )
    text: list[str] = []
    Server(config, log=EventLog("text", text.append))._log_start([("127.0.0.1", 8443)])
    assert f"  WARNING          {server.posture([])['status_warning']}" in text[0].splitlines()


@pytest.mark.parametrize("address", ["127.0.0.1:0", "localhost:0", "[::1]:0", ":0"])
async def test_status_on_loopback_needs_no_opt_in(pki: Pki, address: str) -> None:
    """Loopback status addresses (and an empty host, which means 127.0.0.1) start as before, unannounced."""
    if address.startswith("[::1]") and not socket.has_ipv6:
        pytest.skip("this machine has no IPv6")
    async with trio.open_nursery() as nursery:
        server, _, log = await start_server(nursery, pki, status=address)
        server.shutdown()
    (listening,) = log_events(log, "listening")
    assert listening["status"] and "status_warning" not in listening


async def test_documented_status_example_prints_what_the_page_shows(pki: Pki, curl: str) -> None:
    """docs/server.md's `curl -s http://127.0.0.1:9100/metrics | grep mtls_connections_total`, run by
    bash with the test's status port in place of 9100, after the page's story (two clients
    accepted, one without a certificate refused on TLS 1.3): the lines it prints are the page's,
    # HELP and # TYPE included."""
    doc = (REPO / "docs" / "server.md").read_text(encoding="utf-8")
    start = doc.index("$ curl -s http://127.0.0.1:9100/metrics")
    command, *shown = doc[start : doc.index("```", start)].strip().splitlines()
    async with trio.open_nursery() as nursery:
        server, port, _ = await start_server(nursery, pki, status="127.0.0.1:0")
        for config in (
            client_config(pki, port=port),
            client_config(pki, port=port),
            no_cert(client_config(pki, port=port)),
        ):
            with trio.fail_after(15):
                await run_client(config, client_context(config, alpn=[ALPN_LINE]), messages=["QUIT"])
        status_port = server.status_addresses[0][1]
        script = (
            command.removeprefix("$ ").replace(":9100/", f":{status_port}/").replace("curl ", f"{curl} ", 1)
        )
        with trio.fail_after(20):
            done = await trio.run_process(["bash", "-c", script], capture_stdout=True, check=False)
        server.shutdown()
    assert done.returncode == 0
    assert done.stdout.decode().splitlines() == shown
