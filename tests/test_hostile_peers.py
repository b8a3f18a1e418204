"""Hostile and broken peers: the server refuses them, frees everything, and keeps serving good clients."""

from __future__ import annotations

import contextlib
import gc
import os
import random
import ssl
from pathlib import Path

import pytest
import trio
import trio.lowlevel
import trio.testing

from mtls_ref.client.session import ClientReport, Exit, run_client
from mtls_ref.shared.tls.context import ALPN_LINE, client_context

from .support.pki import Pki
from .support.tls import client_config, log_events, start_server


def client_hello(pki: Pki) -> bytes:
    """A real ClientHello, as our client would send it."""
    ctx = client_context(client_config(pki), alpn=[ALPN_LINE])
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with contextlib.suppress(ssl.SSLWantReadError):  # it waits for the ServerHello, as expected
        obj.do_handshake()
    return outgoing.read()


async def good_client(pki: Pki, port: int) -> ClientReport:
    config = client_config(pki, port=port)
    with trio.fail_after(10):
        return await run_client(config, client_context(config, alpn=[ALPN_LINE]), messages=["PING", "QUIT"])


async def send_and_drop(port: int, data: bytes, *, wait_for_close: bool = True) -> bytes:
    """Connect, send ``data``, read what the server answers until it closes (bounded), and drop."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    answer = b""
    try:
        if data:
            await stream.send_all(data)
        if wait_for_close:
            with trio.move_on_after(5):
                while chunk := await stream.receive_some(4096):
                    answer += chunk
    except trio.BrokenResourceError:
        pass
    finally:
        await trio.aclose_forcefully(stream)
    return answer


@pytest.mark.usefixtures("tls_engine")
async def test_garbage_truncation_and_abrupt_closes(pki: Pki) -> None:
    """Non-TLS bytes, garbage and truncated ClientHellos, and hang-ups at each stage are all survived."""
    hello = client_hello(pki)
    async with trio.open_nursery() as nursery:
        server, port, log = await start_server(nursery, pki)
        # Not TLS at all: OpenSSL cannot even pick a record version to alert in, so it just closes.
        assert await send_and_drop(port, b"hello there\r\n") == b""
        garbage = b"\x16\x03\x01\x00\x40" + bytes(random.Random(1).randbytes(64))
        assert (await send_and_drop(port, garbage)).startswith(b"\x15\x03")  # a TLS alert record
        await send_and_drop(port, hello[: len(hello) // 2], wait_for_close=False)  # truncated, then gone
        await send_and_drop(port, b"", wait_for_close=False)  # TCP only
        await send_and_drop(port, hello, wait_for_close=False)  # full ClientHello, then gone
        report = await good_client(pki, port)
        assert report.result is Exit.OK
        await trio.testing.wait_all_tasks_blocked()
        server.shutdown()
    entries = log_events(log, "connection")
    outcomes = [(e["outcome"], e.get("reason", "")) for e in entries]
    assert ("rejected", "the peer did not speak TLS (or an unsupported version)") in outcomes
    assert (
        "rejected",
        "the peer sent a TLS message that makes no sense at this point (garbage or a broken client)",
    ) in outcomes
    # Hang-ups (half a ClientHello, TCP only, a whole ClientHello) are closes, never refusals, and
    # no alert is logged for them. Whether half a ClientHello counts as heard differs by engine.
    middle = ("closed", "the peer closed the connection in the middle of the handshake")
    before = ("closed", "the peer closed the connection before a whole ClientHello (a port probe sends none)")
    assert outcomes.count(middle) + outcomes.count(before) == 3
    assert outcomes.count(middle) >= 1 and outcomes.count(before) >= 1  # the whole one; TCP only
    assert {e.get("alert") for e in entries if e["outcome"] == "closed"} == {"none"}
    assert outcomes[-1][0] == "accepted"


@pytest.mark.usefixtures("tls_engine")
async def test_stalled_peers_time_out_without_blocking_others(pki: Pki) -> None:
    """A peer stalled mid-handshake and one idle after it are cut off; a good client is served meanwhile."""
    hello = client_hello(pki)
    async with trio.open_nursery() as nursery:
        server, port, log = await start_server(nursery, pki, handshake_timeout=0.5, idle_timeout=0.5)
        stalled = await trio.open_tcp_stream("127.0.0.1", port)
        await stalled.send_all(hello[:20])
        report = await good_client(pki, port)  # served while the stalled peer waits
        assert report.result is Exit.OK
        with trio.fail_after(5):
            assert await stalled.receive_some(100) == b""  # the server hung up on it
        await stalled.aclose()
        config = client_config(pki, port=port)
        idle = await run_client(config, client_context(config, alpn=[ALPN_LINE]), messages=[])
        assert idle.result is Exit.OK and idle.greeting is not None
        server.shutdown()
    outcomes = [e["outcome"] for e in log_events(log, "connection")]
    assert "timeout" in outcomes


@pytest.mark.usefixtures("tls_engine")
async def test_an_sslv2_style_hello_is_bounded_by_the_handshake_timeout(pki: Pki) -> None:
    """tlsfuzzer's SSLv2-style hello carrying only a version: OpenSSL 4 (the openssl engine) waits for the
    rest, as a bare pyOpenSSL server does, so the handshake deadline ends it; OpenSSL 3.0 (stdlib) refuses
    it at once. Either way it is bounded, and others are served meanwhile."""
    sslv2_hello = b"\x80\x03\x01\x03\x01"  # 2-byte SSLv2 length (3), CLIENT-HELLO, version 3.1, then nothing
    async with trio.open_nursery() as nursery:
        server, port, log = await start_server(nursery, pki, handshake_timeout=0.5)
        probe = await trio.open_tcp_stream("127.0.0.1", port)
        await probe.send_all(sslv2_hello)
        assert (await good_client(pki, port)).result is Exit.OK
        with trio.fail_after(5):
            while await probe.receive_some(100):  # whatever it sends, the server then hangs up
                pass
        await probe.aclose()
        server.shutdown()
    probe_entry = next(e for e in log_events(log, "connection") if e["outcome"] != "accepted")
    assert probe_entry["outcome"] in ("timeout", "rejected"), probe_entry
    assert probe_entry["duration_ms"] < 5000


def open_fds() -> int:
    return len(list(Path("/proc/self/fd").iterdir()))


def rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.usefixtures("tls_engine")
async def test_bounded_churn_returns_to_baseline(pki: Pki) -> None:
    """200 hostile connections (10 at a time): a good client still succeeds; fds and memory come back."""
    hello = client_hello(pki)
    rng = random.Random(2026)
    async with trio.open_nursery() as nursery:
        server, port, _ = await start_server(nursery, pki, handshake_timeout=1.0)

        async def hostile(kind: int) -> None:
            if kind == 0:
                await send_and_drop(port, rng.randbytes(rng.randint(1, 300)), wait_for_close=False)
            elif kind == 1:
                await send_and_drop(port, hello[: rng.randint(1, len(hello) - 1)], wait_for_close=False)
            elif kind == 2:
                await send_and_drop(port, b"\x16\x03\x01" + rng.randbytes(rng.randint(2, 200)))
            else:
                assert (await good_client(pki, port)).result is Exit.OK

        for _ in range(3):  # warm up allocator caches and lazily created objects
            await good_client(pki, port)
        gc.collect()
        await trio.testing.wait_all_tasks_blocked()
        fds, rss = open_fds(), rss_bytes()
        with trio.fail_after(60):
            limiter = trio.CapacityLimiter(10)

            async def one(kind: int) -> None:
                async with limiter:
                    await hostile(kind)

            async with trio.open_nursery() as churn:
                for _ in range(200):
                    churn.start_soon(one, rng.randint(0, 3))
        assert (await good_client(pki, port)).result is Exit.OK
        with trio.fail_after(10):
            while server.active:
                await trio.testing.wait_all_tasks_blocked()
                await trio.lowlevel.checkpoint()  # handlers finishing their close_notify
        gc.collect()
        assert server.active == 0
        assert open_fds() == fds
        assert rss_bytes() - rss < 32 * 1024 * 1024
        server.shutdown()


def corrupted_hellos(pki: Pki) -> dict[str, bytes]:
    """ClientHellos broken in the ways a fuzzer finds: each has a reason OpenSSL names."""
    hello = client_hello(pki)
    wrong_length = bytearray(hello)
    wrong_length[5 + 1 : 5 + 4] = (len(hello) - 9 - 10).to_bytes(3, "big")  # the body is cut short
    return {
        "plain text": b"hello there\r\n\r\n",
        "wrong record version": b"\x16\x07\x07\x00\x05hello",
        "handshake length mismatch": bytes(wrong_length),
        "not a ClientHello": b"\x16\x03\x01\x00\x04\x0b\x00\x00\x00",
    }


@pytest.mark.usefixtures("tls_engine")
async def test_every_refusal_has_plain_words_and_an_alert(pki: Pki) -> None:
    """Each refusal of a broken peer is logged in plain words (no '[SSL] ... (_ssl.c:NNN)') and says
    which alert was sent, "none" when OpenSSL sends none (bytes that are not TLS)."""
    cases = corrupted_hellos(pki)
    async with trio.open_nursery() as nursery:
        server, port, log = await start_server(nursery, pki)
        for data in cases.values():
            await send_and_drop(port, data)
        server.shutdown()
    refusals = log_events(log, "connection")
    assert len(refusals) == len(cases)
    for name, entry in zip(cases, refusals, strict=True):
        assert entry["outcome"] in ("rejected", "closed"), (name, entry)
        assert entry.get("alert"), (name, entry)
        assert "_ssl.c" not in entry["reason"] and "[SSL" not in entry["reason"], (name, entry)
    by_case = dict(zip(cases, refusals, strict=True))
    assert by_case["plain text"]["alert"] == "none"
    assert by_case["handshake length mismatch"]["alert"] in ("decode_error", "illegal_parameter"), by_case
    assert by_case["not a ClientHello"]["alert"] == "unexpected_message", by_case
