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

from console.therapy.lop_estimate import END_POWER, MAX_ERROR_MMHG
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


def certifies(
    *,
    lop: float,
    amplitude: float,
    noise: float,
    hz: float,
    model: LimbModel,
    seconds: float = 60.0,
    snr: float = ORACLE_SNR,
) -> bool:
    """Whether the ideal observer could *give* a number under the verdict's guard, not only see the pulse.

    The verdict (:mod:`console.therapy.lop_estimate`) assumes only that a fade ends no more gently than
    a parabola, so it gives a number only when the pulse under the upper plateau's floor could not
    reach far above it. The ideal observer at its most favourable: half the budget on a plateau exactly
    at the LOP (its floor: ``snr`` SDs of the amplitude), half on the best plateau below it (its pulse
    known to ``snr`` SDs), and the verdict's own rule on the result. What this cannot certify, no
    procedure behind that guard can.
    """
    n = 0.5 * seconds * hz
    sd = noise / math.sqrt(n * SHAPE_VARIANCE * (1.0 + 0.5 * model.breathing**2))
    floor = snr * sd
    peak = model.peak_at * lop
    lo = lop - 0.25
    while lo > peak:
        low = amplitude * model.envelope(lo, lop) - snr * sd
        if low > floor:
            rho = math.pow(floor / low, 1.0 / END_POWER)
            hidden = (lop - lo) * rho / (1.0 - rho)
            est = min(lop, 0.5 * (lo + lop + hidden))
            if max(est - lo, lop + hidden - est) <= MAX_ERROR_MMHG:
                return True
        lo -= 0.25
    return False
