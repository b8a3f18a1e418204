"""How a connection ended, as data: the record every connection leaves, its outcome and its code.

A decision is recorded where it is made, as an :class:`Outcome` and a
:class:`Code`; the log line's words and the metric labels are derived from
them, never parsed back out of the human wording (rewording a diagnosis must
not change a metric). :class:`ConnectionReport` is the one place a finished
connection becomes a log line and counts.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from mtls_ref.shared.tls.identity import PeerIdentity

if TYPE_CHECKING:
    from .log import EventLog

__all__ = ["Code", "ConnectionRecord", "ConnectionReport", "Outcome", "Refused", "refuse"]


class Outcome(enum.StrEnum):
    """How a connection ended, in the log's ``outcome=`` and the metric's ``outcome`` label."""

    OPEN = "open"  # not ended yet
    ACCEPTED = "accepted"  # authenticated and admitted by the allow-list
    FORBIDDEN = "forbidden"  # authenticated, then refused (allow-list, or an identity we will not forward)
    REJECTED = "rejected"  # refused before or in the handshake
    TIMEOUT = "timeout"  # no complete handshake in time
    DROPPED = "dropped"  # evicted from a full handshake budget
    CLOSED = "closed"  # the peer went away, or the server shut down


class Code(enum.StrEnum):
    """Why, as a short bounded code: the ``reason`` label of ``mtls_connections_total``."""

    SERVED = "served"
    ALLOW_LIST = "allow-list"
    UNFORWARDABLE = "unforwardable-identity"
    TLS_REFUSAL = "tls-refusal"  # labelled with the alert that went out (not-tls when none did)
    HANDSHAKE_TIMEOUT = "handshake-timeout"
    HANDSHAKE_BUDGET = "handshake-budget"
    PER_SOURCE_LIMIT = "per-source-limit"
    CONNECTION_CAP = "connection-cap"
    PEER_CLOSED = "peer-closed"
    SHUTDOWN = "shutdown"
    OTHER = "other"

    def label(self, alert: str | None) -> str:
        """The metric label: a TLS refusal is named by its alert, everything else by its code."""
        if self is Code.TLS_REFUSAL:
            return alert if alert and alert != "none" else "not-tls"
        return self.value


@dataclass(slots=True, kw_only=True)
class ConnectionRecord:
    """What the per-connection log line says; filled in as the connection goes."""

    peer: str
    outcome: Outcome = Outcome.OPEN
    code: Code = Code.OTHER
    reason: str | None = None  # in words, for people
    alert: str | None = None  # the alert this server wrote on the wire ("none": none)
    alert_received: str | None = None  # the alert the client sent, when it refused us
    tls_version: str | None = None
    cipher: str | None = None
    identity: PeerIdentity | None = None
    requests: int = 0
    protocol: str | None = None
    resumed: bool = False
    presented: list[str] | None = None  # subjects of a refused peer's certificates, as sent
    handshake_seconds: float | None = None  # from accept to the handshake's end, done or failed
    forwarded: tuple[int, int] | None = None  # forward mode: bytes to the backend, to the client
    dropped_headers: list[str] | None = None  # HTTP forward modes: request header names removed
    started: float = field(default_factory=time.monotonic)

    def decide(self, outcome: Outcome, code: Code, reason: str) -> None:
        """Record a decision where it is made."""
        self.outcome, self.code, self.reason = outcome, code, reason

    @property
    def label(self) -> str:
        """The metric's reason label, derived from the code (and the alert, for TLS refusals)."""
        return self.code.label(self.alert)

    def fields(self) -> dict[str, Any]:
        ident = self.identity
        return {
            "peer": self.peer,
            "outcome": self.outcome.value,
            "code": self.label,
            "protocol": self.protocol,
            "reason": self.reason,
            "alert": self.alert,
            "alert_received": self.alert_received,
            "tls": self.tls_version,
            "cipher": self.cipher,
            "subject": ident.subject if ident else None,
            "sans": [n for n in ident.names() if not n.startswith("CN:")] if ident else None,
            "serial": ident.serial if ident else None,
            "sha256": ident.sha256 if ident else None,
            "presented": self.presented,
            "to_backend": self.forwarded[0] if self.forwarded else None,
            "to_client": self.forwarded[1] if self.forwarded else None,
            "dropped_headers": self.dropped_headers,
            "resumed": self.resumed or None,
            "requests": self.requests,
            "duration_ms": round((time.monotonic() - self.started) * 1000, 1),
        }


class ConnectionReport:
    """The one place a finished connection becomes its log line and, when given, its metrics."""

    def __init__(self, log: EventLog, count: Callable[[ConnectionRecord], None] | None = None) -> None:
        self._log = log
        self._count = count

    def __call__(self, record: ConnectionRecord) -> None:
        self._log.event("connection", **record.fields())
        if self._count is not None:
            self._count(record)


class Refused(Exception):
    """The connection ends here; its record holds the decision (raised by :func:`refuse`)."""


def refuse(record: ConnectionRecord, outcome: Outcome, code: Code, reason: str) -> NoReturn:
    """Record the decision and end the connection's handling."""
    record.decide(outcome, code, reason)
    raise Refused
