"""HTTP on the mTLS port, asked with real requests (http.client over TLS on loopback): a 405 names
the methods of the resource asked for, and every variant chosen by Accept says Vary: Accept."""

from __future__ import annotations

import http.client
import ssl

import pytest
import trio

from .support.pki import Pki
from .support.tls import start_server


def client_context(pki: Pki) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    ctx.load_cert_chain(pki.client.chain, pki.client.key)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def ask(
    pki: Pki, port: int, requests: list[tuple[str, str, dict[str, str]]]
) -> list[tuple[int, dict[str, str]]]:
    """Send ``requests`` (method, path, headers) on one keep-alive connection; (status, headers) each.
    A POST or PUT carries a two-byte body."""
    conn = http.client.HTTPSConnection("localhost", port, context=client_context(pki), timeout=10)
    answers = []
    try:
        for method, path, headers in requests:
            conn.request(method, path, body=b"hi" if method in ("POST", "PUT") else None, headers=headers)
            response = conn.getresponse()
            response.read()
            answers.append((response.status, {k.lower(): v for k, v in response.getheaders()}))
    finally:
        conn.close()
    return answers


@pytest.mark.usefixtures("tls_engine")
async def test_405_allow_names_the_resources_own_methods(pki: Pki) -> None:
    """DELETE or GET /sink: 405 with Allow: POST; PUT /whoami: Allow: GET, HEAD; HEAD /bytes/N:
    Allow: GET; a path that does not exist is 404 whatever the method (no Allow to name)."""
    asked: list[tuple[str, str, dict[str, str]]] = [
        ("DELETE", "/sink", {}),
        ("GET", "/sink", {}),
        ("PUT", "/whoami", {}),
        ("HEAD", "/bytes/4", {}),
        ("DELETE", "/nope", {}),
        ("POST", "/sink", {}),
    ]
    async with trio.open_nursery() as nursery:
        server, port, _ = await start_server(nursery, pki)
        answers = await trio.to_thread.run_sync(ask, pki, port, asked)
        server.shutdown()
    assert [(status, headers.get("allow")) for status, headers in answers] == [
        (405, "POST"),
        (405, "POST"),
        (405, "GET, HEAD"),
        (405, "GET"),
        (404, None),
        (200, None),
    ]


async def test_every_variant_of_root_and_403_says_vary_accept(pki: Pki) -> None:
    """GET / as text (curl's */*) and as HTML both carry Vary: Accept, as do the JSON and HTML 403s;
    /whoami, which has one representation, does not."""
    text, html, whoami = {"Accept": "*/*"}, {"Accept": "text/html"}, {"Accept": "*/*"}
    async with trio.open_nursery() as nursery:
        server, port, _ = await start_server(nursery, pki)
        allowed = await trio.to_thread.run_sync(
            ask, pki, port, [("GET", "/", text), ("GET", "/", html), ("GET", "/whoami", whoami)]
        )
        server.shutdown()
    async with trio.open_nursery() as nursery:
        server, port, _ = await start_server(nursery, pki, allow=("CN:bob",))
        refused = [
            (await trio.to_thread.run_sync(ask, pki, port, [("GET", "/", accept)]))[0]
            for accept in (text, html)  # a 403 closes the connection: one request each
        ]
        server.shutdown()
    assert [(status, h["content-type"], h.get("vary")) for status, h in allowed + refused] == [
        (200, "text/plain; charset=utf-8", "Accept"),
        (200, "text/html; charset=utf-8", "Accept"),
        (200, "application/json", None),
        (403, "application/json", "Accept"),
        (403, "text/html; charset=utf-8", "Accept"),
    ]
