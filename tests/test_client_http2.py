"""``mtls-client --http2`` against nginx with HTTP/2 and ``ssl_verify_client on`` (nobody here wrote it), and
against our own server."""

from __future__ import annotations

import pytest
import trio

from mtls_ref.client.cli import main as client_main
from mtls_ref.client.h2_exchange import ALPN_OFFER
from mtls_ref.client.report import render_report
from mtls_ref.client.session import ClientReport, Exit, run_client
from mtls_ref.shared.core.config import ClientConfig
from mtls_ref.shared.tls.context import client_context

from .support.nginx import mtls_nginx
from .support.pki import Pki
from .support.tls import client_config, no_cert, start_server

pytestmark = pytest.mark.interop


async def get(config: ClientConfig, path: str = "/") -> ClientReport:
    with trio.fail_after(15):
        return await run_client(
            config, client_context(config, alpn=ALPN_OFFER), mode="http2", messages=[path]
        )


async def test_http2_get_through_nginx(pki: Pki, nginx: str) -> None:
    """nginx chooses h2, verifies our certificate and answers 200: the status and the body are printed."""
    async with mtls_nginx(nginx, cert=pki.server.chain, key=pki.server.key, ca=pki.ca_cert, http2=True) as (
        port,
        _,
    ):
        report = await get(client_config(pki, port=port), "/whoami")
        no_certificate = await get(no_cert(client_config(pki, port=port)))
    assert report.result is Exit.OK, render_report(report, trace="off")
    assert report.exchanges == [("GET /whoami HTTP/2", "HTTP/2 200")]
    assert report.body is not None and report.body.startswith("hello ") and "CN=alice" in report.body
    printed = render_report(report, trace="off")
    assert "> GET /whoami HTTP/2\n< HTTP/2 200\n< hello " in printed
    # The negative control: no certificate is nginx's 400 over HTTP/2 as over HTTP/1.1.
    assert no_certificate.result is Exit.CERT_REJECTED, render_report(no_certificate, trace="off")
    assert no_certificate.http_status == "400: No required SSL certificate was sent"
    assert no_certificate.summary == (
        "the server refused our certificate in HTTP: HTTP 400: No required SSL certificate was sent"
    )


async def test_a_server_that_does_not_choose_h2_is_named(pki: Pki, nginx: str) -> None:
    """nginx without http2 chooses http/1.1 from our offer: the client says so, and what to use instead."""
    async with mtls_nginx(nginx, cert=pki.server.chain, key=pki.server.key, ca=pki.ca_cert) as (port, _):
        report = await get(client_config(pki, port=port))
    assert report.result is Exit.PROTOCOL
    assert report.summary == (
        "the server did not choose HTTP/2 in ALPN (it chose http/1.1); we offered h2, http/1.1"
    )
    assert report.fix == "is this an HTTP/2 server? gRPC needs one; for HTTPS without HTTP/2, use --http"


def test_a_path_without_a_slash_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """`--http2 whoami` is refused before connecting: HTTP/2's :path starts with '/' (exit 2)."""
    assert client_main(["--http2", "whoami", "--trace", "off"]) == 2
    assert (
        capsys.readouterr().err
        == "mtls-client: error: --http2 takes a path starting with '/', not 'whoami'\n"
    )


async def test_http2_get_from_our_server(pki: Pki) -> None:
    """Against mtls-server's own port (as the README and --help say it works), GET /whoami over h2 is 200
    with alice's identity; a path the server does not serve is its 404, exit 7."""
    async with trio.open_nursery() as nursery:
        server, port, _ = await start_server(nursery, pki)
        report = await get(client_config(pki, port=port), "/whoami")
        missing = await get(client_config(pki, port=port), "/nope")
        server.shutdown()
    assert report.result is Exit.OK, render_report(report, trace="off")
    assert '"spiffe_id": "spiffe://mtls-ref.test/alice"' in render_report(report, trace="off")
    assert "> GET /whoami HTTP/2\n< HTTP/2 200\n" in render_report(report, trace="off")
    assert (missing.result, missing.summary) == (
        Exit.PROTOCOL,
        "the TLS handshake passed, but the server answered HTTP 404",
    )
