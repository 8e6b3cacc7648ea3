"""The session runner, driven through whole plans on a manual clock with a simulated cuff."""

from __future__ import annotations

import dataclasses
import math

import pytest

from console.common.api import CommandRefused, Priority
from console.common.clock import ManualClock
from console.therapy.plan_library import BUILTIN_PLANS
from console.therapy.plans import Plan
from console.therapy.reps import LAG_ALLOWED, LAG_SEEN_MIN
from console.therapy.session import SessionRunner
from console.therapy.session_types import Beat, Deflate, Finished, Inflate, PhaseChanged

DT = 0.1


class SimCuffs:
    """Cuffs that fill at 60 mmHg/s and vent at 100 mmHg/s towards what the runner commands."""

    def __init__(self, ids: list[str], *, stuck: set[str] | None = None, bias: dict[str, float] | None = None) -> None:
        self.target = {c: 0.0 for c in ids}
        self.pressure = {c: 0.0 for c in ids}
        self.stuck = stuck or set()
        self.bias = bias or {}
        self.max_target = {c: 0.0 for c in ids}

    def apply(self, actions: list) -> None:
        for a in actions:
            if isinstance(a, Inflate):
                self.target[a.cuff_id] = a.mmhg
                self.max_target[a.cuff_id] = max(self.max_target[a.cuff_id], a.mmhg)
            elif isinstance(a, Deflate):
                self.target[a.cuff_id] = 0.0

    def tick(self, dt: float) -> None:
        for c, tgt in self.target.items():
            p = self.pressure[c]
            goal = 0.0 if c in self.stuck else tgt + (self.bias.get(c, 0.0) if tgt else 0.0)
            rate = 60.0 if goal > p else 100.0
            step = rate * dt
            self.pressure[c] = goal if abs(goal - p) <= step else p + math.copysign(step, goal - p)


class Harness:
    def __init__(self, plan: Plan, cuffs: list[str], lops: dict[str, float], **kw) -> None:
        self.clock = ManualClock()
        self.sim = SimCuffs(cuffs, **{k: kw.pop(k) for k in ("stuck", "bias") if k in kw})
        self.runner = SessionRunner(plan, cuffs, lops, self.clock, "P-001", **kw)
        self.actions: list = []
        self.phases: list[str] = []
        self._take(self.runner.step(self.clock.monotonic()))

    def _take(self, acts: list) -> None:
        self.actions += acts
        self.phases += [a.phase for a in acts if isinstance(a, PhaseChanged)]
        self.sim.apply(acts)

    def run(self, seconds: float) -> None:
        end = self.clock.monotonic() + seconds
        while self.clock.monotonic() < end - 1e-9:
            self.clock.advance(DT)
            self.sim.tick(DT)
            now = self.clock.monotonic()
            for c, p in self.sim.pressure.items():
                self.runner.feed_sample(c, now, p)
            self._take(self.runner.step(now))

    def run_until(self, cond, limit: float = 7200.0) -> None:
        start = self.clock.monotonic()
        while not cond():
            assert self.clock.monotonic() - start < limit, f"condition not met in {limit} s (phase {self.runner.phase})"
            self.run(DT)

    def command(self, fn, *args) -> None:
        fn(*args)
        self._take(self.runner.step(self.clock.monotonic()))

    def finished(self) -> list[Finished]:
        return [a for a in self.actions if isinstance(a, Finished)]


@pytest.mark.parametrize("plan_id", sorted(BUILTIN_PLANS))
def test_every_builtin_plan_runs_to_done(plan_id: str) -> None:
    plan = BUILTIN_PLANS[plan_id]
    h = Harness(plan, ["A1"], {"A1": 200.0})
    h.run_until(lambda: h.runner.phase == "done")
    fin = h.finished()
    assert len(fin) == 1
    s = fin[0].summary
    assert s.outcome == "completed"
    assert s.sets_done == h.runner.set_count
    if plan.mode == "reps":
        assert s.reps_by_set == plan.sets
        assert s.reps_done == plan.total_reps
    target = round(plan.pct_lop * 2.0, 1)
    assert h.sim.max_target["A1"] == target
    assert all(a.mmhg == target for a in h.actions if isinstance(a, Inflate))
    assert s.longest_episode_s <= plan.max_occlusion_s
    assert s.ended_at - s.started_at >= plan.duration_s
    assert s.fidelity is not None and s.fidelity > 0.95
    assert h.sim.target["A1"] == 0.0, "the plan ends vented"
    assert h.phases[-2:] == ["between", "done"]
    assert s.occlusion_s >= (plan.total_reps * plan.cadence_s if plan.mode == "reps" else plan.cycles * plan.on_s)


def test_rest_held_keeps_the_cuff_inflated_released_vents_it() -> None:
    held = Harness(BUILTIN_PLANS["legs-30-15"], ["A1"], {"A1": 200.0})
    held.run_until(lambda: held.runner.finished)
    deflates = [a for a in held.actions if isinstance(a, Deflate)]
    assert len(deflates) == 1 and deflates[0].reason == "plan complete"
    assert len([a for a in held.actions if isinstance(a, Inflate)]) == 1

    rel = Harness(BUILTIN_PLANS["legs-30-15-release"], ["A1"], {"A1": 200.0})
    rel.run_until(lambda: rel.runner.phase == "rest")
    assert rel.sim.target["A1"] == 0.0
    assert rel.runner.snapshot().phase_remaining_s == pytest.approx(60.0, abs=0.2)
    rel.run_until(lambda: rel.runner.finished)
    assert len([a for a in rel.actions if isinstance(a, Inflate)]) == 4  # one fill per set
    assert rel.runner.summary().longest_episode_s < 65.0


def test_snapshot_counts_reps_and_beats_during_a_set() -> None:
    plan = BUILTIN_PLANS["4x10-60"]
    h = Harness(plan, ["A1"], {"A1": 150.0})
    h.run_until(lambda: h.runner.phase == "set")
    h.run(3.0 * 4 + 0.05)
    snap = h.runner.snapshot()
    assert snap.phase == "set" and snap.set_index == 1 and snap.set_count == 4
    assert snap.rep == 4 and snap.reps_target == 10 and snap.cadence_s == 3.0
    assert snap.phase_remaining_s is None
    beats = [a for a in h.actions if isinstance(a, Beat)]
    assert [b.rep for b in beats] == [1, 2, 3, 4, 5]


def test_pause_freezes_the_count_and_resume_continues() -> None:
    h = Harness(BUILTIN_PLANS["legs-30-15"], ["A1"], {"A1": 200.0})
    h.run_until(lambda: h.runner.phase == "set")
    h.run(10.05)  # 5 reps at 2 s
    h.command(h.runner.pause)
    assert h.runner.phase == "paused"
    assert h.sim.target["A1"] == 160.0, "a pause by the operator keeps the pressure"
    h.run(30.0)
    assert h.runner.snapshot().rep == 5
    with pytest.raises(CommandRefused):
        h.runner.skip()
    h.command(h.runner.resume)
    assert h.runner.phase == "set"
    h.run(4.05)
    assert h.runner.snapshot().rep == 7
    h.run_until(lambda: h.runner.finished)
    assert h.finished()[0].summary.reps_by_set == (30, 15, 15, 15)


def test_skip_ends_the_set_and_the_rest() -> None:
    h = Harness(BUILTIN_PLANS["legs-30-15"], ["A1"], {"A1": 200.0})
    h.run_until(lambda: h.runner.phase == "set")
    h.run(6.05)
    h.command(h.runner.skip)
    assert h.runner.phase == "rest"
    h.command(h.runner.skip)
    assert h.runner.phase == "set" and h.runner.snapshot().set_index == 2
    h.run_until(lambda: h.runner.finished)
    s = h.finished()[0].summary
    assert s.reps_by_set == (3, 15, 15, 15) and s.outcome == "completed"


def test_stop_vents_and_ends_for_good() -> None:
    h = Harness(BUILTIN_PLANS["arms-30-15"], ["B1"], {"B1": 140.0})
    h.run_until(lambda: h.runner.phase == "set")
    h.run(4.05)
    h.command(h.runner.stop)
    assert h.runner.phase == "stopped" and h.sim.target["B1"] == 0.0
    s = h.finished()[0].summary
    assert s.outcome == "stopped" and s.reps_by_set == (2,)
    n = len(h.actions)
    h.run(120.0)
    assert not any(isinstance(a, Inflate) for a in h.actions[n:])
    with pytest.raises(CommandRefused):
        h.runner.resume()
    with pytest.raises(CommandRefused):
        h.runner.stop()


def test_rep_correction_by_hand() -> None:
    plan = BUILTIN_PLANS["4x10-60"]
    h = Harness(plan, ["A1"], {"A1": 150.0})
    h.run_until(lambda: h.runner.phase == "set")
    h.command(h.runner.rep_adjust, -1)  # at 0 reps: stays at 0
    assert h.runner.snapshot().rep == 0
    h.run(3.05)
    h.command(h.runner.rep_adjust, +1)
    h.command(h.runner.rep_adjust, +1)
    assert h.runner.snapshot().rep == 3
    h.run_until(lambda: h.runner.phase == "rest")
    assert h.clock.monotonic() - h.runner._phase_start < 1  # noqa: SLF001 - just entered
    h.command(h.runner.rep_adjust, -1)  # corrects the finished set
    assert h.runner.summary().reps_by_set == (9,)
    with pytest.raises(CommandRefused):
        h.runner.rep_adjust(5)


def test_high_alarm_mid_set_pauses_and_vents_then_resume_refills() -> None:
    h = Harness(BUILTIN_PLANS["legs-30-15"], ["A1"], {"A1": 200.0})
    h.run_until(lambda: h.runner.phase == "set")
    h.run(8.05)
    h.command(h.runner.on_alarm, Priority.MEDIUM, "A1", "OFF_TARGET")
    assert h.runner.phase == "set" and h.sim.target["A1"] == 160.0
    h.command(h.runner.on_alarm, Priority.HIGH, "A1", "LEAK")
    assert h.runner.phase == "paused" and h.sim.target["A1"] == 0.0
    assert "LEAK" in h.runner.snapshot().message
    h.run(20.0)
    h.command(h.runner.resume)
    assert h.runner.phase == "inflating" and h.sim.target["A1"] == 160.0
    h.run_until(lambda: h.runner.phase == "set")
    assert h.runner.snapshot().rep == 4
    h.run_until(lambda: h.runner.finished)
    s = h.finished()[0].summary
    assert s.reps_by_set == (30, 15, 15, 15)
    assert [(p, c) for _, p, c in s.alarms] == [("medium", "OFF_TARGET"), ("high", "LEAK")]


def test_emergency_mid_session_stops_everything() -> None:
    h = Harness(BUILTIN_PLANS["legs-30-15"], ["A1", "A2"], {"A1": 200.0, "A2": 210.0})
    h.run_until(lambda: h.runner.phase == "rest")
    h.command(h.runner.on_emergency)
    assert h.runner.phase == "stopped"
    assert h.sim.target == {"A1": 0.0, "A2": 0.0}
    s = h.finished()[0].summary
    assert s.outcome == "emergency" and s.reps_by_set == (30,)
    n = len(h.actions)
    h.run(300.0)
    assert not any(isinstance(a, Inflate) for a in h.actions[n:])
    h.runner.on_emergency()  # twice is harmless
    assert len(h.finished()) == 1


def test_pair_of_cuffs_each_at_its_own_target() -> None:
    h = Harness(BUILTIN_PLANS["walk-legs"], ["L", "R"], {"L": 200.0, "R": 220.0})
    h.run_until(lambda: h.runner.finished)
    assert h.sim.max_target == {"L": 120.0, "R": 132.0}
    s = h.finished()[0].summary
    assert set(s.occlusion_by_cuff) == {"L", "R"} and s.sets_done == 5
    assert s.fidelity_by_cuff["L"] > 0.95 and s.fidelity_by_cuff["R"] > 0.95


def test_a_cuff_that_never_fills_pauses_and_vents_the_pair() -> None:
    h = Harness(BUILTIN_PLANS["legs-30-15"], ["L", "R"], {"L": 200.0, "R": 200.0}, stuck={"R"}, inflate_timeout_s=15.0)
    h.run(14.0)
    assert h.runner.phase == "inflating"
    h.run(2.0)
    assert h.runner.phase == "paused"
    assert h.sim.target == {"L": 0.0, "R": 0.0}
    assert "not reached" in h.runner.snapshot().message and "R 0/160" in h.runner.snapshot().message


def test_fidelity_counts_time_off_target() -> None:
    h = Harness(BUILTIN_PLANS["4x10-60"], ["A1"], {"A1": 200.0}, bias={"A1": 0.0})
    h.run_until(lambda: h.runner.phase == "set")
    h.run(15.0)
    h.sim.bias["A1"] = 20.0  # 120 target -> 140: 17 % over
    h.run(15.0)
    f = h.runner.summary().fidelity
    assert f is not None and 0.4 < f < 0.6


def test_occlusion_limit_mid_set_ends_the_exercise() -> None:
    plan = dataclasses.replace(BUILTIN_PLANS["legs-30-15"], max_occlusion_s=40.0)
    h = Harness(plan, ["A1"], {"A1": 200.0})
    h.run_until(lambda: h.runner.finished)
    s = h.finished()[0].summary
    assert s.outcome == "occlusion_limit" and h.runner.phase == "between"
    assert s.longest_episode_s <= 40.0 + DT + 1e-6
    assert h.sim.target["A1"] == 0.0
    assert 15 <= s.reps_by_set[0] < 30


def test_occlusion_limit_while_paused_still_vents() -> None:
    plan = dataclasses.replace(BUILTIN_PLANS["legs-30-15"], max_occlusion_s=100.0)
    h = Harness(plan, ["A1"], {"A1": 200.0})
    h.run_until(lambda: h.runner.phase == "set")
    h.command(h.runner.pause)
    h.run(101.0)
    assert h.sim.target["A1"] == 0.0 and h.runner.finished


def test_occlusion_limit_in_a_held_rest_releases_and_goes_on() -> None:
    plan = dataclasses.replace(BUILTIN_PLANS["4x10-60"], max_occlusion_s=70.0)
    h = Harness(plan, ["A1"], {"A1": 200.0})
    h.run_until(lambda: h.runner.phase == "rest")
    h.run_until(lambda: h.sim.target["A1"] == 0.0, limit=60.0)
    assert h.runner.phase == "rest" and "occlusion limit" in h.runner.snapshot().message
    h.run_until(lambda: h.runner.phase == "set", limit=120.0)
    assert h.sim.target["A1"] == 120.0


def test_cycles_on_phase_cut_at_the_occlusion_limit() -> None:
    plan = dataclasses.replace(BUILTIN_PLANS["passive-legs"], max_occlusion_s=60.0, cycles=2)
    h = Harness(plan, ["A1"], {"A1": 200.0})
    h.run_until(lambda: h.runner.phase == "rest")
    assert h.runner.summary().longest_episode_s <= 60.0 + DT + 1e-6
    assert h.runner.snapshot().phase_remaining_s == pytest.approx(180.0, abs=0.2)
    h.run_until(lambda: h.runner.finished)
    assert h.finished()[0].summary.sets_done == 2


def test_refuses_without_lop_or_above_the_ceiling() -> None:
    clock = ManualClock()
    with pytest.raises(ValueError, match="no LOP"):
        SessionRunner(BUILTIN_PLANS["legs-30-15"], ["A1"], {"A1": None}, clock, "P")
    with pytest.raises(ValueError, match="ceiling"):
        SessionRunner(BUILTIN_PLANS["ipc"], ["A1"], {"A1": 280.0}, clock, "P", ceiling_mmhg=250.0)
    with pytest.raises(ValueError):
        SessionRunner(BUILTIN_PLANS["legs-30-15"], [], {}, clock, "P")


def test_garbage_samples_are_ignored() -> None:
    h = Harness(BUILTIN_PLANS["4x10-60"], ["A1"], {"A1": 200.0})
    h.runner.feed_sample("A1", h.clock.monotonic(), math.nan)
    h.runner.feed_sample("ZZ", h.clock.monotonic(), 120.0)
    h.command(lambda: None)  # a step with only garbage fed
    assert h.runner.phase == "inflating"  # a NaN must not read as "at target"
    h.run_until(lambda: h.runner.phase == "set")


def _contracting_set(cadence_patient: float | None, plan: Plan, seconds: float) -> tuple[SessionRunner, list[str]]:
    """One cuff held at its target with a patient contracting every ``cadence_patient`` s (None: no exercise),
    sampled at 50 Hz; returns the runner and the phases it went through."""
    clock = ManualClock()
    runner = SessionRunner(plan, ["A1"], {"A1": 200.0}, clock, "P-001")
    phases: list[str] = []
    target = 0.0
    pressure = 0.0
    set_started: float | None = None
    dt = 0.02
    for _ in range(int(seconds / dt)):
        clock.advance(dt)
        now = clock.monotonic()
        for a in runner.step(now):
            if isinstance(a, Inflate):
                target = a.mmhg
            elif isinstance(a, Deflate):
                target = 0.0
            elif isinstance(a, PhaseChanged):
                phases.append(a.phase)
                if a.phase == "set" and set_started is None:
                    set_started = now
        pressure += max(-100 * dt, min(60 * dt, target - pressure))
        squeeze = 0.0
        if cadence_patient and set_started is not None and target:
            phase = (now - set_started - 0.5) % cadence_patient
            squeeze = 0.10 * target if now - set_started >= 0.5 and phase < 1.0 else 0.0
        runner.feed_sample("A1", now, pressure + squeeze)
    return runner, phases


def test_a_patient_trailing_the_metronome_is_counted_by_the_contractions_seen() -> None:
    plan = dataclasses.replace(BUILTIN_PLANS["4x10-60"], sets=(10,), cadence_s=2.0)
    # After ~2.5 s of inflation and ~21.5 s of set: on pace, the 10 reps are done.
    on_pace, phases = _contracting_set(2.0, plan, 24.0)
    assert on_pace.finished, phases
    # A patient contracting every 3 s at that moment has done 7: the set waits for the other reps.
    slow, _ = _contracting_set(3.0, plan, 24.0)
    snap = slow.snapshot()
    assert not slow.finished and snap.phase == "set"
    assert snap.detected_reps >= LAG_SEEN_MIN
    assert snap.rep == snap.detected_reps + LAG_ALLOWED < 10
    # Given the time to do them, the slow patient completes the set too.
    slow_done, _ = _contracting_set(3.0, plan, 36.0)
    assert slow_done.finished


def test_with_no_contractions_seen_the_metronome_alone_counts() -> None:
    plan = dataclasses.replace(BUILTIN_PLANS["4x10-60"], sets=(10,), cadence_s=2.0)
    passive, phases = _contracting_set(None, plan, 24.0)
    assert passive.finished, phases
