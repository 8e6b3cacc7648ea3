"""The station, as the console on another thread sees it: a StationHandle and PatientBook whose every
call runs on the station's own loop (:class:`~console.station.station_thread.StationThread`).

Reads (``snapshot``, ``alarm_log``) wait for the station's loop, a fraction of a millisecond
when it is free; commands are awaited on the caller's loop while they run on the station's.
:meth:`fire_emergency` may be called from any thread at all: the console's terminal reader
(on this station's loop, or Textual's input thread) calls it the moment it reads F12, so the DEFLATE ALL is written without waiting for the
screen's loop, which may be drawing a frame.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any, TypeVar

from console.common.api import (
    OVERTAKEN_BY_EMERGENCY,
    AlarmSnapshot,
    CommandRefused,
    EmergencySnapshot,
    StationSnapshot,
)
from console.common.patients import PatientHistory, PatientSummary
from console.common.ticks import sleep_until_tick
from console.station.station import Station
from console.station.station_thread import StationThread

log = logging.getLogger(__name__)

T = TypeVar("T")

READ_WAIT_S = 0.25
"""How long a frame waits for the station's loop to hand over a snapshot before it shows the last one
(a station busy that long is late for its own safety checks too; the frame must not freeze with it)."""
LOG_WAIT_S = 2.0
"""How long the alarm list waits for the station's log."""
STATION_LATE = "STATION NOT ANSWERING: what is shown is not live. F12 still deflates every cuff."
"""Shown instead of a silent, stale screen when the station's loop is late with a snapshot."""
KEY_CATCH_UP_S = 2.0
"""How long after an emergency key the station waits, at most, for the console to say it has heard of it; a
console that never says so (its loop stuck, the key lost on the way) holds commands no longer than this."""


class ThreadedStation:
    """A :class:`~console.common.api.StationHandle` over a station running on a :class:`StationThread`."""

    def __init__(self, station: Station, host: StationThread) -> None:
        self.station = station
        self.host = host
        self._last: StationSnapshot | None = None
        self.late_reads = 0
        """Snapshots the station's loop did not hand over within READ_WAIT_S (the last one was shown)."""
        self._emergencies = itertools.count(1)
        self.emergencies = 0
        """Emergencies handed over, counted in the thread that asked (the input thread for F12)."""
        self._keys_unseen = 0
        self._key_fired_at = 0.0
        self._keys_lock = threading.Lock()
        self._in_flight = 0
        """Emergencies handed over whose confirmations are not all in yet (see :meth:`emergency_in_flight`)."""

    # -- reads -------------------------------------------------------------------------
    def snapshot(self) -> StationSnapshot:
        try:
            snap = self.host.call(self.station.snapshot, timeout=READ_WAIT_S)
        except TimeoutError:
            if self._last is None:
                raise
            self.late_reads += 1
            log.warning("the station's loop did not hand over a snapshot within %.2f s", READ_WAIT_S)
            # A seq no live snapshot has (they count up from 0): the screen redraws, with the notice first.
            return replace(self._last, notices=(STATION_LATE, *self._last.notices), seq=-1 - self._last.seq)
        self._last = snap
        return snap

    def push_snapshots(self, period_s: float, deliver: Callable[[StationSnapshot], None]) -> Callable[[], None]:
        """Build a snapshot on the station's loop at every multiple of ``period_s`` (console/common/ticks.py:
        the pass that has just read the ports) and hand it to ``deliver``, on the station's thread (it must be
        quick and thread-safe: console/ui/snapshot_feed.py). Returns ``stop``."""

        async def pushing() -> None:
            failing = 0
            while True:
                await sleep_until_tick(period_s)
                try:
                    snap = self.station.snapshot()
                    self._last = snap
                    deliver(snap)
                except Exception:  # the screen pulls when they stop coming; the station carries on
                    failing += 1
                    if failing == 1:  # once per run of failures, not 20 tracebacks a second
                        log.exception("station: a snapshot for the screen failed")
                    continue
                if failing:
                    log.warning("station: snapshots for the screen again, after %d failed", failing)
                    failing = 0

        running = self.host.submit(pushing())

        def stop() -> None:
            running.cancel()

        return stop

    def alarm_log(self, limit: int = 200) -> list[AlarmSnapshot]:
        return self.host.call(lambda: self.station.alarm_log(limit), timeout=LOG_WAIT_S)

    # -- the emergency -------------------------------------------------------------------
    def fire_emergency(self) -> concurrent.futures.Future[EmergencySnapshot]:
        """DEFLATE ALL, handed to the station's loop now, from any thread (written in this call on the station's
        own thread: the terminal is read there, :mod:`console.ui.key_reader`); the future gives the confirmations.

        Raises :class:`~console.station.station_thread.StationThreadStopped` when the station's loop has ended.
        """
        result: concurrent.futures.Future[EmergencySnapshot] = concurrent.futures.Future()
        self.emergencies = next(self._emergencies)  # before the hand-over: a command run after it sees this
        with self._keys_lock:
            self._in_flight += 1
        result.add_done_callback(self._landed)

        def fire() -> None:
            try:
                confirming = asyncio.ensure_future(self.station.emergency_deflate())
            except BaseException as exc:
                result.set_exception(exc)
                return
            confirming.add_done_callback(lambda done: _copy_outcome(done, result))

        if self.host.in_station_thread:
            fire()
            return result
        try:
            self.host.call_soon(fire)
        except BaseException as exc:  # the loop has ended: nothing is on its way (the caller hears why)
            result.set_exception(exc)
            raise
        return result

    def fire_emergency_from_key(self) -> concurrent.futures.Future[EmergencySnapshot]:
        """:meth:`fire_emergency` for the emergency key, read on the station's loop or in the input thread.

        A command the console asked for before it hears of the key (its loop takes the key after any frame
        it is drawing) would otherwise pass the console's own check and land after the DEFLATE ALL. Until
        the console says it has heard of it (:meth:`emergency_key_seen`), commands that raise a pressure
        are refused.
        """
        with self._keys_lock:
            self._keys_unseen += 1
            self._key_fired_at = time.monotonic()
        return self.fire_emergency()

    def key_loop(self) -> asyncio.AbstractEventLoop | None:
        """The station's loop, to read the terminal on (F12 then needs no hand-over); None once it has ended."""
        return self.host.loop if self.host.running else None

    def _landed(self, _: concurrent.futures.Future[EmergencySnapshot]) -> None:
        with self._keys_lock:
            self._in_flight -= 1

    def emergency_in_flight(self) -> bool:
        """A DEFLATE ALL was handed over and its confirmations (or their time-out) are not all in yet."""
        return self._in_flight > 0

    def emergency_key_seen(self) -> None:
        with self._keys_lock:
            self._keys_unseen = max(0, self._keys_unseen - 1)

    def waiting_for_console(self) -> bool:
        """Whether the console has not yet heard of an emergency key (see KEY_CATCH_UP_S)."""
        with self._keys_lock:
            return self._keys_unseen > 0 and time.monotonic() - self._key_fired_at < KEY_CATCH_UP_S

    def emergency_deflate(self) -> Coroutine[Any, Any, EmergencySnapshot]:
        """On the console's loop: the emergency handed over in this call; awaiting it gives the confirmations."""
        started = self.fire_emergency()

        async def confirmed() -> EmergencySnapshot:
            return await asyncio.wrap_future(started)

        return confirmed()

    # -- commands ------------------------------------------------------------------------
    async def _on_station(self, command: Callable[[], Coroutine[Any, Any, T]], *, raises: bool = False) -> T:
        """Start ``command()`` on the station's loop (so it is called there, not here) and await it here.

        ``raises``: the command can put pressure in a cuff. It is refused, not sent, when an emergency was
        handed over between the ask and its turn on the station's loop, or while the console has not yet
        caught up with an emergency key: F12 acts from the terminal's reader, ahead of the console's loop, so a command asked for just
        before it could otherwise reach the controller just after its DEFLATE ALL.
        """
        asked_at = self.emergencies

        async def run() -> T:
            if raises and (self.emergencies != asked_at or self.waiting_for_console()):
                raise CommandRefused(OVERTAKEN_BY_EMERGENCY)
            return await command()

        return await self.host.run(run())

    async def inflate(self, cuff_id: str, *, mmhg: float | None = None, pct_lop: float | None = None) -> None:
        await self._on_station(lambda: self.station.inflate(cuff_id, mmhg=mmhg, pct_lop=pct_lop), raises=True)

    async def nudge_target(self, cuff_id: str, delta_mmhg: float) -> None:
        await self._on_station(lambda: self.station.nudge_target(cuff_id, delta_mmhg), raises=True)

    async def deflate(self, cuff_id: str) -> None:
        await self._on_station(lambda: self.station.deflate(cuff_id))

    async def acknowledge(self, alarm_id: int | None = None) -> None:
        await self._on_station(lambda: self.station.acknowledge(alarm_id))

    async def silence(self, seconds: float = 120.0) -> None:
        await self._on_station(lambda: self.station.silence(seconds))

    async def set_lop(
        self, cuff_id: str, lop: float, *, position: str, cuff_width_cm: float | None, source: str = "doppler"
    ) -> None:
        await self._on_station(
            lambda: self.station.set_lop(cuff_id, lop, position=position, cuff_width_cm=cuff_width_cm, source=source)
        )

    async def measure_lop(self, cuff_id: str, *, position: str = "seated") -> None:
        await self._on_station(lambda: self.station.measure_lop(cuff_id, position=position), raises=True)

    async def set_patient(self, cuff_id: str, patient_id: str) -> None:
        await self._on_station(lambda: self.station.set_patient(cuff_id, patient_id))

    async def start_session(self, cuff_ids: list[str], plan_id: str, patient_id: str) -> None:
        await self._on_station(lambda: self.station.start_session(list(cuff_ids), plan_id, patient_id), raises=True)

    async def session_command(self, cuff_id: str, command: str) -> None:
        await self._on_station(lambda: self.station.session_command(cuff_id, command), raises=command != "stop")

    # -- the PatientBook port ------------------------------------------------------------
    async def find_patients(self, text: str, limit: int = 50) -> list[PatientSummary]:
        return await self._on_station(lambda: self.station.find_patients(text, limit))

    async def patient_history(self, patient_id: str) -> PatientHistory:
        return await self._on_station(lambda: self.station.patient_history(patient_id))

    async def session_plot(self, session_id: int) -> Any:
        return await self._on_station(lambda: self.station.session_plot(session_id))

    async def use_recorded_lop(self, cuff_id: str, lop_id: int) -> None:
        await self._on_station(lambda: self.station.use_recorded_lop(cuff_id, lop_id))


def _copy_outcome(done: asyncio.Future[T], into: concurrent.futures.Future[T]) -> None:
    if into.done():
        return
    if done.cancelled():
        into.cancel()
    elif (exc := done.exception()) is not None:
        into.set_exception(exc)
    else:
        into.set_result(done.result())
