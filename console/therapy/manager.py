"""Therapy on real cuffs: automatic LOP measurement and set/rep sessions, with records.

:class:`TherapyManager` plugs into the station (:meth:`Station.attach_sessions`)
and drives two pure engines on live cuffs: :class:`~console.therapy.lop.LopMeasurement`
(the LOP staircase) and :class:`~console.therapy.session.SessionRunner` (a plan's
set/rep/rest timer). It feeds them every sample of their cuffs, steps them about
20 times a second on the station's clock, and carries out what they ask through
the station, so the supervisor's limits still hold:

- a LOP step goes through ``Station.apply_target(purpose="lop")``: the ceiling,
  the controller maximum and 300 mmHg apply, the % LOP limits do not (the
  staircase must climb past the LOP), and the off-target rule leaves the cuff
  alone while it steps (leaks, links, events and the occlusion timer still run);
- a session inflates through ``purpose="manual"`` (every rule), or
  ``"full_occlusion"`` for a plan that says so (IPC: up to 100 % LOP, never above
  the ceiling);
- deflates go through ``Station.deflate`` (resent when a lost link returns).

Every ending of a measurement deflates the cuff: done, failed, cancelled,
timeout, link lost, alarm, a deflate by hand, emergency (the station's
DEFLATE ALL). High alarms on a session's cuffs pause it and vent them (the
runner's rule); an emergency ends every session (recorded ``emergency``).

Why the actions run in a chain per job: a ``SET`` waits for the controller's
answer, and a later deflate of the same job must not overtake it, while one
slow controller must not hold up the other cuffs' jobs.

Tests on a :class:`~console.common.clock.ManualClock` pass ``interval_s=None``
(no driver task) and call :meth:`TherapyManager.step_now` after stepping the clock.

The LOP job lives in :mod:`~console.therapy.lop_job`, the session job in
:mod:`~console.therapy.session_job` and their records in
:mod:`~console.therapy.jobs`; this module holds what both share: the
driver, the station's inputs (samples, alarms, stop), the action chains.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from console.common.api import CommandRefused, LopProgress, Priority, SessionSnapshot
from console.common.figures import figure
from console.therapy.jobs import _Job, _LopJob, _SessionJob
from console.therapy.lop_job import LOP_TIMEOUT_S, LopJobs
from console.therapy.session import TERMINAL
from console.therapy.session_job import SessionJobs

log = logging.getLogger(__name__)

DRIVE_INTERVAL_S = 0.05
"""The driver's step (real seconds): 20 Hz, above the 10 Hz the LOP staircase needs."""
FIRST_READING_WAIT_S = 2.0
"""A command on a cuff whose link is up but whose first sample has not come waits this long for it."""


class TherapyManager(LopJobs, SessionJobs):
    """The station's :class:`~console.station.station.SessionHook`: LOP measurements and sessions.

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
        station: Any,
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
        self._lops: dict[str, _LopJob] = {}
        """Cuff id -> its latest measurement (running, or ended and still shown)."""
        self._sessions: dict[str, _SessionJob] = {}
        """Cuff id -> its latest session (running, or finished and still shown)."""
        self._feeds: dict[str, _Job] = {}
        """Cuff id -> the job that takes its samples now (hot path: one dict lookup per sample)."""
        self._driver: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._closed = False
        self._remove = [station.add_sample_listener(self._on_sample), station.add_observer(self._on_event)]

    # ================================================================== SessionHook: views, emergency

    def cuff_extras(self, cuff_id: str) -> tuple[SessionSnapshot | None, LopProgress | None]:
        now = self.clock.monotonic()
        sjob = self._sessions.get(cuff_id)
        ljob = self._lops.get(cuff_id)
        session = sjob.runner.snapshot() if sjob is not None and sjob.runner is not None else None
        lop = self._lop_progress(ljob, now) if ljob is not None else None
        return session, lop

    def manual_refusal(self, cuff_id: str) -> str | None:
        """A hand inflate would spoil a measurement or fight a session: say so."""
        lj = self._lops.get(cuff_id)
        if lj is not None and lj.stage != "ended":
            return f"{cuff_id} is measuring its LOP; wait for the result, or deflate it to cancel."
        sj = self._sessions.get(cuff_id)
        if sj is not None and sj.runner is not None and sj.runner.phase not in TERMINAL:
            return f"{cuff_id} is in a session ({sj.plan.id}); pause or stop the session instead."
        return None

    def on_emergency(self) -> None:
        """The station sent DEFLATE ALL: every session ends (``emergency``), every measurement fails."""
        now = self.clock.monotonic()
        for job in self._session_jobs():
            runner = job.runner
            assert runner is not None
            if runner.phase in TERMINAL:
                continue
            try:
                runner.on_emergency()
                self._apply(job, runner.step(now), vented=True)
            except Exception:
                log.exception("therapy: ending session on %s after the emergency failed", job.cuffs)
        for job in list(self._lops.values()):
            if job.stage in ("finishing", "ended"):
                continue
            job.cancel_reason = "emergency deflate"
            meas = job.meas
            if meas is not None and meas.started_at is not None:
                meas.cancel("emergency deflate")
                meas.next_action(now)  # the result (a failure) is set; the deflate was the station's
            self._lop_end(job, now, deflate=False)
        self.station.mark_changed()
        self._kick()

    # ================================================================== the driver

    def tick(self, now: float) -> None:
        """Step every job to ``now`` and queue what it asks for (tests: then await :meth:`settle`)."""
        for job in list(self._lops.values()):
            if job.stage == "running":
                self._guard(job, lambda j=job: self._tick_lop(j, now))  # type: ignore[misc]
        for sjob in self._session_jobs():
            if sjob.active:
                self._guard(sjob, lambda j=sjob: self._tick_session(j, now))  # type: ignore[misc]

    async def settle(self) -> None:
        """Wait until every action queued so far has been carried out (for tests)."""
        while True:
            pending = [t for t in self._pending_tasks() if not t.done()]
            if not pending:
                return
            await asyncio.gather(*pending, return_exceptions=True)

    async def step_now(self) -> None:
        """One driver step at the clock's present time, and its actions carried out."""
        self.tick(self.clock.monotonic())
        await self.settle()

    def busy(self) -> bool:
        """Any measurement or session running, or actions in flight."""
        if any(j.stage != "ended" for j in self._lops.values()):
            return True
        if any(j.active for j in self._session_jobs()):
            return True
        return any(not t.done() for t in self._pending_tasks())

    async def close(self) -> None:
        """Detach from the station and stop the driver (sessions must have ended: see :meth:`on_emergency`)."""
        self._closed = True
        for remove in self._remove:
            remove()
        drv, self._driver = self._driver, None
        if drv is not None:
            drv.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await drv

    def _guard(self, job: _Job, fn: Callable[[], None]) -> None:
        """A bug in one job must not leave its cuffs inflated nor stop the others."""
        try:
            fn()
        except Exception:
            log.exception("therapy: job on %s crashed; deflating its cuffs", job.cuffs)
            self._abort(job, "internal error")

    def _abort(self, job: _Job, why: str) -> None:
        for c in job.cuffs:
            self._chain(job, lambda c=c: self._deflate(c, why))
            if self._feeds.get(c) is job:
                del self._feeds[c]
        if isinstance(job, _LopJob):
            job.cancel_reason = job.cancel_reason or why
            job.final = LopProgress("failed", 0.0, max(0.0, self.clock.monotonic() - job.started_at), message=why)
            job.stage = "ended"
            self.station.supervisor.measuring.discard(job.cuff_id)
        elif isinstance(job, _SessionJob):
            job.active = False
            runner = job.runner
            if runner is not None and not job.recorded_end:
                with contextlib.suppress(Exception):
                    runner.stop()
                with contextlib.suppress(Exception):
                    summary = runner.summary()
                    job.recorded_end = False
                    if job.record_id is not None:
                        job.recorded_end = True
                        self._rec(
                            "end_session",
                            job.record_id,
                            "crash",
                            ended_at=self.clock.wall(),
                            sets_done=summary.sets_done,
                            reps_per_set=list(summary.reps_by_set),
                            occlusion_s=max(0.0, summary.occlusion_s),
                            fidelity=None,
                        )
        self.station.mark_changed()

    def _ensure_driver(self) -> None:
        if self.interval_s is None or self._closed:
            return
        if self._driver is None or self._driver.done():
            self._driver = asyncio.get_running_loop().create_task(self._drive(), name="therapy:driver")

    async def _drive(self) -> None:
        assert self.interval_s is not None
        while self.busy() and not self._closed:
            try:
                self.tick(self.clock.monotonic())
            except Exception:
                log.exception("therapy: driver step failed")
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_s)

    def _kick(self) -> None:
        """Step again now rather than at the next tick (an alarm, a refusal)."""
        self._wake.set()

    # ================================================================== station inputs

    def _on_sample(self, cuff_id: str, t: float, p: float) -> None:
        job = self._feeds.get(cuff_id)
        if job is None:
            return
        try:
            if type(job) is _LopJob:
                meas = job.meas  # type: ignore[attr-defined]
                if meas is not None:
                    meas.feed(t, p)
            else:
                sj: _SessionJob = job  # type: ignore[assignment]
                sj.runner.feed_sample(cuff_id, t, p)  # type: ignore[union-attr]
                if sj.record_id is not None and not sj.recorded_end:
                    sec = sj.aggs[cuff_id].add(t + sj.wall_offset, p, self.station.cuffs[cuff_id].target)
                    if sec is not None:
                        self._rec("session_sample", sj.record_id, cuff_id, *sec.row())
        except Exception:
            # Never let this reach the station's listener (it would fail safe and deflate everything).
            log.exception("therapy: feeding a sample of %s failed", cuff_id)
            self._feeds.pop(cuff_id, None)
            self._abort(job, "internal error")

    def _on_event(self, ev: Any) -> None:
        if ev.kind == "alarm" and ev.alarm is not None and ev.action in ("raised", "escalated", "reoccurred"):
            self._on_alarm(ev.alarm)
        elif ev.kind == "station" and ev.text == "station stopped":
            self._on_station_stopped()

    def _on_alarm(self, alarm: Any) -> None:
        prio = Priority(alarm.priority)
        kick = False
        for job in self._session_jobs():
            runner = job.runner
            if runner is None or runner.phase in TERMINAL or not self._concerns(alarm, job.cuffs):
                continue
            cuff = alarm.cuff if alarm.cuff in job.cuffs else None
            runner.on_alarm(prio, cuff, alarm.cause)
            kick = kick or prio is Priority.HIGH
        if prio in (Priority.HIGH, Priority.MEDIUM):
            for lj in self._lops.values():
                if lj.stage in ("zeroing", "running") and lj.cancel_reason is None and self._concerns(alarm, lj.cuffs):
                    lj.cancel_reason = f"{prio.value} alarm: {alarm.message}"
                    kick = True
        if kick:
            self.station.mark_changed()
            self._kick()

    def _concerns(self, alarm: Any, cuffs: tuple[str, ...]) -> bool:
        if alarm.cuff is not None:
            return alarm.cuff in cuffs
        if alarm.controller is None:
            return True  # the whole station (e.g. its supervisor failed)
        return any(self.station.cuffs[c].spec.controller == alarm.controller for c in cuffs)

    def _on_station_stopped(self) -> None:
        """The station stopped (it deflated everything): close what still runs, as stopped."""
        now = self.clock.monotonic()
        for job in self._session_jobs():
            runner = job.runner
            if runner is None or runner.phase in TERMINAL:
                continue
            with contextlib.suppress(Exception):
                runner.stop()
                runner.message = "station stopped"
                self._apply(job, runner.step(now), vented=True)
            job.active = False
        for lj in self._lops.values():
            if lj.stage not in ("finishing", "ended"):
                lj.cancel_reason = "station stopped"
                lj.final = LopProgress("failed", 0.0, max(0.0, now - lj.started_at), message="station stopped")
                lj.stage = "ended"
                self.station.supervisor.measuring.discard(lj.cuff_id)
        self._feeds.clear()
        self._closed = True
        if self._driver is not None:
            self._driver.cancel()

    # ================================================================== helpers

    def _check_free(self, cuff_id: str) -> None:
        """Refuse (with a sentence) a cuff that cannot start a measurement or a session now."""
        cuff, ctrl = self.station._lookup(cuff_id)
        if not ctrl.online:
            raise CommandRefused(f"{cuff_id}: controller {ctrl.id} is offline ({ctrl.link_state}).")
        if ctrl.id in self.station.emergency.retrying:
            raise CommandRefused(f"{cuff_id}: controller {ctrl.id} has not confirmed the emergency deflate yet.")
        if cuff.latched:
            raise CommandRefused(
                f"{cuff_id} is latched by a {cuff.latch_cause or 'fault'} fault: acknowledge its alarm first."
            )
        lj = self._lops.get(cuff_id)
        if lj is not None and lj.stage != "ended":
            raise CommandRefused(f"{cuff_id} is already measuring its LOP.")
        sj = self._sessions.get(cuff_id)
        if sj is not None and sj.runner is not None and sj.runner.phase not in TERMINAL:
            raise CommandRefused(f"{cuff_id} is in a session ({sj.plan.id}, {sj.runner.phase}); stop it first.")
        threshold = self.station.limits.occlusion_threshold_mmhg
        if cuff.target > 0 or (cuff.pressure is not None and cuff.pressure >= threshold):
            at = f"{figure(cuff.pressure)} mmHg" if cuff.pressure is not None else f"target {figure(cuff.target)} mmHg"
            raise CommandRefused(f"{cuff_id} is inflated ({at}); deflate it first.")
        if cuff.pressure is None:
            raise CommandRefused(f"{cuff_id}: no reading from the cuff yet.")

    async def _first_reading(self, cuff_id: str) -> None:
        """Just after the link came up the first sample may not be in yet: wait for it briefly."""
        cuff, ctrl = self.station._lookup(cuff_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FIRST_READING_WAIT_S
        while ctrl.online and cuff.pressure is None and loop.time() < deadline:
            await asyncio.sleep(0.02)

    def _session_jobs(self) -> list[_SessionJob]:
        seen: dict[int, _SessionJob] = {}
        for job in self._sessions.values():
            seen.setdefault(id(job), job)
        return list(seen.values())

    def _pending_tasks(self) -> list[asyncio.Task[Any]]:
        out: list[asyncio.Task[Any]] = []
        for lj in self._lops.values():
            out += [t for t in (lj.chain, lj.setup) if t is not None]
        for sj in self._session_jobs():
            if sj.chain is not None:
                out.append(sj.chain)
        return out

    def _chain(self, job: _Job, make: Callable[[], Awaitable[None]]) -> None:
        """Run ``make()`` after the job's earlier actions (whatever became of them)."""
        prev = job.chain

        async def run() -> None:
            if prev is not None and not prev.done():
                await asyncio.wait([prev])
            try:
                await make()
            except Exception:
                log.exception("therapy: an action on %s failed", job.cuffs)

        job.chain = asyncio.get_running_loop().create_task(run(), name=f"therapy:{'+'.join(job.cuffs)}")

    async def _deflate(self, cuff_id: str, why: str) -> None:
        try:
            with self.station.acting_as("station"):
                await self.station.deflate(cuff_id)
        except CommandRefused as exc:
            log.warning("therapy: deflate of %s (%s) not confirmed: %s", cuff_id, why, exc)

    def _rec(self, method: str, *args: Any, **kw: Any) -> Any:
        """Records never stop therapy: a failed write is logged (the session still vents and ends)."""
        rec = self.station.records
        if rec is None:
            return None
        try:
            return getattr(rec, method)(*args, **kw)
        except Exception:
            log.exception("therapy: records.%s failed", method)
            return None
