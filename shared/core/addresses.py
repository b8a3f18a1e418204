"""Whether a listening address is reachable only from this machine.

Both plain-text listeners of the project use it to refuse, unless told
otherwise, an address that other machines can reach: the tunnel (whose port
acts with our certificate) and the server's status port (whose /metrics needs
no authentication).
"""

from __future__ import annotations

import ipaddress

__all__ = ["is_loopback"]


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
