"""The best any observing LOP procedure could do on a simulated limb: an ideal observer's bound.

Why: the LOP is where the pulse reaches nothing, and a smooth fade (cos², a Gaussian
tail, a sigmoid) leaves only a few per cent of the pulse over the last tenth of the
way. Below some pressure the pulse is under the noise for *any* method that observes
it, so "observe the pulse vanish" reads low there by a gap set by physics, not by the
procedure. This module computes that gap per limb, so the bench can say how much of
a shortfall is the procedure's and how much no procedure could close.

The ideal observer (assumptions, all in its favour): it knows every beat's time and
shape exactly (a matched filter), the limb is still, there is no regulator, and it
spends the whole budget (60 s) holding one pressure. It sees the pulse at a pressure
when the matched filter's signal-to-noise ratio reaches ``snr`` (3: about one false
pulse in 700 holds). Its LOP is the highest pressure where it still sees the pulse;
its error is that pressure minus the true LOP (never positive).
"""

from __future__ import annotations

import math

from drivers.emulator.limb import LimbModel
from drivers.emulator.physics import beat_shape

ORACLE_SNR = 3.0
"""Matched-filter signal-to-noise ratio at which the ideal observer calls the pulse seen."""


def _shape_variance(steps: int = 4000) -> float:
    """Variance of one beat's shape over its period (the pulse's AC power per unit amplitude squared)."""
    xs = [beat_shape(i / steps) for i in range(steps)]
    mean = math.fsum(xs) / steps
    return math.fsum((x - mean) ** 2 for x in xs) / steps


SHAPE_VARIANCE = _shape_variance()


def seen_at(
    pressure: float,
    *,
    lop: float,
    amplitude: float,
    noise: float,
    hz: float,
    model: LimbModel,
    seconds: float = 60.0,
    snr: float = ORACLE_SNR,
) -> bool:
    """Whether the ideal observer, holding ``pressure`` for ``seconds``, sees the pulse."""
    env = model.envelope(pressure, lop)
    n = seconds * hz
    power = (amplitude * env) ** 2 * SHAPE_VARIANCE * (1.0 + 0.5 * model.breathing**2)
    return math.sqrt(n * power) / noise >= snr


def oracle_error(
    *, lop: float, amplitude: float, noise: float, hz: float, model: LimbModel, seconds: float = 60.0
) -> float | None:
    """The ideal observer's LOP minus the true LOP (mmHg, <= 0); None if it sees no pulse anywhere."""
    peak = model.peak_at * lop
    kw = {"lop": lop, "amplitude": amplitude, "noise": noise, "hz": hz, "model": model, "seconds": seconds}
    if not seen_at(peak, **kw):  # type: ignore[arg-type]
        return None
    lo, hi = peak, lop  # seen at lo, not at hi (the pulse is 0 at the LOP)
    while hi - lo > 0.05:
        mid = 0.5 * (lo + hi)
        if seen_at(mid, **kw):  # type: ignore[arg-type]
            lo = mid
        else:
            hi = mid
    return lo - lop
