"""How sensitive is the LOP detector, and would more sensitivity let the verdict's guard answer more often?

Why: the verdict (:mod:`console.therapy.lop_estimate`) gives a number only when
a pulse under the upper plateau's floor could not reach far above it, so the
lower that floor, the more limbs it can answer for. This measures both halves:

1. **The floor.** Noise-only plateaus of ``T`` seconds, held after three plateaus
   with a clear, regular pulse (the emulator's own beat, so the heart rate is
   found as in a measurement), go through the real per-plateau analysis; the
   floor is :meth:`~console.therapy.lop_estimate.Level.upper`, the bound the
   guard uses. It is compared with the ideal observer's floor
   (:mod:`bench.lop_oracle`: every beat known, a matched filter on the whole
   beat, SNR 3) for the same hold time and rate, expressed like the detector's
   as the amplitude of the pulse's fundamental. The lock-in fit is already a
   matched filter for its line, so the ratio shows only what the harmonics
   and the bounds' margins cost.
2. **What a lower floor would buy.** The share of a bench population's still
   limbs with a pulse above the noise that an ideal observer could give a
   number for under the guard (:func:`bench.lop_oracle.certifies`) and that it
   would see within 10 mmHg of the LOP at all (:func:`bench.lop_oracle.oracle_error`),
   with its floor scaled by a factor (scaling the noise scales the floor and the
   lower plateau's bound alike). The factor 1.0 is the ideal; the measured ratio
   of part 1 is where the detector stands.

    .venv/bin/python bench/lop_floor.py --seed 3

Assumes white sensor noise and a regular rhythm (the lock-in's best case; an
irregular one is read by its band's power, whose floor is higher).
"""

from __future__ import annotations

import argparse
import cmath
import math
import random
import statistics
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_lop import population  # noqa: E402
from bench.lop_oracle import ORACLE_SNR, SHAPE_VARIANCE, certifies, oracle_error  # noqa: E402
from console.therapy.lop_estimate import levels  # noqa: E402
from console.therapy.lop_signal import StepInfo, analyse_steps  # noqa: E402
from drivers.emulator.limb import FADES  # noqa: E402
from drivers.emulator.physics import beat_shape  # noqa: E402

FACTORS = (2.0, 1.33, 1.0, 0.5, 0.25)
"""Floors tried, as multiples of the ideal observer's."""


def _fundamental(steps: int = 4000) -> float:
    """Amplitude of the beat's fundamental per unit of pulse (what the lock-in fit measures)."""
    s = sum(beat_shape(i / steps) * cmath.exp(-2j * math.pi * i / steps) for i in range(steps))
    return 2.0 * abs(s) / steps


FUNDAMENTAL = _fundamental()


def ideal_floor(seconds: float, hz: float, noise: float) -> float:
    """The ideal observer's floor for one hold, as the amplitude of the pulse's fundamental, mmHg."""
    return ORACLE_SNR * noise * FUNDAMENTAL / math.sqrt(seconds * hz * SHAPE_VARIANCE)


def detector_floor(seconds: float, hz: float, noise: float, seed: int, heart_rate: float = 70.0) -> float:
    """The detector's floor (the guard's upper bound) on one noise-only plateau of ``seconds``, mmHg."""
    rng = random.Random(seed)
    phase0 = rng.random()
    times: list[float] = []
    pressures: list[float] = []
    steps: list[StepInfo] = []
    t = 0.0
    for target, amp, dwell in ((100.0, 2.0, 4.0), (110.0, 1.0, 4.0), (120.0, 0.5, 4.0), (130.0, 0.0, seconds)):
        t0 = t
        while t < t0 + dwell:
            beat = beat_shape((phase0 + t * heart_rate / 60.0) % 1.0)
            times.append(t)
            pressures.append(round(target + amp * beat + rng.gauss(0.0, noise), 1))
            t += 1.0 / hz
        steps.append(StepInfo(target, t0, times[-1]))
        t += 1.0
    amps, _f, _noise = analyse_steps(times, pressures, steps)
    return next(x for x in levels(amps, True) if x.target == 130.0).upper()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=3, help="population seed for part 2")
    ap.add_argument("--per-shape", type=int, default=100, help="limbs per fade shape in part 2")
    ap.add_argument("--repeats", type=int, default=12, help="noise-only plateaus per hold time in part 1")
    args = ap.parse_args(argv)

    print("1. floor on a noise-only plateau (noise 0.5 mmHg), detector vs ideal observer, median of", args.repeats)
    print("   Hz  hold s  detector  ideal  ratio")
    ratios = []
    for hz in (50, 100):
        for seconds in (4.0, 6.0, 12.0):
            got = statistics.median(detector_floor(seconds, hz, 0.5, seed) for seed in range(args.repeats))
            best = ideal_floor(seconds, hz, 0.5)
            ratios.append(got / best)
            print(f"  {hz:4d} {seconds:6.0f} {got:9.3f} {best:6.3f} {got / best:6.2f}")
    print(f"   median ratio {statistics.median(ratios):.2f}")
    print()
    print(f"2. seed {args.seed}: still limbs with a pulse above the noise an ideal observer at k x its floor could")
    print("   give a number for under the guard / would see within 10 mmHg of the LOP at all")
    print("   shape      n  " + "  ".join(f"k={k:<4}" for k in FACTORS))
    for fade in FADES:
        limbs = [lb for lb in population(args.per_shape, args.seed, fade) if lb.should_succeed]
        cells = []
        for k in FACTORS:
            kw = [
                dict(lop=lb.lop, amplitude=lb.pulse_amplitude, noise=lb.noise * k, hz=lb.hz, model=lb.model)
                for lb in limbs
            ]
            guard = sum(certifies(**a) for a in kw)  # type: ignore[arg-type]
            seen = sum((e := oracle_error(**a)) is not None and e >= -10.0 for a in kw)  # type: ignore[arg-type]
            cells.append(f"{guard:3d}/{seen:<3d}")
        print(f"   {fade:8} {len(limbs):3d}  " + "  ".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
