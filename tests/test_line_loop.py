"""The line protocol's thin I/O loop over memory streams: one moving deadline, on trio's mock clock."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from mtls_ref.server.line_loop import PeerNotReading, serve_lines
from mtls_ref.server.record import ConnectionRecord
from mtls_ref.server.settings import HandlerSettings
from mtls_ref.server.views import SessionInfo
from mtls_ref.shared.core.protocol import LineBuffer
from mtls_ref.shared.tls.identity import Decision, PeerIdentity

ALICE = PeerIdentity(subject="CN=alice", common_names=("alice",), serial="01", sha256="00")


def session(*, allowed: bool = True) -> SessionInfo:
    told = "" if allowed else "not on the list"
    decision = Decision(allowed=allowed, rule=None, reason="the rules say so", told=told)
    return SessionInfo(
        identity=ALICE, decision=decision, tls_version="TLSv1.3", cipher="X", ca_subject="CN=ca"
    )


class Plain:
    """A memory stream as the loop sees a TLS stream: receive_some, and send_all with ``yield_after``
    (this stream always yields after a write, which only adds scheduling points)."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        return bytes(await self.stream.receive_some(max_bytes))

    async def send_all(self, data: bytes, *, yield_after: bool = True) -> None:
        await self.stream.send_all(data)


async def serve(
    stream: trio.abc.Stream, settings: HandlerSettings, record: ConnectionRecord, **info: bool
) -> None:
    # The loop asks a stream for receive_some and send_all only: memory streams stand in for TLS.
    tls: Any = Plain(stream)
    await serve_lines(tls, settings, record, session(**info), b"")


async def serve_until_dropped(
    stream: trio.abc.Stream, settings: HandlerSettings, record: ConnectionRecord
) -> None:
    """Serve; a peer that does not read ends it, as the handler's catch does, with the drop as the reason."""
    try:
        await serve(stream, settings, record)
    except PeerNotReading as exc:
        record.reason = str(exc)


class Client:
    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.lines = LineBuffer(1 << 16)
        self.ready: list[str] = []

    async def read(self) -> str | None:
        while not self.ready:
            data = await self.stream.receive_some()
            if not data:
                return None
            self.ready.extend(self.lines.feed(data))
        return self.ready.pop(0)


async def test_each_request_moves_the_idle_deadline(autojump_clock: trio.testing.MockClock) -> None:
    """A client asking just inside idle_timeout each time is kept; silence ends it at exactly the limit."""
    client_end, server_end = trio.testing.memory_stream_pair()
    record = ConnectionRecord(peer="memory")
    client = Client(client_end)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve, server_end, HandlerSettings(idle_timeout=5), record)
        assert (await client.read() or "").startswith("OK hello CN=alice")
        for _ in range(4):
            await trio.sleep(4.9)
            await client_end.send_all(b"PING\n")
            assert await client.read() == "OK pong"
        asked = trio.current_time()
        assert await client.read() == "ERR idle-timeout no request for 5s; bye"
        assert trio.current_time() == pytest.approx(asked + 5)
    assert record.reason == "idle for 5s" and record.requests == 4


async def test_a_dribbled_line_ends_at_its_bound(autojump_clock: trio.testing.MockClock) -> None:
    """Bytes inside idle_timeout do not stretch a line past request_timeout from its first byte."""
    client_end, server_end = trio.testing.memory_stream_pair()
    record = ConnectionRecord(peer="memory")
    client = Client(client_end)
    answer: list[str | None] = []

    async def listen() -> None:
        answer.append(await client.read())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve, server_end, HandlerSettings(idle_timeout=2, request_timeout=3), record)
        await client.read()
        began = trio.current_time()
        nursery.start_soon(listen)
        for byte in b"ECHO slowly":
            await client_end.send_all(bytes([byte]))
            await trio.sleep(1)
            if answer:
                break
    assert answer == ["ERR request-timeout a request line takes at most 3s"]
    assert trio.current_time() == pytest.approx(began + 4)  # cut off at 3s; the sender noticed a second later
    assert record.reason == "request line not finished within 3s"


async def test_a_client_that_does_not_read_is_dropped(autojump_clock: trio.testing.MockClock) -> None:
    """A greeting the client does not take within idle_timeout raises PeerNotReading right then."""
    _client_end, server_end = trio.testing.lockstep_stream_pair()  # a write waits for the reader
    record = ConnectionRecord(peer="memory")
    with pytest.raises(PeerNotReading, match=r"did not read a reply within 5s; dropped"):
        await serve(server_end, HandlerSettings(idle_timeout=5), record)
    assert trio.current_time() == pytest.approx(5)


async def test_last_words_get_their_own_time(autojump_clock: trio.testing.MockClock) -> None:
    """After an idle timeout the goodbye has idle_timeout of its own; unread, the client is dropped."""
    client_end, server_end = trio.testing.lockstep_stream_pair()
    record = ConnectionRecord(peer="memory")
    client = Client(client_end)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve_until_dropped, server_end, HandlerSettings(idle_timeout=5), record)
        assert (await client.read() or "").startswith("OK hello")
    assert trio.current_time() == pytest.approx(10)
    assert record.reason == "the peer did not read a reply within 5s; dropped"


async def test_refused_client_hears_why_and_the_decision_keeps_its_reason() -> None:
    """ERR forbidden is the only line; the record's reason stays the allow-list's."""
    client_end, server_end = trio.testing.memory_stream_pair()
    record = ConnectionRecord(peer="memory", reason="the rules say so")
    await serve(server_end, HandlerSettings(), record, allowed=False)
    await server_end.aclose()
    said = b""
    while data := await client_end.receive_some():
        said += data
    assert said == b"ERR forbidden CN=alice is not allowed: not on the list\n"
    assert record.reason == "the rules say so" and record.requests == 0
