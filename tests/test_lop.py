"""LOP estimator and measurement procedure, against the in-process emulator on a manual clock,
and against limbs synthesised directly (so the estimator is not tied to the emulator's envelope)."""

from __future__ import annotations

import math
import random

import pytest

from bench.bench_lop import Limb, Rig, measure_limb
from console.common.clock import ManualClock
from console.therapy.lop import LopMeasurement
from console.therapy.lop_estimate import estimate_lop
from console.therapy.lop_signal import StepInfo
from drivers.emulator.limb import LimbModel


def test_measures_still_limbs_with_a_clear_pulse_within_their_bracket() -> None:
    """Eight limbs (seeds 1..8) whose pulse ends steeply and stands well out of the noise, at 100 Hz:
    most are measured, every number lies in its bracket and within 5 mmHg, the bracket is at most 8 wide."""
    measured = 0
    for seed in range(1, 9):
        rng = random.Random(seed)
        lop = round(rng.uniform(110.0, 290.0), 1)
        limb = Limb(
            lop=lop,
            heart_rate=round(rng.uniform(50.0, 110.0), 1),
            pulse_amplitude=3.5,
            noise=0.2,
            moving=False,
            seed=seed,
            model=LimbModel(fade="sqrt", peak_at=round(rng.uniform(0.45, 0.75), 2)),
            hz=100,
        )
        o = measure_limb(limb)
        r = o.result
        assert o.sim_s <= 60.0 and o.max_target <= 300.0
        if not r.ok:
            assert r.lop is None and r.reason
            continue
        measured += 1
        assert r.lop is not None and abs(r.lop - lop) <= 5.0, (seed, r.lop, lop, r.reason)
        assert r.bracket is not None and r.bracket[0] <= r.lop <= r.bracket[1]
        assert r.resolution_mmhg is not None and r.resolution_mmhg <= 8.0
        assert 0 < r.confidence <= 1
    assert measured >= 5, measured


def test_movement_fails_cleanly() -> None:
    o = measure_limb(Limb(lop=200.0, heart_rate=70.0, pulse_amplitude=3.0, noise=0.3, moving=True, seed=4))
    assert not o.result.ok and o.result.lop is None and o.result.confidence == 0.0
    assert o.result.reason


def test_a_pulse_too_weak_to_see_fails_cleanly() -> None:
    o = measure_limb(Limb(lop=180.0, heart_rate=70.0, pulse_amplitude=0.3, noise=1.0, moving=False, seed=6))
    assert not o.result.ok and o.result.lop is None
    assert "pulsation" in o.result.reason or "noisy" in o.result.reason


def test_heavy_noise_fails_cleanly() -> None:
    o = measure_limb(Limb(lop=220.0, heart_rate=80.0, pulse_amplitude=1.0, noise=3.0, moving=False, seed=7))
    assert not o.result.ok and o.result.lop is None


def test_never_above_the_ceiling_and_fails_when_pulses_persist() -> None:
    rig = Rig(280.0, heart_rate=70.0, pulse_amplitude=3.0, seed=8)
    m = LopMeasurement(clock=rig.clock, ceiling_mmhg=180.0)
    r = rig.measure(m)
    assert rig.max_target <= 180.0
    assert not r.ok and r.lop is None
    assert "ceiling" in r.reason
    assert rig.commands[-1] == "DEFLATE 1"


def test_an_lop_just_above_the_ceiling_is_not_reported() -> None:
    # The pulse fades before the ceiling but ends above it: no number, however tempting.
    rig = Rig(215.0, heart_rate=70.0, pulse_amplitude=3.0, sensor_noise=0.3, seed=12)
    m = LopMeasurement(clock=rig.clock, ceiling_mmhg=190.0)
    r = rig.measure(m)
    assert rig.max_target <= 190.0
    assert not r.ok and r.lop is None, r.reason
    assert rig.commands[-1] == "DEFLATE 1"


def test_never_targets_above_300() -> None:
    o = measure_limb(Limb(lop=300.0, heart_rate=70.0, pulse_amplitude=0.6, noise=0.9, moving=False, seed=13))
    assert o.max_target <= 300.0
    assert o.sim_s <= 60.0


def test_gives_up_at_the_timeout_and_deflates_when_the_cuff_does_not_fill() -> None:
    rig = Rig(200.0, seed=9)
    rig.fw.faults.leak[1] = 60.0  # cannot pass ~60 mmHg
    m = LopMeasurement(clock=rig.clock, step_timeout_s=5.0)
    r = rig.measure(m)
    assert not r.ok and "did not reach" in r.reason
    assert rig.commands[-1] == "DEFLATE 1"
    assert m.progress().state == "failed"


def test_cancel_deflates_once_and_then_reports_done() -> None:
    clock = ManualClock()
    m = LopMeasurement(clock=clock)
    first = m.next_action(clock.monotonic())
    assert first.kind == "set" and first.target == 50.0
    m.cancel("alarm")
    assert m.next_action(clock.monotonic()).kind == "deflate"
    assert m.next_action(clock.monotonic()).kind == "done"
    assert m.result is not None and not m.result.ok and m.result.reason == "alarm"


def test_the_overall_timeout_ends_a_measurement_without_samples() -> None:
    clock = ManualClock()
    m = LopMeasurement(clock=clock, timeout_s=60.0, step_timeout_s=100.0)
    m.next_action(clock.monotonic())
    kinds = []
    for _ in range(700):
        clock.advance(0.1)
        kinds.append(m.next_action(clock.monotonic()).kind)
    assert kinds.count("deflate") == 1 and kinds[-1] == "done"
    assert m.result is not None and "gave up" in m.result.reason


def test_bad_input_is_refused_clearly() -> None:
    with pytest.raises(ValueError):
        estimate_lop([0.0, 1.0], [1.0], [])
    with pytest.raises(ValueError):
        estimate_lop([1.0, 0.0], [1.0, 2.0], [])
    r = estimate_lop([0.0, 0.1], [50.0, 50.0], [StepInfo(50.0, 0.0, 0.1)])
    assert not r.ok and "too few" in r.reason
    with pytest.raises(ValueError):
        LopMeasurement(clock=ManualClock(), start_mmhg=400.0)
    m = LopMeasurement(clock=ManualClock())
    m.feed(float("nan"), 1.0)
    assert m.dropped == 1


# --------------------------------------------------------------------------- synthesised limbs


def _beat(phase: float) -> float:
    """A pulse wave of our own (not the emulator's): a quick rise and an exponential fall."""
    return phase / 0.15 if phase < 0.15 else math.exp(-(phase - 0.15) / 0.25)


def _synth(
    envelope: object,
    plateaus: list[float],
    *,
    hr: float = 72.0,
    noise: float = 0.3,
    dwell: float = 3.0,
    corrections: bool = False,
    seed: int = 1,
) -> tuple[list[float], list[float], list[StepInfo]]:
    """A staircase recorded at 50 Hz: each plateau's pulse scaled by ``envelope(p)``, white noise on top.

    With ``corrections`` a twitchy regulator adds a 1-3 mmHg pump or vent step (0.1 s ramp) every 1-2 s,
    within 3 mmHg of the target (as the spec allows a controller while holding).
    """
    rng = random.Random(seed)
    times: list[float] = []
    pressures: list[float] = []
    steps: list[StepInfo] = []
    t = 0.0
    period = 60.0 / hr
    for p in plateaus:
        t += 1.0  # travel: no samples needed
        start = t
        amp = envelope(p)  # type: ignore[operator]
        offset = 0.0
        fix, fix_end = 0.0, -1.0
        k = 0
        next_fix = start + rng.uniform(0.5, 1.5)
        while t < start + dwell:
            if corrections and t >= next_fix:
                # a pump or vent burst of 1-3 mmHg, 0.1 s long, every 1-2 s, keeping within 3 mmHg of the target
                fix = rng.choice((-1.0, 1.0)) * rng.uniform(1.0, 3.0)
                if abs(offset + fix) > 3.0:
                    fix = -fix
                fix_end = t + 0.1
                next_fix = t + rng.uniform(1.0, 2.0)
            if corrections and t < fix_end:
                offset += fix * 0.02 / 0.1
            times.append(t)
            pressures.append(round(p + offset + amp * _beat((t / period) % 1.0) + rng.gauss(0.0, noise), 1))
            k += 1
            t = start + k * 0.02
        steps.append(StepInfo(p, start, times[-1]))
    return times, pressures, steps


def _cosine_envelope(lop: float, peak: float = 1.6) -> object:
    pm = 0.6 * lop

    def env(p: float) -> float:
        if p <= pm:
            return peak * math.sin(0.5 * math.pi * min(1.0, p / pm)) ** 2
        return peak * math.cos(0.5 * math.pi * min(1.0, (p - pm) / (lop - pm))) ** 2

    return env


def test_a_linear_fade_is_bracketed_without_the_emulators_curve() -> None:
    lop, pm, peak = 190.0, 120.0, 1.8

    def env(p: float) -> float:
        if p <= pm:
            return peak * p / pm
        return peak * max(0.0, (lop - p) / (lop - pm))

    plateaus = [60.0, 80.0, 100.0, 120.0, 140.0, 160.0, 175.0, 182.0, 186.0, 190.0, 194.0]
    r = estimate_lop(*_synth(env, plateaus, noise=0.03, dwell=6.0, seed=3))
    assert r.ok, r.reason
    assert r.lop is not None and abs(r.lop - lop) <= 4.0, r.lop
    assert r.bracket is not None and r.bracket[0] < lop <= r.bracket[1] + 0.5
    assert r.resolution_mmhg is not None and r.resolution_mmhg <= 5.0


def test_a_cosine_fade_is_not_extrapolated_and_its_hidden_end_refused() -> None:
    """cos^2 ends as a parabola: at this noise the pulse is lost well before the LOP. No number is guessed."""
    lop = 170.0
    plateaus = [50.0, 70.0, 90.0, 105.0, 120.0, 130.0, 140.0, 150.0, 160.0, 175.0]
    r = estimate_lop(*_synth(_cosine_envelope(lop), plateaus, noise=0.3, seed=4))
    assert not r.ok and r.lop is None
    assert "fades too gently" in r.reason or "bracket" in r.reason or "absence" in r.reason, r.reason


@pytest.mark.xfail(
    strict=True,
    reason="known gap: with a correction every 1-2 s the floor on the plateau above the LOP stays too high "
    "to confirm the pulse's absence tightly enough; the measurement refuses (see the test below) instead",
)
def test_a_twitchy_regulator_does_not_spoil_the_bracket() -> None:
    lop, pm, peak = 200.0, 110.0, 1.8

    def env(p: float) -> float:
        if p <= pm:
            return peak * p / pm
        return peak * math.sqrt(max(0.0, (lop - p) / (lop - pm)))

    plateaus = [60.0, 85.0, 110.0, 140.0, 170.0, 190.0, 196.0, 198.0, 202.0, 206.0]
    clean = estimate_lop(*_synth(env, plateaus, noise=0.03, dwell=6.0, seed=5))
    twitchy = estimate_lop(*_synth(env, plateaus, noise=0.03, dwell=6.0, corrections=True, seed=5))
    assert clean.ok and twitchy.ok, (clean.reason, twitchy.reason)
    assert twitchy.lop is not None and abs(twitchy.lop - lop) <= 4.0, twitchy.lop
    assert not any(a.disturbed for a in twitchy.amplitudes)
    assert any(a.corrections for a in twitchy.amplitudes)


def test_a_twitchy_regulator_never_yields_a_wrong_number() -> None:
    """Over several seeds, corrections every 1-2 s: every number given lies within 5 mmHg, none is disturbed."""
    lop, pm, peak = 200.0, 110.0, 1.8

    def env(p: float) -> float:
        if p <= pm:
            return peak * p / pm
        return peak * math.sqrt(max(0.0, (lop - p) / (lop - pm)))

    plateaus = [60.0, 85.0, 110.0, 140.0, 170.0, 190.0, 196.0, 198.0, 202.0, 206.0]
    for seed in range(5, 11):
        r = estimate_lop(*_synth(env, plateaus, noise=0.03, dwell=6.0, corrections=True, seed=seed))
        assert not any(a.disturbed for a in r.amplitudes)
        assert any(a.corrections for a in r.amplitudes)
        if r.ok:
            assert r.lop is not None and abs(r.lop - lop) <= 5.0, (seed, r.lop, r.reason)
        else:
            assert r.lop is None and r.reason


def test_a_pulse_that_never_fades_gives_no_number() -> None:
    r = estimate_lop(*_synth(lambda p: 1.5, [60.0, 90.0, 120.0, 150.0, 180.0], noise=0.3, seed=6), ceiling=180.0)
    assert not r.ok and r.lop is None and "ceiling" in r.reason


def test_no_pulse_at_all_gives_no_number() -> None:
    r = estimate_lop(*_synth(lambda p: 0.0, [60.0, 90.0, 120.0, 150.0, 180.0], noise=0.5, seed=7))
    assert not r.ok and r.lop is None and "no arterial pulsation" in r.reason
