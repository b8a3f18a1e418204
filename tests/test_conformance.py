"""The conformance runner against our server and two openssl s_server configurations."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

from client.conformance import main as conformance_main
from client.conformance import render_table, run_conformance
from shared.badset import Manifest, write_badset

from .tlstools import start_server_with

pytestmark = pytest.mark.interop


@pytest.fixture(scope="session")
def badset(tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    return write_badset(tmp_path_factory.mktemp("conformance-badset"))


async def test_our_server_passes_every_row(badset: Manifest) -> None:
    """Our server with CRL and allow-list: every row on both TLS versions passes, none skipped."""
    async with trio.open_nursery() as nursery:
        server, port, _ = await start_server_with(
            nursery,
            cert=badset.path(badset.server_cert),
            key=badset.path(badset.server_key),
            ca=badset.path(badset.ca),
            crl=badset.path(badset.crl),
            allow=(badset.allow,),
        )
        rows = await run_conformance(badset, host="127.0.0.1", port=port, authz=True)
        server.shutdown()
    assert len(rows) == 2 * len(badset.cases)
    assert [r for r in rows if r.verdict != "pass"] == []
    table = render_table(rows, show_openssl=True)
    assert "24 of 24 rows pass" in table
    assert "$ openssl s_client -connect 127.0.0.1:" in table


@asynccontextmanager
async def s_server(openssl: str, badset: Manifest, *verify: str) -> AsyncIterator[int]:
    process = await trio.lowlevel.open_process(
        [
            openssl,
            "s_server",
            "-accept",
            "127.0.0.1:0",
            "-rev",
            "-cert",
            str(badset.path(badset.server_cert)),
            "-cert_chain",
            str(badset.path(badset.server_cert)),
            "-key",
            str(badset.path(badset.server_key)),
            "-CAfile",
            str(badset.path(badset.ca)),
            "-CRL",
            str(badset.path(badset.crl)),
            "-crl_check",
            *verify,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert process.stdout is not None
        seen = b""
        with trio.fail_after(10):
            while b"ACCEPT " not in seen or b"\n" not in seen.split(b"ACCEPT ", 1)[1]:
                chunk = await process.stdout.receive_some(4096)
                if not chunk:
                    pytest.fail(f"openssl s_server exited: {seen.decode()}")
                seen += chunk

        async def drain() -> None:  # s_server logs every connection; keep its pipe flowing
            assert process.stdout is not None
            while await process.stdout.receive_some(65536):
                pass

        async with trio.open_nursery() as nursery:
            nursery.start_soon(drain)
            yield int(seen.split(b"ACCEPT ", 1)[1].split(b"\n")[0].rsplit(b":", 1)[1])
            nursery.cancel_scope.cancel()
    finally:
        process.kill()
        with trio.move_on_after(5):
            await process.wait()
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                await pipe.aclose()


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
