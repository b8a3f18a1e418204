"""HTTP/1.1 on the mTLS port, driven by real clients: curl, Python's http.client, openssl s_client."""

from __future__ import annotations

import http.client
import json
import ssl
from pathlib import Path

import pytest
import trio

from .support.peer_flags import curl_with, s_client_credentials
from .support.pki import Pki
from .support.tls import log_events, start_server

pytestmark = pytest.mark.interop


async def run(*argv: str, stdin: bytes = b"") -> tuple[int, str, str]:
    with trio.fail_after(20):
        done = await trio.run_process(
            list(argv), stdin=stdin, capture_stdout=True, capture_stderr=True, check=False
        )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


@pytest.mark.usefixtures("tls_engine")
async def test_curl_with_client_certificate(pki: Pki, curl: str, tls_version: str) -> None:
    """curl --cert/--key/--cacert gets /whoami as JSON and / as text (over ALPN h2, curl's choice)."""
    flag = "--tlsv1.3" if tls_version == "1.3" else "--tls-max"
    extra = [flag] if tls_version == "1.3" else [flag, "1.2"]
    async with trio.open_nursery() as nursery:
        server, port, log = await start_server(nursery, pki)
        base = [*curl_with(curl, pki), *extra]
        code, out, err = await run(*base, f"https://127.0.0.1:{port}/whoami")
        assert code == 0, err
        whoami = json.loads(out)
        assert whoami["subject"] == "CN=alice" and whoami["tls_version"] == f"TLSv{tls_version}"
        code, page, _ = await run(*base, f"https://127.0.0.1:{port}/")
        assert "Hello, spiffe://mtls-ref.test/alice." in page
        code, health, _ = await run(*base, "--write-out", "%{http_code}", f"https://127.0.0.1:{port}/healthz")
        assert health == "ok\n200"
        code, missing, _ = await run(
            *base, "--write-out", "%{http_code}", "-o", "/dev/null", f"https://127.0.0.1:{port}/nope"
        )
        assert missing == "404"
        server.shutdown()
    # curl offers h2 and http/1.1 and gets h2, as from nginx (tests/test_http2.py); --http1.1 for h11
    assert {e["protocol"] for e in log_events(log, "connection")} == {"h2"}


@pytest.mark.usefixtures("tls_engine")
@pytest.mark.parametrize("case", ["no-cert", "foreign-ca"])
async def test_curl_refused_with_the_alert(pki: Pki, curl: str, case: str) -> None:
    """curl without a certificate, or with a foreign-CA one, fails with the TLS alert."""
    creds = (
        []
        if case == "no-cert"
        else ["--cert", str(pki.foreign_client.chain), "--key", str(pki.foreign_client.key)]
    )
    async with trio.open_nursery() as nursery:
        server, port, _ = await start_server(nursery, pki)
        code, _, err = await run(
            curl,
            "--silent",
            "--show-error",
            "--cacert",
            str(pki.ca_cert),
            *creds,
            f"https://127.0.0.1:{port}/whoami",
        )
        server.shutdown()
    assert code != 0
    expected = "alert certificate required" if case == "no-cert" else "alert unknown ca"
    assert expected in err, err


@pytest.mark.usefixtures("tls_engine")
async def test_forbidden_is_http_403_with_json(pki: Pki, curl: str) -> None:
    """A verified client outside the allow-list gets 403 naming its identity and the kinds of rule that
    count, never the rules themselves (those go to the server's log only)."""
    async with trio.open_nursery() as nursery:
        server, port, log = await start_server(nursery, pki, allow=("CN:bob", "URI:spiffe://x/*"))
        _, out, _ = await run(
            *curl_with(curl, pki),
            "--write-out",
            "\n%{http_code}",
            f"https://127.0.0.1:{port}/whoami",
        )
        server.shutdown()
    body, status = out.rsplit("\n", 1)
    assert status == "403"
    refusal = json.loads(body)
    assert refusal["error"] == "forbidden"
    assert refusal["identity"] == "spiffe://mtls-ref.test/alice"
    assert refusal["reason"].endswith("this server admits by CN, URI name")
    assert "bob" not in body and "spiffe://x" not in body
    assert "rules: CN:bob, URI:spiffe://x/*" in log_events(log, "connection")[0]["reason"]


@pytest.mark.usefixtures("tls_engine")
async def test_python_http_client_keep_alive(pki: Pki) -> None:
    """http.client with an SSLContext carrying the client cert: two requests on one connection."""
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    ctx.load_cert_chain(pki.client.chain, pki.client.key)

    def two_requests(port: int) -> tuple[dict[str, object], str, object]:
        conn = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=10)
        try:
            conn.request("GET", "/whoami")
            first = json.loads(conn.getresponse().read())
            sock = conn.sock
            conn.request("GET", "/healthz")
            second = conn.getresponse().read().decode()
            return first, second, sock is conn.sock
        finally:
            conn.close()

    async with trio.open_nursery() as nursery:
        server, port, _ = await start_server(nursery, pki)
        first, second, same = await trio.to_thread.run_sync(two_requests, port)
        server.shutdown()
    assert first["subject"] == "CN=alice"
    assert second == "ok\n"
    assert same is True  # keep-alive: the same socket served both


@pytest.mark.usefixtures("tls_engine")
async def test_s_client_get_without_alpn(pki: Pki, openssl: str) -> None:
    """`GET / HTTP/1.0` typed into openssl s_client (no ALPN) is answered as HTTP."""
    async with trio.open_nursery() as nursery:
        server, port, _ = await start_server(nursery, pki)
        _, out, _ = await run(
            openssl,
            "s_client",
            "-connect",
            f"127.0.0.1:{port}",
            "-quiet",
            *s_client_credentials(pki),
            stdin=b"GET / HTTP/1.0\r\n\r\n",
        )
        server.shutdown()
    assert "HTTP/1.1 200 OK" in out
    assert "Hello, spiffe://mtls-ref.test/alice." in out
    assert "OK hello" not in out


@pytest.mark.usefixtures("tls_engine")
async def test_throughput_endpoints(pki: Pki, curl: str, tmp_path: Path) -> None:
    """GET /bytes/N streams N bytes; POST /sink counts an upload larger than the normal body limit."""
    upload = tmp_path / "upload.bin"
    upload.write_bytes(bytes(3 * 1024 * 1024))
    async with trio.open_nursery() as nursery:
        server, port, _ = await start_server(nursery, pki)
        base = curl_with(curl, pki)
        code, out, err = await run(
            *base,
            "--write-out",
            "%{size_download}",
            "-o",
            "/dev/null",
            f"https://127.0.0.1:{port}/bytes/5000000",
        )
        assert code == 0, err
        assert out == "5000000"
        code, out, err = await run(*base, "--data-binary", f"@{upload}", f"https://127.0.0.1:{port}/sink")
        assert code == 0, err
        assert json.loads(out) == {"received": 3 * 1024 * 1024}
        _, out, _ = await run(
            *base, "--write-out", "%{http_code}", "-o", "/dev/null", f"https://127.0.0.1:{port}/bytes/lots"
        )
        assert out == "400"
        server.shutdown()
