"""What one bad server saw of each connection: the facts the verdict is made of.

Theory of operation
-------------------
A row's server is our :class:`~mtls_ref.server.app.Server`, whose handler ends
every connection with one ``connection`` log record (how far the handshake
got, the certificate presented, the requests answered). Two facts are not in
it, and come from the wire through public pyOpenSSL callbacks on the row's
context: which alert each side *sent* (the info callback reports an alert read
or written, ``ret >> 8`` the level and ``ret & 0xff`` the description, RFC 8446
§6), and which ALPN protocols the client offered (the ALPN select callback).
Both are keyed by the peer's address, which is also how the log record names
the connection; :class:`RowLog` hands the record to the recorder instead of a
terminal.

After a client is done, :meth:`RowRecorder.settle` waits, bounded, until every
connection it opened has ended (a connection opens at its first handshake
callback, which the handler triggers right after accept) and takes them.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio
from OpenSSL import SSL

from mtls_ref.server.log import EventLog
from mtls_ref.shared.badservers import Activity, Observation, Stage
from mtls_ref.shared.core.addresses import HostPort
from mtls_ref.shared.tls.context import ALPN_HTTP, ALPN_LINE
from mtls_ref.shared.tls.trace import ALERT_NAMES

__all__ = ["Notify", "RowLog", "RowRecorder", "host_port"]

CLOSE_NOTIFY = 0  # an alert that says goodbye, not no
# Our server's ALPN choice (the same order as the openssl engine's own callback).
_ALPN_PREFERENCE = (ALPN_HTTP.encode(), ALPN_LINE.encode())

# (event, fields): "opened" / "observed", for the CLI's live lines and the pytest plugin.
Notify = Callable[[str, dict[str, Any]], None]


def host_port(address: Any) -> str:
    """``127.0.0.1:5000`` / ``[::1]:5000`` from a socket address, as the server's log spells a peer."""
    return str(HostPort(*address[:2]))


@dataclass(slots=True)
class _Wire:
    alpn_offered: tuple[str, ...] | None = None
    alert_from_client: str | None = None
    alert_from_server: str | None = None


class RowRecorder:
    """One row's connections, from the first handshake callback to the log record."""

    def __init__(self, row: str, notify: Notify | None = None) -> None:
        self.row = row
        self._notify = notify
        self._peers: weakref.WeakKeyDictionary[SSL.Connection, str] = weakref.WeakKeyDictionary()
        self._wire: dict[str, _Wire] = {}
        self._open: set[str] = set()
        self._done: list[Observation] = []
        self._changed = trio.Event()

    def __repr__(self) -> str:
        return f"<RowRecorder {self.row} open={len(self._open)} done={len(self._done)}>"

    # -- on the row's TLS context -------------------------------------------------------------

    def install(self, context: SSL.Context, *, refuse_alpn: bool = False) -> None:
        """Watch alerts and ALPN offers on ``context`` (before any connection is made from it)."""
        context.set_info_callback(self._on_info)

        def select(connection: SSL.Connection, offered: list[bytes]) -> Any:
            wire = self._wire_of(connection)
            if wire is not None:
                wire.alpn_offered = tuple(p.decode("ascii", "replace") for p in offered)
            if refuse_alpn:
                # pyOpenSSL turns an exception here into SSL_TLSEXT_ERR_ALERT_FATAL, so OpenSSL
                # sends no_application_protocol (RFC 7301 §3.2) and the handshake raises this.
                raise NoApplicationProtocol([("SSL routines", "", "no application protocol")])
            for protocol in _ALPN_PREFERENCE:
                if protocol in offered:
                    return protocol
            return SSL.NO_OVERLAPPING_PROTOCOLS

        context.set_alpn_select_callback(select)

    def _wire_of(self, connection: SSL.Connection) -> _Wire | None:
        peer = self._peers.get(connection)
        if peer is None:
            try:
                peer = host_port(connection.getpeername())
            except OSError:  # gone before its first callback: nothing to record
                return None
            self._peers[connection] = peer
            self.opened(peer)
        return self._wire.setdefault(peer, _Wire())

    def _on_info(self, connection: SSL.Connection, where: int, ret: int) -> None:
        # Called from inside OpenSSL: it must not raise (cffi would only print the error).
        wire = self._wire_of(connection)
        if wire is None or not where & SSL.SSL_CB_ALERT or ret & 0xFF == CLOSE_NOTIFY:
            return
        name = ALERT_NAMES.get(ret & 0xFF, str(ret & 0xFF))
        if where & SSL.SSL_CB_READ:
            wire.alert_from_client = wire.alert_from_client or name
        elif where & SSL.SSL_CB_WRITE:
            wire.alert_from_server = wire.alert_from_server or name

    # -- connections opening and ending --------------------------------------------------------

    def opened(self, peer: str) -> None:
        self._open.add(peer)
        self._wire.setdefault(peer, _Wire())
        if self._notify is not None:
            self._notify("opened", {"row": self.row, "peer": peer})
        self._wake()

    def finished(self, record: dict[str, Any]) -> None:
        """The end of one connection, from the server's ``connection`` record (its log fields)."""
        peer = str(record.get("peer"))
        wire = self._wire.pop(peer, _Wire())
        self._open.discard(peer)
        requests = int(record.get("requests") or 0)
        tls = record.get("tls")
        if tls is None:
            stage = Stage.HANDSHAKE_REFUSED
        else:
            stage = Stage.APPLICATION_DATA if requests else Stage.HANDSHAKE_COMPLETED
        presented = record.get("presented") or []
        subject = record.get("subject") or (presented[0] if presented else None)
        observation = Observation(
            peer=peer,
            stage=stage,
            tls=tls,
            alert_from_client=wire.alert_from_client,
            alert_from_server=wire.alert_from_server,
            cert_presented=subject is not None,
            subject=subject,
            requests=requests,
            alpn_offered=wire.alpn_offered,
            reason=record.get("reason"),
        )
        self._done.append(observation)
        if self._notify is not None:
            self._notify("observed", {"row": self.row, **observation.to_json()})
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def take(self) -> Activity:
        """The connections that ended since the last take."""
        activity = Activity(connections=tuple(self._done))
        self._done.clear()
        return activity

    async def settle(self, *, grace: float, within: float) -> Activity:
        """Wait until the client's connections have ended (bounded), then take them.

        ``grace``: how long to look for a first connection at all (the accept loop may not
        have run yet when a quick client exits); ``within``: for the open ones to end.
        """
        with trio.move_on_after(grace):
            while not self._open and not self._done:
                await self._changed.wait()
        with trio.move_on_after(within):
            while self._open:
                await self._changed.wait()
        return self.take()


class NoApplicationProtocol(SSL.Error):
    """From the no-ALPN-overlap row's ALPN callback; an ``SSL.Error``, so the stream converts it."""


class RowLog(EventLog):
    """A row server's event log: ``connection`` records go to the recorder, nothing to a terminal."""

    def __init__(self, recorder: RowRecorder) -> None:
        super().__init__("json", sink=_discard)
        self.recorder = recorder

    def event(self, name: str, **fields: Any) -> None:
        if name == "connection":
            self.recorder.finished(fields)


def _discard(line: str) -> None:
    """The start-up banner and other events: the bad-server CLI prints its own."""
