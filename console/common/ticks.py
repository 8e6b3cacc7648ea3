"""One clock grid for the station's periodic work, so work of related periods shares a wakeup of its loop.

The read tick (drivers/read_pacing.py, 25 ms), the supervisor's check and the therapy driver (50 ms) each
wake on the multiples of their own period on the loop's clock; 50 ms being two read ticks, the three run in
one pass of the loop instead of waking it three times (serve with 16 cuffs in a session: about 6.0 to 4.8 %
of a core). drivers/read_pacing.py computes the same grid itself (the drivers know nothing of the
console); tests/test_tick_grid.py holds the two to the same values.
"""

from __future__ import annotations

import asyncio
import math


def next_tick(now: float, period_s: float) -> float:
    """The first multiple of ``period_s`` after ``now`` (the nudge keeps 0.06 / 0.02 = 2.999... from naming
    the present moment)."""
    return (math.floor(now / period_s + 1e-9) + 1) * period_s


async def sleep_until_tick(period_s: float, wake: asyncio.Future[None] | None = None) -> None:
    """Sleep until the running loop's next multiple of ``period_s``, or until ``wake`` is done sooner.

    ``wake`` belongs to this one sleeper: the tick completes it, and cancelling the sleep cancels it. Scheduled
    at the tick itself, so every sleeper of that tick runs in the same pass of the loop.
    """
    loop = asyncio.get_running_loop()
    done = wake if wake is not None else loop.create_future()
    timer = loop.call_at(next_tick(loop.time(), period_s), _wake, done)
    try:
        await done
    finally:
        timer.cancel()


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
