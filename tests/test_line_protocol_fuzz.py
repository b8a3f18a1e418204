"""Property-based fuzzing of the line protocol's state machine: any bytes, any chunking, any timing."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from mtls_ref.shared.core.line_protocol import Close, End, LineConnection, State, Step, Waiting
from mtls_ref.shared.core.protocol import parse_reply

MAX = 64
REQUEST_TIMEOUT = 10.0


def connection() -> LineConnection:
    return LineConnection(whoami=lambda: "{}", idle_timeout=60, request_timeout=REQUEST_TIMEOUT, max_line=MAX)


def converse(
    chunks: list[bytes], times: list[float] | None = None
) -> tuple[bytes, list[Step], LineConnection]:
    """Feed the chunks until the connection ends; what it wrote after the greeting, and each step."""
    conn = connection()
    conn.start("alice")
    said, steps = b"", []
    for index, chunk in enumerate(chunks):
        if not chunk:
            continue  # an empty read is the end of the stream: fed apart below
        step = conn.receive_data(chunk, times[index] if times else 0.0)
        said += step.data
        steps.append(step)
        if isinstance(step.then, Close):
            break
    return said, steps, conn


def cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c for c in cuts if c <= len(data)})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


# Mostly lines that are requests, some that are not, and raw bytes; joined with LF or CRLF.
LINES = st.one_of(
    st.sampled_from(
        ["PING", "HELP", "WHOAMI", "whoami", "QUIT", "ECHO a b", "ECHO", "", "  ", "GET / HTTP/1.0"]
    ),
    st.text(max_size=80).map(lambda t: t.replace("\n", " ")),
)
STREAMS = st.one_of(
    st.builds(
        lambda lines, crlf: "".join(f"{line}{crlf}" for line in lines).encode(),
        st.lists(LINES, max_size=12),
        st.sampled_from(["\n", "\r\n"]),
    ),
    st.binary(max_size=300),
)


@settings(max_examples=300, deadline=None)
@given(STREAMS, st.lists(st.integers(min_value=0, max_value=300), max_size=10))
# A line one byte over the limit, cut where the limit ends: once told apart from the same line whole.
@example(b"x" * MAX + b"\n", [MAX])
def test_chunking_does_not_change_what_is_said(data: bytes, cuts: list[int]) -> None:
    """However TCP cuts the stream, the same bytes go back, the same number of requests, the same end."""
    whole, whole_steps, whole_conn = converse([data])
    pieces, piece_steps, piece_conn = converse(cut(data, cuts))
    assert pieces == whole
    assert piece_conn.requests == whole_conn.requests
    assert piece_conn.state is whole_conn.state
    assert [s.then for s in piece_steps[-1:]] == [s.then for s in whole_steps[-1:]]


@settings(max_examples=300, deadline=None)
@given(STREAMS, st.lists(st.integers(min_value=0, max_value=300), max_size=10))
def test_one_reply_line_per_request(data: bytes, cuts: list[int]) -> None:
    """Every reply is one OK/ERR line; one per request, plus one ERR for a violation that ends it."""
    said, steps, conn = converse(cut(data, cuts))
    lines = said.split(b"\n")
    assert lines.pop() == b""  # every reply ends with its newline
    for line in lines:
        assert parse_reply(line.decode()).code
    last = steps[-1].then if steps else None
    violation = isinstance(last, Close) and last.end in (End.LINE_TOO_LONG, End.BAD_ENCODING)
    assert len(lines) == conn.requests + violation
    if isinstance(last, Close):
        assert conn.state is State.CLOSED
        assert last.reason


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.binary(min_size=1, max_size=40), st.floats(0, 5)), max_size=15))
def test_a_started_line_is_bounded_by_when_it_began(chunks: list[tuple[bytes, float]]) -> None:
    """The rest of a line is due request_timeout after the bytes that began it, however it trickles in."""
    conn = connection()
    conn.start("alice")
    now, began = 0.0, None
    for data, pause in chunks:
        now += pause
        was_in_line = conn.state is State.IN_LINE
        step = conn.receive_data(data, now)
        if isinstance(step.then, Close):
            return
        if step.then.waiting is Waiting.NEXT_REQUEST:
            assert conn.state is State.IDLE and step.then.until == float("inf")
            began = None
            continue
        assert conn.state is State.IN_LINE
        if not was_in_line or b"\n" in data:
            began = now  # a new line began in this chunk
        assert began is not None
        assert step.then.until == began + REQUEST_TIMEOUT


@settings(max_examples=200, deadline=None)
@given(STREAMS)
def test_every_open_state_can_time_out_and_be_closed(data: bytes) -> None:
    """Wherever the bytes leave it, an open session ends on a timeout (with one ERR) or an EOF (silently)."""
    conn = converse([data])[2]
    if conn.state is State.CLOSED:
        return
    ending = conn.timed_out()
    assert isinstance(ending.then, Close) and ending.then.reason
    assert ending.then.end in (End.IDLE_TIMEOUT, End.REQUEST_TIMEOUT)
    assert parse_reply(ending.data.decode().rstrip("\n")).code == ending.then.end.value
    conn = converse([data])[2]
    closed = conn.receive_data(b"", 1.0)
    assert closed.replies == () and closed.then == Close(
        end=End.PEER_CLOSED, reason="peer closed the connection"
    )
