"""Which side of a TLS connection: the client or the server."""

from __future__ import annotations

import enum

__all__ = ["Role"]


class Role(enum.StrEnum):
    CLIENT = "client"
    SERVER = "server"

    @property
    def peer(self) -> Role:
        return Role.SERVER if self is Role.CLIENT else Role.CLIENT
