"""Structured server logging: one line per event, ``text`` (key=value) or ``json``.

Values are strings, numbers, booleans or lists of those; nothing that reaches
here ever holds key material (identities come from public certificates).
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable
from typing import Any, Final

__all__ = ["EventLog"]


# Characters that would let a value split a line or forge a field: whitespace and
# every control character (a SAN can hold a newline: one certificate must not be
# able to write a second log line).
_NEEDS_QUOTING: Final = re.compile(r'[\s"=\\\x00-\x1f\x7f-\x9f]')


def _text_value(value: Any) -> str:
    """A value as one token: quoted and escaped (JSON string rules) when it has to be.

    A list is its items joined with ',' (``addresses=127.0.0.1:8443,[::1]:8443``) unless an item
    holds ',' itself, as a subject (``CN=alice,O=Acme``) or a SAN may: then it is its JSON array,
    which is always quoted, so a reader tells the two apart and can split either back.
    """
    if isinstance(value, list | tuple):
        items = [str(v) for v in value]
        value = json.dumps(items, separators=(",", ":")) if any("," in v for v in items) else ",".join(items)
    text = str(value)
    if text == "" or _NEEDS_QUOTING.search(text):
        return json.dumps(text)
    return text


# One encoder for every line: json.dumps(..., default=str) builds a new JSONEncoder per call, which
# costs a third of a connection line's encoding (timeit).
_JSON: Final = json.JSONEncoder(default=str)

_stamp_cache: tuple[int, str] = (-1, "")


def _timestamp() -> str:
    """Local time to the second; formatted once a second, not once a line (the log is per connection)."""
    global _stamp_cache  # noqa: PLW0603 - a one-entry cache of a pure function of the second
    now = int(time.time())
    if _stamp_cache[0] != now:
        _stamp_cache = (now, time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(now)))
    return _stamp_cache[1]


class EventLog:
    """Writes ``event`` lines to ``sink`` (stderr by default)."""

    def __init__(self, fmt: str = "text", sink: Callable[[str], None] | None = None) -> None:
        self.fmt = fmt
        self._sink = sink or self._stderr

    def __repr__(self) -> str:
        return f"<EventLog fmt={self.fmt!r}>"

    @staticmethod
    def _stderr(line: str) -> None:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def raw(self, text: str) -> None:
        """A block for people (the start-up banner), as is."""
        self._sink(text)

    def event(self, name: str, **fields: Any) -> None:
        fields = {k: v for k, v in fields.items() if v is not None}
        stamp = _timestamp()
        if self.fmt == "json":
            self._sink(_JSON.encode({"ts": stamp, "event": name, **fields}))
        else:
            pairs = " ".join(f"{key}={_text_value(value)}" for key, value in fields.items())
            self._sink(f"{stamp} {name} {pairs}".rstrip())
