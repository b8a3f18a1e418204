"""The TLS connection as a mode sees it: bytes and lines in, bytes and lines out, every wait bounded.

Theory of operation
-------------------
A mode (line protocol, raw, HTTP) only says what it sends and what it waits
for; the channel does the waiting. Each read and each write has the session's
deadline (``config.timeout``), and so has each whole exchange (a request and
all of its answer, :meth:`Channel.exchange`): a server that sends a byte, or an
HTTP/2 PING, just inside each read's deadline cannot hold us longer than that.
Every way it can end that is not data
becomes the session's verdict at once (:class:`~.outcome.Stop`): a TLS error
(under TLS 1.3 the server's verdict on our certificate arrives here, as an
alert on our first read), the end of the stream, or the deadline.

Reads come in two kinds. :meth:`Channel.receive` and :meth:`Channel.line` are
for what decides the outcome (a greeting, a reply, a status line): they never
return without data. :meth:`Channel.receive_optional` is for what is read after the verdict (an
error page's body): it returns ``b""`` instead of judging, and leaves the
report alone.

The channel touches the connection only through ``receive_some`` and
``send_all``: how the TLS stream works inside is not its business.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Awaitable, Callable, Iterator
from typing import Final, TypeVar

import trio

from mtls_ref.shared.core.config import ClientConfig
from mtls_ref.shared.core.errors import ProtocolError
from mtls_ref.shared.core.protocol import LineBuffer, encode_request
from mtls_ref.shared.tls.connection import TLSConnection
from mtls_ref.shared.tls.stream import RECORD_SIZE

from .diagnosis import Verdicts
from .outcome import ClientReport, Exit, fail

__all__ = ["REPLY_MAX_LINE", "Channel"]

# Replies can be longer than requests (ECHO adds a prefix, WHOAMI is JSON):
# accept up to 64 KiB per reply line.
REPLY_MAX_LINE: Final = 65536

T = TypeVar("T")


class Channel:
    """Sends and receives for one session's mode, each within ``config.timeout``."""

    def __init__(
        self, tls: TLSConnection, *, config: ClientConfig, report: ClientReport, verdicts: Verdicts
    ) -> None:
        self.config = config
        self.report = report
        self._tls = tls
        self._timeout = config.timeout
        self._verdicts = verdicts
        self._lines = LineBuffer(REPLY_MAX_LINE)
        self._ready: list[str] = []
        self._received_any = False
        self._exchange: tuple[float, str] | None = None  # the exchange under way: its end, and what it is

    def __repr__(self) -> str:
        return f"<Channel to {self.report.target} received_any={self._received_any}>"

    def selected_alpn_protocol(self) -> str | None:
        """The application protocol the server chose in the handshake (None: it chose none)."""
        return self._tls.selected_alpn_protocol()

    @contextlib.contextmanager
    def exchange(self, what: str) -> Iterator[None]:
        """One request and all of its answer (``what`` names it: "a reply to 'PING'") within the deadline,
        however the server spreads its bytes over the reads inside."""
        self._exchange = (trio.current_time() + self._timeout, what)
        try:
            yield
        finally:
            self._exchange = None

    def _until(self) -> float:
        """When the wait that starts now ends: the deadline, or the exchange's end if sooner."""
        end = trio.current_time() + self._timeout
        return end if self._exchange is None else min(end, self._exchange[0])

    # -- writing --------------------------------------------------------------------------------

    async def send(self, data: bytes, *, what: str) -> None:
        """Send ``data`` (``what`` names it in the verdict) within the deadline."""
        await self._within_deadline(
            functools.partial(self._tls.send_all, data),
            summary=f"could not send {what} within {self._timeout:g}s (the server does not read)",
            fix="see the server's log",
        )

    async def send_line(self, message: str) -> None:
        """Send one request line (checked: one line, within the limit)."""
        try:
            data = encode_request(message, max_line=REPLY_MAX_LINE)
        except ProtocolError as exc:
            raise fail(self.report, Exit.USAGE, summary=str(exc), fix="send one line per --send") from exc
        await self.send(data, what=repr(message))

    # -- reads that decide the outcome ----------------------------------------------------------

    async def receive(self, waiting_for: str, *, not_ours_fix: str) -> bytes:
        """The next bytes from the server; any other ending is the verdict (``not_ours_fix`` on timeout)."""
        data = await self._within_deadline(
            functools.partial(self._tls.receive_some, RECORD_SIZE),
            summary=f"no {waiting_for} from the server within {self._timeout:g}s",
            fix=not_ours_fix,
        )
        if not data:
            raise self._verdicts.closed(waiting_for=waiting_for, first_read=not self._received_any)
        self._received_any = True
        return data

    async def line(self, waiting_for: str) -> str:
        """The next reply line; a reply that is not a line of text is the verdict."""
        not_ours = "is this an mtls-ref server? for other servers use --raw"
        while not self._ready:
            data = await self.receive(waiting_for, not_ours_fix=not_ours)
            try:
                self._ready.extend(self._lines.feed(data))
            except ProtocolError as exc:
                raise fail(
                    self.report, Exit.PROTOCOL, summary=f"bad reply from the server: {exc}", fix=not_ours
                ) from exc
        return self._ready.pop(0)

    async def _within_deadline(self, operation: Callable[[], Awaitable[T]], *, summary: str, fix: str) -> T:
        """``operation`` within the deadline; a broken stream or the deadline is the verdict."""
        with trio.move_on_at(self._until()):
            try:
                return await operation()
            except trio.BrokenResourceError as exc:
                raise self._verdicts.broken(exc, first_read=not self._received_any) from exc
        if self._exchange is not None and trio.current_time() >= self._exchange[0]:
            summary = f"no complete {self._exchange[1]} within {self._timeout:g}s"
            fix = "the server answers too slowly, or never ends its answer; see the server's log"
        raise fail(self.report, Exit.PROTOCOL, summary=summary, fix=fix)

    # -- reads after the verdict ----------------------------------------------------------------

    async def receive_optional(self) -> bytes:
        """The next bytes, or ``b""`` at the end of the stream, on a TLS error or at the deadline."""
        with trio.move_on_at(self._until()):
            try:
                return await self._tls.receive_some(RECORD_SIZE)
            except trio.BrokenResourceError:
                return b""
        return b""
