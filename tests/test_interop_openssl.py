"""Interop with the real openssl CLI as a separate process, on loopback, both TLS versions."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
import trio
from cryptography.hazmat.primitives.serialization import Encoding

from mtls_ref.client.session import ClientReport, Exit, run_client
from mtls_ref.server.cli import build_parser
from mtls_ref.shared.core.config import ClientConfig
from mtls_ref.shared.pki.keys import load_certificates
from mtls_ref.shared.tls.context import client_context

from .support.openssl_trace import certificates_sent, subjects_in
from .support.peer_flags import s_client_credentials
from .support.pki import Pki, demo_certs_folder
from .support.s_server import s_server
from .support.tls import client_config, log_events, start_server, with_version

pytestmark = pytest.mark.interop

REPO = Path(__file__).resolve().parent.parent


async def s_client(openssl: str, port: int, tls_version: str, *args: str, stdin: bytes) -> str:
    """Run `openssl s_client` against 127.0.0.1:port; returns stdout + stderr."""
    flag = "-tls1_3" if tls_version == "1.3" else "-tls1_2"
    with trio.fail_after(15):
        done = await trio.run_process(
            [
                openssl,
                "s_client",
                "-connect",
                f"127.0.0.1:{port}",
                flag,
                "-quiet",
                "-verify_return_error",
                "-verify_hostname",
                "localhost",
                *args,
            ],
            stdin=stdin,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    return done.stdout.decode() + done.stderr.decode()


@pytest.mark.usefixtures("tls_engine")
async def test_s_client_with_our_client_cert(pki: Pki, openssl: str, tls_version: str) -> None:
    """openssl s_client presenting our client chain talks the line protocol by hand."""
    async with trio.open_nursery() as nursery:
        server, port, log = await start_server(nursery, pki)
        out = await s_client(
            openssl,
            port,
            tls_version,
            *s_client_credentials(pki),
            stdin=b"WHOAMI\nECHO typed by hand\nQUIT\n",
        )
        server.shutdown()
    assert "OK hello spiffe://mtls-ref.test/alice" in out
    assert '"subject":"CN=alice"' in out
    assert "OK echo typed by hand" in out
    assert "OK bye" in out
    assert log_events(log, "connection")[0]["outcome"] == "accepted"


@pytest.mark.usefixtures("tls_engine")
@pytest.mark.parametrize("case", ["no-cert", "foreign-ca"])
async def test_s_client_refused_with_the_alert(pki: Pki, openssl: str, tls_version: str, case: str) -> None:
    """openssl s_client without a cert, or with a foreign-CA cert, prints the alert, not just EOF."""
    creds: list[str] = []
    if case == "foreign-ca":
        creds = ["-cert", str(pki.foreign_client.cert), "-key", str(pki.foreign_client.key)]
    async with trio.open_nursery() as nursery:
        server, port, log = await start_server(nursery, pki)
        out = await s_client(
            openssl, port, tls_version, "-CAfile", str(pki.ca_cert), *creds, stdin=b"WHOAMI\n"
        )
        server.shutdown()
    expected = {
        ("no-cert", "1.3"): "alert certificate required",
        ("no-cert", "1.2"): "alert handshake failure",
        ("foreign-ca", "1.3"): "alert unknown ca",
        ("foreign-ca", "1.2"): "alert unknown ca",
    }[(case, tls_version)]
    assert expected in out, out
    assert "OK hello" not in out
    assert log_events(log, "connection")[0]["outcome"] == "rejected"


async def run_raw(config: ClientConfig) -> ClientReport:
    with trio.fail_after(15):
        return await run_client(config, client_context(config), messages=["mtls"], mode="raw")


async def test_our_client_against_s_server(pki: Pki, openssl: str, tls_version: str) -> None:
    """Our client completes mTLS with openssl s_server and proves acceptance by a reply."""
    async with s_server(openssl, pki) as port:
        report = await run_raw(with_version(client_config(pki, port=port), tls_version))
    assert report.result is Exit.OK, report.summary
    assert report.exchanges == [("mtls", "sltm")]
    assert report.client_cert_requested is True


async def test_our_client_refused_by_s_server(pki: Pki, openssl: str, tls_version: str) -> None:
    """s_server refuses a foreign-CA certificate; our client names the alert and the fix."""
    async with s_server(openssl, pki) as port:
        report = await run_raw(with_version(client_config(pki, pki.foreign_client, port=port), tls_version))
    assert report.result is Exit.CERT_REJECTED
    assert report.alert == "unknown_ca"
    assert "does not trust the CA that issued our certificate" in report.summary


async def test_our_client_without_cert_refused_by_s_server(pki: Pki, openssl: str, tls_version: str) -> None:
    """s_server requires a certificate; our client explains that it sent none."""
    async with s_server(openssl, pki) as port:
        config = ClientConfig(
            host="127.0.0.1",
            port=port,
            server_name="localhost",
            cert=None,
            key=None,
            ca=pki.ca_cert,
            tls_min=tls_version,
            tls_max=tls_version,
            timeout=5.0,
        )
        report = await run_raw(config)
    assert report.result is Exit.CERT_REJECTED
    assert report.summary == "the server requires a client certificate and we sent none"


def tampered_copy(pki: Pki, folder: Path) -> Path:
    """alice's chain with one bit of her certificate's signature flipped (her key still matches)."""
    leaf, *rest = load_certificates(pki.client.chain)
    der = bytearray(leaf.public_bytes(Encoding.DER))
    der[-5] ^= 0x01  # inside the signature value, the last field of the certificate
    path = folder / "tampered-chain.pem"
    pems = [pem_certificate(der), *(c.public_bytes(Encoding.PEM) for c in rest)]
    path.write_bytes(b"".join(pems))
    return path


def pem_certificate(der: bytes | bytearray) -> bytes:
    body = base64.encodebytes(bytes(der)).replace(b"\n", b"")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return b"-----BEGIN CERTIFICATE-----\n" + b"\n".join(lines) + b"\n-----END CERTIFICATE-----\n"


def alert_received(out: str) -> str:
    """The alert s_client says it received ('... tlsv1 alert decrypt error ...' -> decrypt_error)."""
    match = re.search(r"(?:tlsv1|sslv3|tlsv13) alert ([a-z ]+?)(?:[:(]|$)", out, re.MULTILINE)
    assert match, out
    return match.group(1).strip().replace(" ", "_")


@pytest.mark.usefixtures("tls_engine")
async def test_the_logged_alert_is_the_one_on_the_wire(
    pki: Pki, openssl: str, tls_version: str, tmp_path: Path
) -> None:
    """A client certificate with a tampered signature: the alert openssl s_client receives is the alert
    our log names, as the engine reported writing it, on both engines and both versions."""
    chain = tampered_copy(pki, tmp_path)
    async with trio.open_nursery() as nursery:
        server, port, log = await start_server(nursery, pki)
        out = await s_client(
            openssl,
            port,
            tls_version,
            *("-CAfile", str(pki.ca_cert), "-cert", str(chain), "-key", str(pki.client.key)),
            stdin=b"WHOAMI\n",
        )
        server.shutdown()
    (entry,) = log_events(log, "connection")
    assert entry["outcome"] == "rejected"
    assert entry["alert"] == alert_received(out), (entry, out)


def documented_line_protocol_command() -> str:
    """The `openssl s_client` command of docs/server.md's line protocol example, continuation joined."""
    doc = (REPO / "docs" / "server.md").read_text(encoding="utf-8")
    section = doc.split("## The line protocol", 1)[1]
    found = re.search(r"^\$ (openssl s_client .*?(?:\\\n.*?)*)$", section, re.MULTILINE)
    assert found is not None, "docs/server.md: no '$ openssl s_client' command under 'The line protocol'"
    return found.group(1).replace("\\\n", " ")


def test_server_help_shows_the_documented_s_client_command() -> None:
    """`mtls-server --help` suggests the very s_client command that docs/server.md shows and the next test
    runs, not one that sends the leaf twice."""
    help_words = " ".join(build_parser().format_help().split())
    assert " ".join(documented_line_protocol_command().split()) in help_words


async def test_documented_s_client_sends_the_leaf_once(pki: Pki, openssl: str, tmp_path: Path) -> None:
    """docs/server.md's line protocol command, run from a folder holding certs/ with -trace added: the
    client's Certificate message holds the leaf once, then the intermediate, and the server greets it."""
    demo_certs_folder(pki, tmp_path)
    command = documented_line_protocol_command()
    assert "-connect 127.0.0.1:8443" in command, command
    async with trio.open_nursery() as nursery:
        server, port, _ = await start_server(nursery, pki)
        argv = command.replace("127.0.0.1:8443", f"127.0.0.1:{port}").split()
        assert argv[:2] == ["openssl", "s_client"], argv
        with trio.fail_after(20):
            done = await trio.run_process(
                [openssl, "s_client", "-trace", *argv[2:]],
                cwd=tmp_path,
                stdin=b"QUIT\n",
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
        server.shutdown()
    out = done.stdout.decode() + done.stderr.decode()
    assert "OK hello" in out, out[-3000:]
    assert certificates_sent(out) == subjects_in(pki.client.chain)  # leaf, intermediate: once each
