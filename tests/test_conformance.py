"""The conformance runner against our server and two openssl s_server configurations."""

from __future__ import annotations

import functools
import shlex
import ssl
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest
import trio

from mtls_ref.client.conformance import main as conformance_main
from mtls_ref.client.conformance import openssl_command, render_table, run_conformance
from mtls_ref.shared.pki.badset import Manifest

from .support.openssl_trace import certificates_sent, subjects_in
from .support.s_server import credential_flags, openssl_s_server
from .support.tls import start_server_with

pytestmark = pytest.mark.interop


@pytest.mark.usefixtures("tls_engine")
async def test_our_server_passes_every_row(badset: Manifest) -> None:
    """Our server with CRL and allow-list: every row on both TLS versions passes, none skipped."""
    async with trio.open_nursery() as nursery:
        server, port, _ = await start_server_with(nursery, **badset.server_settings())
        rows = await run_conformance(badset, host="127.0.0.1", port=port, authz=True)
        server.shutdown()
    assert len(rows) == 2 * len(badset.cases)
    assert [r for r in rows if r.verdict != "pass"] == []
    table = render_table(rows, show_openssl=True)
    assert "24 of 24 rows pass" in table
    assert "$ openssl s_client -connect 127.0.0.1:" in table


async def test_show_openssl_commands_send_each_certificate_once(badset: Manifest, openssl: str) -> None:
    """Every --show-openssl command, run with -trace against our server: the client's Certificate
    message starts with its case's chain file and holds no certificate twice (never the leaf twice).
    Given a lone certificate, s_client completes its chain from -CAfile itself (ca-as-client sends
    the root after the intermediate), hence "starts with". Cases a correct client refuses to load
    (key-mismatch) never reach the handshake, so they are left out."""
    sent: dict[str, list[str]] = {}
    expected: dict[str, list[str]] = {}
    async with trio.open_nursery() as nursery:
        server, port, _ = await start_server_with(nursery, **badset.server_settings())
        for case in badset.cases:
            if case.cert is None or case.expect == "local":
                continue
            command = openssl_command(
                badset, case, host="127.0.0.1", port=port, tls="1.3", server_name="localhost"
            )
            argv = shlex.split(command)
            assert argv[:2] == ["openssl", "s_client"], command
            with trio.fail_after(20):
                done = await trio.run_process(
                    [openssl, "s_client", "-trace", *argv[2:]],
                    stdin=b"",
                    capture_stdout=True,
                    capture_stderr=True,
                    check=False,
                )
            sent[case.name] = certificates_sent(done.stdout.decode() + done.stderr.decode())
            expected[case.name] = subjects_in(badset.path(case.cert))
        server.shutdown()
    assert sent["good"] == expected["good"]  # leaf, intermediate
    assert {name: chain[: len(expected[name])] for name, chain in sent.items()} == expected
    assert {name: chain for name, chain in sent.items() if len(set(chain)) != len(chain)} == {}


def s_server(openssl: str, badset: Manifest, *verify: str) -> AbstractAsyncContextManager[int]:
    """`openssl s_server -rev` on the bad set's server credential, checking its CRL."""
    server_cert, key = badset.path(badset.server_cert), badset.path(badset.server_key)
    return openssl_s_server(
        openssl,
        "-rev",
        *credential_flags(cert=server_cert, chain=server_cert, key=key, ca=badset.path(badset.ca)),
        "-CRL",
        str(badset.path(badset.crl)),
        "-crl_check",
        *verify,
    )


async def test_strict_s_server_passes(badset: Manifest, openssl: str) -> None:
    """`openssl s_server -Verify 1 -verify_return_error` with the CRL refuses every bad credential."""
    async with s_server(openssl, badset, "-Verify", "1", "-verify_return_error") as port:
        rows = await run_conformance(badset, host="127.0.0.1", port=port, mode="raw")
    failed = [r for r in rows if r.verdict == "FAIL"]
    assert failed == []
    assert {r.case for r in rows if r.verdict == "skip"} == {"not-allowed"}  # s_server has no authorization


async def test_optional_verification_is_flagged_as_failing_open(badset: Manifest, openssl: str) -> None:
    """`openssl s_server -verify 1` makes certificates optional: the runner flags it and exits non-zero."""
    async with s_server(openssl, badset, "-verify", "1") as port:
        rows = await run_conformance(badset, host="127.0.0.1", port=port, mode="raw")
        code = await trio.to_thread.run_sync(
            conformance_main,
            [f"127.0.0.1:{port}", "--badset", str(badset.root), "--protocol", "raw", "--tls", "1.3"],
        )
    open_rows = {r.case for r in rows if r.verdict == "FAIL" and "fails open" in r.detail}
    assert "no-cert" in open_rows
    assert {"untrusted-ca", "expired", "self-signed"} <= open_rows
    assert code == 1
    assert "FAILING OPEN" in render_table(rows)


@asynccontextmanager
async def alert_losing_server(badset: Manifest) -> AsyncIterator[int]:
    """A strict TLS 1.3 server on trio.SSLStream as it is, which drops its fatal alert on a failed handshake
    (the alert stays in its memory BIO): it refuses bad certificates by hanging up; accepted clients get
    each line back reversed."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(badset.path(badset.server_cert), badset.path(badset.server_key))
    context.load_verify_locations(badset.path(badset.ca))
    context.load_verify_locations(badset.path(badset.crl))
    context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    context.verify_mode = ssl.CERT_REQUIRED

    async def handle(stream: trio.SocketStream) -> None:
        tls = trio.SSLStream(stream, context, server_side=True)
        with trio.move_on_after(10):
            try:
                await tls.do_handshake()
                while line := await tls.receive_some(65536):
                    await tls.send_all(line.rstrip(b"\n")[::-1] + b"\n")
            except trio.BrokenResourceError:
                pass
        await trio.aclose_forcefully(stream)

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
        yield int(listeners[0].socket.getsockname()[1])
        nursery.cancel_scope.cancel()


async def test_a_tls13_refusal_without_its_alert_still_counts_as_refused(badset: Manifest) -> None:
    """Under TLS 1.3 a server that hangs up after the handshake refused the credential, though it did not
    say why: every bad row passes as "refused (closed, no alert)", the good control as accepted."""
    async with alert_losing_server(badset) as port:
        rows = await run_conformance(badset, host="127.0.0.1", port=port, mode="raw", versions=("1.3",))
    by_case = {row.case: row for row in rows}
    assert by_case["good"].observed == "accepted"
    refused = {r.case for r in rows if r.observed == "refused (closed, no alert)"}
    assert {"no-cert", "untrusted-ca", "expired", "revoked", "self-signed", "missing-intermediate"} <= refused
    assert [r for r in rows if r.verdict == "FAIL"] == []
