"""Snapshots handed to the screen by the station's own thread, one per tick, instead of pulled by a timer.

Why: a pull is a call into the station's loop from the screen's thread: 20 times a
second it woke that loop on its own (between its read ticks) and blocked the
screen until the answer. A station on a thread of its own
(:class:`~console.station.threaded_handle.ThreadedStation`) builds the snapshot
instead on its clock grid (console/common/ticks.py), in the pass of the loop that
has just read the ports: the freshest readings, no extra wakeup, no wait. The screen's
loop is woken once per new snapshot; one that arrives while an older one still
waits replaces it.

What it assumes of the other side: ``push_snapshots`` calls ``deliver`` on the
station's thread, quickly, once per tick. A station that stops handing them over
(its loop stuck) is caught by the app's slow check, which pulls, and shows the
"station not answering" notice the pull gives.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from console.common.api import StationSnapshot

LATE_CHECK_S = 0.05
"""How often the app looks whether snapshots still come (and takes one left waiting); it asks nothing of the
station unless they have stopped."""
LATE_S = 0.15
"""No snapshot handed over for this long (or three periods, at a low fps): the app pulls one itself, which
gives the station's answer or, READ_WAIT_S later, the "not answering" notice."""


@runtime_checkable
class SnapshotPusher(Protocol):
    def push_snapshots(self, period_s: float, deliver: Callable[[StationSnapshot], None]) -> Callable[[], None]:
        """From now on ``deliver(snapshot)`` every ``period_s`` on the station's thread; returns ``stop``."""
        ...


class PushedSnapshots:
    """The newest snapshot handed over and not yet shown; ``on_new`` runs on the app's loop when one arrives."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_new: Callable[[], None], period_s: float = 0.05) -> None:
        """``on_new`` runs in the context of the caller (Textual's active app and its timers work there)."""
        self._loop = loop
        self._on_new = on_new
        self._context = contextvars.copy_context()
        self._lock = threading.Lock()
        self._waiting: StationSnapshot | None = None
        self._wake_pending = False
        self.late_s = max(LATE_S, 3 * period_s)
        self.last_at = time.monotonic()
        """When a snapshot last arrived (monotonic), on the app's loop."""

    def deliver(self, snap: StationSnapshot) -> None:
        """On the station's thread: keep ``snap`` (replacing one still waiting) and wake the app's loop unless
        a wake is already on its way."""
        with self._lock:
            self._waiting = snap
            wake = not self._wake_pending
            self._wake_pending = True
        if wake:
            try:
                self._loop.call_soon_threadsafe(self._woken, context=self._context)
            except RuntimeError:  # the app's loop has closed: nobody to show it to
                pass

    def _woken(self) -> None:
        with self._lock:
            self._wake_pending = False  # from here a new snapshot wakes again, even if this one is not taken
        self._on_new()

    def take(self) -> StationSnapshot | None:
        """On the app's loop: the snapshot waiting, if any (then none waits)."""
        with self._lock:
            snap, self._waiting = self._waiting, None
        if snap is not None:
            self.last_at = time.monotonic()
        return snap

    def waiting(self) -> bool:
        with self._lock:
            return self._waiting is not None

    def late(self, now: float) -> bool:
        """No snapshot arrived for ``late_s``."""
        return now - self.last_at > self.late_s
