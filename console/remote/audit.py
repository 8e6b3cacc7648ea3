"""The server's part of the station's audit trail: who attached, who left, who was refused, and as what.

Every row names who (``user@uidN``) and the role they had (``operator``, ``observer``, or ``none``
for a peer that was refused), through the station's ``acting_as(who, role)``. Refusals are the
one thing a console can make as many of as it likes, so they go through a :class:`RowThrottle`:
a burst is recorded row by row, the rest counted and told in the next row (or at detach).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from console.remote.clients import Console
from console.remote.limits import RowThrottle

log = logging.getLogger(__name__)


class ServerAudit:
    """Rows and attributed station calls for the server.

    Args:
        station: a StationHandle; with ``record_command(who, what)`` rows are written, with
            ``acting_as(who, role)`` they (and the calls) carry the role.
        clock: monotonic seconds, for the throttle.
    """

    def __init__(self, station: Any, clock: Callable[[], float]) -> None:
        self.station = station
        self._clock = clock
        self.rows = RowThrottle()
        self._pending: set[asyncio.Future[Any]] = set()

    @property
    def station_records(self) -> bool:
        """The station records the commands it runs under ``acting_as``; the server records the rest."""
        return callable(getattr(self.station, "acting_as", None))

    def launch(self, who: str, role: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Future[Any]:
        """Run a station call as its own task, attributed to ``who`` in ``role`` (the task copies the context)."""
        acting_as = getattr(self.station, "acting_as", None)
        with acting_as(who, role) if callable(acting_as) else contextlib.nullcontext():
            return asyncio.ensure_future(coro)

    def note(self, who: str, role: str, what: str) -> None:
        """A row of the station's audit trail; never blocks, never raises."""
        record = getattr(self.station, "record_command", None)
        if not callable(record):
            return
        acting_as = getattr(self.station, "acting_as", None)
        try:
            with acting_as(who, role) if callable(acting_as) else contextlib.nullcontext():
                result = record(who=who, what=what)
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)
        except Exception:  # noqa: BLE001 - a failed record never blocks a command
            log.exception("could not record %r from %s", what, who)

    def refused_command(self, key: str, who: str, role: str, what: Callable[[], str], why: str) -> None:
        """``what() (refused: why)``, within the console's budget of refusal rows (``what`` is only called then)."""
        before = self.rows.admit(key, self._clock())
        if before is not None:
            more = f"; {before} more refused before this one, not recorded one by one" if before else ""
            self.note(who, role, f"{what()} (refused: {why}{more})")

    def refused_peer(self, uid: int, who: str, pid: int, reason: str) -> bool:
        """A connection turned away (no role, or over a cap), within the uid's budget of rows; True if written."""
        before = self.rows.admit(f"uid{uid}", self._clock())
        if before is None:
            return False
        more = f" ({before} more refused before this one)" if before else ""
        self.note(who, "none", f"refused to attach (pid {pid}): {reason}{more}")
        return True

    def detached(self, client: Console, seconds: float) -> None:
        """The detach row: how long, how many commands, refusals left untold, and why the station closed it."""
        untold = self.rows.leftover(client.key)
        more = f"; {untold} more refused commands not recorded one by one" if untold else ""
        why = f"; closed by the station: {client.closed_because}" if client.closed_because else ""
        self.note(
            client.info.who,
            client.role,
            f"detach (pid {client.info.pid}; {seconds / 60:.1f} min, {client.info.commands} commands{more}{why})",
        )
