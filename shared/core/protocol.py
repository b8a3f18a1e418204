"""The line protocol's wire format, sans-I/O: framing, requests, replies; no trio, ssl or socket here.

The server's side of the conversation (what is answered when, the limits and
the waits) is the state machine in :mod:`mtls_ref.shared.core.line_protocol`;
the client reads replies with :func:`parse_reply`.

Wire format (UTF-8, one message per line, ``\\n`` or ``\\r\\n``, bounded length)::

    server -> client, first, right after the handshake:
        OK hello <identity>; commands: WHOAMI | ECHO <text> | PING | HELP | QUIT
      or, when the allow-list refuses the verified client, then close:
        ERR forbidden <identity> is not allowed: <reason>

    client -> server         server -> client
        WHOAMI                   OK whoami {"subject": ..., "tls_version": ..., ...}   (one JSON line)
        ECHO <text>              OK echo <text>
        PING                     OK pong
        HELP                     OK help WHOAMI | ECHO <text> | PING | HELP | QUIT
        QUIT                     OK bye          (then the server closes with close_notify)
        anything else            ERR unknown-command ...   (the connection stays open)

Commands are case-insensitive. A line longer than the limit, or not UTF-8, is a
peer protocol violation: the server answers ``ERR line-too-long`` /
``ERR bad-encoding`` and closes. So does silence: ``ERR idle-timeout`` between
requests, ``ERR request-timeout`` for a line begun and not finished. Typing by
hand in ``openssl s_client`` works.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from mtls_ref.shared.core.errors import ProtocolError

__all__ = [
    "DEFAULT_MAX_LINE",
    "HELP_TEXT",
    "Command",
    "LineBuffer",
    "LineTooLong",
    "Reply",
    "Request",
    "encode_reply",
    "encode_request",
    "parse_reply",
    "parse_request",
]

# 4 KiB holds any whoami reply and a generous echo; large enough for hand use,
# small enough that a hostile peer cannot make the server buffer much.
DEFAULT_MAX_LINE: Final = 4096
HELP_TEXT: Final = "WHOAMI | ECHO <text> | PING | HELP | QUIT"


class Command(enum.Enum):
    WHOAMI = "WHOAMI"
    ECHO = "ECHO"
    PING = "PING"
    HELP = "HELP"
    QUIT = "QUIT"


class LineTooLong(ProtocolError):
    """A line (newline included) longer than ``max_line`` bytes."""


def _too_long(max_line: int) -> str:
    # One wording however TCP cut the stream: whether the newline has arrived yet must not change
    # what the peer is told (max_line bytes without one already make the line too long).
    return f"line longer than the limit of {max_line} bytes"


@dataclass(frozen=True, slots=True)
class Request:
    command: Command
    argument: str = ""


@dataclass(frozen=True, slots=True)
class Reply:
    """``OK <code> <text>`` or ``ERR <code> <text>``."""

    ok: bool
    code: str
    text: str = ""

    def __str__(self) -> str:
        return f"{'OK' if self.ok else 'ERR'} {self.code}" + (f" {self.text}" if self.text else "")


class LineBuffer:
    """Split a byte stream into lines of at most ``max_line`` bytes (terminator included).

    :meth:`add` then :meth:`next_line` until it says None hands out lines one at a
    time, so the lines before a violation are delivered before the violation is
    raised (however the bytes were chunked); :meth:`feed` does both at once.
    """

    def __init__(self, max_line: int = DEFAULT_MAX_LINE) -> None:
        self.max_line = max_line
        self._buffer = bytearray()

    def __repr__(self) -> str:
        return f"<LineBuffer max_line={self.max_line} pending={len(self._buffer)}>"

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def add(self, data: bytes | bytearray) -> None:
        """Keep received bytes for :meth:`next_line`."""
        self._buffer += data

    def next_line(self) -> str | None:
        """The next complete line, decoded, without its terminator; None until more bytes come.

        Raises LineTooLong for a line over the limit (or that many bytes without a
        newline), ProtocolError for a line that is not UTF-8.
        """
        end = self._buffer.find(b"\n")
        if end < 0:
            if len(self._buffer) >= self.max_line:
                raise LineTooLong(_too_long(self.max_line))
            return None
        if end + 1 > self.max_line:
            raise LineTooLong(_too_long(self.max_line))
        raw = bytes(self._buffer[:end]).removesuffix(b"\r")
        del self._buffer[: end + 1]
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"line is not valid UTF-8 ({exc.reason} at byte {exc.start})") from exc

    def feed(self, data: bytes | bytearray) -> list[str]:
        """Add received bytes; return the complete lines.

        A violation raises, and the lines completed before it in ``data`` go with
        it: a caller that must answer them uses :meth:`next_line`.
        """
        self.add(data)
        lines: list[str] = []
        while (line := self.next_line()) is not None:
            lines.append(line)
        return lines


def parse_request(line: str) -> Request:
    """``ECHO hello`` -> Request(ECHO, "hello"); unknown commands raise ProtocolError."""
    # One space separates the command from ECHO's text, which is kept byte for byte.
    word, _, argument = line.lstrip().partition(" ")
    word = word.rstrip()
    try:
        command = Command(word.upper())
    except ValueError:
        raise ProtocolError(f"unknown command {word!r}; try {HELP_TEXT}") from None
    return Request(command, argument if command is Command.ECHO else argument.strip())


def encode_request(text: str, *, max_line: int = DEFAULT_MAX_LINE) -> bytes:
    """One request line, checked before it goes out."""
    if "\n" in text or "\r" in text:
        raise ProtocolError(f"a request is one line; {text!r} contains a line break")
    data = text.encode("utf-8") + b"\n"
    if len(data) > max_line:
        raise ProtocolError(f"request of {len(data)} bytes exceeds the line limit of {max_line}")
    return data


def encode_reply(reply: Reply) -> bytes:
    return str(reply).replace("\n", " ").encode("utf-8") + b"\n"


def parse_reply(line: str) -> Reply:
    status, _, rest = line.partition(" ")
    if status not in ("OK", "ERR"):
        raise ProtocolError(f"expected a reply starting with OK or ERR, got {line[:80]!r}")
    code, _, text = rest.partition(" ")
    return Reply(status == "OK", code, text)
