"""Whether the station's records are being written, told as an alarm (issue 11, item 5).

A full disk or an I/O error on the SD card stops the records while therapy goes on: the
station must say so, refuse new sessions until the records work again, and never lose what
was queued without saying how much. The records report their own health; this watch reads it
about once a second (not on the sample path) and keeps one RECORDS alarm up to date.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from console.common.api import Priority
from console.station.alarms import AlarmManager

CHECK_EVERY_S = 1.0
"""How often the records' health is read (station clock)."""


class Health(Protocol):
    """What the watch reads (:class:`console.records.writer.RecordsHealth` has these)."""

    @property
    def queued(self) -> int: ...

    @property
    def commits(self) -> int: ...

    @property
    def failed_writes(self) -> int: ...

    @property
    def last_error(self) -> str: ...

    @property
    def writer_alive(self) -> bool: ...


class HasHealth(Protocol):
    def health(self) -> Health: ...


class RecordsWatch:
    """Raises RECORDS while rows are being lost; clears it once a commit succeeds after the last loss.

    Args:
        alarms: where the RECORDS alarm goes.
        records: the station's records (None: no records kept, nothing to watch).
        refused: how many of the station's own writes the records refused (the audit trail counts them).
    """

    def __init__(self, alarms: AlarmManager, records: HasHealth | None, refused: Callable[[], int]) -> None:
        self.alarms = alarms
        self.records = records
        self._refused = refused
        self._next_at: float | None = None
        self._failed_seen = 0
        self._refused_seen = 0
        self._commits_at_loss = 0
        self.broken = ""
        """Why the records are not working now (a sentence), or "" when they are."""

    def check(self, now: float) -> None:
        if self.records is None or (self._next_at is not None and now < self._next_at):
            return
        self._next_at = now + CHECK_EVERY_S
        try:
            h = self.records.health()
        except Exception as exc:  # the records cannot even say how they are
            self._raise(f"the records cannot be read ({type(exc).__name__}: {exc})", 0, 0)
            return
        refused = self._refused()
        lost_now = h.failed_writes > self._failed_seen or refused > self._refused_seen
        if not h.writer_alive:
            self._raise(
                f"the records writer has stopped ({h.last_error or 'no reason given'}); "
                f"{h.queued} rows waiting will not be written",
                h.failed_writes,
                refused,
            )
        elif lost_now:
            self._commits_at_loss = h.commits
            self._raise(f"the records refused rows ({h.last_error or 'no reason given'})", h.failed_writes, refused)
        elif self.broken and h.commits > self._commits_at_loss:
            self.broken = ""
            self.alarms.clear_condition("RECORDS")
        self._failed_seen = h.failed_writes
        self._refused_seen = refused

    def _raise(self, why: str, failed: int, refused: int) -> None:
        lost = failed + refused
        self.broken = why
        self.alarms.raise_alarm(
            "RECORDS",
            Priority.MEDIUM,
            f"Records are not being written: {why}; {lost} row{'s' if lost != 1 else ''} lost so far. "
            f"Cuffs and alarms work as before, but new sessions are refused until the records work again. "
            f"Check the disk (free space, the SD card), then restart the console if the writer stopped.",
        )
