"""The LOP from the plateaus' pulse amplitudes: the envelope fit and its verdict.

Its own module because it is the model (where the fading envelope ends), apart
from the per-plateau signal processing (:mod:`console.therapy.lop_signal`) and
the procedure that drives the cuff (:mod:`console.therapy.lop`); pure, stdlib only.

The LOP: an envelope model, as oscillometric devices infer systolic pressure
from the envelope's fading side (the "characteristic ratio" idea: the shape of
the fade, scaled by the peak, places the pressure where it ends). Assumption:
past its peak at Pm the envelope fades smoothly and symmetrically to nothing
at the LOP L, as a raised cosine,

    A(P) = Amax * cos^2(pi/2 * (P - Pm) / (L - Pm))     for Pm <= P <= L,

the classic smooth oscillometric envelope (tangential at both ends; flat
top, so the peak pressure matters little). Near L the pulse is far under the
noise (it goes to zero quadratically), so "the first plateau without a pulse"
would lie 10+ mmHg low: L is extrapolated. A linear fade (A proportional to
L - P) is fitted too and chosen when its residuals are smaller, so a limb
whose pulse fades linearly is not forced onto the cosine. Fits are weighted
least squares in power over the peak plateau and everything above it (plateaus
without a pulse say "L is near or below"), with Amax, Pm and L free. The
standard error of L comes from the chi-square profile in L; a result is given
only when it is small, the fit is good and the pulse clearly faded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from console.therapy.lop_signal import (
    PRESENT_Z,
    PlateauCache,
    StepAmplitude,
    StepInfo,
    analyse_steps,
    pulse_power_var,
)

MAX_LOP_MMHG = 300.0
"""Never step above this, whatever the station allows."""
STRONG_Z = 18.0
"""The strongest plateau must reach this ratio, or the pulse is too weak to follow as it fades."""
MAX_SE_MMHG = 7.0
"""Standard error of the LOP (profile estimate, inflated by the fit's reduced chi-square) above which no number is given.

The cut trades refusals for spread: on the 200-limb bench (50 Hz) 7 gives SD 5.6 mmHg, 5 gives SD 5.0 with 40 % fewer results."""
MAX_REDUCED_CHI2 = 6.0
"""A fade that follows neither model this badly is refused (movement, a loose cuff)."""
FADED_FRACTION = 0.35
"""The pulse has clearly faded once a plateau above the peak falls under this fraction of it."""
LINEAR_PENALTY = 4.0
"""Chi-square by which the linear fade must beat the cosine to be chosen (about two SDs of evidence)."""
REACH = 0.45
"""The LOP may lie past the highest step by at most this fraction of the fade (peak to LOP), plus 5 mmHg."""
MIN_FADE_POINTS = 4
"""Plateaus (the peak's and above, at 3+ distinct pressures) the envelope is fitted to, at least: 3 parameters."""


@dataclass(frozen=True, slots=True)
class LopResult:
    """The outcome of one LOP measurement: a number with its confidence, or a failure with the reason."""

    ok: bool
    lop: float | None
    confidence: float
    """0..1; 0 when not ok."""
    reason: str
    """Why it failed, or how it was obtained."""
    amplitudes: tuple[StepAmplitude, ...] = ()
    heart_rate_bpm: float | None = None
    noise_mmhg: float | None = None
    se_mmhg: float | None = None
    """Standard error of the LOP from the fit, mmHg."""
    model: str | None = None
    """The fade model chosen: ``cosine`` or ``linear``."""
    peak_mmhg: float | None = None
    """Where the pulse is largest (fitted Pm), mmHg."""


def failure(
    reason: str, amps: Sequence[StepAmplitude] = (), hr: float | None = None, noise: float | None = None
) -> LopResult:
    """A failed result (also the procedure's, on cancel or timeout): the reason, and what was seen so far."""
    return LopResult(False, None, 0.0, reason, tuple(amps), hr, noise)


@dataclass(frozen=True, slots=True)
class FadeFit:
    """The envelope fitted to the peak and the fading side."""

    lop: float
    se: float
    peak: float
    """Fitted Pm, mmHg."""
    amax: float
    chi2: float
    reduced_chi2: float
    points: int
    model: str


def _shape(model: str, p: float, pm: float, lop: float) -> float:
    """Envelope relative to its peak (0..1) at ``p``."""
    if p <= pm:
        return 1.0
    if p >= lop:
        return 0.0
    u = (p - pm) / (lop - pm)
    if model == "cosine":
        c = math.cos(0.5 * math.pi * u)
        return c * c
    return 1.0 - u


def _chi2(model: str, pts: Sequence[tuple[float, float, float]], pm: float, lop: float) -> tuple[float, float]:
    """(chi-square, Amax^2) at (Pm, L); pts are (pressure, power, weight); Amax^2 is linear."""
    g2 = [_shape(model, p, pm, lop) ** 2 for p, _, _ in pts]
    sgg = math.fsum(w * g * g for (_, _, w), g in zip(pts, g2))
    sgy = math.fsum(w * g * y for (_, y, w), g in zip(pts, g2))
    k = max(0.0, sgy / sgg) if sgg > 0 else 0.0
    return math.fsum(w * (y - k * g) ** 2 for (_, y, w), g in zip(pts, g2)), k


def _profile(
    model: str, pts: Sequence[tuple[float, float, float]], pms: Sequence[float], lops: Sequence[float]
) -> list[tuple[float, float, float]]:
    """For each L: (chi-square minimised over Pm, that Pm, Amax^2)."""
    out = []
    for lop in lops:
        best = (math.inf, pms[0], 0.0)
        for pm in pms:
            if pm >= lop - 1.0:
                break
            c, k = _chi2(model, pts, pm, lop)
            if c < best[0]:
                best = (c, pm, k)
        out.append(best)
    return out


def fit_fade(
    amps: Sequence[StepAmplitude],
    *,
    pm_range: tuple[float, float],
    lop_range: tuple[float, float],
    model: str = "cosine",
) -> FadeFit | None:
    """Fit the envelope ``model`` (cosine or linear) to the plateaus given; Pm and L searched in their ranges.

    Weighted least squares in power; the weights come from each plateau's
    noise, first with its own measured power, then with the fitted model's.
    The SE is the half-width of the L interval where the profile chi-square
    stays within (reduced chi-square, at least 1) of its minimum; infinite
    when that interval reaches the end of the search.
    """
    lo, hi = lop_range
    if len(amps) < 3 or hi <= lo:
        return None
    pm_lo, pm_hi = pm_range
    pm_hi = max(pm_lo, pm_hi)
    n_pm = max(1, min(12, int((pm_hi - pm_lo) / 2.0)))
    pms = [pm_lo + (pm_hi - pm_lo) * i / n_pm for i in range(n_pm + 1)]
    step = 1.0 if hi - lo <= 150 else 2.0
    lops = [lo + step * i for i in range(int((hi - lo) / step) + 1)]

    def weights(model_power: Sequence[float]) -> list[tuple[float, float, float]]:
        return [
            (a.pressure, a.power, 1.0 / max(pulse_power_var(a.noise_power, m), 1e-12))
            for a, m in zip(amps, model_power)
        ]

    pts = weights([max(0.0, a.power) for a in amps])
    prof = _profile(model, pts, pms, lops)
    i = min(range(len(lops)), key=lambda j: prof[j][0])
    _, pm_b, k = prof[i]
    for _ in range(3):
        # Iterate the weights with the model (quasi-likelihood): weights from the measured powers
        # favour plateaus that happened to read low, and pull the LOP down.
        pts = weights([k * _shape(model, a.pressure, pm_b, lops[i]) ** 2 for a in amps])
        prof = _profile(model, pts, pms, lops)
        i_new = min(range(len(lops)), key=lambda j: prof[j][0])
        converged = i_new == i and prof[i_new][1] == pm_b
        i = i_new
        _, pm_b, k = prof[i]
        if converged:
            break
    if i == len(lops) - 1 and len(lops) > 1:
        return None
    # Refine: L to 0.2 mmHg, Pm to 0.5 mmHg around the best grid point.
    pm_b = prof[i][1]
    fine_pm = [pm_b + 0.5 * j for j in range(-4, 5) if pm_lo <= pm_b + 0.5 * j <= pm_hi] or [pm_b]
    fine_l = [lops[i] + 0.2 * j for j in range(-5, 6) if lo <= lops[i] + 0.2 * j <= hi]
    fprof = _profile(model, pts, fine_pm, fine_l)
    j = min(range(len(fine_l)), key=lambda q: fprof[q][0])
    lop, (chi_min, pm_b, k) = fine_l[j], fprof[j]
    dof = len(pts) - 3
    red = chi_min / dof if dof > 0 else 1.0
    level = chi_min + max(1.0, red)
    inside = [lops[q] for q in range(len(lops)) if prof[q][0] <= level] + [lop]
    lo_ci, hi_ci = min(inside) - 0.5 * step, max(inside) + 0.5 * step
    se = math.inf if hi_ci >= hi else 0.5 * (hi_ci - lo_ci)
    return FadeFit(lop, se, pm_b, math.sqrt(k), chi_min, red, len(pts), model)


def _peak(present: Sequence[StepAmplitude]) -> StepAmplitude:
    """The plateau with surely the largest pulse: highest power less two SDs (a plateau cut up by corrections is uncertain)."""
    return max(present, key=lambda a: a.power - 2.0 * math.sqrt(pulse_power_var(a.noise_power, a.power)))


@dataclass(frozen=True, slots=True)
class FadeState:
    """What the plateaus say about the fade so far."""

    peak: StepAmplitude
    faded: tuple[StepAmplitude, ...]
    """Plateaus above the peak whose pulse is gone or under :data:`FADED_FRACTION` of the peak's."""
    confirmed: bool
    """The pulse has surely faded: the highest plateau is faded, and two faded plateaus at different
    pressures agree or one lies surely (two SDs) under the fraction. One noise dip is not a fade."""
    top: float
    """The highest plateau's pressure, mmHg."""


def fade_state(amps: Sequence[StepAmplitude]) -> FadeState | None:
    """The fade seen in ``amps`` (sorted by pressure), or None without any pulse."""
    present = [a for a in amps if a.present]
    if not present:
        return None
    peak = _peak(present)
    cut = FADED_FRACTION * peak.amplitude
    above = [a for a in amps if a.pressure > peak.pressure + 2.0]
    faded = tuple(a for a in above if not a.present or a.amplitude < cut)
    top = max(a.pressure for a in amps)
    confirmed = False
    if faded and above and max(above, key=lambda a: a.pressure) in faded:
        spread = max(a.pressure for a in faded) - min(a.pressure for a in faded)
        sure = any(a.power + 2.0 * math.sqrt(pulse_power_var(a.noise_power, a.power)) < cut * cut for a in faded)
        confirmed = spread >= 3.0 or sure
    return FadeState(peak, faded, confirmed, top)


def _fade_points(
    amps: Sequence[StepAmplitude],
) -> tuple[list[StepAmplitude], tuple[float, float], StepAmplitude] | None:
    """The plateaus the envelope is fitted to (the peak one and all above), the Pm search range, the peak plateau."""
    present = [a for a in amps if a.present]
    if not present:
        return None
    peak = _peak(present)
    i = amps.index(peak)
    below = amps[i - 1].pressure if i > 0 else peak.pressure - 15.0
    above = amps[i + 1].pressure if i + 1 < len(amps) else peak.pressure + 15.0
    return list(amps[i:]), (max(below, peak.pressure - 25.0), min(above, peak.pressure + 25.0)), peak


def best_fade(amps: Sequence[StepAmplitude], ceiling: float) -> FadeFit | None:
    """The better (by chi-square) of the cosine and the linear fade fitted to these plateaus."""
    got = _fade_points(amps)
    if got is None:
        return None
    pts, pm_range, peak = got
    levels: list[float] = []
    for a in pts:
        if all(abs(a.pressure - q) >= 3.0 for q in levels):
            levels.append(a.pressure)
    if len(pts) < MIN_FADE_POINTS or len(levels) < 3:
        return None
    strong = [a for a in pts if a.present]
    lo = max(max(a.pressure for a in strong), pm_range[0] + 5.0)
    top = max(a.pressure for a in pts)
    hi = max(lo + 10.0, min(top + 1.5 * (top - peak.pressure) + 40.0, ceiling + 60.0, 400.0))
    fits = [f for m in ("cosine", "linear") if (f := fit_fade(pts, pm_range=pm_range, lop_range=(lo, hi), model=m))]
    if not fits:
        return None
    # The cosine is the expected shape; the linear fade has to fit clearly better.
    return min(fits, key=lambda f: f.chi2 + (LINEAR_PENALTY if f.model == "linear" else 0.0))


def estimate_lop(
    times: Sequence[float],
    pressures: Sequence[float],
    steps: Sequence[StepInfo],
    *,
    ceiling: float = MAX_LOP_MMHG,
    cache: PlateauCache | None = None,
) -> LopResult:
    """LOP from a staircase recording, or ok=False with the reason. Pure; stdlib only.

    ``times`` must not decrease; ``steps`` name the settled window of each plateau.
    """
    if len(times) != len(pressures):
        raise ValueError(f"times and pressures differ in length ({len(times)} vs {len(pressures)})")
    if any(b < a for a, b in zip(times, times[1:])):
        raise ValueError("times must not decrease")
    amps, f, noise = analyse_steps(times, pressures, steps, cache)
    hr = f * 60.0 if f is not None else None
    if len(amps) < 3:
        return failure("too few usable pressure steps (need at least 3 plateaus of 1 s)", amps, hr, noise)
    disturbed = [a for a in amps if a.disturbed]
    if disturbed:
        worst = max(disturbed, key=lambda a: a.slow_rms)
        return failure(
            f"movement artefact: the pressure wanders by {worst.slow_rms:.1f} mmHg at the {worst.target:.0f} mmHg "
            "step; keep the limb still and measure again",
            amps,
            hr,
            noise,
        )
    present = [a for a in amps if a.present]
    if not present or f is None:
        return failure("no arterial pulsation seen in the cuff pressure at any step", amps, hr, noise)
    peak = _peak(present)
    if max(a.z for a in present) < STRONG_Z:
        return failure(
            f"pulsation too weak for the noise (pulse {peak.amplitude:.2f} mmHg, noise {noise or 0:.2f} mmHg)",
            amps,
            hr,
            noise,
        )
    state = fade_state(amps)
    assert state is not None
    above = [a for a in amps if a.pressure > peak.pressure]
    if not state.faded:
        return failure(
            f"pulsation never faded below the ceiling ({ceiling:.0f} mmHg): the LOP is higher, "
            "or the cuff is too narrow for this limb",
            amps,
            hr,
            noise,
        )
    if not state.confirmed:
        return failure(
            f"the pulse seemed to fade at {state.faded[0].target:.0f} mmHg but no step above confirmed it "
            "(noise or movement?)",
            amps,
            hr,
            noise,
        )
    first_gone = next((a for a in above if not a.present), None)
    if first_gone is not None:
        for a in above:
            if a.pressure > first_gone.pressure + 3.0 and a.z > 3 * PRESENT_Z and a.amplitude > 0.5 * peak.amplitude:
                return failure(
                    f"pulsation came back at {a.target:.0f} mmHg after vanishing at {first_gone.target:.0f} mmHg "
                    "(movement or a loose cuff?)",
                    amps,
                    hr,
                    noise,
                )
    fit = best_fade(amps, ceiling)
    if fit is None:
        return failure(
            "the fading pulse does not point to an LOP within reach (too few or too noisy steps)", amps, hr, noise
        )
    if fit.reduced_chi2 > MAX_REDUCED_CHI2:
        return failure(
            f"the pulse does not fade smoothly (fit {fit.reduced_chi2:.1f} times worse than noise; movement?)",
            amps,
            hr,
            noise,
        )
    limit = min(ceiling, MAX_LOP_MMHG)
    if fit.lop - state.top > REACH * (fit.lop - fit.peak) + 5.0:
        return failure(
            f"the fade points to {fit.lop:.0f} mmHg, too far above the highest step ({state.top:.0f} mmHg) to trust",
            amps,
            hr,
            noise,
        )
    if fit.lop > limit + 2.0:
        return failure(f"the LOP ({fit.lop:.0f} mmHg) lies above the ceiling ({limit:.0f} mmHg)", amps, hr, noise)
    if fit.se > MAX_SE_MMHG:
        se = "more than the search range" if math.isinf(fit.se) else f"+-{fit.se:.0f} mmHg"
        return failure(
            f"signal too noisy: LOP uncertain by {se} (pulse {peak.amplitude:.2f} mmHg, noise {noise or 0:.2f} mmHg)",
            amps,
            hr,
            noise,
        )
    lop = min(fit.lop, limit)
    confidence = max(0.0, min(1.0, math.exp(-fit.se / 8.0) * min(1.0, 2.0 / max(1.0, fit.reduced_chi2))))
    return LopResult(
        True,
        round(lop, 1),
        round(confidence, 3),
        f"{fit.model} fade of the pulse ends at {lop:.0f} mmHg (+-{fit.se:.1f}; peak {fit.amax:.2f} mmHg at "
        f"{fit.peak:.0f}, {fit.points} plateaus, heart rate {hr:.0f}/min)",
        tuple(amps),
        hr,
        noise,
        round(fit.se, 2),
        fit.model,
        round(fit.peak, 1),
    )
