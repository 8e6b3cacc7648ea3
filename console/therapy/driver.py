"""The task that steps the therapy jobs on the station's clock while any of them runs.

About 20 times a second (the LOP staircase needs 10 Hz), sooner when kicked (an
alarm, a refusal). The steps fall on the loop's grid of multiples of the interval
(console.common.ticks), where the station's read tick and supervisor
check also wake it: one wakeup for all three, not one each. Tests on a :class:`~console.common.clock.ManualClock` pass
``interval_s=None``: no task, they step the jobs themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from console.common.ticks import sleep_until_tick

log = logging.getLogger(__name__)

DRIVE_INTERVAL_S = 0.05
"""The driver's step (real seconds): 20 Hz, above the 10 Hz the LOP staircase needs; a multiple of the read tick."""


class Driver:
    """Runs ``step()`` every ``interval_s`` while ``busy()``; started again by :meth:`ensure_running`.

    Args:
        step: one step of every job at the clock's present time.
        busy: whether anything still runs (the task ends when not).
        interval_s: real seconds between steps; None for no task at all.
    """

    def __init__(self, step: Callable[[], None], busy: Callable[[], bool], interval_s: float | None) -> None:
        self._step = step
        self._busy = busy
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Future[None] | None = None
        """What the sleeping step waits for: the next tick, or a kick."""
        self.closed = False

    def ensure_running(self) -> None:
        """A job started or moved on: make sure the task runs (unless there is none, or closed)."""
        if self.interval_s is None or self.closed:
            return
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drive(), name="therapy:driver")

    def kick(self) -> None:
        """Step again now rather than at the next tick (an alarm, a refusal)."""
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    def halt(self) -> None:
        """Stop for good without waiting (the station stopped)."""
        self.closed = True
        if self._task is not None:
            self._task.cancel()

    async def close(self) -> None:
        """Stop for good and wait for the task to end."""
        self.closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _drive(self) -> None:
        assert self.interval_s is not None
        loop = asyncio.get_running_loop()
        while self._busy() and not self.closed:
            try:
                self._step()
            except Exception:
                log.exception("therapy: driver step failed")
            # A kick during the step is not kept (a step that kicks must not step again at once, forever).
            self._wake = loop.create_future()
            try:
                await sleep_until_tick(self.interval_s, self._wake)
            finally:
                self._wake = None
