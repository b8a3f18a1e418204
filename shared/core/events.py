"""Reading the server's JSON log (``--log-format json``) back, one event object per line.

The server writes lines for people on the same stream (the start-up banner, with
its blank lines), so a reader keeps what parses as a JSON object with an
``event`` key and passes over everything else instead of failing on it. The
demo, the pytest plugin and the benchmark all learn the server's port this way.
"""

from __future__ import annotations

import json
from typing import Any

from .addresses import HostPort

__all__ = ["listening_port", "parse_event"]


def parse_event(line: str | bytes) -> dict[str, Any] | None:
    """The event in one log line, or ``None`` for a line that is not a JSON event object."""
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    text = text.strip()
    if not text.startswith("{"):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("event"), str):
        return None
    return value


def listening_port(line: str | bytes) -> int | None:
    """The port from a ``listening`` event line (its first address), or ``None`` for any other line."""
    event = parse_event(line)
    if event is None or event["event"] != "listening":
        return None
    addresses = event.get("addresses")
    if not isinstance(addresses, list) or not addresses:
        return None
    try:
        return HostPort.parse(str(addresses[0])).port
    except ValueError:
        return None
