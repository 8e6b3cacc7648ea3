"""A plan's sets and reps on live cuffs: the session job of :class:`~console.therapy.manager.TherapyManager`.

Checks that the plan may run on the cuffs, then carries out what its
:class:`~console.therapy.session.SessionRunner` asks through the station
(``purpose="manual"``, or ``"full_occlusion"`` for a plan that says so) and
keeps the session's record: opened at the start, a row a second, closed with
the runner's summary. :class:`SessionJobs` is a mixin of the manager.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

from console.common.api import CommandRefused, Priority
from console.common.facts import PATIENT_ID
from console.common.figures import figure
from console.records.rows import SecondAggregator
from console.therapy.jobs import JobHost, _SessionJob
from console.therapy.session import TERMINAL, SessionRunner
from console.therapy.session_types import (
    Beat,
    Deflate,
    Finished,
    Inflate,
    PhaseChanged,
    SessionAction,
    SessionSummary,
)

log = logging.getLogger("console.therapy.manager")

COMMANDS = ("pause", "resume", "skip", "stop", "rep+", "rep-")
END_REASON = {"completed": "completed", "stopped": "stopped", "emergency": "emergency", "occlusion_limit": "alarm"}
"""Runner outcome -> records end reason (the plan's occlusion limit is a safety stop: ``alarm``)."""


class SessionJobs(JobHost):
    """The session job: start, commands, step, inflate, record (a mixin of TherapyManager)."""

    inflate_timeout_s: float

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
                raise CommandRefused(
                    f"{a.id} is on {_a(a.spec.limb)} and {b.id} on {_a(b.spec.limb)}; a pair is two arms or two legs."
                )
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
                    f"{c}: {plan.pct_lop:g} % of LOP {figure(cuff.lop)} is {figure(target)} mmHg, above the limit of {figure(limit)} mmHg."
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
            "station",
            f"session {plan.id} on {'+'.join(cuffs)}: inflating to "
            + ", ".join(f"{c} {figure(runner.target(c))} mmHg" for c in cuffs)
            + f" ({plan.pct_lop:g} % LOP)",
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
            "start_session",
            job.patient_id,
            cuffs=list(job.cuffs),
            plan_id=job.plan.id,
            plan_name=job.plan.name,
            started_at=at,
            target_mmhg=job.runner.target(first),
            target_pct_lop=float(job.plan.pct_lop),
            lop_mmhg=lops.get(first),
            position=self.station.cuffs[first].lop_position or None,
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
                        raise CommandRefused(
                            f"{c} is latched by a {cuff.latch_cause or 'fault'}: acknowledge its alarm first"
                        )
                runner.resume()
            elif command == "skip":
                runner.skip()
            elif command == "stop":
                runner.stop()
            else:
                runner.rep_adjust(1 if command == "rep+" else -1)
        except CommandRefused as exc:
            text = str(exc)
            raise CommandRefused(
                f"{cuff_id}: {text[:1].lower() + text[1:]}" + ("" if text.endswith(".") else ".")
            ) from None
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
                cuff_id, mmhg, purpose=job.purpose, what=f"session {job.plan.id}: inflate {cuff_id} {figure(mmhg)} mmHg"
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
            + (f", {summary.message}" if summary.message else "")
            + ")",
        )
        if job.record_id is None:
            return
        for c, agg in job.aggs.items():
            sec = agg.flush()
            if sec is not None:
                self._rec("session_sample", job.record_id, c, *sec.row())
        fid = summary.fidelity
        self._rec(
            "end_session",
            job.record_id,
            reason,
            ended_at=summary.ended_at + job.wall_offset,
            sets_done=summary.sets_done,
            reps_per_set=list(summary.reps_by_set),
            occlusion_s=max(0.0, summary.occlusion_s),
            fidelity=None if fid is None or not math.isfinite(fid) else min(1.0, max(0.0, fid)),
        )


def _a(limb: str) -> str:
    return f"an {limb}" if limb[:1] in "aeiou" else f"a {limb}"
