"""The LOP from plateaus the procedure held: a bracket it saw, never a curve it extrapolated.

Its own module because it is the verdict (what the plateaus say, and whether
that is enough), apart from the per-plateau signal processing
(:mod:`console.therapy.lop_signal`) and the procedure that drives the cuff
(:mod:`console.therapy.lop`); pure, stdlib only.

The way a Doppler probe is used: the LOP lies between the highest plateau
where a pulse was seen and the lowest plateau above it where its absence was
confirmed against the noise floor measured on that plateau. The result is the
middle of where the LOP can lie (the bracket, plus what may hide above it), but
never outside the bracket, reported with the bracket and its width (the
resolution). Nothing models the fade's shape.

What it does assume, and checks:

- A pulse fades to nothing no more gently than a parabola ends: between the
  plateau where it was last seen (amplitude at least ``a_lo``) and the LOP it
  is at least ``a_lo * ((L - P) / (L - P_lo)) ** END_POWER``. Then a pulse
  under the upper plateau's floor ``f`` can hide at most
  ``h = W * rho / (1 - rho)`` above it, ``rho = (f / a_lo) ** (1 / END_POWER)``,
  ``W`` the bracket's width. A result is given only when the number is within
  :data:`MAX_ERROR_MMHG` of every LOP from ``P_lo`` to ``P_hi + h``; otherwise it
  says the pulse fades too gently to see where it ends at this noise. Amplitude
  bounds are taken in amplitude (noise nearly normal there), with
  :data:`~console.therapy.lop_signal.REL_SCATTER` for beat-to-beat scatter.
- A level held several times is one record: the pulse is seen there when the
  plateaus' power ratios add up past a threshold with one plateau's false rate
  (:func:`gamma_threshold`), so re-holds count together.
- The sensor noise is white (independent from sample to sample), so the floor
  measured on a plateau from its second differences is the floor in the
  pulse's band.
- A steady rhythm is followed coherently (the heart rate's harmonics); one
  that varies from beat to beat is followed by the power of its whole band,
  which needs more pulse for the same noise.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from console.therapy.lop_signal import (
    BAND_PRESENT_Z,
    PRESENT_Z,
    REL_SCATTER,
    PlateauCache,
    StepAmplitude,
    StepInfo,
    analyse_steps,
)

MAX_LOP_MMHG = 300.0
"""Never step above this, whatever the station allows."""
STRONG_Z = 18.0
"""The strongest plateau's pulse must stand this far out of its noise (power ratio), or it is too weak to follow."""
STRONG_BAND_Z = 12.0
"""... or its band power this many SDs over the noise's (an irregular rhythm)."""
ABSENT_FRACTION = 0.5
"""Absence is confirmed on a plateau when no pulse shows and one of this share of the peak's amplitude would have
(a loose test on purpose: what may hide under that floor is the guard's to judge, see :meth:`Bracket.hidden`)."""
GONE_FRACTION = 0.25
"""A level under one with a pulse contradicts it (the pulse came back) only if one of this share of the peak's
would have shown there: a looser floor only leaves that level unclear."""
END_POWER = 2.0
"""The assumed gentlest end of a fade (2: a parabola, as cos^2 ends; 1: a straight line)."""
MAX_ERROR_MMHG = 8.5
"""The farthest the number may be from the LOP (the bracket plus what may hide above it allow), or no number
is given: under the 10 mmHg that counts as a wrong result, with room for the plateau's pressure itself."""
MAX_WIDTH_MMHG = 12.0
"""A bracket wider than this is not a result, however little may hide above it."""
REGULAR_COHERENCE = 0.5
"""A rhythm is followed coherently when the heart rate's line holds at least this share of the band's power."""
BOUND_SD = 3.0
"""Bounds of a level's pulse are this many SDs wide: the tightest of several levels' bounds is used, so
each must hold with room to spare."""
SAME_LEVEL_MMHG = 1.0
"""Plateaus held within this of each other are one level (their readings are pooled)."""


@dataclass(frozen=True, slots=True)
class LopResult:
    """The outcome of one LOP measurement: a number with its bracket, or a failure with the reason."""

    ok: bool
    lop: float | None
    confidence: float
    """0..1; 0 when not ok."""
    reason: str
    """Why it failed, or how it was obtained."""
    amplitudes: tuple[StepAmplitude, ...] = ()
    heart_rate_bpm: float | None = None
    noise_mmhg: float | None = None
    bracket: tuple[float, float] | None = None
    """(highest pressure where the pulse was seen, lowest above it where its absence was confirmed), mmHg."""
    resolution_mmhg: float | None = None
    """Width of the bracket, mmHg."""
    hidden_mmhg: float | None = None
    """How far above the bracket a pulse under the floor could still reach (under the fade-end assumption), mmHg."""
    peak_mmhg: float | None = None
    """Where the pulse was largest, mmHg."""
    rhythm: str | None = None
    """``regular`` (followed at the heart rate) or ``irregular`` (followed by its band's power)."""


def failure(
    reason: str, amps: Sequence[StepAmplitude] = (), hr: float | None = None, noise: float | None = None
) -> LopResult:
    """A failed result (also the procedure's, on cancel or timeout): the reason, and what was seen so far."""
    return LopResult(False, None, 0.0, reason, tuple(amps), hr, noise)


@dataclass(frozen=True, slots=True)
class Level:
    """One pressure level: the plateaus held there, pooled."""

    target: float
    pressure: float
    """Mean pressure held, mmHg."""
    power: float
    """Unbiased pulse power by the chosen estimator (coherent or band), mmHg^2."""
    var: float
    present: bool
    plateaus: int
    band_hint: bool = False
    """The band (any rhythm) shows more than noise here (over :data:`BAND_HINT_Z`), though not enough to count."""
    corrected: bool = False
    """Every plateau here had regulator corrections."""
    noise: float = math.inf
    """What noise alone adds to the pooled power (its expectation), mmHg^2."""

    @property
    def amplitude(self) -> float:
        return math.sqrt(max(0.0, self.power))

    def _spread(self) -> tuple[float, float]:
        # Noise moves the amplitude by sqrt(noise / 2) along the pulse (one SD); beat-to-beat and
        # breathing scatter move it by REL_SCATTER of itself per plateau.
        return BOUND_SD * math.sqrt(self.noise / 2.0), BOUND_SD * REL_SCATTER / math.sqrt(self.plateaus)

    def upper(self) -> float:
        """Upper bound (:data:`BOUND_SD` SDs) of the pulse's amplitude here, mmHg: bounded in amplitude, where
        the noise is nearly normal, not in power (whose lower tail a normal law would put far too low)."""
        if not math.isfinite(self.noise):
            return math.sqrt(max(0.0, self.power) + BOUND_SD * math.sqrt(self.var))
        add, rel = self._spread()
        return self.amplitude * (1.0 + rel) + add

    def lower(self) -> float:
        """Lower bound (:data:`BOUND_SD` SDs) of the pulse's amplitude here, mmHg (0 when it may be nothing)."""
        if not math.isfinite(self.noise):
            return math.sqrt(max(0.0, self.power - BOUND_SD * math.sqrt(self.var)))
        add, rel = self._spread()
        return max(0.0, (self.amplitude - add) * (1.0 - rel))


BAND_HINT_Z = 3.5
"""A level whose band reads this many SDs over its noise is never taken for one without a pulse: a rhythm
taken for steady on short plateaus cannot hide a pulse that is there (noise alone: about 1 in 4000)."""
CORRECTED_PRESENT_Z = 60.0
"""On a plateau with regulator corrections, a pulse counts as seen only this far over its noise (what a
correction leaves in the fit can look like a beat)."""


def _seen(a: StepAmplitude, regular: bool) -> bool:
    if not a.present:
        return False
    if a.corrections:
        return a.z > CORRECTED_PRESENT_Z
    # A steady rhythm is seen at its heart rate; the band alone (which a slow step can fool) counts
    # only for a rhythm that cannot be followed at one rate.
    return a.z > PRESENT_Z or not regular


def gamma_threshold(k: int, z: float | None = None) -> float:
    """Sum of ``k`` noise-only power ratios (each exponential with mean 1) exceeded as rarely as one ratio
    exceeds ``z`` (:data:`PRESENT_Z`): the pooled test of a level held ``k`` times keeps one plateau's false rate."""
    z = PRESENT_Z if z is None else z
    target = math.exp(-z)

    def tail(x: float) -> float:
        term, total = 1.0, 1.0
        for j in range(1, k):
            term *= x / j
            total += term
        return math.exp(-x) * total

    lo, hi = z, z + 8.0 * k
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if tail(mid) > target:
            lo = mid
        else:
            hi = mid
    return hi


def _pooled_seen(group: Sequence[StepAmplitude], regular: bool) -> bool:
    """The pulse seen on a level held several times: the plateaus' power ratios summed (regular rhythm),
    or their band excesses (irregular), against a threshold with the single plateau's false rate. Re-holds
    thus add up instead of each needing the pulse on its own. Plateaus with corrections are left out."""
    clean = [a for a in group if not a.corrections and not a.disturbed]
    if len(clean) < 2:
        return False
    if regular:
        return math.fsum(a.z for a in clean) > gamma_threshold(len(clean))
    return math.fsum(a.band_z for a in clean) / math.sqrt(len(clean)) > BAND_PRESENT_Z


def _pool(group: Sequence[StepAmplitude], regular: bool) -> Level:
    est = [(a.power, a.power_var) if regular else (a.band_power, a.band_var) for a in group]
    weights = [1.0 / v if math.isfinite(v) and v > 0 else 0.0 for _, v in est]
    total = math.fsum(weights)
    if total <= 0:
        power, var = 0.0, math.inf
    else:
        power = math.fsum(w * p for w, (p, _) in zip(weights, est)) / total
        var = 1.0 / total
    floors = [a.noise_power if regular else math.sqrt(a.band_var) for a in group]
    inv = math.fsum(1.0 / x for x in floors if math.isfinite(x) and x > 0)
    return Level(
        target=group[0].target,
        pressure=math.fsum(a.pressure for a in group) / len(group),
        power=power,
        var=var,
        present=any(_seen(a, regular) for a in group) or _pooled_seen(group, regular),
        plateaus=len(group),
        band_hint=any(a.band_z > BAND_HINT_Z for a in group),
        corrected=all(a.corrections for a in group),
        noise=1.0 / inv if inv > 0 else math.inf,
    )


def levels(amps: Sequence[StepAmplitude], regular: bool) -> list[Level]:
    """The plateaus pooled by level (targets within :data:`SAME_LEVEL_MMHG`), sorted by pressure."""
    groups: list[list[StepAmplitude]] = []
    for a in sorted(amps, key=lambda a: a.target):
        if groups and abs(a.target - groups[-1][0].target) <= SAME_LEVEL_MMHG:
            groups[-1].append(a)
        else:
            groups.append([a])
    return [_pool(g, regular) for g in groups]


def is_regular(amps: Sequence[StepAmplitude]) -> bool:
    """Whether the rhythm is steady enough to follow at the heart rate (see :data:`REGULAR_COHERENCE`)."""
    # Only long plateaus tell: over two or three beats a varying rhythm still looks steady.
    strong = [a for a in amps if a.band_z > 8.0 and a.band_power > 0 and a.samples >= 250]
    if not strong:
        return True
    return statistics.median(max(0.0, a.power) / a.band_power for a in strong) >= REGULAR_COHERENCE


@dataclass(frozen=True, slots=True)
class Bracket:
    """What the plateaus say so far, for the verdict and for the procedure's next step."""

    levels: tuple[Level, ...]
    peak: Level
    regular: bool
    lo: Level | None
    """The highest level where the pulse was seen."""
    hi: Level | None
    """The lowest level above ``lo`` where its absence was confirmed."""
    unclear_above: bool
    """Some level above ``lo`` shows no pulse but could hide one of :data:`ABSENT_FRACTION` of the peak."""
    back_above: Level | None
    """A level above ``hi`` where the pulse showed again."""

    def absent(self, lv: Level, fraction: float = ABSENT_FRACTION) -> bool:
        """No pulse here, and one of :data:`ABSENT_FRACTION` of the peak's would have shown: confirmed only on a
        plateau the regulator left alone (what a correction's fit takes away can be the pulse itself)."""
        return not lv.present and not lv.corrected and not lv.band_hint and lv.upper() <= fraction * self.peak.amplitude

    @property
    def width(self) -> float:
        assert self.lo is not None and self.hi is not None
        return self.hi.pressure - self.lo.pressure

    def anchor(self) -> Level | None:
        """The level with a pulse whose bound on what may hide above ``hi`` is the tightest (the one to hold again)."""
        assert self.lo is not None and self.hi is not None
        best, where = math.inf, None
        for x in self.levels:
            b = self._hidden_from(x)
            if b < best:
                best, where = b, x
        return where

    def _hidden_from(self, x: Level) -> float:
        assert self.hi is not None
        if not x.present or x.pressure < self.peak.pressure or x.pressure >= self.hi.pressure:
            return math.inf
        low = x.lower()
        if low <= 0.0:
            return math.inf
        rho = math.pow(self.hi.upper() / low, 1.0 / END_POWER)
        return (self.hi.pressure - x.pressure) * rho / (1.0 - rho) if rho < 1.0 else math.inf

    def hidden(self) -> float:
        """How far above ``hi`` a pulse under its floor could reach, under the fade-end assumption (inf: any).

        Each level with a pulse on the fading side (``P``, amplitude at least
        ``a``) bounds it: ``(hi - P) * rho / (1 - rho)``, ``rho = (floor / a) ** (1 / END_POWER)``;
        the tightest bound holds.
        """
        assert self.lo is not None and self.hi is not None
        return min((self._hidden_from(x) for x in self.levels), default=math.inf)

    def estimate(self) -> float:
        """The number given: the middle of where the LOP can lie (from ``lo`` to ``hi`` plus what may hide
        above it), but never above ``hi``: always a pressure inside the bracket the plateaus held."""
        assert self.lo is not None and self.hi is not None
        h = self.hidden()
        if math.isinf(h):
            return self.hi.pressure
        return min(self.hi.pressure, 0.5 * (self.lo.pressure + self.hi.pressure + h))

    def error_bound(self) -> float:
        """How far the estimate can be from the LOP, which lies between ``lo`` and ``hi`` plus what may hide, mmHg."""
        assert self.lo is not None and self.hi is not None
        h = self.hidden()
        if math.isinf(h):
            return math.inf
        est = self.estimate()
        return max(est - self.lo.pressure, self.hi.pressure + h - est)


def bracket(amps: Sequence[StepAmplitude]) -> Bracket | None:
    """The bracket the plateaus hold, or None when no pulse was seen at all."""
    regular = is_regular(amps)
    lv = levels(amps, regular)
    present = [x for x in lv if x.present]
    if not present:
        return None
    peak = max(present, key=lambda x: x.power - 2.0 * math.sqrt(x.var))
    lo = max(present, key=lambda x: x.pressure)
    shell = Bracket(tuple(lv), peak, regular, lo, None, False, None)
    faded = [x for x in lv if x.pressure > peak.pressure and x is not lo]
    gone_below = [x for x in faded if x.pressure < lo.pressure and shell.absent(x, GONE_FRACTION)]
    if gone_below:
        # Absent at a level under one where the pulse shows: the bracket is the first absence, contradicted.
        return Bracket(tuple(lv), peak, regular, lo, gone_below[0], False, lo)
    above = [x for x in faded if x.pressure > lo.pressure]
    hi = next((x for x in above if shell.absent(x)), None)
    unclear = any(not shell.absent(x) for x in above if hi is None or x.pressure < hi.pressure)
    return Bracket(tuple(lv), peak, regular, lo, hi, unclear, None)


def verdict(amps: Sequence[StepAmplitude], hr: float | None, noise: float | None, *, ceiling: float) -> LopResult:
    """The result the plateaus allow: the bracket's middle, or a failure with the reason."""
    hr_bpm = hr * 60.0 if hr is not None else None
    noise_txt = f"noise {noise or 0:.2f} mmHg"

    def fail(reason: str) -> LopResult:
        return failure(reason, amps, hr_bpm, noise)

    cut = [a for a in amps if a.cut_up]
    if cut:
        return fail(
            f"the regulator kept correcting at {cut[0].target:.0f} mmHg ({cut[0].corrections} corrections): "
            "too little steady pressure to read the pulse"
        )
    disturbed = [a for a in amps if a.disturbed]
    if disturbed:
        worst = max(disturbed, key=lambda a: a.slow_rms)
        return fail(
            f"movement artefact: the pressure wanders by {worst.slow_rms:.1f} mmHg at the {worst.target:.0f} mmHg "
            "step; keep the limb still and measure again"
        )
    if len(amps) < 3:
        return fail("too few usable pressure steps (need at least 3 plateaus of 1 s)")
    br = bracket(amps)
    if br is None:
        return fail(f"no arterial pulsation seen in the cuff pressure at any step ({noise_txt})")
    if max(a.z for a in amps) < STRONG_Z and max(a.band_z for a in amps) < STRONG_BAND_Z:
        return fail(f"pulsation too weak for the noise (pulse {br.peak.amplitude:.2f} mmHg, {noise_txt})")
    rhythm = "regular" if br.regular else "irregular"
    if br.back_above is not None and br.hi is not None:
        return fail(
            f"pulsation came back at {br.back_above.pressure:.0f} mmHg after vanishing at {br.hi.pressure:.0f} mmHg "
            "(movement, a loose cuff, or an irregular rhythm?)"
        )
    if br.hi is None:
        top = max(x.pressure for x in br.levels)
        assert br.lo is not None
        if not br.unclear_above and br.lo.pressure >= top - 0.5 and top >= ceiling - 2.0:
            return fail(
                f"pulsation never faded below the ceiling ({ceiling:.0f} mmHg): the LOP is higher, "
                "or the cuff is too narrow for this limb"
            )
        if any(x.corrected for x in br.levels if x.pressure > br.lo.pressure):
            return fail(
                f"the regulator kept correcting above {br.lo.pressure:.0f} mmHg: the pulse's absence could not "
                "be confirmed on a steady plateau"
            )
        if not br.regular:
            return fail(
                f"irregular heart rhythm: could not confirm the pulse's absence above {br.lo.pressure:.0f} mmHg "
                f"against the noise (pulse {br.peak.amplitude:.2f} mmHg, {noise_txt})"
            )
        return fail(
            f"could not confirm the pulse's absence above {br.lo.pressure:.0f} mmHg against the noise "
            f"(pulse {br.peak.amplitude:.2f} mmHg, {noise_txt})"
        )
    assert br.lo is not None
    lo, hi = br.lo.pressure, br.hi.pressure
    if br.width > MAX_WIDTH_MMHG:
        return fail(f"the LOP lies between {lo:.0f} and {hi:.0f} mmHg: too wide a bracket to give a number")
    bound = br.error_bound()
    if bound > MAX_ERROR_MMHG:
        hidden = "any distance" if math.isinf(bound) else f"{br.hidden():.0f} mmHg"
        return fail(
            f"the pulse fades too gently to see where it ends at this noise: seen at {lo:.0f}, not at {hi:.0f} mmHg, "
            f"but one under that plateau's floor ({br.hi.upper():.2f} mmHg) could reach {hidden} higher"
        )
    limit = min(ceiling, MAX_LOP_MMHG)
    lop = min(br.estimate(), limit)
    confidence = max(0.0, min(1.0, 1.0 - bound / (2.0 * MAX_ERROR_MMHG)))
    return LopResult(
        True,
        round(lop, 1),
        round(confidence, 3),
        f"pulse seen at {lo:.0f}, gone at {hi:.0f} mmHg (up to {br.hidden():.1f} may hide above; within "
        f"{bound:.1f}; peak {br.peak.amplitude:.2f} mmHg at {br.peak.pressure:.0f}, {rhythm} rhythm"
        + (f" {hr_bpm:.0f}/min" if hr_bpm is not None and br.regular else "")
        + ")",
        tuple(amps),
        hr_bpm,
        noise,
        (round(lo, 1), round(hi, 1)),
        round(hi - lo, 1),
        round(br.hidden(), 1),
        round(br.peak.pressure, 1),
        rhythm,
    )


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
    return verdict(amps, f, noise, ceiling=ceiling)
