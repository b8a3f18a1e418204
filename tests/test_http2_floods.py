"""Hostile HTTP/2 peers over mutual TLS: each is told GOAWAY and dropped, everyone else keeps being served.

The attackers are the raw client of support/h2_client.py (h2 as the client) with
frames built by hyperframe: rapid reset (CVE-2023-44487) and the CONTINUATION
flood (CVE-2024-27316). Every loop is bounded in count and in time.
"""

from __future__ import annotations

import subprocess
import tracemalloc
from pathlib import Path

import pytest
import trio
import trio.testing
from h2 import events as h2e
from h2.errors import ErrorCodes
from hpack import Encoder
from hyperframe.frame import ContinuationFrame, HeadersFrame, PingFrame

from mtls_ref.server.h2_guard import CONTROL_ALLOWANCE, MAX_PENDING_BYTES, RESET_ALLOWANCE, FloodGuard
from mtls_ref.server.http2 import MAX_CONCURRENT_STREAMS
from mtls_ref.server.routes import BULK_CHUNK
from mtls_ref.shared.core.cli_support import SERVER_MODULE, module_command

from .support.h2_client import Exchange, H2Client, h2_context
from .support.pki import Pki
from .support.processes import read_until
from .support.server_process import stop_server_process, write_config
from .support.tls import log_events, start_server

MAX_ATTACK_FRAMES = 20 * RESET_ALLOWANCE  # far more than any budget: the server must stop it first
ATTACK_WITHIN = 20.0  # seconds; generous on two shared cores, and never waited out when the server works


async def rapid_reset(client: H2Client) -> int:
    """Open a stream and reset it, as fast as the connection takes it, until the server hangs up."""
    sent = 0
    try:
        while client.goaway is None and not client.closed and sent < MAX_ATTACK_FRAMES:
            for _ in range(50):
                stream_id = client.conn.get_next_available_stream_id()
                client.conn.send_headers(stream_id, REQUEST, end_stream=True)
                client.conn.reset_stream(stream_id, ErrorCodes.CANCEL)
                sent += 1
            await client.send_raw(b"")
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # the server closed the connection under us: what we came to see
    return sent


async def continuation_flood(client: H2Client, *, size: int) -> int:
    """One HEADERS without END_HEADERS, then CONTINUATION frames of ``size`` bytes that never end it."""
    block = Encoder().encode(REQUEST)
    head = HeadersFrame(1, data=block[:4])  # no END_HEADERS flag: the block goes on
    sent = 0
    try:
        await client.send_raw(head.serialize())
        while client.goaway is None and not client.closed and sent < MAX_ATTACK_FRAMES:
            await client.send_raw(ContinuationFrame(1, data=b"\x00" * size).serialize() * 16)
            sent += 16
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    return sent


async def ping_flood(client: H2Client) -> int:
    """PINGs, a hundred a write, until the server hangs up: each costs it a parse and an ACK."""
    pings = b"".join(PingFrame(0, opaque_data=n.to_bytes(8, "big")).serialize() for n in range(100))
    sent = 0
    try:
        while client.goaway is None and not client.closed and sent < MAX_ATTACK_FRAMES:
            await client.send_raw(pings)
            sent += 100
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    return sent


REQUEST = [(":method", "GET"), (":path", "/whoami"), (":scheme", "https"), (":authority", "localhost")]


async def attack(port: int, pki: Pki, kind: str) -> tuple[H2Client, int]:
    """One attacker's connection, run until the server has sent GOAWAY and closed it."""
    client = await H2Client.open(port, h2_context(pki))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.read_all)  # the attacker's own writes carry h2's replies
        if kind == "rapid-reset":
            sent = await rapid_reset(client)
        elif kind == "ping-flood":
            sent = await ping_flood(client)
        else:
            sent = await continuation_flood(client, size=4096 if kind == "continuation" else 0)
    await client.aclose()
    return client, sent


async def good_client(port: int, pki: Pki, stop: trio.Event) -> int:
    """Ask /whoami on a connection of its own until ``stop``; every answer must be 200."""
    client = await H2Client.open(port, h2_context(pki))
    answered = 0
    while not stop.is_set():
        answer = await client.request("/whoami")
        assert answer.headers[b":status"] == b"200", answer
        answered += 1
    await client.aclose()
    return answered


@pytest.mark.usefixtures("tls_engine")
@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("rapid-reset", ErrorCodes.ENHANCE_YOUR_CALM),  # our budget (h2 has none)
        ("continuation", ErrorCodes.ENHANCE_YOUR_CALM),  # our byte budget, before h2's 64-frame one
        ("empty-continuation", ErrorCodes.PROTOCOL_ERROR),  # h2's own CONTINUATION_BACKLOG
        ("ping-flood", ErrorCodes.ENHANCE_YOUR_CALM),  # our frame budget
    ],
)
async def test_flooder_gets_goaway_while_others_are_served(pki: Pki, kind: str, code: ErrorCodes) -> None:
    """The flooder is told GOAWAY with the fitting code and dropped; a client on another connection
    is answered before, during and after."""
    answered = 0
    async with trio.open_nursery() as nursery:
        server, port, log = await start_server(nursery, pki)
        stop = trio.Event()
        with trio.fail_after(ATTACK_WITHIN):
            async with trio.open_nursery() as clients:

                async def good() -> None:
                    nonlocal answered
                    answered = await good_client(port, pki, stop)

                clients.start_soon(good)
                attacker, sent = await attack(port, pki, kind)
                stop.set()
        server.shutdown()
    assert attacker.goaway is not None and attacker.goaway.error_code == code, attacker.goaway
    assert attacker.closed and sent < MAX_ATTACK_FRAMES
    assert answered >= 1
    reasons = [e["reason"] for e in log_events(log, "connection") if e["requests"] != answered]
    expected = {
        "rapid-reset": "rapid reset",
        "continuation": "CONTINUATION flood",
        "ping-flood": "frame flood",
    }.get(kind, "protocol error")
    assert any(expected in reason for reason in reasons), reasons


@pytest.mark.parametrize("stall", ["idle", "header-block"])
async def test_a_silent_or_stalled_client_gets_goaway(pki: Pki, stall: str) -> None:
    """A connection with nothing to say gets GOAWAY NO_ERROR after idle_timeout; one that starts a
    header block and stops gets it after request_timeout, however long idle_timeout is."""
    timeouts = {"idle_timeout": 0.5} if stall == "idle" else {"idle_timeout": 30.0, "request_timeout": 0.5}
    async with trio.open_nursery() as nursery:
        server, port, log = await start_server(nursery, pki, **timeouts)
        with trio.fail_after(10):
            client = await H2Client.open(port, h2_context(pki))
            settings: list[h2e.Event] = []
            while not settings:  # the server's SETTINGS, acknowledged: nothing else will be sent
                settings = [e for e in await client.events() if isinstance(e, h2e.RemoteSettingsChanged)]
            if stall == "header-block":
                await client.send_raw(HeadersFrame(1, data=Encoder().encode(REQUEST)[:4]).serialize())
            await client.read_all()  # until the server closes
            await client.aclose()
        server.shutdown()
    assert client.goaway is not None and client.goaway.error_code == ErrorCodes.NO_ERROR
    (connection,) = log_events(log, "connection")
    expected = "idle for 0.5s" if stall == "idle" else "header block not complete within 0.5s"
    assert expected in connection["reason"], connection


def rss_kib(pid: int) -> int:
    """The process's resident set, from /proc (Linux)."""
    status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])


async def test_server_memory_stays_flat_under_floods(pki: Pki, tmp_path: Path) -> None:
    """The server process under a dozen rounds of both floods: its memory grows by no more than a
    generous bound beyond the first round, and it still answers afterwards."""
    config = write_config(pki, tmp_path)
    server = await trio.lowlevel.open_process(
        module_command(SERVER_MODULE, "--config", str(config)), stderr=subprocess.PIPE
    )
    assert server.stderr is not None
    try:
        seen = await read_until(server.stderr, b" listening addresses=", "the server process")
        port = int(seen.split(b"addresses=127.0.0.1:", 1)[1].split(b" ", 1)[0])
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_drain, server.stderr)  # its log: one line per connection
            with trio.fail_after(3 * ATTACK_WITHIN):
                for kind in ("rapid-reset", "continuation"):  # the first round: warm
                    await attack(port, pki, kind)
                before = rss_kib(server.pid)
                for _ in range(12):
                    for kind in ("rapid-reset", "continuation"):
                        attacker, _ = await attack(port, pki, kind)
                        assert attacker.goaway is not None
                after = rss_kib(server.pid)
                still = await H2Client.open(port, h2_context(pki))
                answer = await still.request("/healthz")
                await still.aclose()
            nursery.cancel_scope.cancel()
        assert bytes(answer.body) == b"ok\n"
        assert after - before < 32 * 1024, f"RSS grew from {before} KiB to {after} KiB"
        await stop_server_process(server, server.stderr)
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()
        await server.stderr.aclose()


async def _drain(stream: trio.abc.ReceiveStream) -> None:
    while await stream.receive_some(65536):
        pass


def reset(stream_id: int) -> h2e.StreamReset:
    return h2e.StreamReset(stream_id=stream_id, remote_reset=True)


def test_guard_allows_resets_in_proportion_to_answers() -> None:
    """Resets beyond the allowance are a flood, but every answered response earns one more: a client
    that cancels a request now and then never meets the limit."""
    guard = FloodGuard()
    assert guard.received(100, [reset(n) for n in range(RESET_ALLOWANCE)]) is None
    guard.answered += 1
    assert guard.received(13, [reset(RESET_ALLOWANCE)]) is None
    verdict = guard.received(13, [reset(RESET_ALLOWANCE + 1)])
    assert verdict is not None and verdict.startswith("rapid reset: 202 streams reset")


def test_guard_counts_frames_that_do_no_work() -> None:
    """PINGs (and their kin) beyond the allowance are a flood; requests and bytes sent raise it."""
    guard = FloodGuard()
    pings = [h2e.PingReceived(ping_data=bytes(8)) for _ in range(CONTROL_ALLOWANCE)]
    assert guard.received(17 * len(pings), pings) is None
    guard.sent = 1 << 20  # 1 MiB sent earns 1024 more
    assert guard.received(17 * 1024, [h2e.PingReceived(ping_data=bytes(8)) for _ in range(1024)]) is None
    assert guard.received(17, [h2e.PingReceived(ping_data=bytes(8))]) is not None


def test_guard_bounds_bytes_that_complete_nothing() -> None:
    """Received bytes with no event and no reply (a header block that never ends) are bounded; any
    event, or a reply from h2, resets or replaces the count."""
    guard = FloodGuard()
    assert guard.received(MAX_PENDING_BYTES, []) is None
    assert (
        guard.received(1, [h2e.PingReceived(ping_data=bytes(8))]) is None
    )  # an event: the count starts again
    assert guard.received(MAX_PENDING_BYTES, [], replied=True) is None  # answered: a frame, not pending
    assert guard.received(MAX_PENDING_BYTES, []) is None
    verdict = guard.received(1, [])
    assert verdict is not None and "CONTINUATION" in verdict


@pytest.mark.parametrize(("size", "served"), [(12 * 1024, True), (20 * 1024, False)])
async def test_the_advertised_header_list_limit_is_enforced(pki: Pki, size: int, served: bool) -> None:
    """A header list under the advertised MAX_HEADER_LIST_SIZE (16 KiB) is answered; one over it gets
    GOAWAY ENHANCE_YOUR_CALM, though it is under the 64 KiB default of h2 the server replaced."""
    async with trio.open_nursery() as nursery:
        server, port, log = await start_server(nursery, pki)
        with trio.fail_after(10):
            client = await H2Client.open(port, h2_context(pki))
            answer = await client.request("/healthz", extra=(("x-padding", "a" * size),))
            await client.aclose()
        server.shutdown()
    if served:
        assert answer.headers[b":status"] == b"200" and client.goaway is None
    else:
        assert client.goaway is not None and client.goaway.error_code == ErrorCodes.ENHANCE_YOUR_CALM
        assert not answer.headers
        (connection,) = log_events(log, "connection")
        assert "protocol error" in connection["reason"], connection


async def test_a_client_that_does_not_read_holds_one_piece_of_response_not_one_per_stream(pki: Pki) -> None:
    """A client opens every window to the maximum, asks /bytes/N on every stream, and reads nothing:
    while the server's write waits, the other streams queue nothing more (a piece each was 100 x
    256 KiB, and each stream's own zero chunk as much again: 53 MB held a connection, now 1.1 MB)."""
    async with trio.open_nursery() as nursery:
        server, port, _log = await start_server(nursery, pki)
        tracemalloc.start()
        try:
            with trio.fail_after(10):
                client = await H2Client.open(port, h2_context(pki), window=2**31 - 2**16)
                for _ in range(MAX_CONCURRENT_STREAMS):
                    client.start(f"/bytes/{1 << 30}")
                await client.flush()
                await trio.testing.wait_all_tasks_blocked(cushion=0.2)  # the server's write waits on us
                held, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        await client.aclose()
        server.shutdown()
    assert held < 16 * BULK_CHUNK, f"{held >> 10} KiB held for a client that reads nothing"


async def test_a_request_body_that_stalls_is_408_while_other_streams_keep_the_connection(pki: Pki) -> None:
    """A stream whose body stops (no END_STREAM) gets 408 and RST_STREAM after idle_timeout, as an
    HTTP/1.1 body that stalls is dropped, though requests on other streams keep the connection busy:
    else a client holds its stream slots for as long as it likes."""
    async with trio.open_nursery() as nursery:
        server, port, _log = await start_server(nursery, pki, idle_timeout=0.5)
        with trio.fail_after(10):
            client = await H2Client.open(port, h2_context(pki))
            stalled = client.conn.get_next_available_stream_id()
            sink = [(":method", "POST"), (":path", "/sink"), (":scheme", "https"), (":authority", "x")]
            client.conn.send_headers(stalled, sink)
            client.conn.send_data(stalled, b"x" * 100)  # and never the rest
            client.answers[stalled] = Exchange()
            busy = 0
            while not client.answers[stalled].headers and busy < 10_000 and not client.closed:
                assert (await client.request("/healthz")).headers[b":status"] == b"200"
                busy += 1
            await client.until(lambda: client.answers[stalled].reset is not None)
            await client.aclose()
        server.shutdown()
    answer = client.answers[stalled]
    assert answer.headers[b":status"] == b"408" and answer.reset == ErrorCodes.NO_ERROR, answer
    assert bytes(answer.body) == b"no byte of the request body in 0.5s\n"
    assert client.goaway is None and busy >= 1
