"""The bad servers, served for real on loopback: each row is what it says, and our own client passes them all.

A client written the way the late-rejection row exists to catch (handshake done
= success) fails that row and only that one; the same client reading first passes.
"""

from __future__ import annotations

import select
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable

import pytest
import trio
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtensionOID, NameOID
from OpenSSL import SSL

from mtls_ref.client.session import Exit, run_client
from mtls_ref.server.badservers import ServedRow, serve_bad_servers, substitute
from mtls_ref.shared.badservers import Status, Verdict, judge
from mtls_ref.shared.core.config import ClientConfig
from mtls_ref.shared.pki.badset import Manifest
from mtls_ref.shared.tls.context import ALPN_HTTP, client_context

SETTLE = {"grace": 0.5, "within": 12.0}


@pytest.fixture
async def rows(badset: Manifest) -> AsyncIterator[dict[str, ServedRow]]:
    async with serve_bad_servers(badset) as served:
        yield {item.row.name: item for item in served}


def good_client(badset: Manifest, item: ServedRow, *, crl: bool) -> ClientConfig:
    """mtls-client's config for a row: the set's good credential and CA, and its CRL when asked."""
    good = badset.case("good")
    return ClientConfig(
        host="localhost",
        port=item.port or 0,
        ca=badset.path(badset.ca),
        crl=badset.path(badset.crl) if crl else None,
        cert=badset.path(good.cert or ""),
        key=badset.path(good.key or ""),
        timeout=5.0,
    )


async def run_ours(item: ServedRow, badset: Manifest) -> tuple[Verdict, bool | None]:
    """mtls-client (in-process, --http, with the CRL) against a row: the verdict, and if it was asked."""
    config = good_client(badset, item, crl=True)
    with trio.fail_after(20):
        report = await run_client(config, client_context(config, alpn=[ALPN_HTTP]), messages=[], mode="http")
        activity = await item.recorder.settle(**SETTLE)
    verdict = judge(
        item.row, activity, client_ok=report.result is Exit.OK, client=f"exit {int(report.result)}"
    )
    return verdict, report.client_cert_requested


async def test_our_client_passes_every_row(rows: dict[str, ServedRow], badset: Manifest) -> None:
    """mtls-client refuses every bad server, reports every refusal, works with both controls."""
    verdicts = {}
    for name, item in rows.items():
        verdicts[name], asked = await run_ours(item, badset)
        if name == "no-cert-request":
            assert asked is False  # and it says so: "client certificate requested: no"
        if name == "good":
            assert asked is True
    failing = {name: (v.observed, v.detail) for name, v in verdicts.items() if v.status is not Status.PASS}
    assert failing == {}
    assert verdicts["wrong-name"].observed == "client refused: alert bad_certificate; no cert"
    assert verdicts["revoked"].observed == "client refused: alert certificate_revoked; no cert"
    assert verdicts["late-rejection"].observed == "server refused: alert unknown_ca; cert sent"


async def test_without_the_crl_our_client_is_informational_on_revocation(
    rows: dict[str, ServedRow], badset: Manifest
) -> None:
    """Not given the CRL, our client goes through: the row says so and does not call it broken."""
    item = rows["revoked"]
    config = good_client(badset, item, crl=False)
    with trio.fail_after(20):
        report = await run_client(config, client_context(config, alpn=[ALPN_HTTP]), messages=[], mode="http")
        activity = await item.recorder.settle(**SETTLE)
    verdict = judge(item.row, activity, client_ok=report.result is Exit.OK)
    assert (verdict.status, verdict.observed) == (Status.INFORMATIONAL, "request served (TLSv1.3); cert sent")


def naive_client(port: int, badset: Manifest, *, read_first: bool) -> bool:
    """A few lines of ssl written the wrong way (handshake done = success), or the right way (read first)."""
    good = badset.case("good")
    ctx = ssl.create_default_context(cafile=str(badset.path(badset.ca)))
    ctx.load_cert_chain(badset.path(good.cert or ""), badset.path(good.key or ""))
    try:
        with (
            socket.create_connection(("localhost", port), timeout=5) as raw,
            ctx.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            if read_first:
                tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                return tls.recv(1024).startswith(b"HTTP/1.1 200")
            return True
    except (ssl.SSLError, OSError):
        return False


@pytest.mark.parametrize(("read_first", "status"), [(False, Status.FAIL), (True, Status.PASS)])
async def test_late_rejection_catches_a_client_that_trusts_a_finished_handshake(
    rows: dict[str, ServedRow], badset: Manifest, read_first: bool, status: Status
) -> None:
    """Handshake-done-means-success fails late rejection (and the good row); reading first passes both."""
    verdicts = {}
    for name in ("good", "late-rejection"):
        item = rows[name]
        port = item.port or 0
        with trio.fail_after(20):
            ok = await trio.to_thread.run_sync(lambda: naive_client(port, badset, read_first=read_first))  # noqa: B023
            verdicts[name] = judge(item.row, await item.recorder.settle(**SETTLE), client_ok=ok)
    assert verdicts["late-rejection"].status is status, verdicts["late-rejection"]
    # The good row wants a request: the handshake-only client never sends one.
    assert verdicts["good"].status is (Status.FAIL if not read_first else Status.PASS)


def peek(port: int, badset: Manifest) -> SSL.Connection:
    """Handshake with no verification at all (OpenSSL 4, security level 0), to see what the row serves."""
    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.set_cipher_list(b"DEFAULT:@SECLEVEL=0")
    ctx.set_min_proto_version(SSL.TLS1_VERSION)
    good = badset.case("good")
    ctx.use_certificate_chain_file(str(badset.path(good.cert or "")))
    ctx.use_privatekey_file(str(badset.path(good.key or "")))
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    conn = SSL.Connection(ctx, sock)
    conn.set_tlsext_host_name(b"localhost")
    conn.set_connect_state()
    deadline = time.monotonic() + 5
    while True:  # the socket has a timeout, so pyOpenSSL sees it as non-blocking
        try:
            conn.do_handshake()
        except SSL.WantReadError:
            if not select.select([sock], [], [], max(0.0, deadline - time.monotonic()))[0]:
                raise TimeoutError("no handshake within 5s") from None
            continue
        return conn


Served = tuple[x509.Certificate, str, int]  # leaf, TLS version, certificates sent


def rsa_1024(leaf: x509.Certificate, version: str, sent: int) -> bool:
    key = leaf.public_key()
    return isinstance(key, rsa.RSAPublicKey) and key.key_size == 1024


def sha1(leaf: x509.Certificate, version: str, sent: int) -> bool:
    return isinstance(leaf.signature_hash_algorithm, hashes.SHA1)


def cn_only(leaf: x509.Certificate, version: str, sent: int) -> bool:
    names = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    has_san = any(e.oid == ExtensionOID.SUBJECT_ALTERNATIVE_NAME for e in leaf.extensions)
    return [n.value for n in names] == ["localhost"] and not has_san


@pytest.mark.parametrize(
    ("row", "check"),
    [
        ("rsa-1024", rsa_1024),
        ("sha1-signature", sha1),
        ("cn-only", cn_only),
        ("tls-1.0-1.1", lambda leaf, version, sent: version == "TLSv1.1"),
        ("missing-intermediate", lambda leaf, version, sent: sent == 1),
        ("good", lambda leaf, version, sent: (version, sent) == ("TLSv1.3", 2)),
    ],
)
async def test_each_row_serves_what_it_says(
    rows: dict[str, ServedRow],
    badset: Manifest,
    row: str,
    check: Callable[[x509.Certificate, str, int], bool],
) -> None:
    """The weak credential, the old version, the missing intermediate are really what goes on the wire."""
    item = rows[row]
    assert item.unavailable is None, item.unavailable

    def look() -> Served:
        conn = peek(item.port or 0, badset)
        try:
            leaf = conn.get_peer_certificate(as_cryptography=True)
            chain = conn.get_peer_cert_chain(as_cryptography=True) or []
            assert leaf is not None
            return leaf, conn.get_protocol_version_name(), len(chain)
        finally:
            conn.close()  # the socket's close, through pyOpenSSL's delegation

    with trio.fail_after(20):
        leaf, version, length = await trio.to_thread.run_sync(look)
        await item.recorder.settle(**SETTLE)
    assert check(leaf, version, length), (row, leaf, version, length)


def test_placeholders_are_shell_quoted_and_other_braces_stay() -> None:
    """{ca} with a space becomes one word; a JSON brace in the command is left alone."""
    command = substitute("c --cacert {ca} -d '{\"a\": 1}' {url}", {"ca": "/a b/ca.pem", "url": "https://x/"})
    assert command == "c --cacert '/a b/ca.pem' -d '{\"a\": 1}' https://x/"


@pytest.mark.interop
@pytest.mark.parametrize(
    ("row", "names"),
    [
        ("late-rejection", "CN = mtls-ref Badset Root CA"),
        ("unknown-ca-names", "CN = Untrusted Other Root CA"),
    ],
)
async def test_certificate_request_names_the_rows_ca(
    rows: dict[str, ServedRow], openssl: str, row: str, names: str
) -> None:
    """The CA names on the wire, read by openssl s_client: the client's own CA, or one it has nothing from."""
    item = rows[row]
    argv = [openssl, "s_client", "-connect", f"127.0.0.1:{item.port}", "-tls1_3", "-servername", "localhost"]
    with trio.fail_after(20):
        done = await trio.run_process(argv, stdin=b"", capture_stdout=True, capture_stderr=True, check=False)
        await item.recorder.settle(**SETTLE)
    shown = done.stdout.decode()
    listed = shown.split("Acceptable client certificate CA names", 1)[1].split("Requested Signature", 1)[0]
    assert names in listed, shown
