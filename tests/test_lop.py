"""LOP estimator and measurement procedure, against the in-process emulator on a manual clock."""

from __future__ import annotations

import pytest

from bench.bench_lop import Limb, Rig, measure_limb
from console.station.clock import ManualClock
from console.station.lop import LopMeasurement, StepInfo, estimate_lop


@pytest.mark.parametrize("lop,hr,seed", [(120.0, 60.0, 1), (160.0, 75.0, 2), (200.0, 70.0, 5), (250.0, 90.0, 3)])
def test_measures_a_still_limb_with_a_clear_pulse(lop: float, hr: float, seed: int) -> None:
    o = measure_limb(Limb(lop=lop, heart_rate=hr, pulse_amplitude=3.0, noise=0.3, moving=False, seed=seed))
    r = o.result
    assert r.ok, r.reason
    assert r.lop is not None and abs(r.lop - lop) <= 12.0, (r.lop, lop)
    assert 0 < r.confidence <= 1
    assert o.sim_s <= 45.0
    assert o.max_target <= 300.0


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
    assert rig.commands[-1] == "DEFLATE 1"


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
    assert first.kind == "set" and first.target == 40.0
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
