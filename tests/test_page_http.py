"""The browser page over real TLS: this connection's own handshake, drawn by the server that recorded it."""

from __future__ import annotations

import http.client
import shlex
import ssl
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import trio

from mtls_ref.shared.core.config import PKIConfig
from mtls_ref.shared.pki.revocation import write_crl

from .support.openssl_trace import certificates_sent, subjects_in
from .support.pki import Pki, demo_certs_folder
from .support.tls import start_server
from .test_page_render import SVG, parse

pytestmark = pytest.mark.interop

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def client_context(pki: Pki, version: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    ctx.load_cert_chain(pki.client.chain, pki.client.key)
    ctx.set_alpn_protocols(["http/1.1"])
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion[f"TLSv1_{version[-1]}"]
    return ctx


def get_page(ctx: ssl.SSLContext, port: int, accept: str = BROWSER_ACCEPT) -> tuple[int, dict[str, str], str]:
    conn = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=10)
    try:
        conn.request("GET", "/", headers={"Accept": accept})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read().decode()
    finally:
        conn.close()


def diagram(page: str) -> list[tuple[str, str]]:
    """(sender, message) of every arrow of the page's SVG, top to bottom."""
    svg = page[page.index("<svg") : page.index("</svg>") + len("</svg>")]
    return [
        (g.get("data-sender", ""), g.get("data-name", ""))
        for g in ET.fromstring(svg).iter(f"{SVG}g")
        if "message" in g.get("class", "").split()
    ]


@pytest.mark.usefixtures("tls_engine")
async def test_browser_page_draws_this_connections_handshake(
    pki: Pki, tls_version: str, tmp_path: Path
) -> None:
    """Accept: text/html gets the page: identity, verification, and the messages of this very handshake."""
    crl = write_crl(PKIConfig(dir=tmp_path), pki.ca)  # nothing revoked; one CRL per CA
    async with trio.open_nursery() as nursery:
        server, port, _ = await start_server(nursery, pki, record_handshakes=True, crl=crl)
        status, headers, page = await trio.to_thread.run_sync(
            get_page, client_context(pki, tls_version), port
        )
        server.shutdown()
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    assert "script-src" not in headers["content-security-policy"]
    assert headers["content-security-policy"].startswith("default-src 'none'")
    assert headers["cache-control"] == "no-store" and headers["vary"] == "Accept"
    fields = parse(page).ids
    assert fields["subject"] == "CN=alice" and fields["spiffe-id"] == "spiffe://mtls-ref.test/alice"
    assert f"TLSv{tls_version}" in page and "<code>http/1.1</code>" in page
    issuer = pki.ca.signer_cert.subject.rfc4514_string()
    assert f"<dt>Revocation (CRL)</dt><dd>on: CRL from {issuer}, next update 20" in page
    assert "crl.pem" not in page and tmp_path.name not in page  # the server's files are its own business
    arrows = diagram(page)
    assert arrows[0] == ("client", "ClientHello") and arrows[1] == ("server", "ServerHello")
    client_auth = [name for sender, name in arrows if sender == "client"]
    assert (
        client_auth.index("Certificate")
        < client_auth.index("CertificateVerify")
        < client_auth.index("Finished")
    )
    assert ("server", "CertificateRequest") in arrows
    if tls_version == "1.2":
        assert ("server", "ServerHelloDone") in arrows and ("client", "ClientKeyExchange") in arrows
    else:
        assert ("server", "EncryptedExtensions") in arrows
    assert ("client", "ApplicationData") in arrows  # the request that asked for this page
    assert arrows[-1] == ("server", "ApplicationData: this page")


async def test_without_recording_the_page_says_how_to_turn_it_on(pki: Pki) -> None:
    """The default server keeps no messages (no cost): the page explains, and curl's */* gets text."""
    async with trio.open_nursery() as nursery:
        server, port, _ = await start_server(nursery, pki)
        ctx = client_context(pki, "1.3")
        _, _, page = await trio.to_thread.run_sync(get_page, ctx, port)
        _, headers, text = await trio.to_thread.run_sync(get_page, ctx, port, "*/*")
        server.shutdown()
    assert "<svg" not in page and "record_handshakes = true" in page
    assert headers["content-type"].startswith("text/plain") and text.startswith("Hello, spiffe://")


async def test_forbidden_browser_gets_an_html_403(pki: Pki) -> None:
    async with trio.open_nursery() as nursery:
        server, port, _ = await start_server(nursery, pki, allow=("CN:bob",))
        status, headers, page = await trio.to_thread.run_sync(get_page, client_context(pki, "1.3"), port)
        server.shutdown()
    assert status == 403 and headers["content-type"].startswith("text/html")
    assert parse(page).ids["label"] == "spiffe://mtls-ref.test/alice"


@pytest.mark.usefixtures("tls_engine", "curl", "openssl")  # both must be installed: they run the commands
async def test_the_pages_commands_reproduce_the_request(pki: Pki, tmp_path: Path) -> None:
    """The curl and openssl s_client commands on the page, run verbatim from a folder holding certs/."""
    demo_certs_folder(pki, tmp_path)
    async with trio.open_nursery() as nursery:
        server, port, _ = await start_server(nursery, pki, record_handshakes=True)
        _, _, page = await trio.to_thread.run_sync(get_page, client_context(pki, "1.3"), port)
        commands = parse(page).ids
        outputs = []
        for command in (commands["curl-command"], commands["s-client-command"]):
            assert command.startswith(("curl ", "printf ")), command
            with trio.fail_after(20):
                done = await trio.run_process(
                    ["bash", "-c", command],
                    cwd=tmp_path,
                    capture_stdout=True,
                    capture_stderr=True,
                    check=False,
                )
            assert done.returncode == 0, done.stderr.decode()
            outputs.append(done.stdout.decode())
        server.shutdown()
    for output in outputs:
        assert '<code id="subject">CN=alice</code>' in output
        assert 'data-name="CertificateVerify" data-sender="client"' in output


async def test_the_pages_s_client_command_sends_the_leaf_once(pki: Pki, openssl: str, tmp_path: Path) -> None:
    """The page's openssl s_client command with -trace added: the client's Certificate message holds
    the leaf once, then the intermediate (a chain file as -cert_chain would send the leaf twice)."""
    demo_certs_folder(pki, tmp_path)
    async with trio.open_nursery() as nursery:
        server, port, _ = await start_server(nursery, pki)
        _, _, page = await trio.to_thread.run_sync(get_page, client_context(pki, "1.3"), port)
        command = parse(page).ids["s-client-command"]
        assert command.count("openssl s_client ") == 1, command
        traced = command.replace("openssl s_client ", f"{shlex.quote(openssl)} s_client -trace ")
        with trio.fail_after(20):
            done = await trio.run_process(
                ["bash", "-c", traced], cwd=tmp_path, capture_stdout=True, capture_stderr=True, check=False
            )
        server.shutdown()
    out = done.stdout.decode() + done.stderr.decode()
    assert done.returncode == 0, out[-3000:]
    assert certificates_sent(out) == subjects_in(pki.client.chain)  # leaf, intermediate: once each
