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
import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from console.common.api import StationSnapshot

LATE_CHECK_S = 0.25
"""How often the app looks whether snapshots still come (and takes one left waiting)."""
LATE_S = 0.25
"""No snapshot handed over for this long: the app pulls one itself (the station's answer or its notice)."""


@runtime_checkable
class SnapshotPusher(Protocol):
    def push_snapshots(self, period_s: float, deliver: Callable[[StationSnapshot], None]) -> Callable[[], None]:
        """From now on ``deliver(snapshot)`` every ``period_s`` on the station's thread; returns ``stop``."""
        ...


class PushedSnapshots:
    """The newest snapshot handed over and not yet shown; ``on_new`` runs on the app's loop when one arrives."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_new: Callable[[], None]) -> None:
        self._loop = loop
        self._on_new = on_new
        self._lock = threading.Lock()
        self._waiting: StationSnapshot | None = None
        self.last_at = time.monotonic()
        """When a snapshot last arrived (monotonic), on the app's loop."""

    def deliver(self, snap: StationSnapshot) -> None:
        """On the station's thread: keep ``snap`` and wake the app's loop unless one already waits for it."""
        with self._lock:
            wake = self._waiting is None
            self._waiting = snap
        if wake:
            try:
                self._loop.call_soon_threadsafe(self._on_new)
            except RuntimeError:  # the app's loop has closed: nobody to show it to
                pass

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
        """No snapshot arrived for LATE_S."""
        return now - self.last_at > LATE_S
