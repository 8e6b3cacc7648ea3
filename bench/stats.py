"""Figures every benchmark prints the same way: percentiles of a list of timings."""

from __future__ import annotations

import asyncio
import math
import time


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank; NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def cpu_share(seconds: float) -> float:
    """This process's CPU time over ``seconds`` of wall time, as a share of one core."""
    c0, w0 = time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    return (time.process_time() - c0) / (time.monotonic() - w0)
