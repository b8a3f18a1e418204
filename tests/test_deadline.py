"""The connection's one moving deadline: progress moves it, a bound caps it, shorten cuts it."""

from __future__ import annotations

import trio
import trio.testing

from mtls_ref.shared.core.deadline import IdleDeadline


async def test_progress_moves_the_deadline(autojump_clock: trio.testing.MockClock) -> None:
    """Each step of progress gives the connection its full seconds again, from now."""
    deadline = IdleDeadline(5)
    with deadline.scope:
        for _ in range(3):
            await trio.sleep(4)
            deadline.progress()
        await trio.sleep(4.9)
    assert not deadline.expired
    assert trio.current_time() == 16.9


async def test_silence_expires_it(autojump_clock: trio.testing.MockClock) -> None:
    """Without progress the scope is cancelled at ``seconds`` and says so."""
    deadline = IdleDeadline(5)
    with deadline.scope:
        await trio.sleep_forever()
    assert deadline.expired
    assert trio.current_time() == 5


async def test_bound_caps_progress_for_one_step(autojump_clock: trio.testing.MockClock) -> None:
    """A bound is an absolute limit on the step it is given with; progress without one lifts it."""
    deadline = IdleDeadline(5)
    with deadline.scope:
        deadline.progress(bound=2.0)
        assert deadline.scope.deadline == 2.0
        deadline.progress(bound=100.0)  # further than seconds: seconds win
        assert deadline.scope.deadline == 5.0
        deadline.progress()
        assert deadline.scope.deadline == 5.0
        deadline.progress(bound=1.5)
        await trio.sleep_forever()
    assert deadline.expired
    assert trio.current_time() == 1.5


async def test_shorten_is_a_ceiling(autojump_clock: trio.testing.MockClock) -> None:
    """After shorten, progress gives at most the shorter time."""
    deadline = IdleDeadline(5)
    with deadline.scope:
        deadline.shorten(1)
        deadline.progress()
        assert deadline.scope.deadline == 1.0
        await trio.sleep_forever()
    assert deadline.expired
