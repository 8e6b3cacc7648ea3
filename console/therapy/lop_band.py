"""Two readings of a plateau's pulse that do not need the heart rate: its band's power and the small steps left.

Its own module so :mod:`console.therapy.lop_signal` keeps the per-plateau fit;
pure, stdlib only. The band's power catches a rhythm that varies from beat to
beat (atrial fibrillation), which a fit at one heart rate misses; the small
steps are a correcting regulator's bursts too small for the jump test, which
would otherwise leak into the pulse.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

BAND_HZ = (0.6, 2.8)
"""The pulse's fundamental band, Hz: heart rates 45..130 /min with 20 % beat-to-beat variation."""


def moving_average(x: Sequence[float], per: int) -> list[float]:
    """Centred moving average over ``per`` samples (edges: the nearest full window)."""
    n = len(x)
    per = max(1, min(per, n))
    pre = [0.0]
    for v in x:
        pre.append(pre[-1] + v)
    half = per // 2
    out = []
    for i in range(n):
        lo = min(max(0, i - half), n - per)
        out.append((pre[lo + per] - pre[lo]) / per)
    return out


SMALL_STEP_MMHG = 0.2
"""Smallest level shift looked for in what the plateau's fit leaves (a correction under the jump test)."""


def small_steps(left: Sequence[float], per: int, sigma: float) -> list[int]:
    """Where ``left`` (a fit's residual) shifts level by more than noise: up to 6 indices."""
    n = len(left)
    if n < 3 * per:
        return []
    base = moving_average(left, per)
    half = per // 2
    thr = max(SMALL_STEP_MMHG, 4.5 * sigma * math.sqrt(2.0 / per))
    jump = [base[min(n - 1, i + half)] - base[max(0, i - half)] for i in range(n)]
    out: list[int] = []
    i = per
    while i < n - per and len(out) < 6:
        if abs(jump[i]) <= thr:
            i += 1
            continue
        j = i
        while j < n - per and abs(jump[j]) > thr:
            j += 1
        out.append(max(range(i, j), key=lambda k: abs(jump[k])))
        i = j + half
    return out


def band_power(t: Sequence[float], r: Sequence[float], sigma: float) -> tuple[float, float, float]:
    """(unbiased power, its variance, z) of the fundamental band :data:`BAND_HZ` in ``r`` (offsets removed).

    A least-squares periodogram on a grid one bin (1 / span) apart, so a
    beat-to-beat varying rhythm, whose fundamental smears over several bins,
    is caught as well as a steady one. Each bin's noise expectation comes from
    the plateau's own sensor noise (second differences): the floor is measured
    where the pulse is judged.
    """
    span = t[-1] - t[0]
    if span <= 0 or sigma <= 0:
        return 0.0, math.inf, 0.0
    lo, hi = BAND_HZ
    step = 1.0 / span
    freqs = [lo + step * i for i in range(int((hi - lo) / step) + 1)]
    s2 = sigma * sigma
    excess = 0.0
    noise_sq = 0.0
    ratio = 0.0
    for f in freqs:
        w = 2.0 * math.pi * f
        c = [math.cos(w * ti) for ti in t]
        s = [math.sin(w * ti) for ti in t]
        cc = math.fsum(x * x for x in c)
        ss = math.fsum(x * x for x in s)
        if cc <= 0 or ss <= 0:
            continue
        a = math.fsum(x * y for x, y in zip(c, r)) / cc
        b = math.fsum(x * y for x, y in zip(s, r)) / ss
        e = s2 * (1.0 / cc + 1.0 / ss)
        p = a * a + b * b
        excess += p - e
        noise_sq += e * e
        ratio += p / e
    k = len(freqs)
    if k == 0 or noise_sq <= 0:
        return 0.0, math.inf, 0.0
    var = noise_sq + 2.0 * math.sqrt(noise_sq / k) * max(0.0, excess)
    return excess, var, (ratio - k) / math.sqrt(k)
