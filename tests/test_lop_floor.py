"""The LOP detector's absence floor stays near the ideal observer's (bench/lop_floor.py).

Why: the verdict answers only when what may hide under the upper plateau's floor
is small, so a detector that lost sensitivity would quietly answer less often.
The lock-in fit at the heart rate is already a matched filter for its line; it
measured 1.3 times the ideal observer's floor (which uses the whole beat). The
median over many noise-only plateaus must stay under 1.7 times, and no floor may
fall under the ideal observer's (no detector sees more than it: such a floor would
be claimed, not measured).
"""

from __future__ import annotations

import statistics

from bench.bench_lop import Rig
from bench.lop_floor import detector_floor, ideal_floor
from console.therapy.lop_estimate import is_regular, levels
from console.therapy.lop_signal import StepInfo, analyse_steps
from drivers import codec
from drivers.emulator.limb import LimbModel


def test_the_absence_floor_is_within_a_small_factor_of_the_ideal_observers() -> None:
    for hz, seconds in ((50, 6.0), (100, 4.0)):
        best = ideal_floor(seconds, hz, 0.5)
        floors = [detector_floor(seconds, hz, 0.5, seed) for seed in range(24)]
        ratio = statistics.median(floors) / best
        assert 1.0 < ratio < 1.7, (hz, seconds, ratio)
        assert min(floors) > best, (hz, seconds, min(floors), best)


def _held_above_the_lop(seed: int) -> tuple[bool, int, bool]:
    """Two plateaus with a pulse, then 6 s held 20 mmHg above the LOP by a regulator that keeps correcting,
    the pulse swelling with breathing (+-20 % at 0.25 Hz): (a pulse was seen up there, corrections the detector
    found there, the pulse seen below)."""
    limb = LimbModel(corrections=True, breathing=0.2, breathing_hz=0.25)
    rig = Rig(150.0, heart_rate=50.0 + seed % 7 * 10.0, pulse_amplitude=3.0, sensor_noise=0.3, seed=seed, limb=limb)
    steps: list[StepInfo] = []
    times: list[float] = []
    pressures: list[float] = []

    def run(seconds: float) -> list[tuple[float, float]]:
        out: list[tuple[float, float]] = []
        for _ in range(round(seconds / 0.5)):
            out += rig.run_for(0.5)
            rig.command("PING")  # the watchdog would vent the cuff
        return out

    for target in (90.0, 110.0, 170.0):
        rig.command("SET", 1, codec.format_pressure(target))
        run(4.0)  # fill and settle
        assert rig.fw.channel(1).state == "HOLDING"
        t0 = rig.now
        for t, p in run(6.0):
            times.append(t)
            pressures.append(p)
        steps.append(StepInfo(target, t0, rig.now))
    amps, _f, _noise = analyse_steps(times, pressures, steps)
    lv = levels(amps, is_regular(amps))
    above = next(x for x in lv if x.target == 170.0)
    below = any(x.present for x in lv if x.target < 150.0)
    return above.present, sum(a.corrections for a in amps if a.target == 170.0), below


def test_breathing_and_a_correcting_regulator_do_not_fake_a_pulse_above_the_lop() -> None:
    """What a more sensitive detector must keep: no pulse where there is none, whatever the regulator does."""
    runs = [_held_above_the_lop(seed) for seed in range(20)]
    assert sum(corr > 0 for _seen, corr, _below in runs) >= 15, "the regulator hardly corrected"
    assert sum(below for _seen, _corr, below in runs) >= 18, "the pulse was not seen where it is"
    assert sum(seen for seen, _corr, _below in runs) <= 1, runs
