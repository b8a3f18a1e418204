"""``HOST:PORT`` as one type, and whether a listening address is reachable only from this machine.

:class:`HostPort` is the one parser and printer of ``HOST:PORT`` (``[v6]:PORT``
for IPv6): the server's forward target and status port, the tunnel's addresses
and the conformance target all read it, and every message shows it the same way.

Both plain-text listeners of the project use it to refuse, unless told
otherwise, an address that other machines can reach: the tunnel (whose port
acts with our certificate) and the server's status port (whose /metrics needs
no authentication).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

__all__ = ["HostPort", "is_loopback"]


@dataclass(frozen=True, slots=True)
class HostPort:
    """A host (name or address, without brackets) and a TCP port."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str, *, default_host: str | None = None) -> HostPort:
        """``HOST:PORT`` or ``[V6]:PORT``; raises ValueError saying what is wrong.

        ``default_host``: used for ``:PORT`` (no host); without it the host is required.
        """
        host, sep, port = text.strip().rpartition(":")
        host = host.strip()
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        elif ":" in host:
            raise ValueError(f"{text!r}: an IPv6 address goes in brackets, e.g. [::1]:8443")
        host = host or (default_host or "")
        # Port 0 is a listener's "any free port" (the tests' status ports use it).
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise ValueError(f"{text!r} is not HOST:PORT (a port up to 65535), e.g. 127.0.0.1:8443")
        return cls(host, int(port))

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def is_loopback(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 or ``::1`` (without brackets); any other name or address is not.

    A name other than ``localhost`` counts as not loopback even if it resolves to
    127.0.0.1: what it resolves to can change after the check.
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
