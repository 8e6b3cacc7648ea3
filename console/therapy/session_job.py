"""A plan's sets and reps on live cuffs: the session jobs of :class:`~console.therapy.manager.TherapyManager`.

Checks that the plan may run on the cuffs, then carries out what its
:class:`~console.therapy.session.SessionRunner` asks through the station
(``purpose="manual"``, every rule, or ``"full_occlusion"`` for a plan that says
so: up to 100 % LOP, never above the ceiling) and keeps the session's record:
opened at the start, a row a second, closed with the runner's summary. High
alarms on a session's cuffs pause it and vent them (the runner's rule); an
emergency ends every session (recorded ``emergency``).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Mapping
from functools import partial

from console.common.api import AlarmSnapshot, CommandRefused, Priority
from console.common.clock import Clock
from console.common.facts import PATIENT_ID
from console.common.figures import figure
from console.records.rows import SecondAggregator, SessionCuffRecord
from console.station.limits import latched_refusal
from console.therapy.cuff_ops import check_free, concerns, deflate, wait_first_reading
from console.therapy.driver import Driver
from console.therapy.jobs import JobBoard, SessionJob
from console.therapy.record_keeping import SafeRecords
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
from console.therapy.station_port import TherapyStation

log = logging.getLogger(__name__)

COMMANDS = ("pause", "pause-vent", "resume", "skip", "stop", "rep+", "rep-")
END_REASON = {"completed": "completed", "stopped": "stopped", "emergency": "emergency", "occlusion_limit": "alarm"}
"""Runner outcome -> records end reason (the plan's occlusion limit is a safety stop: ``alarm``)."""


class SessionJobs:
    """The session jobs: start, commands, step, inflate, record.

    Args:
        station: the engine, reached only through its public methods.
        clock: the station's clock.
        board: which job each cuff has (shared with the measurements).
        driver: started when a session starts, kicked when one must step at once.
        records: where sessions are recorded.
        inflate_timeout_s: a session that does not reach its target within this pauses and vents.
    """

    def __init__(
        self,
        station: TherapyStation,
        clock: Clock,
        board: JobBoard,
        driver: Driver,
        records: SafeRecords,
        *,
        inflate_timeout_s: float,
    ) -> None:
        self.station = station
        self.clock = clock
        self.board = board
        self.driver = driver
        self.records = records
        self.inflate_timeout_s = inflate_timeout_s

    async def start(self, cuff_ids: list[str], plan_id: str, patient_id: str) -> None:
        """Start a plan on one cuff or a pair; refused with a sentence when it may not run."""
        if isinstance(cuff_ids, str):
            cuff_ids = [cuff_ids]
        cuffs = tuple(str(c) for c in cuff_ids)
        if not 1 <= len(cuffs) <= 2:
            raise CommandRefused("A session runs on one cuff or a pair of cuffs.")
        if len(set(cuffs)) != len(cuffs):
            raise CommandRefused(f"{cuffs[0]} is named twice; a pair is two different cuffs.")
        plan = self.station.config.plans.get(plan_id) if isinstance(plan_id, str) else None
        if plan is None:
            raise CommandRefused(f"No plan {plan_id!r}.")
        pid = str(patient_id).strip() if isinstance(patient_id, str) else ""
        if not PATIENT_ID.fullmatch(pid):
            raise CommandRefused(
                f"A patient id is a pseudonym of 1 to 64 letters, digits, '.', '_' or '-' (got {patient_id!r})."
            )
        for c in cuffs:
            await wait_first_reading(self.station, c)
        for c in cuffs:
            check_free(self.station, self.board, c)
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
            cuff, ctrl = self.station.lookup(c)
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
            check_free(self.station, self.board, c)
        job = SessionJob(
            cuffs,
            runner=runner,
            plan=plan,
            patient_id=pid,
            purpose="full_occlusion" if plan.full_occlusion else "manual",
            wall_offset=self.clock.wall() - self.clock.monotonic(),
            aggs={c: SecondAggregator() for c in cuffs},
        )
        job.record_id = self._open_record(job, lops)
        for c in cuffs:
            self.board.sessions[c] = job
            self.board.lops.pop(c, None)
            self.board.feeds[c] = job
        self.station.record_command(
            "station",
            f"session {plan.id} on {'+'.join(cuffs)}: inflating to "
            + ", ".join(f"{c} {figure(runner.target(c))} mmHg" for c in cuffs)
            + f" ({plan.pct_lop:g} % LOP)",
        )
        self.tick(job, self.clock.monotonic())
        self.station.mark_changed()
        self.driver.ensure_running()

    def _open_record(self, job: SessionJob, lops: Mapping[str, float | None]) -> int | None:
        if not self.records.enabled:
            return None
        at = self.clock.wall()
        first = job.cuffs[0]
        self.records.add_patient(job.patient_id, at=at)
        return self.records.start_session(
            job.patient_id,
            cuffs=list(job.cuffs),
            plan_id=job.plan.id,
            plan_name=job.plan.name,
            started_at=at,
            target_mmhg=job.runner.target(first),
            target_pct_lop=float(job.plan.pct_lop),
            lop_mmhg=lops.get(first),
            position=self.station.cuffs[first].lop_position or None,
            per_cuff=[self._cuff_row(job, c, lops.get(c)) for c in job.cuffs],
            sets_planned=job.runner.set_count,
        )

    def _cuff_row(self, job: SessionJob, cuff_id: str, lop: float | None) -> SessionCuffRecord:
        """What the record keeps of one cuff at the start: its own LOP (and where it came from) and target."""
        cuff = self.station.cuffs[cuff_id]
        return SessionCuffRecord(
            cuff_id=cuff_id,
            label=cuff.spec.label or cuff.spec.limb,
            limb=cuff.spec.limb,
            target_mmhg=job.runner.target(cuff_id),
            lop_mmhg=lop,
            lop_id=cuff.lop_record_id,
            position=cuff.lop_position or None,
            cuff_width_cm=cuff.lop_width_cm,
            tolerance_mmhg=cuff.spec.tolerance,
        )

    async def command(self, cuff_id: str, command: str) -> None:
        """``pause`` | ``pause-vent`` | ``resume`` | ``skip`` | ``stop`` | ``rep+`` | ``rep-`` on this cuff's session.

        ``pause-vent`` vents through the station's own deflate (as the end of a set does); a deflate the
        controller does not obey leaves the station's high alarm (DEFLATE_UNCONFIRMED or RESIDUAL_PRESSURE) and retries."""
        if command not in COMMANDS:
            raise CommandRefused(f"Unknown session command {command!r} (one of {', '.join(COMMANDS)}).")
        self.station.lookup(cuff_id)
        job = self.board.sessions.get(cuff_id)
        if job is None or job.runner.phase in TERMINAL:
            raise CommandRefused(f"{cuff_id}: no session is running.")
        runner = job.runner
        try:
            if command in ("pause", "pause-vent"):
                runner.pause(vent=command == "pause-vent")
            elif command == "resume":
                for c in job.cuffs:
                    cuff, ctrl = self.station.lookup(c)
                    if not ctrl.online:
                        raise CommandRefused(f"controller {ctrl.id} of {c} is offline")
                    if cuff.latched:
                        raise CommandRefused(latched_refusal(c, cuff.latch_cause))
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
        self.tick(job, self.clock.monotonic())
        self.station.mark_changed()
        self.driver.ensure_running()

    # ------------------------------------------------------------------ the driver's step and the samples

    def tick(self, job: SessionJob, now: float) -> None:
        """Step one session to ``now`` and carry out what its runner asks."""
        runner = job.runner
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
            self.board.unfeed(job)

    def feed(self, job: SessionJob, cuff_id: str, t: float, p: float) -> None:
        """One sample of one of the session's cuffs (hot path): to the runner, and a row a second to the records."""
        job.runner.feed_sample(cuff_id, t, p)
        if job.record_id is not None and not job.recorded_end:
            sec = job.aggs[cuff_id].add(t + job.wall_offset, p, self.station.cuffs[cuff_id].target)
            if sec is not None:
                self.records.session_sample(job.record_id, cuff_id, sec)

    def _apply(self, job: SessionJob, actions: list[SessionAction], *, vented: bool = False) -> None:
        """Carry out the runner's actions; ``vented``: the station already deflated everything."""
        for act in actions:
            if isinstance(act, Inflate):
                job.then(partial(self._inflate, job, act.cuff_id, act.mmhg))
            elif isinstance(act, Deflate):
                job.inflated.discard(act.cuff_id)
                if not vented:
                    job.then(partial(deflate, self.station, act.cuff_id, act.reason or "session"))
            elif isinstance(act, Finished):
                self._close_record(job, act.summary)
            elif isinstance(act, PhaseChanged):
                if job.record_id is not None and not job.recorded_end:
                    # In the audit trail, so the session's plots can shade its sets and rests.
                    self.station.record_command(
                        "station", f"session #{job.record_id} phase {act.phase} {act.set_index}"
                    )
                self.station.mark_changed()
            elif isinstance(act, Beat):
                self.station.mark_changed()

    async def _inflate(self, job: SessionJob, cuff_id: str, mmhg: float) -> None:
        runner = job.runner
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
            self.driver.kick()

    # ------------------------------------------------------------------ what the station tells

    def on_alarm(self, alarm: AlarmSnapshot, prio: Priority) -> bool:
        """Tell the runners of the sessions it concerns; True when one must step at once (HIGH)."""
        kick = False
        for job in self.board.session_jobs():
            runner = job.runner
            if runner.phase in TERMINAL or not concerns(self.station, alarm, job.cuffs):
                continue
            cuff = alarm.cuff if alarm.cuff in job.cuffs else None
            runner.on_alarm(prio, cuff, alarm.cause)
            kick = kick or prio is Priority.HIGH
        return kick

    def on_emergency(self, now: float) -> None:
        """The station sent DEFLATE ALL: every session ends (``emergency``)."""
        for job in self.board.session_jobs():
            runner = job.runner
            if runner.phase in TERMINAL:
                continue
            try:
                runner.on_emergency()
                self._apply(job, runner.step(now), vented=True)
            except Exception:
                log.exception("therapy: ending session on %s after the emergency failed", job.cuffs)

    def on_station_stopped(self, now: float) -> None:
        """The station stopped (it deflated everything): close what still runs, as stopped."""
        for job in self.board.session_jobs():
            runner = job.runner
            if runner.phase in TERMINAL:
                continue
            with contextlib.suppress(Exception):
                runner.stop()
                runner.message = "station stopped"
                self._apply(job, runner.step(now), vented=True)
            job.active = False

    def abandon(self, job: SessionJob) -> None:
        """The job crashed (its cuffs are already being vented): stop it and close its record as ``crash``."""
        job.active = False
        runner = job.runner
        if job.recorded_end:
            return
        with contextlib.suppress(Exception):
            runner.stop()
        with contextlib.suppress(Exception):
            summary = runner.summary()
            job.recorded_end = False
            if job.record_id is not None:
                job.recorded_end = True
                self.records.end_session(
                    job.record_id,
                    "crash",
                    ended_at=self.clock.wall(),
                    sets_done=summary.sets_done,
                    reps_per_set=list(summary.reps_by_set),
                    occlusion_s=max(0.0, summary.occlusion_s),
                    fidelity=None,
                )

    # ------------------------------------------------------------------ the record

    def _close_record(self, job: SessionJob, summary: SessionSummary) -> None:
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
                self.records.session_sample(job.record_id, c, sec)
        fid = summary.fidelity
        self.records.end_session(
            job.record_id,
            reason,
            ended_at=summary.ended_at + job.wall_offset,
            sets_done=summary.sets_done,
            reps_per_set=list(summary.reps_by_set),
            occlusion_s=max(0.0, summary.occlusion_s),
            fidelity=_share(fid),
            sets_stopped=summary.sets_stopped,
            per_cuff={
                c: (max(0.0, summary.occlusion_by_cuff.get(c, 0.0)), _share(summary.fidelity_by_cuff.get(c)))
                for c in summary.cuffs
            },
        )


def _share(x: float | None) -> float | None:
    """A fidelity the records accept: None when unknown, else clamped to 0..1."""
    return None if x is None or not math.isfinite(x) else min(1.0, max(0.0, x))


def _a(limb: str) -> str:
    return f"an {limb}" if limb[:1] in "aeiou" else f"a {limb}"
