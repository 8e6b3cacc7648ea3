"""Therapy on real cuffs: automatic LOP measurement and set/rep sessions, with records.

:class:`TherapyManager` plugs into the station (:meth:`Station.attach_sessions`)
and drives two pure engines on live cuffs: :class:`~console.station.lop.LopMeasurement`
(the LOP staircase) and :class:`~console.station.session.SessionRunner` (a plan's
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

Tests on a :class:`~console.station.clock.ManualClock` pass ``interval_s=None``
(no driver task) and call :meth:`TherapyManager.step_now` after stepping the clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from console.station.api import CommandRefused, LopProgress, Priority, SessionSnapshot
from console.station.lop import LopMeasurement
from console.station.records import SecondAggregator
from console.station.session import (
    TERMINAL,
    Beat,
    Deflate,
    Finished,
    Inflate,
    PhaseChanged,
    SessionAction,
    SessionRunner,
    SessionSummary,
)
from drivers.link import CommandError, LinkError

log = logging.getLogger(__name__)

DRIVE_INTERVAL_S = 0.05
"""The driver's step (real seconds): 20 Hz, above the 10 Hz the LOP staircase needs."""
LOP_TIMEOUT_S = 60.0
"""A measurement gives up after this (station clock)."""
ZERO_VENT_WAIT_S = 6.0
"""After ``ERR BUSY`` to ZERO: how long to wait for the channel to vent before retrying once."""
ZERO_BELOW_MMHG = 5.0
FIRST_READING_WAIT_S = 2.0
"""A command on a cuff whose link is up but whose first sample has not come waits this long for it."""
OVERSHOOT_MMHG = 30.0
"""During a measurement, pressure this far above the step's target ..."""
OVERSHOOT_S = 2.5
"""... for this long (longer than a vent down between steps takes) cancels it."""
NO_PATIENT = "unassigned"
"""Records need a patient for a LOP: a measurement on a cuff with no patient is filed under this id."""
COMMANDS = ("pause", "resume", "skip", "stop", "rep+", "rep-")
PATIENT_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
"""What the records accept as a pseudonymous patient id."""
END_REASON = {"completed": "completed", "stopped": "stopped", "emergency": "emergency", "occlusion_limit": "alarm"}
"""Runner outcome -> records end reason (the plan's occlusion limit is a safety stop: ``alarm``)."""


def _f(x: float) -> str:
    return f"{x:.0f}" if abs(x - round(x)) < 0.05 else f"{x:.1f}"


# --------------------------------------------------------------------------- jobs


@dataclass(eq=False)
class _Job:
    """What both kinds of job share: the cuffs and the chain of actions in flight."""

    cuffs: tuple[str, ...]
    chain: asyncio.Task[None] | None = None

    def idle(self) -> bool:
        return self.chain is None or self.chain.done()


@dataclass(eq=False)
class _LopJob(_Job):
    position: str = "seated"
    started_at: float = 0.0
    stage: str = "zeroing"
    """``zeroing`` | ``running`` | ``finishing`` (venting, storing) | ``ended``."""
    meas: LopMeasurement | None = None
    note: str = ""
    cancel_reason: str | None = None
    applied: bool = False
    """A step has reached the controller (so a target of 0 now means someone deflated it)."""
    over_since: float | None = None
    final: LopProgress | None = None
    setup: asyncio.Task[None] | None = None

    @property
    def cuff_id(self) -> str:
        return self.cuffs[0]


@dataclass(eq=False)
class _SessionJob(_Job):
    runner: SessionRunner | None = None
    plan: Any = None
    patient_id: str = ""
    purpose: str = "manual"
    record_id: int | None = None
    wall_offset: float = 0.0
    aggs: dict[str, SecondAggregator] = field(default_factory=dict)
    inflated: set[str] = field(default_factory=set)
    """Cuffs whose inflate reached the controller since the runner last vented them."""
    recorded_end: bool = False
    active: bool = True
    """False once the runner is done or stopped and its last actions went out."""


# --------------------------------------------------------------------------- the manager


class TherapyManager:
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

    # ================================================================== SessionHook: LOP

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
                return f"pressure {_f(p)} mmHg ran over {_f(OVERSHOOT_MMHG)} mmHg above the step of {_f(step)}"
        else:
            job.over_since = None
        return None

    async def _lop_set(self, job: _LopJob, mmhg: float) -> None:
        if job.stage != "running" or job.cancel_reason is not None:
            return  # stale: the measurement is ending, never inflate again
        try:
            await self.station.apply_target(job.cuff_id, mmhg, purpose="lop", what=f"LOP step {job.cuff_id} {_f(mmhg)} mmHg")
            job.applied = True
        except CommandRefused as exc:
            if job.cancel_reason is None:
                job.cancel_reason = f"the step to {_f(mmhg)} mmHg was refused: {exc}"
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
                        await self.station.set_lop(cid, res.lop, position=job.position, cuff_width_cm=spec.width_cm,
                                                   source="auto")
                except CommandRefused as exc:
                    job.final = LopProgress("failed", 0.0, elapsed, None, None, f"result {_f(res.lop)} mmHg not kept: {exc}")
                    return
                self._record_lop(job, res.lop, res.confidence)
                job.final = LopProgress("done", meas.current_target if meas else 0.0, elapsed, round(res.lop, 1),
                                        res.confidence, (res.reason or "measured") + note)
                self.station.record_command(
                    "station", f"LOP {cid}: {_f(res.lop)} mmHg ({job.position}, confidence {res.confidence:.2f})"
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
            "record_lop", pid, cuff_id=cuff.id, limb=cuff.spec.limb, label=cuff.spec.label or cuff.spec.limb,
            position=job.position, lop_mmhg=lop, source="auto", at=at, cuff_width_cm=cuff.spec.width_cm,
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

    # ================================================================== SessionHook: sessions

    async def start_session(self, cuff_ids: list[str], plan_id: str, patient_id: str) -> None:
        """Start a plan on one cuff or a pair; refused with a sentence when it may not run."""
        if isinstance(cuff_ids, str):
            cuff_ids = [cuff_ids]
        cuffs = tuple(str(c) for c in cuff_ids)
        if not 1 <= len(cuffs) <= 2:
            raise CommandRefused("A session runs on one cuff or a pair of cuffs.")
        if len(set(cuffs)) != len(cuffs):
            raise CommandRefused(f"{cuffs[0]} is named twice; a pair is two different cuffs.")
        plans = getattr(self.station.config, "plans", {})
        plan = plans.get(plan_id) if isinstance(plan_id, str) else None
        if plan is None:
            raise CommandRefused(f"No plan {plan_id!r}.")
        pid = str(patient_id).strip() if isinstance(patient_id, str) else ""
        if not PATIENT_ID.fullmatch(pid):
            raise CommandRefused(
                f"A patient id is a pseudonym of 1 to 64 letters, digits, '.', '_' or '-' (got {patient_id!r})."
            )
        for c in cuffs:
            await self._first_reading(c)
        for c in cuffs:
            self._check_free(c)
        if len(cuffs) == 2:
            a, b = (self.station.cuffs[c] for c in cuffs)
            if a.spec.limb != b.spec.limb:
                raise CommandRefused(f"{a.id} is on {_a(a.spec.limb)} and {b.id} on {_a(b.spec.limb)}; a pair is two arms or two legs.")
        lops: dict[str, float | None] = {}
        for c in cuffs:
            why = self.station.config.plan_refusal(plan, c)
            if why:
                raise CommandRefused(why)
            cuff, ctrl = self.station._lookup(c)
            if not cuff.lop:
                raise CommandRefused(f"{c}: LOP unknown; measure or enter it before a % LOP session.")
            target = round(plan.pct_lop / 100.0 * cuff.lop, 1)
            limit = min(self.station.limits.ceiling_mmhg, ctrl.max_pressure() or 300.0, 300.0)
            if target > limit:
                raise CommandRefused(
                    f"{c}: {plan.pct_lop:g} % of LOP {_f(cuff.lop)} is {_f(target)} mmHg, above the limit of {_f(limit)} mmHg."
                )
            lops[c] = cuff.lop
        try:
            runner = SessionRunner(plan, cuffs, lops, self.clock, pid, inflate_timeout_s=self.inflate_timeout_s)
        except ValueError as exc:
            raise CommandRefused(f"{exc}.") from None
        for c in cuffs:
            await self.station.set_patient(c, pid)
        for c in cuffs:  # a set_patient awaits nothing, but stay safe against a future that does
            self._check_free(c)
        job = _SessionJob(
            cuffs,
            runner=runner,
            plan=plan,
            patient_id=pid,
            purpose="full_occlusion" if getattr(plan, "full_occlusion", False) else "manual",
            wall_offset=self.clock.wall() - self.clock.monotonic(),
            aggs={c: SecondAggregator() for c in cuffs},
        )
        job.record_id = self._open_record(job, lops)
        for c in cuffs:
            self._sessions[c] = job
            self._lops.pop(c, None)
            self._feeds[c] = job
        self.station.record_command(
            "station", f"session {plan.id} on {'+'.join(cuffs)}: inflating to "
            + ", ".join(f"{c} {_f(runner.target(c))} mmHg" for c in cuffs) + f" ({plan.pct_lop:g} % LOP)"
        )
        self._tick_session(job, self.clock.monotonic())
        self.station.mark_changed()
        self._ensure_driver()

    def _open_record(self, job: _SessionJob, lops: Mapping[str, float | None]) -> int | None:
        if self.station.records is None:
            return None
        at = self.clock.wall()
        first = job.cuffs[0]
        self._rec("add_patient", job.patient_id, at=at)
        assert job.runner is not None
        return self._rec(
            "start_session", job.patient_id, cuffs=list(job.cuffs), plan_id=job.plan.id, plan_name=job.plan.name,
            started_at=at, target_mmhg=job.runner.target(first), target_pct_lop=float(job.plan.pct_lop),
            lop_mmhg=lops.get(first), position=self.station.cuffs[first].lop_position or None,
        )

    async def session_command(self, cuff_id: str, command: str) -> None:
        """``pause`` | ``resume`` | ``skip`` | ``stop`` | ``rep+`` | ``rep-`` on the session of this cuff."""
        if command not in COMMANDS:
            raise CommandRefused(f"Unknown session command {command!r} (one of {', '.join(COMMANDS)}).")
        self.station._lookup(cuff_id)
        job = self._sessions.get(cuff_id)
        if job is None or job.runner is None or job.runner.phase in TERMINAL:
            raise CommandRefused(f"{cuff_id}: no session is running.")
        runner = job.runner
        try:
            if command == "pause":
                runner.pause()
            elif command == "resume":
                for c in job.cuffs:
                    cuff, ctrl = self.station._lookup(c)
                    if not ctrl.online:
                        raise CommandRefused(f"controller {ctrl.id} of {c} is offline")
                    if cuff.latched:
                        raise CommandRefused(f"{c} is latched by a {cuff.latch_cause or 'fault'}: acknowledge its alarm first")
                runner.resume()
            elif command == "skip":
                runner.skip()
            elif command == "stop":
                runner.stop()
            else:
                runner.rep_adjust(1 if command == "rep+" else -1)
        except CommandRefused as exc:
            text = str(exc)
            raise CommandRefused(f"{cuff_id}: {text[:1].lower() + text[1:]}" + ("" if text.endswith(".") else ".")) from None
        self._tick_session(job, self.clock.monotonic())
        self.station.mark_changed()
        self._ensure_driver()

    def _tick_session(self, job: _SessionJob, now: float) -> None:
        runner = job.runner
        assert runner is not None
        if runner.phase not in TERMINAL and runner.inflated and job.idle():
            for c in job.cuffs:
                if c in job.inflated and self.station.cuffs[c].target <= 0:
                    job.inflated.clear()
                    runner.on_alarm(Priority.HIGH, c, "DEFLATED")
                    runner.message = f"{c} was deflated outside the session: paused; resume refills"
                    break
        self._apply(job, runner.step(now))  # also drains what stop() queued once it is terminal
        if runner.phase in TERMINAL and job.idle() and job.active:
            job.active = False
            for c in job.cuffs:
                if self._feeds.get(c) is job:
                    del self._feeds[c]

    def _apply(self, job: _SessionJob, actions: list[SessionAction], *, vented: bool = False) -> None:
        """Carry out the runner's actions; ``vented``: the station already deflated everything."""
        for act in actions:
            if isinstance(act, Inflate):
                self._chain(job, lambda a=act: self._session_inflate(job, a.cuff_id, a.mmhg))
            elif isinstance(act, Deflate):
                job.inflated.discard(act.cuff_id)
                if not vented:
                    self._chain(job, lambda a=act: self._deflate(a.cuff_id, a.reason or "session"))
            elif isinstance(act, Finished):
                self._close_record(job, act.summary)
            elif isinstance(act, (PhaseChanged, Beat)):
                self.station.mark_changed()

    async def _session_inflate(self, job: _SessionJob, cuff_id: str, mmhg: float) -> None:
        runner = job.runner
        assert runner is not None
        if runner.phase in TERMINAL or not runner.inflated:
            return  # stale: vented (alarm, stop, emergency) since it was asked
        try:
            await self.station.apply_target(
                cuff_id, mmhg, purpose=job.purpose, what=f"session {job.plan.id}: inflate {cuff_id} {_f(mmhg)} mmHg"
            )
            job.inflated.add(cuff_id)
        except CommandRefused as exc:
            if runner.phase not in TERMINAL and runner.inflated:
                runner.on_alarm(Priority.HIGH, cuff_id, "INFLATE_REFUSED")
                runner.message = f"{cuff_id} could not be inflated ({exc}) - cuffs vented; resume tries again"
                self.station.record_command("station", f"session on {'+'.join(job.cuffs)} paused: {runner.message}")
            self._kick()

    def _close_record(self, job: _SessionJob, summary: SessionSummary) -> None:
        if job.recorded_end:
            return
        job.recorded_end = True
        reason = END_REASON.get(summary.outcome, "stopped")
        self.station.record_command(
            "station",
            f"session {summary.plan_id} on {'+'.join(summary.cuffs)} ended: {summary.outcome} "
            f"({summary.sets_done}/{summary.sets_planned} sets, {summary.reps_done} reps"
            + (f", {summary.message}" if summary.message else "") + ")",
        )
        if job.record_id is None:
            return
        for c, agg in job.aggs.items():
            sec = agg.flush()
            if sec is not None:
                self._rec("session_sample", job.record_id, c, *sec.row())
        fid = summary.fidelity
        self._rec(
            "end_session", job.record_id, reason, ended_at=summary.ended_at + job.wall_offset,
            sets_done=summary.sets_done, reps_per_set=list(summary.reps_by_set),
            occlusion_s=max(0.0, summary.occlusion_s),
            fidelity=None if fid is None or not math.isfinite(fid) else min(1.0, max(0.0, fid)),
        )

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
                        self._rec("end_session", job.record_id, "crash", ended_at=self.clock.wall(),
                                  sets_done=summary.sets_done, reps_per_set=list(summary.reps_by_set),
                                  occlusion_s=max(0.0, summary.occlusion_s), fidelity=None)
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
            raise CommandRefused(f"{cuff_id} is latched by a {cuff.latch_cause or 'fault'} fault: acknowledge its alarm first.")
        lj = self._lops.get(cuff_id)
        if lj is not None and lj.stage != "ended":
            raise CommandRefused(f"{cuff_id} is already measuring its LOP.")
        sj = self._sessions.get(cuff_id)
        if sj is not None and sj.runner is not None and sj.runner.phase not in TERMINAL:
            raise CommandRefused(f"{cuff_id} is in a session ({sj.plan.id}, {sj.runner.phase}); stop it first.")
        threshold = self.station.limits.occlusion_threshold_mmhg
        if cuff.target > 0 or (cuff.pressure is not None and cuff.pressure >= threshold):
            at = f"{_f(cuff.pressure)} mmHg" if cuff.pressure is not None else f"target {_f(cuff.target)} mmHg"
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


def _a(limb: str) -> str:
    return f"an {limb}" if limb[:1] in "aeiou" else f"a {limb}"
