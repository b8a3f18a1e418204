"""The sans-I/O line protocol: framing, limits, parsing; no sockets, no event loop."""

from __future__ import annotations

import pytest

from mtls_ref.shared.core.errors import ProtocolError
from mtls_ref.shared.core.protocol import (
    Command,
    LineBuffer,
    LineTooLong,
    Reply,
    Request,
    encode_reply,
    encode_request,
    parse_reply,
    parse_request,
)


def test_lines_split_across_and_within_chunks() -> None:
    """Lines are reassembled from any chunking; LF and CRLF both end a line."""
    buffer = LineBuffer(64)
    assert buffer.feed(b"WHO") == []
    assert buffer.feed(b"AMI\r\nECHO a\nPI") == ["WHOAMI", "ECHO a"]
    assert buffer.pending == 2
    assert buffer.feed(b"NG\n") == ["PING"]


def test_line_of_exactly_the_limit_is_accepted() -> None:
    """max_line counts the terminator: a line of max_line bytes passes, one more fails."""
    buffer = LineBuffer(64)
    exact = b"E" * 63 + b"\n"
    assert buffer.feed(exact) == ["E" * 63]
    with pytest.raises(LineTooLong, match="line longer than the limit of 64 bytes"):
        LineBuffer(64).feed(b"E" * 64 + b"\n")


def test_unterminated_flood_is_refused_early() -> None:
    """A peer that never sends a newline cannot make the buffer grow past the limit."""
    buffer = LineBuffer(64)
    buffer.feed(b"x" * 63)
    with pytest.raises(LineTooLong, match="line longer than the limit of 64 bytes"):
        buffer.feed(b"x")


def test_lines_before_a_violation_come_out_first() -> None:
    """next_line delivers the complete lines that precede a violation in the same bytes, then raises."""
    buffer = LineBuffer(64)
    buffer.add(b"PING\n" + b"x" * 70)
    assert buffer.next_line() == "PING"
    with pytest.raises(LineTooLong, match="line longer than the limit of 64 bytes"):
        buffer.next_line()
    buffer = LineBuffer(64)
    buffer.add(b"PING\nECHO \xff\nHELP\n")
    assert buffer.next_line() == "PING"
    with pytest.raises(ProtocolError, match="not valid UTF-8"):
        buffer.next_line()
    assert buffer.next_line() == "HELP"  # the bad line is consumed; the caller decides whether to go on


def test_next_line_waits_for_a_terminator() -> None:
    """Without a newline next_line says None and keeps the bytes."""
    buffer = LineBuffer(64)
    buffer.add(b"PI")
    assert buffer.next_line() is None
    assert buffer.pending == 2


def test_non_utf8_is_a_protocol_error() -> None:
    """Bytes that are not UTF-8 are refused with where they went wrong."""
    with pytest.raises(ProtocolError, match="not valid UTF-8"):
        LineBuffer().feed(b"ECHO \xff\n")


def test_utf8_multibyte_round_trip() -> None:
    """Non-ASCII text survives encode and framing byte-exact."""
    text = "ECHO grüße — 日本"
    assert LineBuffer().feed(encode_request(text)) == [text]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("WHOAMI", Request(Command.WHOAMI)),
        ("whoami", Request(Command.WHOAMI)),
        ("ECHO  two  spaces ", Request(Command.ECHO, " two  spaces ")),
        ("echo", Request(Command.ECHO, "")),
        ("  QUIT  ", Request(Command.QUIT)),
        ("PING", Request(Command.PING)),
        ("HELP", Request(Command.HELP)),
    ],
)
def test_parse_request(line: str, expected: Request) -> None:
    """Commands are case-insensitive; ECHO keeps its argument verbatim."""
    assert parse_request(line) == expected


def test_unknown_command_names_the_alternatives() -> None:
    """An unknown command error lists what is accepted."""
    with pytest.raises(ProtocolError, match="unknown command 'GET'; try WHOAMI"):
        parse_request("GET / HTTP/1.0")


def test_reply_round_trip() -> None:
    """Replies encode as one line and parse back to the same value."""
    for reply in (
        Reply(True, "echo", "a b c"),
        Reply(False, "forbidden", "CN=x is not allowed"),
        Reply(True, "bye"),
    ):
        line = encode_reply(reply)
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        assert parse_reply(line.decode().rstrip("\n")) == reply


def test_reply_never_spans_lines() -> None:
    """A newline inside reply text cannot split the reply into two lines."""
    assert encode_reply(Reply(True, "echo", "a\nb")).count(b"\n") == 1


def test_garbage_reply_is_refused() -> None:
    """A reply that is not OK/ERR is a protocol error."""
    with pytest.raises(ProtocolError, match="expected a reply starting with OK or ERR"):
        parse_reply("HTTP/1.1 400 Bad Request")


def test_encode_request_checks_one_line_and_length() -> None:
    """Requests with line breaks or beyond the limit are refused before sending."""
    with pytest.raises(ProtocolError, match="contains a line break"):
        encode_request("ECHO a\nQUIT")
    with pytest.raises(ProtocolError, match="exceeds the line limit of 64"):
        encode_request("E" * 64, max_line=64)
    assert encode_request("E" * 63, max_line=64) == b"E" * 63 + b"\n"
