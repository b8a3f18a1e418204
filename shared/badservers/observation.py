"""What a client did to a bad server, as that server saw it: one :class:`Observation` per connection.

A row's server records each connection from the wire (the alerts read and
written, the ALPN offer) and from its connection record (how far the handshake
got, the certificate presented, the requests answered). :class:`Activity` is
all of a row's connections for one client run, summed up as the furthest
:class:`Stage` any of them reached. Plain data, to and from JSON, so the
pytest plugin reads what the server process writes.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Activity", "Observation", "Stage"]


class Stage(enum.IntEnum):
    """How far a connection got; a later stage implies the earlier ones."""

    NO_CONNECTION = 0
    HANDSHAKE_REFUSED = 1  # by either side: the alerts say who
    HANDSHAKE_COMPLETED = 2
    APPLICATION_DATA = 3  # the client sent a request and the server answered it

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", " ")


@dataclass(frozen=True, slots=True, kw_only=True)
class Observation:
    """One connection to a row's server."""

    peer: str
    stage: Stage
    tls: str | None = None  # the version, once the handshake completed
    alert_from_client: str | None = None  # read off the wire, e.g. "bad_certificate"
    alert_from_server: str | None = None
    cert_presented: bool = False
    subject: str | None = None  # the client certificate's subject, when it sent one
    requests: int = 0
    alpn_offered: tuple[str, ...] | None = None  # None: no ALPN extension at all
    reason: str | None = None  # the server's own words for how the connection ended

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["stage"] = self.stage.name.lower()
        data["alpn_offered"] = list(self.alpn_offered) if self.alpn_offered is not None else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Observation:
        fields = dict(data)
        fields["stage"] = Stage[str(fields["stage"]).upper()]
        offered = fields.get("alpn_offered")
        fields["alpn_offered"] = tuple(offered) if offered is not None else None
        return cls(**fields)

    def describe(self) -> str:
        """``client refused: alert bad_certificate; no cert``, for tables and logs."""
        match self.stage:
            case Stage.HANDSHAKE_REFUSED if self.alert_from_client:
                text = f"client refused: alert {self.alert_from_client}"
            case Stage.HANDSHAKE_REFUSED if self.alert_from_server:
                text = f"server refused: alert {self.alert_from_server}"
            case Stage.HANDSHAKE_REFUSED:
                text = "handshake failed, no alert"
            case Stage.HANDSHAKE_COMPLETED:
                text = f"handshake done ({self.tls}), no request"
            case Stage.APPLICATION_DATA:
                text = f"request served ({self.tls})"
            case _:
                return "no connection"
        return text + ("; cert sent" if self.cert_presented else "; no cert")


@dataclass(frozen=True, slots=True, kw_only=True)
class Activity:
    """Every connection a client made to one row's server, in one go."""

    connections: tuple[Observation, ...] = field(default_factory=tuple)

    @property
    def stage(self) -> Stage:
        return max((c.stage for c in self.connections), default=Stage.NO_CONNECTION)

    @property
    def furthest(self) -> Observation | None:
        """The connection that got furthest (the last of those, if several did)."""
        best = None
        for connection in self.connections:
            if best is None or connection.stage >= best.stage:
                best = connection
        return best

    @property
    def cert_presented(self) -> bool:
        return any(c.cert_presented for c in self.connections)

    @property
    def offered_alpn(self) -> bool:
        return any(c.alpn_offered for c in self.connections)

    @property
    def alert_from_client(self) -> str | None:
        return next((c.alert_from_client for c in self.connections if c.alert_from_client), None)

    @property
    def alert_from_server(self) -> str | None:
        return next((c.alert_from_server for c in self.connections if c.alert_from_server), None)

    def describe(self) -> str:
        best = self.furthest
        if best is None:
            return "no connection"
        more = f" (+{len(self.connections) - 1} more)" if len(self.connections) > 1 else ""
        return best.describe() + more

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage.name.lower(),
            "connections": [c.to_json() for c in self.connections],
        }
