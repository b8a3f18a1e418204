"""The line protocol's server side as a state machine without I/O: bytes and the time in, steps out.

Theory of operation
-------------------
:class:`LineConnection` is to our line protocol what ``h11.Connection`` is to
HTTP: it reads no socket and knows no event loop. Its caller
(``server/line_loop.py``) reads, writes and keeps the connection's one
deadline; everything the client can observe is decided here:

* the first words: ``OK hello <identity>; commands: ...``, or ``ERR forbidden
  ...`` for a client the allow-list refused, and the end;
* one reply per request line, in order (blank lines are skipped); ``QUIT`` gets
  ``OK bye`` and the end, and what follows it is not read;
* the limits: a line over ``max_line`` bytes (terminator included) or not UTF-8
  gets one ``ERR`` and the end. The lines before it are answered first, so how
  TCP happened to cut the stream never changes the answers;
* the two waits: between requests the client may be silent for
  ``idle_timeout``; once a line has begun, the rest of it must arrive within
  ``request_timeout`` of the bytes that began it (a byte every few seconds does
  not keep a connection forever);
* how each session ended, as data (:class:`End`) and in words for the log.

Every input returns one frozen :class:`Step`: the replies to write (one write:
:attr:`Step.data`), then :class:`Wait` (read more, for at most ``idle_timeout``
from when the caller starts waiting and never past :attr:`Wait.until`) or
:class:`Close` (write the replies, then close). The idle part of a wait moves
with the caller's own reads and writes, which is why it is the caller's
deadline; the absolute part is the protocol's and is computed here from the
``now`` each input brings.

The states are an enum and their transitions a table (:data:`TRANSITIONS`),
as in h11's ``_state.py``. Whatever the peer sends is an input the table
covers; an input the table has no entry for (bytes before the greeting, or
after the end) is the caller's bug and raises :class:`LineStateError`.

The WHOAMI answer holds session facts this module cannot know: the caller
gives a ``whoami`` function, asked only when a client sends WHOAMI (the
verified chain costs more to build than the rest of a request).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from .errors import ProtocolError
from .protocol import (
    DEFAULT_MAX_LINE,
    HELP_TEXT,
    Command,
    LineBuffer,
    LineTooLong,
    Reply,
    Request,
    encode_reply,
    parse_request,
)

__all__ = [
    "TRANSITIONS",
    "Close",
    "End",
    "Input",
    "LineConnection",
    "LineStateError",
    "State",
    "Step",
    "Wait",
    "Waiting",
]


class State(enum.Enum):
    GREETING = "greeting"  # nothing said yet: the first words are a greeting or a refusal
    IDLE = "idle"  # between requests: the client may be silent for idle_timeout
    IN_LINE = "in a line"  # a request line has begun: its rest within request_timeout
    CLOSED = "closed"  # the last words are decided; the caller writes them and closes


class Input(enum.Enum):
    """What can happen to a connection: the columns of :data:`TRANSITIONS`."""

    GREET = "greet"  # the allow-list admitted the client
    REFUSE = "refuse"  # it did not
    LINE = "a complete line"
    PARTIAL = "bytes of an unfinished line"
    QUIT = "QUIT"
    VIOLATION = "a line too long or not UTF-8"
    TIMEOUT = "the wait ran out"
    PEER_CLOSED = "the peer closed or broke the connection"


_OPEN: Final[Mapping[Input, State]] = {
    Input.LINE: State.IDLE,
    Input.PARTIAL: State.IN_LINE,
    Input.QUIT: State.CLOSED,
    Input.VIOLATION: State.CLOSED,
    Input.TIMEOUT: State.CLOSED,
    Input.PEER_CLOSED: State.CLOSED,
}
TRANSITIONS: Final[Mapping[State, Mapping[Input, State]]] = {
    State.GREETING: {Input.GREET: State.IDLE, Input.REFUSE: State.CLOSED},
    State.IDLE: _OPEN,
    State.IN_LINE: _OPEN,  # the same moves; entering IN_LINE from elsewhere starts the line's clock
    State.CLOSED: {},
}


class End(enum.Enum):
    """How a session ended; :attr:`Close.reason` says it in words."""

    FORBIDDEN = "forbidden"
    QUIT = "quit"
    LINE_TOO_LONG = "line-too-long"
    BAD_ENCODING = "bad-encoding"
    IDLE_TIMEOUT = "idle-timeout"
    REQUEST_TIMEOUT = "request-timeout"
    PEER_CLOSED = "peer-closed"
    PEER_ABORTED = "peer-aborted"


class Waiting(enum.Enum):
    """What a wait is for; its running out is an ``idle-timeout`` or a ``request-timeout``."""

    NEXT_REQUEST = "the next request"
    REST_OF_LINE = "the rest of a request line"


class LineStateError(RuntimeError):
    """The caller gave an input the current state has no move for: a bug in the caller, not the peer."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Wait:
    """Read more: for at most ``idle_timeout`` from when the caller starts, and not past ``until``."""

    waiting: Waiting
    until: float = math.inf  # absolute, on the clock of the ``now`` given: a started line's end


@dataclass(frozen=True, slots=True, kw_only=True)
class Close:
    """Write the step's replies, then close (close_notify)."""

    end: End
    # For the connection's log line; None: the caller's own decision stands (the allow-list's reason).
    reason: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """What one input leads to: replies to write, in order, then a wait or the end."""

    replies: tuple[Reply, ...] = ()
    then: Wait | Close

    @property
    def data(self) -> bytes:
        """The replies as they go on the wire, for one write."""
        return b"".join(map(encode_reply, self.replies))


_WAIT_FOR_REQUEST: Final = Wait(waiting=Waiting.NEXT_REQUEST)
_PONG: Final = Reply(True, "pong")
_HELP: Final = Reply(True, "help", HELP_TEXT)
_BYE: Final = Reply(True, "bye")


class LineConnection:
    """The server's side of one line-protocol session; see the module's theory of operation."""

    __slots__ = (
        "_bound",
        "_ended",
        "_lines",
        "_request_timeout",
        "_state",
        "_whoami",
        "idle_timeout",
        "requests",
    )

    def __init__(
        self,
        *,
        whoami: Callable[[], str],
        idle_timeout: float,
        request_timeout: float,
        max_line: int = DEFAULT_MAX_LINE,
    ) -> None:
        self._whoami = whoami
        self.idle_timeout = idle_timeout
        self._request_timeout = request_timeout
        self._lines = LineBuffer(max_line)
        self._state = State.GREETING
        self._bound = math.inf  # when the line begun (state IN_LINE) must be complete
        self.requests = 0  # request lines answered (blank lines are not requests)
        self._ended: Close | None = None

    def __repr__(self) -> str:
        return f"<LineConnection {self._state.value} requests={self.requests} pending={self._lines.pending}>"

    @property
    def state(self) -> State:
        return self._state

    @property
    def ended(self) -> Close | None:
        """How the session ended (the last step's :class:`Close`); None while it is open."""
        return self._ended

    def start(self, identity: str, *, refusal: str | None = None) -> Step:
        """The first words: a greeting naming ``identity``, or ``refusal`` (what it is told) and the end."""
        if refusal is None:
            self._move(Input.GREET)
            hello = Reply(True, "hello", f"{identity}; commands: {HELP_TEXT}")
            return Step(replies=(hello,), then=_WAIT_FOR_REQUEST)
        forbidden = Reply(False, "forbidden", f"{identity} is not allowed: {refusal}")
        return self._end(Input.REFUSE, End.FORBIDDEN, None, (), forbidden)

    def receive_data(self, data: bytes, now: float) -> Step:
        """Bytes from the client (``b""``: it closed its side), arrived at ``now``."""
        if not data:
            return self._end(Input.PEER_CLOSED, End.PEER_CLOSED, "peer closed the connection")
        self._expect(Input.LINE)
        lines = self._lines
        lines.add(data)
        replies: list[Reply] = []
        while True:
            try:
                line = lines.next_line()
            except LineTooLong as exc:
                last = Reply(False, "line-too-long", f"{exc}; closing")
                return self._end(Input.VIOLATION, End.LINE_TOO_LONG, str(exc), replies, last)
            except ProtocolError as exc:
                last = Reply(False, "bad-encoding", f"{exc}; closing")
                return self._end(Input.VIOLATION, End.BAD_ENCODING, str(exc), replies, last)
            if line is None:
                break
            self._move(Input.LINE)
            if not line.strip():
                continue
            self.requests += 1
            try:
                request = parse_request(line)
            except ProtocolError as exc:
                replies.append(Reply(False, "unknown-command", str(exc)))
                continue
            if request.command is Command.QUIT:
                return self._end(Input.QUIT, End.QUIT, "client said QUIT", replies, _BYE)
            replies.append(self._answer(request))
        if not lines.pending:
            return Step(replies=tuple(replies), then=_WAIT_FOR_REQUEST)
        if self._state is not State.IN_LINE:
            self._bound = now + self._request_timeout
        self._move(Input.PARTIAL)
        return Step(replies=tuple(replies), then=Wait(waiting=Waiting.REST_OF_LINE, until=self._bound))

    def peer_aborted(self) -> Step:
        """The stream broke (a reset, a TLS error) instead of closing."""
        return self._end(Input.PEER_CLOSED, End.PEER_ABORTED, "peer closed the connection abruptly")

    def timed_out(self) -> Step:
        """The wait this connection asked for ran out: tell the client which one, and end."""
        if self._state is State.IN_LINE:
            # Also when the idle part ran out first within a line: the line is what was late.
            seconds = self._request_timeout
            late = Reply(False, "request-timeout", f"a request line takes at most {seconds:g}s")
            reason = f"request line not finished within {seconds:g}s"
            return self._end(Input.TIMEOUT, End.REQUEST_TIMEOUT, reason, (), late)
        seconds = self.idle_timeout
        late = Reply(False, "idle-timeout", f"no request for {seconds:g}s; bye")
        return self._end(Input.TIMEOUT, End.IDLE_TIMEOUT, f"idle for {seconds:g}s", (), late)

    def _answer(self, request: Request) -> Reply:
        match request.command:
            case Command.WHOAMI:
                return Reply(True, "whoami", self._whoami())
            case Command.ECHO:
                return Reply(True, "echo", request.argument)
            case Command.PING:
                return _PONG
            case Command.HELP:
                return _HELP
            case Command.QUIT:  # answered by receive_data, which ends the session
                return _BYE

    def _end(
        self,
        happened: Input,
        end: End,
        reason: str | None,
        replies: Sequence[Reply] = (),
        last: Reply | None = None,
    ) -> Step:
        self._move(happened)
        said = (*replies, last) if last is not None else tuple(replies)
        self._ended = Close(end=end, reason=reason)
        return Step(replies=said, then=self._ended)

    def _move(self, happened: Input) -> None:
        try:
            self._state = TRANSITIONS[self._state][happened]
        except KeyError:
            raise LineStateError(self._refusal(happened)) from None

    def _expect(self, happened: Input) -> None:
        if happened not in TRANSITIONS[self._state]:
            raise LineStateError(self._refusal(happened))

    def _refusal(self, happened: Input) -> str:
        return f"{happened.value!r} cannot happen in state {self._state.value!r} (a bug in the caller)"
