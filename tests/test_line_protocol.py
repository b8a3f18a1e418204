"""The line protocol's server side as a state machine, in memory: no sockets, no event loop, no clock."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from mtls_ref.shared.core.line_protocol import (
    TRANSITIONS,
    Close,
    End,
    Input,
    LineConnection,
    LineStateError,
    State,
    Step,
    Wait,
    Waiting,
)
from mtls_ref.shared.core.protocol import HELP_TEXT, Reply, encode_reply

HELLO = f"OK hello alice; commands: {HELP_TEXT}\n"
WHOAMI = '{"subject":"CN=alice"}'


def connection(max_line: int = 64) -> LineConnection:
    return LineConnection(whoami=lambda: WHOAMI, idle_timeout=60, request_timeout=10, max_line=max_line)


# One input to the connection: bytes at a time, or an event without bytes.
Feed = tuple[bytes, float] | str


def run(conn: LineConnection, script: list[Feed]) -> tuple[str, Step]:
    """Greet, feed the script; everything written (as text) and the last step."""
    step = conn.start("alice")
    said = step.data
    for item in script:
        match item:
            case "eof":
                step = conn.receive_data(b"", 0.0)
            case "abort":
                step = conn.peer_aborted()
            case "timeout":
                step = conn.timed_out()
            case (bytes() as data, float() as now):
                step = conn.receive_data(data, now)
        said += step.data
    return said.decode(), step


@dataclass(frozen=True)
class Case:
    script: list[Feed]
    said: str  # after the greeting
    then: Wait | Close
    requests: int = 0
    max_line: int = 64


WAIT = Wait(waiting=Waiting.NEXT_REQUEST)

CASES = {
    "ping": Case([(b"PING\n", 1.0)], "OK pong\n", WAIT, 1),
    "crlf and case": Case([(b"ping\r\nHeLp\r\n", 1.0)], f"OK pong\nOK help {HELP_TEXT}\n", WAIT, 2),
    "burst in order": Case(
        [(b"PING\nECHO  two  spaces \nWHOAMI\n", 1.0)],
        f"OK pong\nOK echo  two  spaces \nOK whoami {WHOAMI}\n",
        WAIT,
        3,
    ),
    "split anywhere": Case(
        [(b"PI", 1.0), (b"NG\nEC", 2.0), (b"HO x\n", 3.0)], "OK pong\nOK echo x\n", WAIT, 2
    ),
    "blank lines are not requests": Case([(b"\n  \r\n\t\n", 1.0)], "", WAIT, 0),
    "unknown command goes on": Case(
        [(b"GET / HTTP/1.0\nPING\n", 1.0)],
        f"ERR unknown-command unknown command 'GET'; try {HELP_TEXT}\nOK pong\n",
        WAIT,
        2,
    ),
    "quit ends and what follows is not read": Case(
        [(b"PING\nQUIT\nPING\n", 1.0)],
        "OK pong\nOK bye\n",
        Close(end=End.QUIT, reason="client said QUIT"),
        2,
    ),
    "line of exactly max_line": Case(
        [(b"ECHO " + b"x" * 10 + b"\n", 1.0)], "OK echo xxxxxxxxxx\n", WAIT, 1, 16
    ),
    "line over max_line, after the lines before it": Case(
        [(b"PING\n" + b"E" * 20 + b"\n", 1.0)],
        "OK pong\nERR line-too-long line longer than the limit of 16 bytes; closing\n",
        Close(end=End.LINE_TOO_LONG, reason="line longer than the limit of 16 bytes"),
        1,
        16,
    ),
    "flood without newline": Case(
        [(b"x" * 10, 1.0), (b"x" * 6, 2.0)],
        "ERR line-too-long line longer than the limit of 16 bytes; closing\n",
        Close(end=End.LINE_TOO_LONG, reason="line longer than the limit of 16 bytes"),
        0,
        16,
    ),
    "not utf-8": Case(
        [(b"PING\nECHO \xff\nPING\n", 1.0)],
        "OK pong\nERR bad-encoding line is not valid UTF-8 (invalid start byte at byte 5); closing\n",
        Close(end=End.BAD_ENCODING, reason="line is not valid UTF-8 (invalid start byte at byte 5)"),
        1,
    ),
    "idle timeout": Case(
        ["timeout"],
        "ERR idle-timeout no request for 60s; bye\n",
        Close(end=End.IDLE_TIMEOUT, reason="idle for 60s"),
    ),
    "request timeout": Case(
        [(b"ECH", 100.0), "timeout"],
        "ERR request-timeout a request line takes at most 10s\n",
        Close(end=End.REQUEST_TIMEOUT, reason="request line not finished within 10s"),
    ),
    "a started line keeps its bound": Case(
        [(b"EC", 100.0), (b"H", 105.0)], "", Wait(waiting=Waiting.REST_OF_LINE, until=110.0)
    ),
    "a new line starts a new bound": Case(
        [(b"EC", 100.0), (b"HO x\nPI", 107.0)],
        "OK echo x\n",
        Wait(waiting=Waiting.REST_OF_LINE, until=117.0),
        1,
    ),
    "a finished line lifts the bound": Case([(b"PI", 100.0), (b"NG\n", 101.0)], "OK pong\n", WAIT, 1),
    "peer closes": Case(["eof"], "", Close(end=End.PEER_CLOSED, reason="peer closed the connection")),
    "peer closes mid-line": Case(
        [(b"PI", 1.0), "eof"], "", Close(end=End.PEER_CLOSED, reason="peer closed the connection")
    ),
    "peer aborts": Case(
        [(b"PING\n", 1.0), "abort"],
        "OK pong\n",
        Close(end=End.PEER_ABORTED, reason="peer closed the connection abruptly"),
        1,
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_server_side(case: Case) -> None:
    """Each script gets the replies our server has always written, then the right wait or end."""
    conn = connection(case.max_line)
    said, step = run(conn, case.script)
    assert said == HELLO + case.said
    assert step.then == case.then
    assert conn.requests == case.requests
    assert conn.state is (State.CLOSED if isinstance(case.then, Close) else _waiting_state(case.then))
    assert conn.ended == (case.then if isinstance(case.then, Close) else None)


def _waiting_state(wait: Wait) -> State:
    return State.IN_LINE if wait.waiting is Waiting.REST_OF_LINE else State.IDLE


def test_refusal_is_the_only_thing_said() -> None:
    """A client the allow-list refused hears why, and the session ends with the caller's reason kept."""
    conn = connection()
    step = conn.start("alice", refusal="not in [server] allow")
    assert step.data == b"ERR forbidden alice is not allowed: not in [server] allow\n"
    assert step.then == Close(end=End.FORBIDDEN, reason=None)
    assert conn.state is State.CLOSED


def test_whoami_is_asked_only_for_whoami() -> None:
    """The session facts are built when a client asks, once per WHOAMI, never otherwise."""
    asked: list[int] = []

    def whoami() -> str:
        asked.append(1)
        return "{}"

    conn = LineConnection(whoami=whoami, idle_timeout=60, request_timeout=10)
    conn.start("alice")
    conn.receive_data(b"PING\nECHO WHOAMI\nHELP\n", 1.0)
    assert asked == []
    conn.receive_data(b"whoami\nWHOAMI\n", 2.0)
    assert len(asked) == 2


def test_step_data_is_the_replies_on_the_wire() -> None:
    """One write carries every reply of a step, each encoded as one line."""
    step = Step(
        replies=(Reply(True, "pong"), Reply(False, "x", "a\nb")), then=Wait(waiting=Waiting.NEXT_REQUEST)
    )
    assert step.data == encode_reply(Reply(True, "pong")) + encode_reply(Reply(False, "x", "a\nb"))
    assert step.data.count(b"\n") == 2
    assert step.then == Wait(waiting=Waiting.NEXT_REQUEST, until=math.inf)


@pytest.mark.parametrize(
    ("before", "misuse"),
    [
        ([], lambda c: c.receive_data(b"PING\n", 0.0)),  # bytes before the greeting
        ([], lambda c: c.timed_out()),
        ([], lambda c: c.receive_data(b"", 0.0)),
        ([b"QUIT\n"], lambda c: c.receive_data(b"PING\n", 0.0)),  # bytes after the end
        ([b"QUIT\n"], lambda c: c.timed_out()),
        ([b"QUIT\n"], lambda c: c.peer_aborted()),
        ([b"QUIT\n"], lambda c: c.start("alice")),
    ],
    ids=[
        "bytes-first",
        "timeout-first",
        "eof-first",
        "bytes-after",
        "timeout-after",
        "abort-after",
        "start-again",
    ],
)
def test_inputs_the_state_has_no_move_for_are_the_callers_bug(
    before: list[bytes], misuse: Callable[[LineConnection], object]
) -> None:
    """Outside the table is a LineStateError naming the input and the state, and the state stays."""
    conn = connection()
    if before:
        conn.start("alice")
        for data in before:
            conn.receive_data(data, 0.0)
    state = conn.state
    with pytest.raises(LineStateError, match=r"cannot happen in state '\w+' \(a bug in the caller\)"):
        misuse(conn)
    assert conn.state is state


def test_transition_table_covers_every_peer_input_while_open() -> None:
    """While a session is open every input the peer can cause has a move; after the end none has."""
    from_peer = set(Input) - {Input.GREET, Input.REFUSE}
    for state in (State.IDLE, State.IN_LINE):
        assert set(TRANSITIONS[state]) == from_peer
    assert set(TRANSITIONS[State.GREETING]) == {Input.GREET, Input.REFUSE}
    assert TRANSITIONS[State.CLOSED] == {}
    ends = {target for row in TRANSITIONS.values() for target in row.values()}
    assert ends == {State.IDLE, State.IN_LINE, State.CLOSED}


def test_repr_says_where_the_session_is() -> None:
    """The repr names the state, the requests answered and the bytes waiting."""
    conn = connection()
    conn.start("alice")
    conn.receive_data(b"PING\nEC", 1.0)
    assert repr(conn) == "<LineConnection in a line requests=1 pending=2>"
