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
patient trailing the metronome finishes the reps; see ``LAG_SEEN_MIN``); the rest holds the cuff (``rest_mode = "hold"``) or
vents it (``"release"``; it is refilled before the next set). Mode ``cycles``
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
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from console.common.api import CommandRefused, Priority, SessionSnapshot
from console.common.clock import Clock
from console.common.facts import FIDELITY_BAND
from console.therapy.reps import ContractionDetector, Metronome
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

REACHED_BAND = 0.05
"""Inflating ends when every cuff is within this share of its target (at least 3 mmHg)."""
REACHED_MIN_MMHG = 3.0

LAG_SEEN_MIN = 3
"""Contractions seen in a set before the rep count trusts them to hold the metronome back.
With fewer (a passive patient, or squeezes too small to see), the metronome alone counts."""

LAG_ALLOWED = 1
"""How many reps the patient may trail the metronome before the count waits for them."""

MAX_SAMPLE_GAP_S = 0.5
"""A gap between samples longer than this is not counted towards fidelity."""


@dataclass
class _CuffTrack:
    target: float
    pressure: float | None = None
    last_t: float | None = None
    held_s: float = 0.0
    within_s: float = 0.0
    occlusion_s: float = 0.0
    detector: ContractionDetector = field(default_factory=ContractionDetector)


TERMINAL = ("done", "stopped")


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
        self._track: dict[str, _CuffTrack] = {}
        for c in cuffs:
            lop = lop_by_cuff.get(c)
            if lop is None or not math.isfinite(lop) or lop <= 0:
                raise ValueError(f"cuff {c} has no LOP: measure or enter it before a % LOP session")
            target = round(plan.pct_lop / 100.0 * lop, 1)
            if ceiling_mmhg is not None and target > ceiling_mmhg:
                raise ValueError(
                    f"cuff {c}: {plan.pct_lop:g} % of LOP {lop:g} is {target:g} mmHg, above the ceiling "
                    f"of {ceiling_mmhg:g} mmHg"
                )
            self._track[c] = _CuffTrack(target)
        self.set_count = len(plan.sets) if plan.mode == "reps" else int(plan.cycles or 0)
        now = clock.monotonic()
        self.started_at = now
        self.ended_at: float | None = None
        self.phase = "inflating"
        self.message = ""
        self.outcome: str | None = None
        self._out: list[SessionAction] = []
        self._set_i = 0
        self._inflated = False
        self._episode_start: float | None = None
        self._occ_mark = now
        self._longest_episode = 0.0
        self._phase_start = now
        self._deadline: float | None = None
        """End of a timed phase (rest, on-phase, between); None while counting reps or inflating."""
        self._metronome: Metronome | None = None
        self._adjust = 0
        self._beats_sent = 0
        self._carry_s = 0.0
        """Time already done in the interrupted set or on-phase (pause, alarm)."""
        self._paused_from: str | None = None
        self._remaining_at_pause: float | None = None
        self._reps_by_set: list[int] = []
        self._detected_by_set: list[int] = []
        self._alarms: list[tuple[float, str, str]] = []
        self._summary: SessionSummary | None = None
        self._inflate(now)
        self._enter("inflating", now)

    # ------------------------------------------------------------------ inputs

    def feed_sample(self, cuff_id: str, t: float, pressure: float) -> None:
        """One sample of one of the session's cuffs (others are ignored)."""
        tr = self._track.get(cuff_id)
        if tr is None or not (math.isfinite(t) and math.isfinite(pressure)):
            return
        if tr.last_t is not None and t < tr.last_t:
            return
        if self._holding() and tr.last_t is not None:
            dt = t - tr.last_t
            if 0 < dt <= MAX_SAMPLE_GAP_S:
                tr.held_s += dt
                if abs(pressure - tr.target) <= FIDELITY_BAND * tr.target:
                    tr.within_s += dt
        tr.pressure = pressure
        tr.last_t = t
        if self.phase == "set" and self.plan.mode == "reps":
            tr.detector.feed(t, pressure)

    # ------------------------------------------------------------------ the clock

    def step(self, now: float) -> list[SessionAction]:
        """Advance the timer to ``now``; return the actions to carry out, in order."""
        self._account_occlusion(now)
        if self.phase not in TERMINAL:
            self._check_occlusion(now)
        ph = self.phase
        if ph == "inflating":
            if self._all_reached():
                self._start_work(now)
            elif now - self._phase_start > self.inflate_timeout_s:
                far = ", ".join(
                    f"{c} {tr.pressure:.0f}/{tr.target:.0f}" if tr.pressure is not None else f"{c} no reading"
                    for c, tr in self._track.items()
                )
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

    def pause(self) -> None:
        """Freeze the timer; the cuffs stay as they are (the occlusion limit still runs)."""
        now = self.clock.monotonic()
        if self.phase not in ("inflating", "set", "rest"):
            raise CommandRefused(f"cannot pause: the session is {self.phase}")
        self._pause(now, deflate=False, why="paused by the operator")

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
        if not self._inflated:
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
                self._adjust += delta
            return
        if self.phase in ("rest", "between", "done", "stopped") and self._reps_by_set:
            self._reps_by_set[-1] = max(0, self._reps_by_set[-1] + delta)
            if self._summary is not None:
                self._summary = self._build_summary(
                    self._summary.ended_at, self._summary.outcome, self._summary.message
                )
            return
        raise CommandRefused(f"no set to correct while {self.phase}")

    def on_alarm(self, priority: Priority | str, cuff_id: str | None = None, cause: str = "") -> None:
        """An alarm was raised on one of the session's cuffs (or the station)."""
        now = self.clock.monotonic()
        prio = Priority(priority)
        self._alarms.append((now, prio.value, cause))
        if self.phase in TERMINAL or self.phase == "between":
            return
        where = f" on {cuff_id}" if cuff_id else ""
        if prio is Priority.HIGH and self._inflated:
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
        return self._inflated

    def target(self, cuff_id: str) -> float:
        return self._track[cuff_id].target

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
            elif self.phase in ("rest", "between", "done", "stopped") and self._reps_by_set:
                rep = self._reps_by_set[-1]
        detected = 0
        if reps_mode:
            if self.phase in ("set", "paused", "inflating"):
                detected = self._detected_now()
            elif self._detected_by_set:
                detected = self._detected_by_set[-1]
        return SessionSnapshot(
            plan_id=plan.id,
            plan_name=plan.name,
            patient_id=self.patient_id,
            phase=self.phase,
            set_index=set_i + 1,
            set_count=self.set_count,
            rep=rep,
            reps_target=plan.sets[set_i] if reps_mode else 0,
            beat=bool(reps_mode and self.phase == "set" and self._metronome and self._metronome.beat(now)),
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
        self._account_occlusion(now)
        return self._build_summary(now, "running", self.message)

    # ------------------------------------------------------------------ internals

    def _holding(self) -> bool:
        """Cuffs should be at target now (fidelity counts): a set, or a held rest."""
        return self._inflated and self.phase in ("set", "rest")

    def _enter(self, phase: str, now: float, *, keep_deadline: bool = False) -> None:
        self.phase = phase
        self._phase_start = now
        if not keep_deadline:
            self._deadline = None
        self._out.append(PhaseChanged(phase, min(self._set_i, self.set_count - 1) + 1, self.message))

    def _inflate(self, now: float) -> None:
        for c, tr in self._track.items():
            self._out.append(Inflate(c, tr.target))
        if not self._inflated:
            self._inflated = True
            self._episode_start = now
            self._occ_mark = now

    def _deflate(self, now: float, reason: str) -> None:
        self._account_occlusion(now)
        for c in self._track:
            self._out.append(Deflate(c, reason))
        if self._inflated and self._episode_start is not None:
            self._longest_episode = max(self._longest_episode, now - self._episode_start)
        self._inflated = False
        self._episode_start = None

    def _account_occlusion(self, now: float) -> None:
        if self._inflated:
            mark = self._occ_mark
            if now > mark:
                for tr in self._track.values():
                    tr.occlusion_s += now - mark
                self._occ_mark = now

    def _all_reached(self) -> bool:
        for tr in self._track.values():
            if tr.pressure is None:
                return False
            if abs(tr.pressure - tr.target) > max(REACHED_MIN_MMHG, REACHED_BAND * tr.target):
                return False
        return True

    def _start_work(self, now: float) -> None:
        """Begin (or continue after a pause) the current set / on-phase; cuffs are at target."""
        plan = self.plan
        carry = self._carry_s
        if plan.mode == "reps":
            if carry == 0.0:
                for tr in self._track.values():
                    tr.detector.reset()
                self._adjust = 0
                self._beats_sent = 0
            # Resume at the start of the interrupted rep.
            done = int(carry / plan.cadence_s + 1e-9)
            self._metronome = Metronome(now - done * plan.cadence_s, plan.cadence_s)
            self._beats_sent = done
            self._enter("set", now)
        else:
            assert plan.on_s is not None
            self._deadline = now + max(0.0, plan.on_s - carry)
            self._enter("set", now, keep_deadline=True)
        self._carry_s = 0.0
        if plan.mode == "reps":
            self._tick_reps(now)

    def _current_rep(self, now: float) -> int:
        """Reps done in this set: the metronome's count, held back to what the patient really did
        once contractions are seen in the cuff pressure, plus the therapist's corrections."""
        if self._metronome is None:
            return 0
        if self.phase == "paused":
            paced = int(self._carry_s / self.plan.cadence_s + 1e-9)
        else:
            paced = self._metronome.reps_done(now)
        seen = self._detected_now()
        if seen >= LAG_SEEN_MIN and paced > seen + LAG_ALLOWED:
            # The patient is behind the metronome (fatigue, a slow start): the set waits for the reps.
            paced = seen + LAG_ALLOWED
        return max(0, paced + self._adjust)

    def _detected_now(self) -> int:
        return max((tr.detector.count for tr in self._track.values()), default=0)

    def _tick_reps(self, now: float) -> None:
        m = self._metronome
        assert m is not None
        target = self.plan.sets[self._set_i]
        rep = self._current_rep(now)
        if rep >= target:
            self._end_work(now)
            return
        periods = m.reps_done(now) + 1  # the period under way has begun
        while self._beats_sent < periods:
            self._beats_sent += 1
            self._out.append(Beat(self._set_i + 1, self._beats_sent + self._adjust))

    def _record_partial(self, now: float) -> None:
        """A set or on-phase cut short (stop, emergency, occlusion limit): record what was done."""
        src = self._paused_from if self.phase == "paused" else self.phase
        if src == "set" and len(self._reps_by_set) == self._set_i:
            if self.plan.mode == "reps":
                self._reps_by_set.append(min(self._current_rep(now), self.plan.sets[self._set_i]))
                self._detected_by_set.append(self._detected_now())
            else:
                self._reps_by_set.append(0)
                self._detected_by_set.append(0)

    def _end_work(self, now: float) -> None:
        """The set (or on-phase) is over: record it, then rest, or finish after the last one."""
        plan = self.plan
        if plan.mode == "reps":
            self._reps_by_set.append(min(self._current_rep(now), plan.sets[self._set_i]))
            self._detected_by_set.append(self._detected_now())
        else:
            self._reps_by_set.append(0)
            self._detected_by_set.append(0)
        self._metronome = None
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
        if self._inflated:
            self._start_work(now)
        else:
            self._inflate(now)
            self._enter("inflating", now)

    def _pause(self, now: float, *, deflate: bool, why: str) -> None:
        src = self.phase
        if src == "set":
            if self.plan.mode == "reps" and self._metronome is not None:
                self._carry_s = self._metronome.elapsed(now)
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
        if not self._inflated or self._episode_start is None:
            return
        if now - self._episode_start < self.plan.max_occlusion_s:
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
        self._metronome = None
        self._summary = self._build_summary(now, outcome, message)
        if final == "between":
            self._deadline = now + self.plan.between_exercises_s
            self._enter("between", now, keep_deadline=True)
        else:
            self._enter(final, now)
        self._out.append(Finished(self._summary))

    def _build_summary(self, now: float, outcome: str, message: str) -> SessionSummary:
        held = sum(tr.held_s for tr in self._track.values())
        within = sum(tr.within_s for tr in self._track.values())
        longest = self._longest_episode
        if self._inflated and self._episode_start is not None:
            longest = max(longest, now - self._episode_start)
        reps = tuple(self._reps_by_set)
        return SessionSummary(
            plan_id=self.plan.id,
            plan_name=self.plan.name,
            patient_id=self.patient_id,
            cuffs=self.cuffs,
            mode=self.plan.mode,
            outcome=outcome,
            started_at=self.started_at,
            ended_at=now,
            sets_planned=self.set_count,
            sets_done=len(reps),
            reps_by_set=reps,
            detected_by_set=tuple(self._detected_by_set),
            reps_done=sum(reps),
            occlusion_s=max(tr.occlusion_s for tr in self._track.values()),
            occlusion_by_cuff={c: tr.occlusion_s for c, tr in self._track.items()},
            longest_episode_s=longest,
            fidelity=(within / held) if held > 0 else None,
            fidelity_by_cuff={c: (tr.within_s / tr.held_s if tr.held_s > 0 else None) for c, tr in self._track.items()},
            alarms=tuple(self._alarms),
            message=message,
        )
