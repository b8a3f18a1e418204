"""HTTP/2 for ``--http2`` and ``--grpc``: requests one at a time on one connection, with ``h2``.

Theory of operation
-------------------
HTTP/2 is the ``h2`` library's job, and ``h2`` does no I/O: :class:`H2Client`
turns each request into ``h2`` calls, sends what ``h2`` has to send through the
:class:`~.channel.Channel` (so every read and write has the session's deadline,
and a TLS alert on the first read is the verdict on our certificate), and feeds
``h2`` what the channel receives until the stream ends.

The server must have chosen ``h2`` in ALPN (we offer ``h2`` and ``http/1.1``,
so an HTTPS server without HTTP/2 completes the handshake and is named, rather
than failing it with no_application_protocol). Flow control both ways: the
request body is sent as the peer's windows allow (waiting for WINDOW_UPDATE),
and each DATA frame received is acknowledged, so the server's windows reopen.
What we take is bounded: the response body (``max_body``), the header list
(advertised in SETTINGS and enforced by ``h2``), and the number of reads for
one response, each within the deadline, and the whole exchange within it too
(gRPC's ``grpc-timeout`` tells the server so).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

from mtls_ref.shared.core.errors import MTLSError
from mtls_ref.shared.pki.keys import load_certificates

from .channel import Channel
from .outcome import Exit, Stop, fail

__all__ = ["ALPN_H2", "ALPN_OFFER", "H2Client", "H2Response"]

ALPN_H2: Final = "h2"
# What --http2 and --grpc offer: h2 first; http/1.1 so that a server without HTTP/2 still finishes
# the handshake and can be named (nginx answers an offer it cannot meet with a fatal alert).
ALPN_OFFER: Final = [ALPN_H2, "http/1.1"]
# What we take of one response's header list (SETTINGS_MAX_HEADER_LIST_SIZE): nginx's default
# large_client_header_buffers is 4 x 8 KiB; a response's headers are far smaller.
MAX_HEADER_LIST: Final = 65536
# Reads for one response, each within the deadline: a server that trickles a frame at a time (or
# PINGs) cannot keep us past this many. 1 MiB of body in 16 KiB records is 64 of them.
MAX_READS: Final = 4096
# For --http2 and --grpc alike: gRPC has no HTTP/1.1 form, so --http only helps the former.
_NOT_H2_FIX: Final = "is this an HTTP/2 server? gRPC needs one; for HTTPS without HTTP/2, use --http"

Fields = tuple[tuple[bytes, bytes], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class H2Response:
    """One response: the final headers, the body, and the trailers (empty: none came)."""

    status: int
    headers: Fields
    body: bytes
    trailers: Fields = ()


@dataclass(slots=True)
class _Stream:
    headers: Fields | None = None
    body: bytearray = field(default_factory=bytearray)
    trailers: Fields = ()
    ended: bool = False


class H2Client:
    """One HTTP/2 connection over the session's channel; :meth:`start` it, then :meth:`request`."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self._h2 = h2.connection.H2Connection(config=config)
        self._streams: dict[int, _Stream] = {}
        self._server_settings = False

    def __repr__(self) -> str:
        return f"<H2Client over {self._channel!r}>"

    async def start(self) -> None:
        """Check that the server chose h2, then send the connection preface and our SETTINGS."""
        chosen = self._channel.selected_alpn_protocol()
        if chosen != ALPN_H2:
            raise fail(
                self._channel.report,
                Exit.PROTOCOL,
                summary=f"the server did not choose HTTP/2 in ALPN (it chose {chosen or 'nothing'}); "
                f"we offered {', '.join(ALPN_OFFER)}",
                fix=_NOT_H2_FIX,
            )
        self._h2.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST,
            },
        )
        # Initial values need no ACK, so h2 would never apply this one to its HPACK decoder (it keeps
        # its own 64 KiB): set it there too, or changing MAX_HEADER_LIST would silently do nothing.
        self._h2.decoder.max_header_list_size = MAX_HEADER_LIST
        self._h2.initiate_connection()
        try:
            await self._flush("the HTTP/2 preface")
            for _ in range(MAX_READS):  # an HTTP/2 server's first frame is SETTINGS (RFC 9113 §3.4)
                if self._server_settings:
                    return
                await self._receive(0)
        except Stop as stop:
            if self._channel.report.closed_without_alert:
                raise self._hung_up() from stop
            raise
        raise self._protocol_error(f"no HTTP/2 SETTINGS from the server in {MAX_READS} reads")

    async def request(
        self,
        method: str,
        path: str,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
        *,
        max_body: int,
    ) -> H2Response:
        """Send one request and read its whole response (``max_body`` bytes of body at most)."""
        config = self._channel.config
        authority = config.expected_name if config.port == 443 else f"{config.expected_name}:{config.port}"
        stream_id = self._h2.get_next_available_stream_id()
        self._streams[stream_id] = stream = _Stream()
        request = [
            (":method", method),
            (":scheme", "https"),
            (":authority", authority),
            (":path", path),
            *headers,
        ]
        self._h2.send_headers(stream_id, request, end_stream=not body)
        # The channel bounds the whole exchange, beside each read: a server that sends a PING (or a
        # byte) just inside each read's deadline would otherwise hold us MAX_READS deadlines long.
        with self._channel.exchange(f"response to {method} {path}"):
            await self._flush(f"{method} {path}")
            await self._send_body(stream_id, body, what=f"the body of {method} {path}")
            for _ in range(MAX_READS):
                if stream.ended:
                    break
                await self._receive(max_body)
            else:
                raise self._protocol_error(
                    f"no end to the response to {method} {path} after {MAX_READS} reads"
                )
        del self._streams[stream_id]
        if stream.headers is None:  # h2 ends a stream with headers first; a reset raised already
            raise self._protocol_error("a response without headers")
        status = dict(stream.headers).get(b":status", b"")
        return H2Response(
            status=int(status) if status.isdigit() else 0,
            headers=stream.headers,
            body=bytes(stream.body),
            trailers=stream.trailers,
        )

    async def close(self) -> None:
        """GOAWAY: we are done (the session then closes TLS)."""
        self._h2.close_connection()
        await self._flush("GOAWAY")

    async def _send_body(self, stream_id: int, body: bytes, *, what: str) -> None:
        """``body`` in DATA frames as the stream's and the connection's windows allow."""
        view = memoryview(body)
        for _ in range(MAX_READS):
            if not view:
                return
            room = min(self._h2.local_flow_control_window(stream_id), self._h2.max_outbound_frame_size)
            if room <= 0:
                await self._receive(0)  # a WINDOW_UPDATE (or the response) is due
                continue
            chunk, view = view[:room], view[room:]
            self._h2.send_data(stream_id, bytes(chunk), end_stream=not view)
            await self._flush(what)
        raise fail(
            self._channel.report,
            Exit.PROTOCOL,
            summary=f"the server's flow-control window stayed shut while we sent {what}",
            fix="see the server's log",
        )

    async def _receive(self, max_body: int) -> None:
        data = await self._channel.receive("an HTTP/2 response", not_ours_fix=_NOT_H2_FIX)
        try:
            events = self._h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            raise self._protocol_error(f"the server broke HTTP/2: {exc}") from exc
        for event in events:
            self._handle(event, max_body)
        await self._flush("HTTP/2 acknowledgements")  # SETTINGS and PING acks, WINDOW_UPDATEs

    def _handle(self, event: h2.events.Event, max_body: int) -> None:
        if isinstance(event, h2.events.ConnectionTerminated):
            raise self._protocol_error(
                f"the server closed the HTTP/2 connection (GOAWAY {_code(event.error_code)})"
                + (f": {event.additional_data.decode('utf-8', 'replace')}" if event.additional_data else "")
            )
        if isinstance(event, h2.events.RemoteSettingsChanged):
            self._server_settings = True
        stream = self._streams.get(getattr(event, "stream_id", 0) or 0)
        if stream is None:
            return  # a connection-level event (SETTINGS, PING, WINDOW_UPDATE): h2 has handled it
        if isinstance(event, h2.events.StreamReset):
            raise self._protocol_error(f"the server reset the stream ({_code(event.error_code)})")
        if isinstance(event, h2.events.ResponseReceived):
            stream.headers = _fields(event.headers)
        elif isinstance(event, h2.events.DataReceived):
            stream.body += event.data or b""
            self._h2.acknowledge_received_data(event.flow_controlled_length or 0, event.stream_id or 0)
            if len(stream.body) > max_body:
                raise self._protocol_error(f"a response body over {max_body} bytes")
        elif isinstance(event, h2.events.TrailersReceived):
            stream.trailers = _fields(event.headers)
        elif isinstance(event, h2.events.StreamEnded):
            stream.ended = True

    async def _flush(self, what: str) -> None:
        data = self._h2.data_to_send()
        if data:
            await self._channel.send(data, what=what)

    def _hung_up(self) -> Stop:
        """The server closed after the handshake, without an alert, before its HTTP/2 preface.

        An HTTP/2 server that takes a connection sends SETTINGS at once; one that closes instead
        refused the connection. Servers built on gRPC core (grpcio among them) refuse a client
        certificate exactly so, with no alert to say why (TLS 1.2 and 1.3 alike): the words say
        that, and which certificate we sent, since the server will not.
        """
        report, config = self._channel.report, self._channel.config
        sent = "no certificate"
        if config.cert is not None:
            try:
                leaf = load_certificates(config.cert)[0]
                sent = f"{leaf.subject.rfc4514_string()}, issued by {leaf.issuer.rfc4514_string()}"
            except MTLSError:
                sent = f"the certificate in {config.cert}"
        return fail(
            report,
            Exit.PROTOCOL,
            summary="the server closed the connection right after the TLS handshake, before its HTTP/2 "
            "preface and without an alert: it refused the connection, and gRPC servers built on gRPC "
            f"core (grpcio) refuse a client certificate this way; we sent {sent}",
            fix="check that --cert was issued by a CA the server trusts (grpcio: root_certificates), "
            "and see the server's log for its reason",
        )

    def _protocol_error(self, summary: str) -> Stop:
        return fail(self._channel.report, Exit.PROTOCOL, summary=summary, fix="see the server's log")


def _fields(headers: Iterable[tuple[bytes | str, bytes | str]] | None) -> Fields:
    """h2's header list (bytes, as configured: header_encoding=None) as a tuple of pairs."""
    return tuple((_bytes(name), _bytes(value)) for name, value in headers or ())


def _bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode("latin-1")


def _code(error_code: object) -> str:
    """``NO_ERROR``, ``PROTOCOL_ERROR``...: h2 gives a known code as an enum, another as an int."""
    return getattr(error_code, "name", None) or f"error code {error_code}"
