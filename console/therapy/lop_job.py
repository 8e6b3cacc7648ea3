"""Automatic LOP measurement on a live cuff: the staircase job of :class:`~console.therapy.manager.TherapyManager`.

ZERO the channel, then let :class:`~console.therapy.lop.LopMeasurement` step
the cuff through ``Station.apply_target(purpose="lop")``, watching the live cuff
for trouble (link, latch, a hand deflate, overshoot). Every ending deflates the
cuff, then stores the result (station LOP, records) or says why it failed.
:class:`LopJobs` is a mixin of the manager.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

from console.common.api import CommandRefused, LopProgress
from console.common.facts import PATIENT_ID
from console.common.figures import figure
from console.therapy.jobs import JobHost, _LopJob
from console.therapy.lop import LopMeasurement
from drivers.link_errors import CommandError, LinkError

log = logging.getLogger("console.therapy.manager")

LOP_TIMEOUT_S = 60.0
"""A measurement gives up after this (station clock)."""
ZERO_VENT_WAIT_S = 6.0
"""After ``ERR BUSY`` to ZERO: how long to wait for the channel to vent before retrying once."""
ZERO_BELOW_MMHG = 5.0
OVERSHOOT_MMHG = 30.0
"""During a measurement, pressure this far above the step's target ..."""
OVERSHOOT_S = 2.5
"""... for this long (longer than a vent down between steps takes) cancels it."""
NO_PATIENT = "unassigned"
"""Records need a patient for a LOP: a measurement on a cuff with no patient is filed under this id."""


class LopJobs(JobHost):
    """The LOP measurement job: start, step, judge, end, store (a mixin of TherapyManager)."""

    lop_timeout_s: float
    lop_options: dict[str, Any]

    async def measure_lop(self, cuff_id: str, *, position: str) -> None:
        """Start a measurement (returns at once); progress and result show in the cuff's snapshot."""
        pos = str(position).strip()
        if not pos or len(pos) > 32 or not pos.isprintable():
            raise CommandRefused("A body position is 1 to 32 printable characters (e.g. seated).")
        await self._first_reading(cuff_id)
        self._check_free(cuff_id)
        job = _LopJob((cuff_id,), position=pos, started_at=self.clock.monotonic())
        self._lops[cuff_id] = job
        self._sessions.pop(cuff_id, None)  # the last session's result gives way to the new action
        self.station.supervisor.measuring.add(cuff_id)
        self._feeds[cuff_id] = job
        job.setup = asyncio.get_running_loop().create_task(self._lop_setup(job), name=f"therapy:zero:{cuff_id}")
        self.station.mark_changed()
        self._ensure_driver()

    async def _lop_setup(self, job: _LopJob) -> None:
        """ZERO the channel (retry once after it vents), then hand the cuff to the staircase."""
        cuff, ctrl = self.station._lookup(job.cuff_id)
        link = ctrl.link
        note = ""
        for attempt in (1, 2):
            if link is None:
                note = "sensor not zeroed (controller not connected)"
                break
            try:
                await link.zero(cuff.channel)
                note = ""
                break
            except CommandError as exc:
                if exc.code == "BUSY" and attempt == 1 and job.cancel_reason is None:
                    if await self._wait_vented(job, ZERO_VENT_WAIT_S):
                        continue
                    note = "sensor not zeroed (the cuff did not vent under 5 mmHg)"
                else:
                    note = f"sensor not zeroed ({exc.code})"
                break
            except LinkError as exc:
                note = f"sensor not zeroed ({exc})"
                break
        job.note = note
        if note:
            self.station.record_command("station", f"LOP {job.cuff_id}: {note}; measuring anyway")
        if job.stage == "zeroing":
            if job.cancel_reason is None:
                ceiling = min(self.station.limits.ceiling_mmhg, ctrl.max_pressure() or 300.0, 300.0)
                job.meas = LopMeasurement(
                    ceiling_mmhg=ceiling, timeout_s=self.lop_timeout_s, clock=self.clock, **self.lop_options
                )
                job.stage = "running"
            else:
                self._lop_end(job, self.clock.monotonic(), deflate=True)
        self.station.mark_changed()
        self._kick()

    async def _wait_vented(self, job: _LopJob, timeout: float) -> bool:
        cuff = self.station.cuffs[job.cuff_id]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline and job.cancel_reason is None:
            if cuff.ctrl_state == "VENTED" and cuff.pressure is not None and cuff.pressure < ZERO_BELOW_MMHG:
                return True
            await asyncio.sleep(0.05)
        return False

    def _tick_lop(self, job: _LopJob, now: float) -> None:
        if job.stage != "running":
            return
        meas = job.meas
        assert meas is not None
        cuff, ctrl = self.station._lookup(job.cuff_id)
        if job.cancel_reason is None:
            job.cancel_reason = self._lop_trouble(job, cuff, ctrl, now)
        if job.cancel_reason is not None and meas.started_at is None:
            self._lop_end(job, now, deflate=True)
            return
        if job.cancel_reason is not None:
            meas.cancel(job.cancel_reason)
        action = meas.next_action(now)
        if action.kind == "set" and action.target is not None:
            self._chain(job, lambda: self._lop_set(job, float(action.target)))  # type: ignore[arg-type]
        elif action.kind in ("deflate", "done"):
            self._lop_end(job, now, deflate=True)

    def _lop_trouble(self, job: _LopJob, cuff: Any, ctrl: Any, now: float) -> str | None:
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

    async def _lop_set(self, job: _LopJob, mmhg: float) -> None:
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
            self._kick()

    def _lop_end(self, job: _LopJob, now: float, *, deflate: bool) -> None:
        """The measurement is over, well or not: vent (unless the station already did), then store."""
        if job.stage in ("finishing", "ended"):
            return
        job.stage = "finishing"
        if job.setup is not None and not job.setup.done() and job.cancel_reason is None:
            job.cancel_reason = "cancelled"
        if deflate:
            self._chain(job, lambda: self._deflate(job.cuff_id, "LOP measurement ended"))
        self._chain(job, lambda: self._lop_store(job, now))
        self.station.mark_changed()

    async def _lop_store(self, job: _LopJob, ended: float) -> None:
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
                            cid, res.lop, position=job.position, cuff_width_cm=spec.width_cm, source="auto"
                        )
                except CommandRefused as exc:
                    job.final = LopProgress(
                        "failed", 0.0, elapsed, None, None, f"result {figure(res.lop)} mmHg not kept: {exc}"
                    )
                    return
                self._record_lop(job, res.lop, res.confidence)
                job.final = LopProgress(
                    "done",
                    meas.current_target if meas else 0.0,
                    elapsed,
                    round(res.lop, 1),
                    res.confidence,
                    (res.reason or "measured") + note,
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
            if self._feeds.get(cid) is job:
                del self._feeds[cid]
            self.station.mark_changed()

    def _record_lop(self, job: _LopJob, lop: float, confidence: float | None) -> None:
        rec = self.station.records
        if rec is None:
            return
        cuff = self.station.cuffs[job.cuff_id]
        pid = cuff.patient_id if cuff.patient_id and PATIENT_ID.fullmatch(cuff.patient_id) else NO_PATIENT
        at = self.clock.wall()
        self._rec("add_patient", pid, at=at, note="" if pid != NO_PATIENT else "LOPs measured with no patient set")
        conf = None if confidence is None or not math.isfinite(confidence) else min(1.0, max(0.0, confidence))
        self._rec(
            "record_lop",
            pid,
            cuff_id=cuff.id,
            limb=cuff.spec.limb,
            label=cuff.spec.label or cuff.spec.limb,
            position=job.position,
            lop_mmhg=lop,
            source="auto",
            at=at,
            cuff_width_cm=cuff.spec.width_cm,
            confidence=conf,
        )

    def _lop_progress(self, job: _LopJob, now: float) -> LopProgress:
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
