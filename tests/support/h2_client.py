"""A raw HTTP/2 client for tests: h2 (client side) over mutual TLS, so a test can send what it likes.

Well-behaved requests go through :meth:`H2Client.request`; a hostile test writes
frames of its own (built by hyperframe) with :meth:`H2Client.send_raw` and reads
what the server answers with :meth:`H2Client.events`.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import trio
from h2 import events as h2e
from h2.config import H2Configuration
from h2.connection import H2Connection

from mtls_ref.shared.pki.authority import IssuedFiles

from .pki import Pki

RECEIVE_SIZE = 65536
Fields = tuple[tuple[str, str], ...]


def h2_context(pki: Pki, creds: IssuedFiles | None = None) -> ssl.SSLContext:
    """A client context offering only h2, presenting ``creds`` (default alice)."""
    creds = pki.client if creds is None else creds
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    ctx.load_cert_chain(creds.chain, creds.key)
    ctx.set_alpn_protocols(["h2"])
    return ctx


@dataclass(slots=True)
class Exchange:
    """One stream's answer."""

    headers: dict[bytes, bytes] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)
    trailers: dict[bytes, bytes] = field(default_factory=dict)
    reset: int | None = None  # the RST_STREAM error code, when the server reset the stream


class H2Client:
    """One HTTP/2 connection over mutual TLS to 127.0.0.1:``port``."""

    def __init__(self, stream: trio.SSLStream[trio.SocketStream]) -> None:
        self.stream = stream
        self.conn = H2Connection(config=H2Configuration(client_side=True, header_encoding=None))
        self.goaway: h2e.ConnectionTerminated | None = None
        self.closed = False  # the server closed the TCP/TLS connection
        self.answers: dict[int, Exchange] = {}

    @classmethod
    async def open(cls, port: int, ctx: ssl.SSLContext) -> H2Client:
        tcp = await trio.open_tcp_stream("127.0.0.1", port)
        tls = trio.SSLStream(tcp, ctx, server_hostname="localhost")
        await tls.do_handshake()
        assert tls.selected_alpn_protocol() == "h2"
        client = cls(tls)
        client.conn.initiate_connection()
        await client.flush()
        return client

    async def aclose(self) -> None:
        await trio.aclose_forcefully(self.stream)

    async def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            await self.stream.send_all(data)

    async def send_raw(self, data: bytes) -> None:
        """Bytes on the wire as they are (frames a test built), after whatever h2 has queued."""
        await self.stream.send_all(self.conn.data_to_send() + data)

    def start(self, path: str, *, method: str = "GET", body: bytes = b"", extra: Fields = ()) -> int:
        """Queue a request (not flushed); its stream id."""
        stream_id = self.conn.get_next_available_stream_id()
        headers = [(":method", method), (":path", path), (":scheme", "https"), (":authority", "localhost")]
        self.conn.send_headers(stream_id, [*headers, *extra], end_stream=not body)
        if body:
            self.conn.send_data(stream_id, body, end_stream=True)
        self.answers[stream_id] = Exchange()
        return stream_id

    async def read_all(self) -> None:
        """Read until the server closes, replying to nothing (for a task beside one that writes)."""
        while not self.closed:
            await self.events(reply=False)

    async def events(self, *, reply: bool = True) -> list[h2e.Event]:
        """One read's events, recorded in :attr:`answers`; [] once the server has closed.

        ``reply``: send what h2 queued in answer (SETTINGS and PING acks, WINDOW_UPDATEs)."""
        try:
            data = await self.stream.receive_some(RECEIVE_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        if not data:
            self.closed = True
            return []
        events = self.conn.receive_data(data)
        for event in events:
            self._note(event)
        if reply:
            await self.flush()
        return events

    def _note(self, event: h2e.Event) -> None:
        stream_id = getattr(event, "stream_id", None)
        answer = self.answers.get(stream_id) if isinstance(stream_id, int) else None
        if isinstance(event, h2e.ConnectionTerminated):
            self.goaway = event
        elif answer is None:
            return
        elif isinstance(event, h2e.ResponseReceived) and event.headers:
            answer.headers = _fields(event.headers)
        elif isinstance(event, h2e.DataReceived) and event.data is not None:
            answer.body += event.data
            self.conn.acknowledge_received_data(event.flow_controlled_length or 0, event.stream_id or 0)
        elif isinstance(event, h2e.TrailersReceived) and event.headers:
            answer.trailers = _fields(event.headers)
        elif isinstance(event, h2e.StreamReset) and event.remote_reset:
            answer.reset = int(event.error_code or 0)

    async def until(self, done: Callable[[], bool]) -> None:
        """Read until ``done()`` is true or the server closes (callers bound it with fail_after)."""
        while not done() and not self.closed:
            await self.events()

    async def request(
        self, path: str, *, method: str = "GET", body: bytes = b"", extra: Fields = ()
    ) -> Exchange:
        """One request, read to its end (or its reset, or the connection's)."""
        stream_id = self.start(path, method=method, body=body, extra=extra)
        await self.flush()
        ended = False
        while not ended and not self.closed:
            for event in await self.events():
                if isinstance(event, h2e.StreamEnded | h2e.StreamReset) and event.stream_id == stream_id:
                    ended = True
        return self.answers[stream_id]


def _fields(headers: Iterable[tuple[bytes | str, bytes | str]]) -> dict[bytes, bytes]:
    return {_bytes(name): _bytes(value) for name, value in headers}


def _bytes(text: bytes | str) -> bytes:
    return text if isinstance(text, bytes) else text.encode()
