"""Property-based fuzzing of the sans-I/O parsers: any input, only our own errors, limits always hold."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mtls_ref.server.http import HTTP_REQUEST_LINE
from mtls_ref.shared.core.errors import ProtocolError
from mtls_ref.shared.core.protocol import LineBuffer, Request, parse_reply, parse_request

MAX = 64


def feed_all(chunks: list[bytes]) -> tuple[list[str], type[Exception] | None]:
    """Every line the chunks make, one at a time, and the violation that ends them, if any."""
    buffer, lines = LineBuffer(MAX), []
    try:
        for chunk in chunks:
            buffer.add(chunk)
            while (line := buffer.next_line()) is not None:
                lines.append(line)
    except ProtocolError as exc:  # LineTooLong is a ProtocolError too
        return lines, type(exc)
    return lines, None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=80), max_size=20))
def test_line_buffer_survives_anything(chunks: list[bytes]) -> None:
    """Arbitrary bytes in arbitrary chunks: lines within the limit, or one of our errors; nothing else."""
    lines, _ = feed_all(chunks)
    for line in lines:
        assert len(line.encode("utf-8")) < MAX
        assert "\n" not in line


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(min_value=0, max_value=300), max_size=10))
def test_chunking_does_not_change_the_result(data: bytes, cuts: list[int]) -> None:
    """However the stream is split, the same lines come out (and the same error, if any).

    With ``feed`` this did not hold (the lines before a violation in the same chunk were lost);
    ``next_line`` hands them out first.
    """
    points = sorted({c for c in cuts if c <= len(data)})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert feed_all(pieces) == feed_all([data])


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_parse_request_total(text: str) -> None:
    """Any text is a Request or a ProtocolError naming the accepted commands."""
    try:
        request = parse_request(text)
    except ProtocolError as exc:
        assert "try WHOAMI" in str(exc)
    else:
        assert isinstance(request, Request)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_parse_reply_total(text: str) -> None:
    """Any text is a Reply whose string form starts like the input, or a ProtocolError."""
    try:
        reply = parse_reply(text)
    except ProtocolError:
        assert not text.startswith(("OK ", "ERR ")) and text not in ("OK", "ERR")
    else:
        assert str(reply).split(" ")[0] in ("OK", "ERR")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_http_sniff_only_matches_request_lines(data: bytes) -> None:
    """The HTTP sniff matches only 'METHOD target HTTP/1.x' lines."""
    if HTTP_REQUEST_LINE.match(data):
        first = data.split(b"\n", 1)[0].rstrip(b"\r")
        method, target, version = first.split(b" ")
        assert method.isupper() and target and version in (b"HTTP/1.0", b"HTTP/1.1")
