"""Figures every benchmark prints the same way: percentiles of a list of timings."""

from __future__ import annotations

import asyncio
import math
import random
import time


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank; NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ratio_interval(
    num: list[float], den: list[float], q: float, *, draws: int = 2000, seed: int = 1
) -> tuple[float, float]:
    """The 5th and 95th percentiles of ``pct(num, q) / pct(den, q)`` over bootstrap resamples of each list.

    Why: a p99 of 200 timings is the third slowest; one stall of the machine moves it, and the ratio of
    two such figures moves twice. The interval says how far the same run could have landed by chance,
    so a change is not read into noise. NaN for an empty list.
    """
    if not num or not den:
        return math.nan, math.nan
    rng = random.Random(seed)
    ratios = []
    for _ in range(draws):
        a = pct(rng.choices(num, k=len(num)), q)
        b = pct(rng.choices(den, k=len(den)), q)
        ratios.append(a / b if b > 0 else math.inf)
    return pct(ratios, 0.05), pct(ratios, 0.95)


async def cpu_share(seconds: float) -> float:
    """This process's CPU time over ``seconds`` of wall time, as a share of one core."""
    c0, w0 = time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    return (time.process_time() - c0) / (time.monotonic() - w0)
