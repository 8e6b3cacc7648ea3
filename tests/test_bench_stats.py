"""bench/stats.py: the percentile every benchmark prints, and the range a ratio of two p99s takes by chance."""

from __future__ import annotations

import math
import random

from bench.stats import pct, ratio_interval


def test_a_ratio_s_range_holds_the_ratio_and_follows_which_list_is_on_top() -> None:
    rng = random.Random(7)
    floor = [rng.uniform(0.3, 1.0) for _ in range(200)]
    slow = [3.0 * v for v in floor]
    lo, hi = ratio_interval(slow, floor, 0.99)
    assert lo <= pct(slow, 0.99) / pct(floor, 0.99) <= hi
    assert 2.0 < lo <= hi < 4.5, (lo, hi)
    _, hi_inv = ratio_interval(floor, slow, 0.99)
    assert hi_inv < 0.5, "numerator and denominator swapped"
    assert all(math.isnan(x) for x in ratio_interval([], floor, 0.99)), "no timings: no range"


def test_one_stall_in_two_hundred_makes_the_p99_ratio_uncertain() -> None:
    """Two of 200 timings 20 times the rest: the p99 sits on them or not, as the resample falls."""
    rng = random.Random(11)
    floor = [rng.uniform(0.9, 1.1) for _ in range(200)]
    key = [rng.uniform(1.8, 2.2) for _ in range(198)] + [40.0, 41.0]
    lo, hi = ratio_interval(key, floor, 0.99)
    assert lo < 2.5 and hi > 30.0, f"({lo:.2f}, {hi:.2f}) hides how much one stall moves a p99"
    assert ratio_interval(key, floor, 0.99) == (lo, hi), "the same timings give the same range (fixed seed)"
