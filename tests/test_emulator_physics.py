"""Emulator physics: cuff fill and vent, the arterial pulse under the cuff, exercise, movement, sensor."""

from __future__ import annotations

import cmath
import math
import random
import statistics

import pytest

from drivers.emulator.limb import FADES, LimbModel, fade
from drivers.emulator.physics import (
    DT,
    ChannelPhysics,
    Exercise,
    beat_shape,
    pulse_envelope,
)


def cuff(seed: int = 0, lop: float = 200.0, **kw: object) -> ChannelPhysics:
    return ChannelPhysics(random.Random(seed), lop, **kw)  # type: ignore[arg-type]


def run(p: ChannelPhysics, seconds: float) -> list[float]:
    out = []
    for _ in range(round(seconds / DT)):
        p.step()
        out.append(p.pressure)
    return out


def fundamental(values: list[float], hz: float, dt: float) -> float:
    """Amplitude of the ``hz`` component (one-bin DFT)."""
    mean = statistics.fmean(values)
    acc = sum((v - mean) * cmath.exp(-2j * math.pi * hz * k * dt) for k, v in enumerate(values))
    return 2 * abs(acc) / len(values)


@pytest.mark.parametrize("seed", range(5))
def test_fill_0_to_200_takes_3_to_5_s_with_pump_slowing(seed: int) -> None:
    p = cuff(seed, pulse_amplitude=0.0)
    p.valve_cmd = False
    p.pump_on = True
    t = 0.0
    rate_low = rate_high = 0.0
    while p.base < 200.0:
        before = p.base
        p.step()
        t += DT
        if 20 <= before < 21:
            rate_low = (p.base - before) / DT
        if 190 <= before < 191:
            rate_high = (p.base - before) / DT
        assert t < 10
    assert 3.0 <= t <= 5.0
    assert rate_high < 0.75 * rate_low


@pytest.mark.parametrize("seed", range(5))
def test_vent_200_to_under_10_in_about_2_s(seed: int) -> None:
    p = cuff(seed, pulse_amplitude=0.0)
    p.base = 200.0
    p.valve_cmd = True
    t = 0.0
    while p.pressure >= 10.0:
        p.step()
        t += DT
        assert t < 5
    assert 1.5 <= t <= 2.5
    run(p, 3.0)
    assert p.pressure == 0.0


def test_closed_cuff_holds_and_leak_drains_it() -> None:
    p = cuff(pulse_amplitude=0.0)
    p.base, p.valve_cmd = 150.0, False
    run(p, 2.0)
    assert p.base == 150.0
    p.leak_rate = 5.0
    run(p, 2.0)
    assert 139.0 < p.base < 141.0


def test_stuck_valve_does_not_vent() -> None:
    p = cuff(pulse_amplitude=0.0)
    p.base, p.valve_cmd, p.vent_stuck = 150.0, True, True
    run(p, 2.0)
    assert p.base == 150.0 and not p.valve_open


def test_pulse_envelope_peaks_near_map_and_vanishes_at_lop() -> None:
    lop = 200.0
    values = {p: pulse_envelope(p, lop) for p in range(0, 260)}
    assert values[0] == 0.0
    assert max(values, key=values.__getitem__) == 120
    assert values[200] == 0.0 and all(values[p] == 0.0 for p in range(200, 260))
    # smooth fade: no jump anywhere, and small just below the LOP
    assert all(abs(values[p + 1] - values[p]) < 0.05 for p in range(0, 259))
    assert values[195] < 0.02


def test_beat_shape_rises_sharply_and_decays_slowly() -> None:
    samples = [beat_shape(i / 1000) for i in range(1000)]
    peak = samples.index(max(samples))
    assert max(samples) == pytest.approx(1.0, abs=0.01)
    assert peak < 150  # systolic upstroke in the first 15 % of the beat
    half_after = next(i for i in range(peak, 1000) if samples[i] < 0.5)
    half_before = next(i for i in range(peak) if samples[i] >= 0.5)
    assert half_after - peak > 2 * (peak - half_before)
    assert samples[0] < 0.01 and samples[-1] < 0.02


def measured_pulse(base: float, lop: float = 200.0, amplitude: float = 2.0) -> tuple[float, float]:
    """Peak-to-trough and heart-rate component of the pulse riding on a closed cuff at ``base``."""
    p = cuff(4, lop=lop, pulse_amplitude=amplitude, heart_rate=60.0)
    p.base, p.valve_cmd = base, False
    wave = [x - base for x in run(p, 10.0)]
    return max(wave) - min(wave), fundamental(wave, 1.0, DT)


def test_pulse_amplitude_follows_cuff_pressure() -> None:
    at_map = measured_pulse(120.0)
    low = measured_pulse(40.0)
    high = measured_pulse(185.0)
    near_lop = measured_pulse(198.0)
    above = measured_pulse(210.0)
    assert 1.6 <= at_map[0] <= 2.6  # "about 2 mmHg peak", beat-to-beat variation included
    assert at_map[1] > high[1] > near_lop[1] and at_map[1] > low[1]
    assert above == (0.0, 0.0)


def test_pulse_amplitude_is_configurable() -> None:
    assert measured_pulse(120.0, amplitude=4.0)[0] > 1.7 * measured_pulse(120.0, amplitude=2.0)[0]
    assert measured_pulse(120.0, amplitude=0.0) == (0.0, 0.0)


def test_heart_rate_sets_beat_period_with_slight_variation() -> None:
    p = cuff(2, heart_rate=90.0)
    p.base, p.valve_cmd = 120.0, False
    periods = []
    for _ in range(40):
        periods.append(p._beat_period)
        p._beat_t = 0.999999
        p.step()
    assert statistics.fmean(periods) == pytest.approx(60 / 90, rel=0.03)
    assert 0.0 < statistics.pstdev(periods) < 0.1 * 60 / 90
    # and the pulse in the pressure repeats at that rate
    p = cuff(2, heart_rate=90.0)
    p.base, p.valve_cmd = 120.0, False
    wave = run(p, 10.0)
    assert fundamental(wave, 1.5, DT) > 5 * fundamental(wave, 1.0, DT)


def test_contractions_raise_pressure_by_rise_pct_and_are_counted() -> None:
    p = cuff(pulse_amplitude=0.0)
    p.base, p.valve_cmd = 150.0, False
    p.start_exercise(Exercise(cadence_s=2.0, contraction_s=1.0, rise_pct=10.0))
    wave = run(p, 9.9)
    assert p.reps == 5
    assert 150 * 1.05 < max(wave) < 150 * 1.15
    assert min(wave) == pytest.approx(150.0)
    # squeezed for about the contraction's length in each 2 s cycle
    squeezed = sum(1 for x in wave if x > 151.0) * DT
    assert 3.0 < squeezed < 5.0
    p.start_exercise(None)
    run(p, 4.0)
    assert p.reps == 5 and p.pressure == pytest.approx(150.0)


def test_exercise_rejects_impossible_patterns() -> None:
    for bad in (dict(cadence_s=1.0, contraction_s=1.0), dict(rise_pct=80.0), dict(cadence_s=0.0)):
        with pytest.raises(ValueError):
            Exercise(**bad)


def test_movement_artefact_makes_large_slow_swings_and_settles() -> None:
    p = cuff(7, pulse_amplitude=0.0)
    p.base, p.valve_cmd, p.moving = 150.0, False, True
    wave = run(p, 20.0)
    assert max(wave) - min(wave) > 10.0
    steps = [abs(b - a) for a, b in zip(wave, wave[1:])]
    assert max(steps) < 0.5  # slow: no jumps from one 2 ms step to the next
    p.moving = False
    run(p, 5.0)
    assert p.pressure == pytest.approx(150.0, abs=0.05)


def test_sensor_noise_offset_frozen_and_broken() -> None:
    p = cuff(3, pulse_amplitude=0.0)
    p.base, p.valve_cmd = 100.0, False
    reads = [p.read() for _ in range(4000)]
    assert 0.25 < statistics.pstdev(reads) < 0.35
    assert statistics.fmean(reads) == pytest.approx(100.0 + p.sensor_offset, abs=0.05)
    assert p.sensor_offset != 0.0
    p.frozen = True
    frozen = {p.read() for _ in range(10)}
    p.base = 50.0
    assert len(frozen) == 1 and p.read() in frozen
    p.frozen = False
    assert p.read() == pytest.approx(50.0 + p.sensor_offset, abs=2.0)
    p.broken = True
    assert p.read() < -50


# --------------------------------------------------------------------------- other limbs (drivers/emulator/limb.py)


@pytest.mark.parametrize("shape", FADES)
@pytest.mark.parametrize("peak_at", [0.4, 0.6, 0.8])
def test_every_fade_peaks_where_asked_and_ends_at_the_lop(shape: str, peak_at: float) -> None:
    limb = LimbModel(fade=shape, peak_at=peak_at)
    lop = 200.0
    values = {p / 2: limb.envelope(p / 2, lop) for p in range(0, 600)}
    peak = max(values, key=values.__getitem__)
    assert abs(peak - peak_at * lop) <= 1.0
    assert values[peak] == pytest.approx(1.0, abs=1e-9)
    assert all(v == 0.0 for p, v in values.items() if p >= lop)
    fading = [values[p] for p in sorted(values) if peak_at * lop <= p <= lop]
    assert all(b <= a + 1e-12 for a, b in zip(fading, fading[1:])), "falls all the way"
    assert values[lop - 0.5] < 0.12


def test_the_shapes_differ_where_they_end() -> None:
    near = {s: fade(s, 0.9) for s in FADES}
    assert near["sqrt"] > near["linear"] > near["cos2"] > 0.0
    assert near["gauss"] < near["linear"] and near["sigmoid"] < near["linear"]
    assert fade("cos2", 0.5) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        LimbModel(fade="square")
    with pytest.raises(ValueError):
        LimbModel(peak_at=0.95)


def test_an_irregular_rhythm_varies_the_beat_period() -> None:
    p = cuff(2, heart_rate=90.0, limb=LimbModel(rhythm_var=0.2))
    periods = []
    for _ in range(400):
        periods.append(p._beat_period)
        p._beat_t = 0.999999
        p.step()
    assert statistics.fmean(periods) == pytest.approx(60 / 90, rel=0.05)
    assert 0.15 < statistics.pstdev(periods) / (60 / 90) < 0.25


def test_breathing_swells_and_shrinks_the_pulse() -> None:
    p = cuff(5, heart_rate=60.0, pulse_amplitude=2.0, limb=LimbModel(breathing=0.2, breathing_hz=0.25))
    p.base, p.valve_cmd = 120.0, False
    wave = [x - 120.0 for x in run(p, 16.0)]
    per_beat = [max(wave[i : i + 500]) for i in range(0, len(wave) - 499, 500)]
    assert max(per_beat) / min(per_beat) > 1.3


def test_a_correcting_regulator_moves_a_held_cuff_within_3_mmhg_every_1_to_3_s() -> None:
    p = cuff(6, pulse_amplitude=0.0, limb=LimbModel(corrections=True))
    p.base, p.valve_cmd = 150.0, False
    wave = run(p, 30.0)
    assert p.corrector is not None and 9 <= p.corrector.count <= 31
    anchor = p.corrector.anchor
    assert anchor is not None and all(abs(x - anchor) <= 3.0 + 1e-9 for x in wave[300:])
    assert max(wave) - min(wave) > 1.0
    p.pump_on = True  # the firmware acts: no correction of its own meanwhile, a new anchor after
    before = p.corrector.count
    run(p, 0.3)
    assert p.corrector.count == before and p.corrector.anchor is None
