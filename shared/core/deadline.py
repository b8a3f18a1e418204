"""One moving deadline for a whole connection: progress pushes it on, silence ends it.

Every byte a proxy moves needs a deadline, and the cheap way to give it one is
not a cancel scope per call but one scope per connection whose deadline each
step of progress moves forward (trio re-sorts a deadline only when it changes).
The caller keeps track of what it is waiting for, so that when the deadline
passes its record says what was late (a silent client, a backend that sends no
response, a peer that does not read), not just "timeout".

Some waits have an absolute limit besides the moving one: once a request has
started, the whole of it must arrive by a fixed time, however steadily its
bytes trickle in. :meth:`IdleDeadline.progress` takes that limit as ``bound``.
"""

from __future__ import annotations

import math

import trio

__all__ = ["IdleDeadline"]


class IdleDeadline:
    """``seconds`` without progress cancels everything inside :attr:`scope`.

    Use as ``with deadline.scope: ...`` (a cancel scope is entered once) and call
    :meth:`progress` after each step.
    """

    __slots__ = ("scope", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.scope = trio.CancelScope(deadline=trio.current_time() + seconds)

    def __repr__(self) -> str:
        return f"IdleDeadline({self.seconds:g}s, at {self.scope.deadline:.3f})"

    def progress(self, *, bound: float = math.inf) -> None:
        """Something moved: the connection has ``seconds`` again, but not past ``bound``.

        ``bound`` is an absolute time on trio's clock (the end of a request that has
        started); it holds for this step only: the next call without it lifts it.
        """
        self.scope.deadline = min(trio.current_time() + self.seconds, bound)

    def shorten(self, seconds: float) -> None:
        """At most ``seconds`` more, whatever progress says (a grace period before giving up)."""
        self.seconds = min(self.seconds, seconds)
        self.scope.deadline = min(self.scope.deadline, trio.current_time() + seconds)

    @property
    def expired(self) -> bool:
        """Whether the deadline passed and cancelled the work inside the scope."""
        return self.scope.cancelled_caught
