"""The session runner: a plan turned into inflate/deflate actions, a set/rep/rest timer and a summary.

Pure logic driven by the station: it feeds every sample (:meth:`SessionRunner.feed_sample`)
and calls :meth:`SessionRunner.step` often (every sample batch, or at 10 Hz);
``step`` returns the actions to carry out (inflate or deflate a cuff, a
metronome beat, a phase change, the final summary). Commands from the operator
(:meth:`pause`, :meth:`resume`, :meth:`skip`, :meth:`stop`, :meth:`rep_adjust`)
queue their actions for the next ``step``. One runner drives one cuff or a pair
(both legs at once): every action applies to every cuff of the session.

Phases (``SessionSnapshot.phase``)::

    inflating -> set -> rest -> inflating? -> set ... -> between -> done
                  \\-> paused -> (inflating ->) set / rest
    any -> stopped (stop, emergency)

Mode ``reps``: a set runs the metronome (one rep every ``cadence_s``) and ends
when the reps are done. The count is the metronome's, corrected by hand, and
held back to the contractions seen in the cuff pressure once they are seen (a
patient trailing the metronome finishes the reps; see
:class:`~console.therapy.reps.SetCount`); the rest holds the cuff (``rest_mode =
"hold"``) or vents it (``"release"``; it is refilled before the next set). Mode ``cycles``
(passive BFR, walking, IPC): ``set`` is an on-phase of ``on_s`` (timed from
reaching the target), ``rest`` an off-phase of ``off_s`` (vented). After the
last set the cuffs vent and the runner sits in ``between`` for
``between_exercises_s`` (reperfusion before the next exercise), then ``done``.

Safety rules the runner keeps (the station's supervisor enforces its own limits
on top, whatever the runner asks):

- **Occlusion limit.** An occlusion episode starts when the runner inflates a
  vented cuff and ends when it vents it. When an episode reaches
  ``plan.max_occlusion_s`` the cuffs vent at once. In mode ``cycles`` the
  on-phase simply ends early (the off-phase follows). In mode ``reps``, during
  a held rest the rest turns into a released one and the session goes on (the
  next set refills, a new episode); anywhere else (a set, inflating, paused)
  the exercise ends there: outcome ``occlusion_limit``, phase ``between``.
- **Alarms.** A HIGH alarm while any cuff is inflated pauses the session and
  vents every cuff (``paused``, message says why); resuming refills first. A
  HIGH alarm while vented, and MEDIUM or LOW alarms, only go in the record and
  the message: the supervisor deals with their causes.
- **Emergency.** :meth:`on_emergency` ends the session (``stopped``, outcome
  ``emergency``) and never inflates again; it also asks for a deflate, which
  is harmless after the station's own DEFLATE ALL.
- **Inflation that does not reach the target** within ``inflate_timeout_s``
  vents and pauses (a leak or a loose cuff); resume tries again.
- The runner never asks for more than the plan's % LOP of each cuff's LOP, and
  refuses to start when that exceeds ``ceiling_mmhg``.

What the runner knows of its cuffs (readings, fidelity, occlusion time) is in
:mod:`~console.therapy.session_cuffs`; the tally of sets and the summary in
:mod:`~console.therapy.session_log`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from console.common.api import CommandRefused, Priority, SessionSnapshot
from console.common.clock import Clock
from console.therapy.reps import SetCount
from console.therapy.session_cuffs import SessionCuffs
from console.therapy.session_log import SessionLog
from console.therapy.session_types import (
    Beat,
    Deflate,
    Finished,
    Inflate,
    PhaseChanged,
    PlanLike,
    SessionAction,
    SessionSummary,
)

TERMINAL = ("done", "stopped")
PAUSED_VENTED = "paused vented by the operator; resume refills"


class SessionRunner:
    """Runs one plan on one cuff or a pair of cuffs; see the module docstring for the rules."""

    def __init__(
        self,
        plan: PlanLike,
        cuff_ids: Sequence[str],
        lop_by_cuff: Mapping[str, float | None],
        clock: Clock,
        patient_id: str,
        *,
        ceiling_mmhg: float | None = None,
        inflate_timeout_s: float = 20.0,
    ) -> None:
        cuffs = tuple(cuff_ids)
        if not cuffs:
            raise ValueError("a session needs at least one cuff")
        if len(set(cuffs)) != len(cuffs):
            raise ValueError(f"a cuff appears twice in {cuffs}")
        if plan.mode not in ("reps", "cycles"):
            raise ValueError(f"unknown plan mode {plan.mode!r}")
        if plan.mode == "reps" and (not plan.sets or plan.cadence_s <= 0):
            raise ValueError(f"plan {plan.id!r} has no sets or no cadence")
        if plan.mode == "cycles" and not (plan.on_s and plan.off_s is not None and plan.cycles):
            raise ValueError(f"plan {plan.id!r} lacks on_s, off_s or cycles")
        if not plan.max_occlusion_s > 0:
            raise ValueError(f"plan {plan.id!r} has no occlusion limit")
        self.plan = plan
        self.cuffs = cuffs
        self.clock = clock
        self.patient_id = patient_id
        self.inflate_timeout_s = inflate_timeout_s
        now = clock.monotonic()
        self._cuffs = SessionCuffs(cuffs, lop_by_cuff, plan.pct_lop, ceiling_mmhg, now)
        self.set_count = len(plan.sets) if plan.mode == "reps" else int(plan.cycles or 0)
        self.started_at = now
        self.ended_at: float | None = None
        self.phase = "inflating"
        self.message = ""
        self.outcome: str | None = None
        self._out: list[SessionAction] = []
        self._set_i = 0
        self._phase_start = now
        self._deadline: float | None = None
        """End of a timed phase (rest, on-phase, between); None while counting reps or inflating."""
        self._count = SetCount(plan.cadence_s)
        self._carry_s = 0.0
        """Time already done in the interrupted set or on-phase (pause, alarm)."""
        self._paused_from: str | None = None
        self._remaining_at_pause: float | None = None
        self._log = SessionLog(plan, patient_id, self._cuffs, now, self.set_count)
        self._summary: SessionSummary | None = None
        self._inflate(now)
        self._enter("inflating", now)

    # ------------------------------------------------------------------ inputs

    def feed_sample(self, cuff_id: str, t: float, pressure: float) -> None:
        """One sample of one of the session's cuffs (others are ignored)."""
        counting = self.phase == "set" and self.plan.mode == "reps"
        self._cuffs.feed(cuff_id, t, pressure, holding=self._holding(), counting=counting)

    # ------------------------------------------------------------------ the clock

    def step(self, now: float) -> list[SessionAction]:
        """Advance the timer to ``now``; return the actions to carry out, in order."""
        self._cuffs.account(now)
        if self.phase not in TERMINAL:
            self._check_occlusion(now)
        ph = self.phase
        if ph == "inflating":
            if self._cuffs.all_reached():
                self._start_work(now)
            elif now - self._phase_start > self.inflate_timeout_s:
                far = self._cuffs.readings()
                self._pause(now, deflate=True, why=f"target not reached in {self.inflate_timeout_s:.0f} s ({far})")
        elif ph == "set":
            if self.plan.mode == "reps":
                self._tick_reps(now)
            elif self._deadline is not None and now >= self._deadline:
                self._end_work(now)
        elif ph == "rest":
            if self._deadline is not None and now >= self._deadline:
                self._next_set(now)
        elif ph == "between":
            if self._deadline is not None and now >= self._deadline:
                self._enter("done", now)
        out, self._out = self._out, []
        return out

    # ------------------------------------------------------------------ commands

    def pause(self, *, vent: bool = False) -> None:
        """Freeze the timer. The cuffs stay up and the occlusion limit runs; ``vent``: they vent
        (a paused session with cuffs up may be vented too) and resuming refills them."""
        now = self.clock.monotonic()
        if vent and self.phase == "paused" and self._cuffs.inflated:
            self._deflate(now, PAUSED_VENTED)
            self.message = PAUSED_VENTED
            return
        if self.phase not in ("inflating", "set", "rest"):
            raise CommandRefused(f"cannot pause: the session is {self.phase}")
        self._pause(now, deflate=vent, why=PAUSED_VENTED if vent else "paused by the operator")

    def resume(self) -> None:
        now = self.clock.monotonic()
        if self.phase != "paused":
            raise CommandRefused(f"cannot resume: the session is {self.phase}, not paused")
        src = self._paused_from or "set"
        remaining = self._remaining_at_pause
        self._paused_from = None
        self._remaining_at_pause = None
        self.message = ""
        if src == "rest":
            self._deadline = now + (remaining or 0.0)
            self._enter("rest", now, keep_deadline=True)
            return
        if not self._cuffs.inflated:
            self._inflate(now)
            self._enter("inflating", now)
            return
        if src == "inflating":
            self._enter("inflating", now)
            return
        self._start_work(now)

    def skip(self) -> None:
        """End the current set or rest now (inflating: start the set without waiting)."""
        now = self.clock.monotonic()
        if self.phase == "set":
            self._end_work(now)
        elif self.phase == "rest":
            self._next_set(now)
        elif self.phase == "inflating":
            self._start_work(now)
        elif self.phase == "paused":
            raise CommandRefused("resume before skipping")
        else:
            raise CommandRefused(f"nothing to skip: the session is {self.phase}")

    def stop(self) -> None:
        """End the session now and vent every cuff."""
        now = self.clock.monotonic()
        if self.phase in TERMINAL:
            raise CommandRefused(f"the session is already {self.phase}")
        if self.phase == "between":
            self._enter("done", now)
            return
        self._record_partial(now)
        self._deflate(now, "session stopped")
        self._finish(now, "stopped", "stopped by the operator", final="stopped")

    def rep_adjust(self, delta: int) -> None:
        """Correct the rep count by hand (+1 / -1): the current set, or the last one during a rest."""
        if self.plan.mode != "reps":
            raise CommandRefused("this plan has no reps to correct")
        if delta not in (-1, 1):
            raise CommandRefused("reps are corrected one at a time")
        if self.phase == "set" or (self.phase == "paused" and self._paused_from == "set"):
            if self._current_rep(self.clock.monotonic()) + delta >= 0:
                self._count.adjust += delta
            return
        if self.phase in ("rest", "between", "done", "stopped") and self._log.reps_by_set:
            self._log.reps_by_set[-1] = max(0, self._log.reps_by_set[-1] + delta)
            if self._summary is not None:
                self._summary = self._log.summary(self._summary.ended_at, self._summary.outcome, self._summary.message)
            return
        raise CommandRefused(f"no set to correct while {self.phase}")

    def on_alarm(self, priority: Priority | str, cuff_id: str | None = None, cause: str = "") -> None:
        """An alarm was raised on one of the session's cuffs (or the station)."""
        now = self.clock.monotonic()
        prio = Priority(priority)
        self._log.alarms.append((now, prio.value, cause))
        if self.phase in TERMINAL or self.phase == "between":
            return
        where = f" on {cuff_id}" if cuff_id else ""
        if prio is Priority.HIGH and self._cuffs.inflated:
            if self.phase == "paused":
                self._deflate(now, "high alarm")
                self.message = f"high alarm{where} ({cause or 'alarm'}): cuffs vented; resume refills"
            else:
                self._pause(
                    now, deflate=True, why=f"high alarm{where} ({cause or 'alarm'}): cuffs vented; resume refills"
                )
        else:
            self.message = f"{prio.value} alarm{where}: {cause or 'see alarms'}"

    def on_emergency(self) -> None:
        """The station deflated everything: the session ends and never inflates again."""
        now = self.clock.monotonic()
        if self.phase in TERMINAL:
            return
        if self.phase == "between":
            self._enter("stopped", now)
            return
        self._record_partial(now)
        self._deflate(now, "emergency deflate")
        self._finish(now, "emergency", "emergency deflate", final="stopped")

    # ------------------------------------------------------------------ outputs

    @property
    def finished(self) -> bool:
        """True once the summary exists (``between``, ``done`` or ``stopped``)."""
        return self._summary is not None

    @property
    def inflated(self) -> bool:
        """Whether the runner wants the cuffs inflated now."""
        return self._cuffs.inflated

    def target(self, cuff_id: str) -> float:
        return self._cuffs.target(cuff_id)

    def snapshot(self) -> SessionSnapshot:
        now = self.clock.monotonic()
        plan = self.plan
        shown = self._paused_from if self.phase == "paused" else self.phase
        remaining: float | None = None
        if self.phase == "paused":
            remaining = self._remaining_at_pause
        elif self._deadline is not None and self.phase in ("rest", "set", "between"):
            remaining = max(0.0, self._deadline - now)
        reps_mode = plan.mode == "reps"
        set_i = min(self._set_i, self.set_count - 1)
        rep = 0
        if reps_mode:
            if self.phase == "set" or (self.phase == "paused" and shown == "set"):
                rep = self._current_rep(now)
            elif self.phase in ("rest", "between", "done", "stopped") and self._log.reps_by_set:
                rep = self._log.reps_by_set[-1]
        detected = 0
        if reps_mode:
            if self.phase in ("set", "paused", "inflating"):
                detected = self._detected_now()
            elif self._log.detected_by_set:
                detected = self._log.detected_by_set[-1]
        return SessionSnapshot(
            plan_id=plan.id,
            plan_name=plan.name,
            patient_id=self.patient_id,
            phase=self.phase,
            set_index=set_i + 1,
            set_count=self.set_count,
            rep=rep,
            reps_target=plan.sets[set_i] if reps_mode else 0,
            beat=bool(reps_mode and self.phase == "set" and self._count.beat(now)),
            cadence_s=plan.cadence_s if reps_mode else 0.0,
            phase_remaining_s=remaining,
            cuffs=self.cuffs,
            detected_reps=detected,
            message=self.message,
        )

    def summary(self) -> SessionSummary:
        """The final summary once finished; before that, the figures so far (outcome ``running``)."""
        if self._summary is not None:
            return self._summary
        now = self.clock.monotonic()
        self._cuffs.account(now)
        return self._log.summary(now, "running", self.message)

    # ------------------------------------------------------------------ internals

    def _holding(self) -> bool:
        """Cuffs should be at target now (fidelity counts): a set, or a held rest."""
        return self._cuffs.inflated and self.phase in ("set", "rest")

    def _enter(self, phase: str, now: float, *, keep_deadline: bool = False) -> None:
        self.phase = phase
        self._phase_start = now
        if not keep_deadline:
            self._deadline = None
        self._out.append(PhaseChanged(phase, min(self._set_i, self.set_count - 1) + 1, self.message))

    def _inflate(self, now: float) -> None:
        for c, tr in self._cuffs.tracks.items():
            self._out.append(Inflate(c, tr.target))
        self._cuffs.inflate(now)

    def _deflate(self, now: float, reason: str) -> None:
        for c in self._cuffs.tracks:
            self._out.append(Deflate(c, reason))
        self._cuffs.vent(now)

    def _start_work(self, now: float) -> None:
        """Begin (or continue after a pause) the current set / on-phase; cuffs are at target."""
        plan = self.plan
        carry = self._carry_s
        if plan.mode == "reps":
            if carry == 0.0:
                self._cuffs.reset_detectors()
            self._count.start(now, carry)  # resumes at the start of the interrupted rep
            self._enter("set", now)
        else:
            assert plan.on_s is not None
            self._deadline = now + max(0.0, plan.on_s - carry)
            self._enter("set", now, keep_deadline=True)
        self._carry_s = 0.0
        if plan.mode == "reps":
            self._tick_reps(now)

    def _current_rep(self, now: float) -> int:
        """Reps done in this set (:meth:`SetCount.reps`: the metronome held back to the contractions seen)."""
        carry = self._carry_s if self.phase == "paused" else None
        return self._count.reps(now, self._detected_now(), paused_carry_s=carry)

    def _detected_now(self) -> int:
        return self._cuffs.detected()

    def _tick_reps(self, now: float) -> None:
        assert self._count.metronome is not None
        if self._current_rep(now) >= self.plan.sets[self._set_i]:
            self._end_work(now)
            return
        for rep in self._count.new_beats(now):
            self._out.append(Beat(self._set_i + 1, rep))

    def _record_partial(self, now: float) -> None:
        """A set or on-phase cut short (stop, emergency, occlusion limit): record what was done."""
        src = self._paused_from if self.phase == "paused" else self.phase
        if src == "set" and len(self._log.reps_by_set) == self._set_i:
            if self.plan.mode == "reps":
                reps = min(self._current_rep(now), self.plan.sets[self._set_i])
                self._log.record_set(reps, self._detected_now(), stopped=True)
            else:
                self._log.record_set(0, 0, stopped=True)

    def _end_work(self, now: float) -> None:
        """The set (or on-phase) is over: record it, then rest, or finish after the last one."""
        plan = self.plan
        if plan.mode == "reps":
            self._log.record_set(min(self._current_rep(now), plan.sets[self._set_i]), self._detected_now())
        else:
            self._log.record_set(0, 0)
        self._count.stop()
        self._carry_s = 0.0
        if self._set_i + 1 >= self.set_count:
            self._deflate(now, "plan complete")
            self._finish(now, "completed", "plan complete", final="between")
            return
        if plan.mode == "cycles" or plan.rest_mode == "release":
            self._deflate(now, "released rest")
        rest = plan.off_s if plan.mode == "cycles" else plan.rest_s
        self._deadline = now + float(rest or 0.0)
        self._enter("rest", now, keep_deadline=True)

    def _next_set(self, now: float) -> None:
        self._set_i += 1
        self._carry_s = 0.0
        if self._cuffs.inflated:
            self._start_work(now)
        else:
            self._inflate(now)
            self._enter("inflating", now)

    def _pause(self, now: float, *, deflate: bool, why: str) -> None:
        src = self.phase
        if src == "set":
            if self.plan.mode == "reps" and self._count.metronome is not None:
                self._carry_s = self._count.metronome.elapsed(now)
                self._remaining_at_pause = None
            elif self._deadline is not None:
                assert self.plan.on_s is not None
                left = max(0.0, self._deadline - now)
                self._carry_s = self.plan.on_s - left
                self._remaining_at_pause = left
        elif src == "rest":
            self._remaining_at_pause = max(0.0, (self._deadline or now) - now)
        else:
            self._remaining_at_pause = None
        self._paused_from = src
        if deflate:
            self._deflate(now, why)
        self.message = why
        self._deadline = None
        self._enter("paused", now)

    def _check_occlusion(self, now: float) -> None:
        episode = self._cuffs.episode_s(now)
        if episode is None or episode < self.plan.max_occlusion_s:
            return
        limit = self.plan.max_occlusion_s
        why = f"occlusion limit of {limit / 60:.0f} min reached: cuffs vented"
        src = self._paused_from if self.phase == "paused" else self.phase
        if self.plan.mode == "cycles" and src == "set":
            if self.phase == "paused":
                self._paused_from = None
                self.phase = "set"
            self._deflate(now, why)
            self.message = why
            self._end_work(now)
            return
        if src == "rest":
            # A held rest becomes a released one; the next set refills.
            self._deflate(now, why)
            self.message = why
            return
        self._record_partial(now)
        self._deflate(now, why)
        self._finish(now, "occlusion_limit", why, final="between")

    def _finish(self, now: float, outcome: str, message: str, *, final: str) -> None:
        self.outcome = outcome
        self.ended_at = now
        self.message = message
        self._paused_from = None
        self._count.stop()
        self._summary = self._log.summary(now, outcome, message)
        if final == "between":
            self._deadline = now + self.plan.between_exercises_s
            self._enter("between", now, keep_deadline=True)
        else:
            self._enter(final, now)
        self._out.append(Finished(self._summary))
