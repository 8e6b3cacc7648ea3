"""Pump and vent bursts (level shifts) found and taken out of a plateau before the heart rate is known.

Its own module because it is one job with its own assumption, apart from the pulse's analysis in
:mod:`console.therapy.lop_signal`: a burst moves the plateau's level once, where the pulse moves it all
along. What the pulse leaves in the finder's windows (a strong pulse in a window that holds no whole
number of beats, or in a short one at a plateau's end) sets how large a shift must be to count; a
pulse of 4 mmHg was otherwise taken for bursts, blanked, and the heart rate read wrong. Pure, stdlib only.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

LEFTOVER_K = 4.0
"""A level shift must stand this many SDs over what a plateau's own pulse leaves in the same windows
(:func:`_leftover_spreads`), or it is the pulse, not a pump or vent burst."""


def detrend(t: Sequence[float], x: Sequence[float]) -> list[float]:
    """``x`` less its mean and its least-squares slope over ``t``."""
    n = len(t)
    tm = math.fsum(t) / n
    xm = math.fsum(x) / n
    sxx = math.fsum((ti - tm) ** 2 for ti in t)
    slope = math.fsum((ti - tm) * (xi - xm) for ti, xi in zip(t, x)) / sxx if sxx > 0 else 0.0
    return [xi - xm - slope * (ti - tm) for ti, xi in zip(t, x)]


def remove_level_shifts(
    t: Sequence[float], x: list[float], sigma: float, window_s: float = 1.2
) -> tuple[list[float], list[int]]:
    """Take out the regulator's pump/vent bursts (level shifts) before the heart rate is known.

    Compares the means of the ``window_s`` before and after each sample (a
    window of a heartbeat or more averages most of the pulse away); the largest
    jump is removed as a step, up to ten times, while one stands over 0.4 mmHg, over
    the noise, and over what the plateau's own pulse leaves in windows of that
    length (:func:`_leftover_spreads`). Returns the series and where the steps were.
    """
    n = len(x)
    shifts: list[int] = []
    if n < 10 or t[-1] <= t[0]:
        return x, shifts
    w = min(max(3, int(round(window_s * (n - 1) / (t[-1] - t[0])))), n // 3)
    if w < 3:
        return x, shifts
    thr = max(0.4, 6.0 * sigma / math.sqrt(w))
    leftover = _leftover_spreads(x, w)
    for _ in range(10):
        pre = [0.0]
        for v in x:
            pre.append(pre[-1] + v)
        best_k, best_d = -1, 0.0
        for k in range(3, n - 2):
            ww = min(w, k, n - k)  # near the ends, shorter windows: a correction there is a step too
            d = (pre[k + ww] - pre[k]) / ww - (pre[k] - pre[k - ww]) / ww
            if abs(d) > abs(best_d) and abs(d) >= max(thr, 6.0 * sigma / math.sqrt(ww), _leftover_at(leftover, ww)):
                best_k, best_d = k, d
        if best_k < 0:
            break
        shifts.append(best_k)
        x = detrend(t, [xi - (best_d if i >= best_k else 0.0) for i, xi in enumerate(x)])
    return x, shifts


def _leftover_spreads(x: Sequence[float], w: int) -> list[tuple[int, float]]:
    """For a few window lengths up to ``w`` (samples), :data:`LEFTOVER_K` times the typical difference of the
    means of two such windows side by side along the plateau (robust SD): what a strong pulse leaves.

    A window that holds no whole number of beats does not average the pulse away, and a short one (near a
    plateau's ends) not at all: the difference then swings with the pulse all along the plateau, where a
    pump or vent burst moves it once. Taken where it is typical, the median, a few corrections do not raise it."""
    n = len(x)
    pre = [0.0]
    for v in x:
        pre.append(pre[-1] + v)
    out: list[tuple[int, float]] = []
    ww = w
    while ww >= 3:
        diffs = [(pre[k + ww] - 2.0 * pre[k] + pre[k - ww]) / ww for k in range(ww, n - ww + 1)]
        if len(diffs) >= 10:
            med = statistics.median(diffs)
            out.append((ww, LEFTOVER_K * statistics.median(abs(d - med) for d in diffs) / 0.6745))
        ww //= 2
    return out


def _leftover_at(spreads: list[tuple[int, float]], ww: int) -> float:
    """The leftover threshold for a window of ``ww`` samples: that of the nearest length at or under it."""
    for length, thr in spreads:  # longest first
        if length <= ww:
            return thr
    return spreads[-1][1] if spreads else 0.0
