"""Automatic LOP measurement on a live cuff: the staircase jobs of :class:`~console.therapy.manager.TherapyManager`.

ZERO the channel (``Station.zero_sensor``), then let
:class:`~console.therapy.lop.LopMeasurement` step the cuff through
``Station.apply_target(purpose="lop")``: the ceiling, the controller maximum and
300 mmHg apply, the % LOP limits do not (the staircase must climb past the
LOP), and the off-target rule leaves the cuff alone while it steps. The live
cuff is watched for trouble (link, latch, a hand deflate, overshoot). Every
ending deflates the cuff, then stores the result (station LOP, records) or says
why it failed.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from functools import partial
from typing import Any

from console.common.api import AlarmSnapshot, CommandRefused, LopProgress, Priority
from console.common.clock import Clock
from console.common.facts import UNASSIGNED
from console.common.figures import figure
from console.station.limits import ControllerView
from console.therapy.cuff_ops import check_free, concerns, deflate, wait_first_reading
from console.therapy.driver import Driver
from console.therapy.jobs import JobBoard, LopJob
from console.therapy.lop import LopMeasurement
from console.therapy.record_keeping import SafeRecords
from console.therapy.station_port import CuffView, TherapyStation

LOP_TIMEOUT_S = 60.0
"""A measurement gives up after this (station clock)."""
ZERO_VENT_WAIT_S = 6.0
"""After ``ERR BUSY`` to ZERO: how long to wait for the channel to vent before retrying once."""
ZERO_BELOW_MMHG = 5.0
OVERSHOOT_MMHG = 30.0
"""During a measurement, pressure this far above the step's target ..."""
OVERSHOOT_S = 2.5
"""... for this long (longer than a vent down between steps takes) cancels it."""
NO_PATIENT = UNASSIGNED
"""Records need a patient for a LOP: the station files one taken on a cuff with no patient under this id."""


class LopJobs:
    """The LOP measurement jobs: start, step, judge, end, store.

    Args:
        station: the engine, reached only through its public methods.
        clock: the station's clock.
        board: which job each cuff has (shared with the sessions).
        driver: started when a measurement starts, kicked when one must step at once.
        records: where a measured LOP is filed.
        timeout_s: a measurement gives up after this long.
        options: extra keyword arguments for :class:`LopMeasurement` (e.g. ``budget_s``).
    """

    def __init__(
        self,
        station: TherapyStation,
        clock: Clock,
        board: JobBoard,
        driver: Driver,
        records: SafeRecords,
        *,
        timeout_s: float,
        options: Mapping[str, Any],
    ) -> None:
        self.station = station
        self.clock = clock
        self.board = board
        self.driver = driver
        self.records = records
        self.timeout_s = timeout_s
        self.options = dict(options)

    async def start(self, cuff_id: str, *, position: str) -> None:
        """Start a measurement (returns at once); progress and result show in the cuff's snapshot."""
        pos = str(position).strip()
        if not pos or len(pos) > 32 or not pos.isprintable():
            raise CommandRefused("A body position is 1 to 32 printable characters (e.g. seated).")
        await wait_first_reading(self.station, cuff_id)
        check_free(self.station, self.board, cuff_id)
        job = LopJob((cuff_id,), position=pos, started_at=self.clock.monotonic())
        self.board.lops[cuff_id] = job
        self.board.sessions.pop(cuff_id, None)  # the last session's result gives way to the new action
        self.station.supervisor.measuring.add(cuff_id)
        self.board.feeds[cuff_id] = job
        job.setup = asyncio.get_running_loop().create_task(self._setup(job), name=f"therapy:zero:{cuff_id}")
        self.station.mark_changed()
        self.driver.ensure_running()

    # ------------------------------------------------------------------ the staircase

    async def _setup(self, job: LopJob) -> None:
        """ZERO the channel (retry once after it vents), then hand the cuff to the staircase."""
        note = ""
        for attempt in (1, 2):
            why = await self.station.zero_sensor(job.cuff_id)
            if why == "BUSY" and attempt == 1 and job.cancel_reason is None:
                if await self._wait_vented(job, ZERO_VENT_WAIT_S):
                    continue
                note = "sensor not zeroed (the cuff did not vent under 5 mmHg)"
            elif why:
                note = f"sensor not zeroed ({why})"
            break
        job.note = note
        if note:
            self.station.record_command("station", f"LOP {job.cuff_id}: {note}; measuring anyway")
        if job.stage == "zeroing":
            if job.cancel_reason is None:
                _, ctrl = self.station.lookup(job.cuff_id)
                ceiling = min(self.station.limits.ceiling_mmhg, ctrl.max_pressure() or 300.0, 300.0)
                job.meas = LopMeasurement(
                    ceiling_mmhg=ceiling, timeout_s=self.timeout_s, clock=self.clock, **self.options
                )
                job.stage = "running"
            else:
                self._end(job, self.clock.monotonic(), vent=True)
        self.station.mark_changed()
        self.driver.kick()

    async def _wait_vented(self, job: LopJob, timeout: float) -> bool:
        cuff = self.station.cuffs[job.cuff_id]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline and job.cancel_reason is None:
            if cuff.ctrl_state == "VENTED" and cuff.pressure is not None and cuff.pressure < ZERO_BELOW_MMHG:
                return True
            await asyncio.sleep(0.05)
        return False

    def tick(self, job: LopJob, now: float) -> None:
        """Step one measurement to ``now``: judge the live cuff, then do what the staircase asks."""
        if job.stage != "running":
            return
        meas = job.meas
        assert meas is not None
        cuff, ctrl = self.station.lookup(job.cuff_id)
        if job.cancel_reason is None:
            job.cancel_reason = self._trouble(job, cuff, ctrl, now)
        if job.cancel_reason is not None and meas.started_at is None:
            self._end(job, now, vent=True)
            return
        if job.cancel_reason is not None:
            meas.cancel(job.cancel_reason)
        action = meas.next_action(now)
        if action.kind == "set" and action.target is not None:
            job.then(partial(self._set, job, float(action.target)))
        elif action.kind in ("deflate", "done"):
            self._end(job, now, vent=True)

    def _trouble(self, job: LopJob, cuff: CuffView, ctrl: ControllerView, now: float) -> str | None:
        """A reason to stop the measurement seen on the live cuff, or None."""
        if not ctrl.online:
            return f"controller {ctrl.id} went offline"
        if cuff.latched:
            return f"{cuff.id} latched by a {cuff.latch_cause or 'fault'}"
        if job.applied and job.idle() and cuff.target <= 0:
            return "the cuff was deflated during the measurement"
        meas = job.meas
        step = meas.current_target if meas is not None else 0.0
        p = cuff.pressure
        if p is not None and step > 0 and p > step + OVERSHOOT_MMHG:
            if job.over_since is None:
                job.over_since = now
            elif now - job.over_since > OVERSHOOT_S:
                return (
                    f"pressure {figure(p)} mmHg ran over {figure(OVERSHOOT_MMHG)} mmHg above the step of {figure(step)}"
                )
        else:
            job.over_since = None
        return None

    async def _set(self, job: LopJob, mmhg: float) -> None:
        if job.stage != "running" or job.cancel_reason is not None:
            return  # stale: the measurement is ending, never inflate again
        try:
            await self.station.apply_target(
                job.cuff_id, mmhg, purpose="lop", what=f"LOP step {job.cuff_id} {figure(mmhg)} mmHg"
            )
            job.applied = True
        except CommandRefused as exc:
            if job.cancel_reason is None:
                job.cancel_reason = f"the step to {figure(mmhg)} mmHg was refused: {exc}"
            self.driver.kick()

    # ------------------------------------------------------------------ endings

    def _end(self, job: LopJob, now: float, *, vent: bool) -> None:
        """The measurement is over, well or not: vent (unless the station already did), then store."""
        if job.stage in ("finishing", "ended"):
            return
        job.stage = "finishing"
        if job.setup is not None and not job.setup.done() and job.cancel_reason is None:
            job.cancel_reason = "cancelled"
        if vent:
            job.then(partial(deflate, self.station, job.cuff_id, "LOP measurement ended"))
        job.then(partial(self._store, job, now))
        self.station.mark_changed()

    def on_alarm(self, alarm: AlarmSnapshot, prio: Priority) -> bool:
        """A HIGH or MEDIUM alarm on a measured cuff cancels the measurement; True when one was."""
        if prio not in (Priority.HIGH, Priority.MEDIUM):
            return False
        cancelled = False
        for lj in self.board.lops.values():
            if (
                lj.stage in ("zeroing", "running")
                and lj.cancel_reason is None
                and concerns(self.station, alarm, lj.cuffs)
            ):
                lj.cancel_reason = f"{prio.value} alarm: {alarm.message}"
                cancelled = True
        return cancelled

    def on_emergency(self, now: float) -> None:
        """The station sent DEFLATE ALL: every measurement fails (the deflate was the station's)."""
        for job in list(self.board.lops.values()):
            if job.stage in ("finishing", "ended"):
                continue
            job.cancel_reason = "emergency deflate"
            meas = job.meas
            if meas is not None and meas.started_at is not None:
                meas.cancel("emergency deflate")
                meas.next_action(now)  # the result (a failure) is set; the deflate was the station's
            self._end(job, now, vent=False)

    def on_station_stopped(self, now: float) -> None:
        """The station stopped (it deflated everything): what still runs fails, as stopped."""
        for lj in self.board.lops.values():
            if lj.stage not in ("finishing", "ended"):
                lj.cancel_reason = "station stopped"
                lj.final = LopProgress("failed", 0.0, max(0.0, now - lj.started_at), message="station stopped")
                lj.stage = "ended"
                self.station.supervisor.measuring.discard(lj.cuff_id)

    def abandon(self, job: LopJob, why: str) -> None:
        """The job crashed (its cuff is already being vented): end it as failed at once."""
        job.cancel_reason = job.cancel_reason or why
        job.final = LopProgress("failed", 0.0, max(0.0, self.clock.monotonic() - job.started_at), message=why)
        job.stage = "ended"
        self.station.supervisor.measuring.discard(job.cuff_id)

    async def _store(self, job: LopJob, ended: float) -> None:
        meas = job.meas
        res = meas.result if meas is not None else None
        cid = job.cuff_id
        elapsed = max(0.0, ended - job.started_at)
        note = f" ({job.note})" if job.note else ""
        try:
            if res is not None and res.ok and res.lop is not None:
                spec = self.station.cuffs[cid].spec
                try:
                    with self.station.acting_as("station"):
                        await self.station.set_lop(
                            cid,
                            res.lop,
                            position=job.position,
                            cuff_width_cm=spec.width_cm,
                            source="auto",
                            confidence=_share(res.confidence),
                        )
                except CommandRefused as exc:
                    job.final = LopProgress(
                        "failed", 0.0, elapsed, None, None, f"result {figure(res.lop)} mmHg not kept: {exc}"
                    )
                    return
                low, high = res.bracket if res.bracket is not None else (None, None)
                job.final = LopProgress(
                    "done",
                    meas.current_target if meas else 0.0,
                    elapsed,
                    round(res.lop, 1),
                    res.confidence,
                    (res.reason or "measured") + note,
                    bracket_low=low,
                    bracket_high=high,
                    resolution=res.resolution_mmhg,
                )
                self.station.record_command(
                    "station", f"LOP {cid}: {figure(res.lop)} mmHg ({job.position}, confidence {res.confidence:.2f})"
                )
            else:
                why = (res.reason if res is not None else job.cancel_reason) or "no result"
                job.final = LopProgress("failed", meas.current_target if meas else 0.0, elapsed, None, None, why + note)
                self.station.record_command("station", f"LOP {cid} failed: {why}")
        finally:
            job.stage = "ended"
            self.station.supervisor.measuring.discard(cid)
            self.board.unfeed(job)
            self.station.mark_changed()

    def progress(self, job: LopJob, now: float) -> LopProgress:
        """What the cuff's snapshot shows of this measurement."""
        if job.final is not None:
            return job.final
        elapsed = max(0.0, now - job.started_at)
        if job.stage == "zeroing":
            return LopProgress("running", 0.0, elapsed, message="zeroing the pressure sensor")
        meas = job.meas
        step = meas.current_target if meas is not None else 0.0
        if job.stage == "finishing":
            return LopProgress("running", step, elapsed, message="venting")
        assert meas is not None
        prog = meas.progress(now)
        if job.note and prog.state == "running":
            return LopProgress(prog.state, prog.pressure_step, elapsed, message=f"{prog.message}; {job.note}")
        return LopProgress(prog.state, prog.pressure_step, elapsed, prog.lop, prog.confidence, prog.message)


def _share(x: float | None) -> float | None:
    """A confidence the records accept: None when unknown, else clamped to 0..1."""
    return None if x is None or not math.isfinite(x) else min(1.0, max(0.0, x))
