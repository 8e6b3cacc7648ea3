"""Therapy on real cuffs: automatic LOP measurement and set/rep sessions, with records.

:class:`TherapyManager` plugs into the station (:meth:`Station.attach_sessions`)
and drives two pure engines on live cuffs: :class:`~console.therapy.lop.LopMeasurement`
(the LOP staircase) and :class:`~console.therapy.session.SessionRunner` (a plan's
set/rep/rest timer). It feeds them every sample of their cuffs, steps them about
20 times a second on the station's clock, and carries out what they ask through
the station (:mod:`~console.therapy.station_port`), so the supervisor's limits
still hold; deflates go through ``Station.deflate`` (resent when a lost link
returns).

Every ending of a measurement deflates the cuff: done, failed, cancelled,
timeout, link lost, alarm, a deflate by hand, emergency (the station's
DEFLATE ALL). High alarms on a session's cuffs pause it and vent them (the
runner's rule); an emergency ends every session (recorded ``emergency``).

Tests on a :class:`~console.common.clock.ManualClock` pass ``interval_s=None``
(no driver task) and call :meth:`TherapyManager.step_now` after stepping the clock.

The manager owns the parts and routes the station's inputs to them: the LOP
jobs (:mod:`~console.therapy.lop_job`), the session jobs
(:mod:`~console.therapy.session_job`), the board of which cuff has which job
(:mod:`~console.therapy.jobs`) and the driver task (:mod:`~console.therapy.driver`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from console.common.api import AlarmSnapshot, LopProgress, Priority, SessionSnapshot
from console.therapy.cuff_ops import deflate
from console.therapy.driver import DRIVE_INTERVAL_S, Driver
from console.therapy.jobs import Job, JobBoard, LopJob, SessionJob
from console.therapy.lop_job import LOP_TIMEOUT_S, LopJobs
from console.therapy.record_keeping import SafeRecords
from console.therapy.session import TERMINAL
from console.therapy.session_job import SessionJobs
from console.therapy.station_port import StationEventView, TherapyStation

log = logging.getLogger(__name__)


class TherapyManager:
    """The station's :class:`~console.station.session_hook.SessionHook`: LOP measurements and sessions.

    Args:
        station: a started (or about to start) :class:`~console.station.station.Station`.
        interval_s: the driver's step in real seconds; None for tests on a ManualClock, which
            call :meth:`step_now` (or :meth:`tick` and :meth:`settle`) themselves.
        lop_timeout_s: a measurement gives up after this long.
        lop_options: extra keyword arguments for :class:`LopMeasurement` (e.g. ``budget_s``).
        inflate_timeout_s: a session that does not reach its target within this pauses and vents.
    """

    def __init__(
        self,
        station: TherapyStation,
        *,
        interval_s: float | None = DRIVE_INTERVAL_S,
        lop_timeout_s: float = LOP_TIMEOUT_S,
        lop_options: Mapping[str, Any] | None = None,
        inflate_timeout_s: float = 20.0,
    ) -> None:
        self.station = station
        self.clock = station.clock
        self.interval_s = interval_s
        self.lop_timeout_s = lop_timeout_s
        self.lop_options = dict(lop_options or {})
        self.inflate_timeout_s = inflate_timeout_s
        self._board = JobBoard()
        self._driver = Driver(lambda: self.tick(self.clock.monotonic()), self.busy, interval_s)
        records = SafeRecords(station)
        self._lops = LopJobs(
            station,
            self.clock,
            self._board,
            self._driver,
            records,
            timeout_s=lop_timeout_s,
            options=self.lop_options,
        )
        self._sessions = SessionJobs(
            station, self.clock, self._board, self._driver, records, inflate_timeout_s=inflate_timeout_s
        )
        self._remove = [station.add_sample_listener(self._on_sample), station.add_observer(self._on_event)]

    # ================================================================== SessionHook: commands

    async def measure_lop(self, cuff_id: str, *, position: str) -> None:
        """Start a measurement (returns at once); progress and result show in the cuff's snapshot."""
        await self._lops.start(cuff_id, position=position)

    async def start_session(self, cuff_ids: list[str], plan_id: str, patient_id: str) -> None:
        """Start a plan on one cuff or a pair; refused with a sentence when it may not run."""
        await self._sessions.start(cuff_ids, plan_id, patient_id)

    async def session_command(self, cuff_id: str, command: str) -> None:
        """``pause`` | ``resume`` | ``skip`` | ``stop`` | ``rep+`` | ``rep-`` on the session of this cuff."""
        await self._sessions.command(cuff_id, command)

    # ================================================================== SessionHook: views, emergency

    def cuff_extras(self, cuff_id: str) -> tuple[SessionSnapshot | None, LopProgress | None]:
        now = self.clock.monotonic()
        sjob = self._board.sessions.get(cuff_id)
        ljob = self._board.lops.get(cuff_id)
        session = sjob.runner.snapshot() if sjob is not None else None
        lop = self._lops.progress(ljob, now) if ljob is not None else None
        return session, lop

    def manual_refusal(self, cuff_id: str) -> str | None:
        """A hand inflate would spoil a measurement or fight a session: say so."""
        lj = self._board.lops.get(cuff_id)
        if lj is not None and lj.stage != "ended":
            return f"{cuff_id} is measuring its LOP; wait for the result, or deflate it to cancel."
        sj = self._board.sessions.get(cuff_id)
        if sj is not None and sj.runner.phase not in TERMINAL:
            return f"{cuff_id} is in a session ({sj.plan.id}); pause or stop the session instead."
        return None

    def on_emergency(self) -> None:
        """The station sent DEFLATE ALL: every session ends (``emergency``), every measurement fails."""
        now = self.clock.monotonic()
        self._sessions.on_emergency(now)
        self._lops.on_emergency(now)
        self.station.mark_changed()
        self._driver.kick()

    # ================================================================== the driver

    def tick(self, now: float) -> None:
        """Step every job to ``now`` and queue what it asks for (tests: then await :meth:`settle`)."""
        for job in list(self._board.lops.values()):
            if job.stage == "running":
                self._guard(job, partial(self._lops.tick, job, now))
        for sjob in self._board.session_jobs():
            if sjob.active:
                self._guard(sjob, partial(self._sessions.tick, sjob, now))

    async def settle(self) -> None:
        """Wait until every action queued so far has been carried out (for tests)."""
        while True:
            pending = [t for t in self._board.pending_tasks() if not t.done()]
            if not pending:
                return
            await asyncio.gather(*pending, return_exceptions=True)

    async def step_now(self) -> None:
        """One driver step at the clock's present time, and its actions carried out."""
        self.tick(self.clock.monotonic())
        await self.settle()

    def busy(self) -> bool:
        """Any measurement or session running, or actions in flight."""
        if any(j.stage != "ended" for j in self._board.lops.values()):
            return True
        if any(j.active for j in self._board.session_jobs()):
            return True
        return any(not t.done() for t in self._board.pending_tasks())

    async def close(self) -> None:
        """Detach from the station and stop the driver (sessions must have ended: see :meth:`on_emergency`)."""
        for remove in self._remove:
            remove()
        await self._driver.close()

    def _guard(self, job: Job, fn: Callable[[], None]) -> None:
        """A bug in one job must not leave its cuffs inflated nor stop the others."""
        try:
            fn()
        except Exception:
            log.exception("therapy: job on %s crashed; deflating its cuffs", job.cuffs)
            self._abort(job, "internal error")

    def _abort(self, job: Job, why: str) -> None:
        for c in job.cuffs:
            job.then(partial(deflate, self.station, c, why))
        self._board.unfeed(job)
        if isinstance(job, LopJob):
            self._lops.abandon(job, why)
        elif isinstance(job, SessionJob):
            self._sessions.abandon(job)
        self.station.mark_changed()

    # ================================================================== station inputs

    def _on_sample(self, cuff_id: str, t: float, p: float, taken: float) -> None:
        """``t`` the arrival (sessions: per-second records, reps); ``taken`` the controller's stamp
        on the same clock (the LOP's pulse, which arrival jitter would blur)."""
        job = self._board.feeds.get(cuff_id)
        if job is None:
            return
        try:
            if type(job) is LopJob:
                meas = job.meas
                if meas is not None:
                    meas.feed(taken, p)
            elif type(job) is SessionJob:
                self._sessions.feed(job, cuff_id, t, p)
        except Exception:
            # Never let this reach the station's listener (it would fail safe and deflate everything).
            log.exception("therapy: feeding a sample of %s failed", cuff_id)
            self._board.feeds.pop(cuff_id, None)
            self._abort(job, "internal error")

    def _on_event(self, ev: StationEventView) -> None:
        if ev.kind == "alarm" and ev.alarm is not None and ev.action in ("raised", "escalated", "reoccurred"):
            self._on_alarm(ev.alarm)
        elif ev.kind == "station" and ev.text == "station stopped":
            self._on_station_stopped()

    def _on_alarm(self, alarm: AlarmSnapshot) -> None:
        prio = Priority(alarm.priority)
        kick = self._sessions.on_alarm(alarm, prio)
        kick = self._lops.on_alarm(alarm, prio) or kick
        if kick:
            self.station.mark_changed()
            self._driver.kick()

    def _on_station_stopped(self) -> None:
        """The station stopped (it deflated everything): close what still runs, as stopped."""
        now = self.clock.monotonic()
        self._sessions.on_station_stopped(now)
        self._lops.on_station_stopped(now)
        self._board.feeds.clear()
        self._driver.halt()
