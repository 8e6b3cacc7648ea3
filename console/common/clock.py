"""Injected time: the station never reads the system clock directly.

Tests hand the station a :class:`ManualClock` and step it, so a 10-minute
session or a 20-minute occlusion limit runs in milliseconds.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never jumps; for every duration and timeout."""
        ...

    def wall(self) -> float:
        """Epoch seconds; only for records and what the screen shows as a time of day."""
        ...


class SystemClock:
    """The real clocks."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()


class ManualClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float = 1000.0, wall_start: float = 1_800_000_000.0) -> None:
        self._now = start
        self._wall_offset = wall_start - start

    def monotonic(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now + self._wall_offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time does not run backwards")
        self._now += seconds

    def jump_wall(self, seconds: float) -> None:
        """Move only the wall clock (days between a patient's sessions, or NTP stepping it): the
        monotonic time every timer runs on does not move, so nothing in the station fires."""
        self._wall_offset += seconds
