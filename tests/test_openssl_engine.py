"""What the openssl engine adds: CA names sent, the verified chain, resumption; and its low-level hooks."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import trio
from cryptography.x509.oid import NameOID

from mtls_ref.server.engine import openssl_lowlevel
from mtls_ref.shared.pki.keys import load_certificates

from .support.peer_flags import s_client_credentials
from .support.pki import Pki
from .support.processes import read_until
from .support.tls import log_events, start_server

pytestmark = pytest.mark.interop


async def s_client(openssl: str, port: int, *args: str, until: bytes = b"OK pong") -> str:
    """`openssl s_client` to 127.0.0.1:port, its handshake summary included (no -quiet).

    It sends PING and keeps its stdin open until ``until`` shows (s_client hangs up
    at the end of its input, which could be before the server's answer or tickets).
    """
    process = await trio.lowlevel.open_process(
        [openssl, "s_client", "-connect", f"127.0.0.1:{port}", "-verify_return_error", "-nocommands", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        await process.stdin.send_all(b"PING\n")
        seen = await read_until(process.stdout, until, "openssl s_client")
        await process.stdin.aclose()
        with trio.fail_after(15):
            while chunk := await process.stdout.receive_some(65536):
                seen += chunk
            await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await process.stdout.aclose()
    return seen.decode(errors="replace")


def test_low_level_hooks_are_there() -> None:
    """cryptography's bindings still expose the calls the openssl engine's trace and diagnosis rest on.

    If this fails, cryptography dropped them: the openssl engine refuses to start
    (naming tls_engine = "stdlib" as the way out) until openssl_lowlevel is rewritten.
    """
    assert openssl_lowlevel.available(), f"gone from cryptography's bindings: {openssl_lowlevel.missing()}"


@pytest.mark.parametrize("engine", ["openssl", "stdlib"])
async def test_certificate_request_names_the_ca(pki: Pki, openssl: str, engine: str) -> None:
    """The openssl engine lists the trusted CA in CertificateRequest; Python's ssl cannot."""
    ca_name = load_certificates(pki.ca_cert)[0].subject
    common_name = ca_name.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert isinstance(common_name, str)  # typed str | bytes: only a few OIDs hold bytes
    async with trio.open_nursery() as nursery:
        server, port, _ = await start_server(nursery, pki, tls_engine=engine)
        out = await s_client(openssl, port, *s_client_credentials(pki))
        server.shutdown()
    if engine == "openssl":
        assert f"Acceptable client certificate CA names\nCN = {common_name}, O = mtls-ref" in out, out
    else:
        assert "No client certificate CA names sent" in out, out


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        ("mtls-ref/1,h2", "h2"),  # the server's order decides, not the client's
        ("xh2,spdy/3,http/1.1", "http/1.1"),  # an entry holding "h2" is not h2
        ("spdy/3", None),  # no overlap: no ALPN, no alert; the handler sniffs and greets
    ],
)
@pytest.mark.parametrize("version", [(), ("-tls1_2",)], ids=["negotiated", "tls12"])
async def test_alpn_is_the_servers_choice_among_whole_entries(
    pki: Pki, openssl: str, offered: str, chosen: str | None, version: tuple[str, ...]
) -> None:
    """The openssl engine's own ALPN selector (C callback) picks our first protocol the client offers."""
    async with trio.open_nursery() as nursery:
        server, port, _ = await start_server(nursery, pki, tls_engine="openssl")
        until = b"ALPN protocol" if chosen else b"OK pong"
        out = await s_client(
            openssl, port, *version, "-alpn", offered, *s_client_credentials(pki), until=until
        )
        server.shutdown()
    if chosen:
        assert f"ALPN protocol: {chosen}\n" in out, out
    else:
        assert "No ALPN negotiated" in out and "OK pong" in out, out


async def test_whoami_reports_the_verified_chain(pki: Pki, openssl: str) -> None:
    """WHOAMI on the openssl engine names the chain OpenSSL verified, leaf to root."""
    async with trio.open_nursery() as nursery:
        server, port, _ = await start_server(nursery, pki, tls_engine="openssl")
        with trio.fail_after(15):
            done = await trio.run_process(
                [openssl, "s_client", "-connect", f"127.0.0.1:{port}", "-quiet", *s_client_credentials(pki)],
                stdin=b"WHOAMI\nQUIT\n",
                capture_stdout=True,
                capture_stderr=True,
            )
        server.shutdown()
    whoami = json.loads(done.stdout.decode().split("OK whoami ", 1)[1].split("\n", 1)[0])
    root = load_certificates(pki.ca_cert)[0]
    intermediate = load_certificates(pki.ca_cert.parent / "intermediate.pem")[0]
    assert intermediate.issuer == root.subject
    assert whoami["verified_chain"] == [
        "CN=alice",
        intermediate.subject.rfc4514_string(),
        root.subject.rfc4514_string(),
    ]
    assert whoami["session_resumed"] is False


@pytest.mark.parametrize("version", ["-tls1_3", "-tls1_2"])
async def test_sessions_resume(pki: Pki, openssl: str, tmp_path: Path, version: str) -> None:
    """A client that kept its session (ticket or id) resumes it, and the server logs resumed=true."""
    session = tmp_path / "session.pem"
    creds = s_client_credentials(pki)
    async with trio.open_nursery() as nursery:
        server, port, log = await start_server(nursery, pki, tls_engine="openssl")
        first = await s_client(openssl, port, version, *creds, "-sess_out", str(session))
        second = await s_client(openssl, port, version, *creds, "-sess_in", str(session))
        server.shutdown()
    assert "New, TLSv1." in first, first
    assert "Reused, TLSv1." in second, second
    connections = log_events(log, "connection")
    assert [c.get("resumed") for c in connections] == [None, True]
    assert connections[1]["subject"] == "CN=alice"  # the identity comes with the session


async def test_refusal_names_the_presented_chain(pki: Pki, openssl: str) -> None:
    """A foreign-CA client is refused with unknown_ca, and the log names what it presented."""
    foreign = pki.foreign_client
    async with trio.open_nursery() as nursery:
        server, port, log = await start_server(nursery, pki, tls_engine="openssl")
        out = await s_client(
            openssl,
            port,
            *("-CAfile", str(pki.ca_cert), "-cert", str(foreign.cert), "-key", str(foreign.key)),
            until=b"alert",
        )
        server.shutdown()
    assert "alert unknown ca" in out
    (refused,) = log_events(log, "connection")
    assert refused["outcome"] == "rejected" and refused["alert"] == "unknown_ca"
    assert refused["presented"] == ["CN=mallory"]
