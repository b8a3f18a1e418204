"""Budgets that keep unauthenticated peers from using up the server.

Theory of operation
-------------------
A connection that has not finished its handshake is nobody yet: it costs a file
descriptor and a slot, and an attacker can open as many as it likes and send
nothing. So such connections get a budget of their own, apart from
``max_connections`` (which counts authenticated ones only):

* at most ``max_handshakes_per_source`` at once from one source address; more
  from that address are closed on arrival;
* at most ``max_handshakes`` at once in all; when a new connection finds the
  budget full, the one that has waited longest is dropped to make room (an
  honest client finishes its handshake in milliseconds; a connection that has
  sat there longest is the least likely to be one);
* every handshake has its deadline (``handshake_timeout``) from the moment of
  accept, in the slot's cancel scope.

An authenticated client is therefore refused only while ``max_connections``
authenticated clients are connected: idle or dribbling sockets can delay it by
one eviction, never lock it out.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import trio

__all__ = ["HandshakeBudget", "HandshakeSlot"]


@dataclass(eq=False, slots=True)
class HandshakeSlot:
    """One accepted connection's place in the budget, until its handshake ends."""

    source: str
    scope: trio.CancelScope
    budget: HandshakeBudget = field(repr=False)
    evicted: bool = False
    released: bool = False

    def release(self) -> None:
        """The handshake is over (done, failed or abandoned): give the place back."""
        self.budget.release(self)

    def established(self) -> bool:
        """Leave the handshake budget for the authenticated count; False when that count is full."""
        self.release()
        return self.budget.admit_established()

    def close_established(self) -> None:
        self.budget.established -= 1


class HandshakeBudget:
    """Counts connections in their handshake (per source and in all) and authenticated ones."""

    def __init__(
        self, *, total: int, per_source: int, max_established: int, handshake_timeout: float
    ) -> None:
        self.total = total
        self.per_source = per_source
        self.max_established = max_established
        self.handshake_timeout = handshake_timeout
        self.established = 0
        self._waiting: dict[HandshakeSlot, None] = {}  # insertion order: oldest first
        self._by_source: Counter[str] = Counter()

    def __repr__(self) -> str:
        return (
            f"<HandshakeBudget handshaking={len(self._waiting)}/{self.total} established={self.established}>"
        )

    @property
    def handshaking(self) -> int:
        return len(self._waiting)

    def admit(self, source: str) -> HandshakeSlot | None:
        """A slot for a new connection from ``source``, or None when that source has its share."""
        if self._by_source[source] >= self.per_source:
            return None
        if len(self._waiting) >= self.total:
            oldest = next(iter(self._waiting))
            oldest.evicted = True
            oldest.scope.cancel()
            self.release(oldest)
        slot = HandshakeSlot(
            source=source,
            scope=trio.CancelScope(deadline=trio.current_time() + self.handshake_timeout),
            budget=self,
        )
        self._waiting[slot] = None
        self._by_source[source] += 1
        return slot

    def release(self, slot: HandshakeSlot) -> None:
        if slot.released:
            return
        slot.released = True
        del self._waiting[slot]
        self._by_source[slot.source] -= 1
        if not self._by_source[slot.source]:
            del self._by_source[slot.source]

    def admit_established(self) -> bool:
        if self.established >= self.max_established:
            return False
        self.established += 1
        return True
