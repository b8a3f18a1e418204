"""What one HTTP/2 peer may make the server do for nothing, counted without I/O.

Theory of operation
-------------------
``h2`` already bounds much of what a hostile peer can send: a header block
decodes to at most the MAX_HEADER_LIST_SIZE we advertise (else GOAWAY
ENHANCE_YOUR_CALM), at most 64 CONTINUATION frames are buffered per block (its
``CONTINUATION_BACKLOG``; else GOAWAY PROTOCOL_ERROR), frames beyond
MAX_FRAME_SIZE and DATA beyond the flow-control window are connection errors,
a stream beyond MAX_CONCURRENT_STREAMS is refused, and it remembers at most
2**16 closed streams. What it cannot know is what a frame cost *us*, so the
three budgets it lacks are here, and a peer over any of them gets GOAWAY
ENHANCE_YOUR_CALM and is dropped:

* **Rapid reset** (CVE-2023-44487): streams opened and reset at once never
  count against MAX_CONCURRENT_STREAMS, yet each is a request we start. A peer
  may reset RESET_ALLOWANCE streams, plus one for every response it let finish:
  a client cancelling a request now and then never comes near it.
* **Frames that do no work** (PING, SETTINGS, PRIORITY, WINDOW_UPDATE, unknown
  frame types, empty DATA): each costs a parse and often a reply. CONTROL_ALLOWANCE
  of them, plus some per request and per KiB we sent (a client downloading a
  large body sends WINDOW_UPDATEs as it reads).
* **Bytes that complete nothing**: a header block that never ends (the
  CONTINUATION flood, CVE-2024-27316) yields no event until its last frame. h2's
  64-frame backlog lets 64 x 16 KiB pile up; we stop at MAX_PENDING_BYTES of
  received data that produced no event and no reply at all, a few times what any
  legitimate header block (at most MAX_HEADER_LIST_SIZE) or DATA frame (at most
  16 KiB) needs. Frames h2 answers without an event (DATA on a stream already
  reset gets RST_STREAM) count as frames that do no work, one per read.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from h2 import events as h2e

__all__ = ["CONTROL_ALLOWANCE", "MAX_PENDING_BYTES", "RESET_ALLOWANCE", "FloodGuard"]

RESET_ALLOWANCE: Final = 200
CONTROL_ALLOWANCE: Final = 1000
CONTROL_PER_REQUEST: Final = 8
CONTROL_PER_KIB_SENT: Final = 1  # httpx acknowledges every 16 KiB DATA frame twice (stream, connection)
MAX_PENDING_BYTES: Final = 64 * 1024
_CONTROL: Final = (
    h2e.PingReceived,
    h2e.RemoteSettingsChanged,
    h2e.PriorityUpdated,
    h2e.WindowUpdated,
    h2e.UnknownFrameReceived,
)


class FloodGuard:
    """Feed it every ``receive_data`` result; it says when a peer is over a budget (and which)."""

    __slots__ = ("answered", "control", "pending", "requests", "resets", "sent")

    def __init__(self) -> None:
        self.resets = 0  # streams the peer reset
        self.answered = 0  # responses we completed
        self.control = 0  # frames that did no work
        self.requests = 0
        self.sent = 0  # bytes of response bodies we sent
        self.pending = 0  # received bytes since the last event

    def __repr__(self) -> str:
        return (
            f"<FloodGuard requests={self.requests} answered={self.answered} resets={self.resets} "
            f"control={self.control} pending={self.pending}>"
        )

    def received(self, size: int, events: Iterable[h2e.Event], *, replied: bool = False) -> str | None:
        """Count ``size`` bytes and the events they produced (``replied``: h2 queued frames in answer);
        a reason when the peer is over budget."""
        any_event = False
        for event in events:
            any_event = True
            if isinstance(event, h2e.RequestReceived):
                self.requests += 1
            elif isinstance(event, h2e.StreamReset) and event.remote_reset:
                self.resets += 1
            elif isinstance(event, _CONTROL) or (
                isinstance(event, h2e.DataReceived) and not event.data and event.stream_ended is None
            ):
                self.control += 1
        if any_event:
            self.pending = 0
        elif replied:
            self.control += 1
        else:
            self.pending += size
        return self.verdict()

    def verdict(self) -> str | None:
        if self.resets > RESET_ALLOWANCE + self.answered:
            return f"rapid reset: {self.resets} streams reset by the client, {self.answered} answered"
        earned = CONTROL_PER_REQUEST * self.requests + CONTROL_PER_KIB_SENT * (self.sent >> 10)
        allowed = CONTROL_ALLOWANCE + earned
        if self.control > allowed:
            return f"frame flood: {self.control} frames that carried no request (allowed {allowed})"
        if self.pending > MAX_PENDING_BYTES:
            return (
                f"{self.pending} bytes received without a complete frame or header block "
                "(a CONTINUATION flood?)"
            )
        return None
