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

from bench.lop_floor import detector_floor, ideal_floor


def test_the_absence_floor_is_within_a_small_factor_of_the_ideal_observers() -> None:
    for hz, seconds in ((50, 6.0), (100, 4.0)):
        best = ideal_floor(seconds, hz, 0.5)
        floors = [detector_floor(seconds, hz, 0.5, seed) for seed in range(24)]
        ratio = statistics.median(floors) / best
        assert 1.0 < ratio < 1.7, (hz, seconds, ratio)
        assert min(floors) > best, (hz, seconds, min(floors), best)
