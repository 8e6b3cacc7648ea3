"""Pulse amplitude on each plateau of an LOP staircase, from the cuff's own pressure.

Its own module because it is the signal processing (detrending, the
regulator's corrections, the heart rate, the lock-in fit) that the envelope
fit in :mod:`console.therapy.lop_estimate` builds on; pure, stdlib only.

Pulse amplitude of a plateau. The heart rate is found once from all plateaus
(harmonic-comb power, each plateau with its own phase). Each plateau is then
fitted by least squares with an offset, a drift and the first harmonics of
the heart rate. The regulator's pump/vent corrections show as jumps of the
one-heartbeat moving average; +-0.3 s around each is left out and each clean
stretch gets its own offset, so no correction leaks into the pulse (another
team's controller may be twitchier than ours). The squared fundamental minus
its noise expectation (fit covariance times residual variance) is an unbiased
pulse power with a known variance. The one-beat average's wander around its
trend shows movement.
"""

from __future__ import annotations

import cmath
import math
import statistics
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field

from console.therapy.lop_band import band_power, moving_average, small_steps
from console.therapy.lop_lstsq import lstsq

HR_MIN_HZ = 0.7
"""Lowest heart rate searched, Hz (42 /min)."""
HR_MAX_HZ = 2.3
"""Highest heart rate searched, Hz (138 /min): patients reach 130 /min, and the refinement needs a grid point
beyond (at 126 /min, limbs at 127-130 showed "no pulsation at any step" with a 4 mmHg pulse)."""
HARMONICS = 3
"""Harmonics of the heart rate fitted on each plateau (the fundamental gives the amplitude)."""
PRESENT_Z = 10.0
"""A plateau shows a pulse when its fundamental's power exceeds this many times the noise expectation.

Noise alone gives an exponentially distributed ratio with mean 1: a false pulse in 1 plateau out of 20000."""
MOVEMENT_MMHG = 1.0
"""RMS of the baseline (pressure averaged over a heartbeat) around its fit above which a plateau is disturbed."""
MOVEMENT_WANDER_MMHG = 2.0
"""RMS of the one-beat baseline around a straight line, corrections included, above which a plateau is disturbed."""
MAX_CORRECTIONS = 3
"""More baseline jumps than this on one plateau: the limb is moving (or the cuff is loose)."""
BAND_PRESENT_Z = 5.5
"""A plateau shows a pulse when its band power exceeds the noise's by this many SDs (false: about 1 in 10^4)."""
REL_SCATTER = 0.08
"""Relative scatter of a plateau's pulse amplitude beyond noise (beat-to-beat variation, heart rate jitter)."""


@dataclass(frozen=True, slots=True)
class StepInfo:
    """One plateau of the staircase: the target and the window to analyse (settled part only)."""

    target: float
    t_start: float
    t_end: float


@dataclass(frozen=True, slots=True)
class StepAmplitude:
    """What the estimator saw on one plateau."""

    target: float
    pressure: float
    """Mean measured pressure over the window, mmHg."""
    amplitude: float
    """Pulse amplitude: the fitted fundamental at the heart rate, noise bias removed, mmHg."""
    power: float
    """Unbiased squared amplitude (may be negative when there is no pulse), mmHg^2."""
    power_var: float
    """Variance of ``power`` from the noise, mmHg^4."""
    noise_power: float
    """What noise alone adds to the squared fundamental (its expectation), mmHg^2."""
    z: float
    """Squared fundamental over its noise expectation; about 1 when there is no pulse."""
    noise: float
    """Sensor noise (one SD) on this plateau, mmHg."""
    slow_rms: float
    """RMS of the slow residual after the fit: movement shows here, mmHg."""
    samples: int
    present: bool
    disturbed: bool
    corrections: int = 0
    """Regulator corrections (baseline jumps) seen on the plateau."""
    band_power: float = 0.0
    """Unbiased power of the pulse's fundamental band (any rhythm, regular or not), mmHg^2."""
    band_var: float = math.inf
    """Variance of ``band_power`` from the noise, mmHg^4."""
    band_z: float = 0.0
    """Excess of the band's power over its noise expectation, in SDs of that expectation; about 0 without a pulse."""
    cut_up: bool = False
    """So many corrections that too little of the plateau was left to read."""

    def coherent_bound(self) -> float:
        """Upper bound (about 97.5 %) of the fundamental's power at the heart rate, mmHg^2."""
        return max(0.0, self.power) + 2.0 * math.sqrt(self.power_var)

    def band_bound(self) -> float:
        """Upper bound (about 97.5 %) of the fundamental band's power whatever the rhythm, mmHg^2."""
        return max(0.0, self.band_power) + 2.0 * math.sqrt(self.band_var)


def pulse_power_var(noise_power: float, power: float) -> float:
    """Variance of a plateau's unbiased pulse power, given its noise expectation and the true power."""
    pos = max(0.0, power)
    return noise_power * noise_power + 2.0 * noise_power * pos + (2.0 * REL_SCATTER * pos) ** 2


# --------------------------------------------------------------------------- per-plateau analysis

_GRID = tuple(HR_MIN_HZ + 0.02 * i for i in range(int(round((HR_MAX_HZ - HR_MIN_HZ) / 0.02)) + 1))
"""Heart rates (Hz) of the coarse search."""


@dataclass
class _Plateau:
    target: float
    t: list[float]
    """Times relative to the window's middle, s."""
    p: list[float]
    mean: float
    sigma: float
    """Sensor noise from second differences (robust), mmHg."""
    x: list[float]
    """Pressure without its linear trend and its largest level shifts (for the heart-rate search)."""
    fs: float
    """Sample rate, Hz."""
    spectrum: list[float] = field(default_factory=list)
    """Harmonic-comb power over :data:`_GRID`, in units of its noise expectation, minus that expectation."""
    fits: dict[float, StepAmplitude | None] = field(default_factory=dict)


def _sigma_from_second_differences(x: Sequence[float]) -> float:
    d2 = [x[i + 1] - 2.0 * x[i] + x[i - 1] for i in range(1, len(x) - 1)]
    if not d2:
        return 0.0
    med = statistics.median(d2)
    mad = statistics.median(abs(d - med) for d in d2)
    # Second differences of white noise have SD sigma*sqrt(6); MAD/0.6745 estimates an SD.
    # The 0.1 mmHg quantisation of the wire sets a floor.
    return max(mad / 0.6745 / math.sqrt(6.0), 0.03)


def _detrend(t: Sequence[float], x: Sequence[float]) -> list[float]:
    n = len(t)
    tm = math.fsum(t) / n
    xm = math.fsum(x) / n
    sxx = math.fsum((ti - tm) ** 2 for ti in t)
    slope = math.fsum((ti - tm) * (xi - xm) for ti, xi in zip(t, x)) / sxx if sxx > 0 else 0.0
    return [xi - xm - slope * (ti - tm) for ti, xi in zip(t, x)]


def _remove_level_shifts(
    t: Sequence[float], x: list[float], sigma: float, window_s: float = 1.2
) -> tuple[list[float], list[int]]:
    """Take out the regulator's pump/vent bursts (level shifts) before the heart rate is known.

    Compares the means of the ``window_s`` before and after each sample (a
    window of a heartbeat or more averages most of the pulse away); the largest
    jump over 0.8 mmHg is removed as a step, up to three times.
    """
    n = len(x)
    shifts: list[int] = []
    if n < 10 or t[-1] <= t[0]:
        return x, shifts
    w = min(max(3, int(round(window_s * (n - 1) / (t[-1] - t[0])))), n // 3)
    if w < 3:
        return x, shifts
    thr = max(0.4, 6.0 * sigma / math.sqrt(w))
    for _ in range(10):
        pre = [0.0]
        for v in x:
            pre.append(pre[-1] + v)
        best_k, best_d = -1, 0.0
        for k in range(3, n - 2):
            ww = min(w, k, n - k)  # near the ends, shorter windows: a correction there is a step too
            d = (pre[k + ww] - pre[k]) / ww - (pre[k] - pre[k - ww]) / ww
            if abs(d) > abs(best_d) and abs(d) >= max(thr, 6.0 * sigma / math.sqrt(ww)):
                best_k, best_d = k, d
        if best_k < 0:
            break
        shifts.append(best_k)
        x = _detrend(t, [xi - (best_d if i >= best_k else 0.0) for i, xi in enumerate(x)])
    return x, shifts


def _harmonics(fs: float, f: float) -> range:
    """The harmonics of ``f`` fitted: up to :data:`HARMONICS`, and well under the Nyquist rate."""
    top = HARMONICS
    while top > 1 and top * f > 0.4 * fs:
        top -= 1
    return range(1, top + 1)


def _comb_power(pl: _Plateau, f: float) -> float:
    """Harmonic-comb power of the plateau at ``f`` in noise units, minus its noise expectation."""
    n = len(pl.t)
    norm = n * pl.sigma * pl.sigma
    total = 0.0
    for h in _harmonics(pl.fs, f):
        w = -2j * math.pi * h * f
        s = sum(xi * cmath.exp(w * ti) for ti, xi in zip(pl.t, pl.x))
        total += (s.real * s.real + s.imag * s.imag) / norm - 1.0
    return total


def _plateau(target: float, t: Sequence[float], p: Sequence[float]) -> _Plateau:
    n = len(t)
    tm = 0.5 * (t[0] + t[-1])
    dt = [ti - tm for ti in t]
    sigma = _sigma_from_second_differences(p)
    x, shifts = _remove_level_shifts(dt, _detrend(dt, p), sigma)
    fs = (n - 1) / (t[-1] - t[0])
    # A shift's own ramp is left over where it was taken out: blank it, or a regulator correcting
    # every second or so shows as a rhythm of its own.
    near = max(1, int(round(0.25 * fs)))
    x = [0.0 if any(abs(i - k) <= near for k in shifts) else xi for i, xi in enumerate(x)]
    pl = _Plateau(target, dt, list(p), math.fsum(p) / n, sigma, x, fs)
    pl.spectrum = [_comb_power(pl, f) for f in _GRID]
    return pl


def _line_power(pl: _Plateau, f: float) -> float:
    """Power of the plateau at the single frequency ``f``, in noise units, minus its noise expectation."""
    w = -2j * math.pi * f
    z = sum(xi * cmath.exp(w * ti) for ti, xi in zip(pl.t, pl.x))
    return (z.real * z.real + z.imag * z.imag) / (len(pl.t) * pl.sigma * pl.sigma) - 1.0


def _heart_rate(plateaus: Sequence[_Plateau]) -> float | None:
    """The heart rate (Hz) whose harmonic comb carries the most pulse power over all plateaus."""
    if not plateaus:
        return None
    # Each plateau votes with its spectrum scaled to its own highest line, so one plateau whose
    # corrections left a strong slow wander cannot outvote the others' pulse; plateaus with
    # nothing over noise count little.
    scale = [1.0 / max(20.0, max(pl.spectrum)) for pl in plateaus]
    total = [math.fsum(pl.spectrum[i] * w for pl, w in zip(plateaus, scale)) for i in range(len(_GRID))]
    best_i = max(range(len(_GRID)), key=total.__getitem__)
    if total[best_i] <= 0.0:
        return None
    # The comb at half the heart rate holds the true fundamental as its second tooth, so
    # a step or drift left in a plateau can make it win. At the true rate the
    # fundamental line carries more than the line at twice it (the pulse's second
    # harmonic); at half the rate it is the other way round.
    f0 = _GRID[best_i]
    if 2.0 * f0 <= HR_MAX_HZ and sum(_line_power(pl, 2.0 * f0) for pl in plateaus) > sum(
        _line_power(pl, f0) for pl in plateaus
    ):
        best_i = min(range(len(_GRID)), key=lambda i: abs(_GRID[i] - 2.0 * f0))
    # Refine on the plateaus that carry the pulse: golden section around the best grid point.
    strong = sorted(plateaus, key=lambda pl: pl.spectrum[best_i], reverse=True)[:5]
    strong = [pl for pl in strong if pl.spectrum[best_i] > 0.0]

    def score(f: float) -> float:
        return sum(_comb_power(pl, f) for pl in strong)

    a = _GRID[max(0, best_i - 1)]
    b = _GRID[min(len(_GRID) - 1, best_i + 1)]
    g = (math.sqrt(5.0) - 1.0) / 2.0
    c, d = b - g * (b - a), a + g * (b - a)
    sc, sd = score(c), score(d)
    for _ in range(14):
        if sc > sd:
            b, d, sd = d, c, sc
            c = b - g * (b - a)
            sc = score(c)
        else:
            a, c, sc = c, d, sd
            d = a + g * (b - a)
            sd = score(d)
    return 0.5 * (a + b)


def _fit_plateau(pl: _Plateau, f: float) -> StepAmplitude | None:
    """The pulse at heart rate ``f`` on one plateau, clear of the regulator's corrections; None if too little is left.

    Averaged over one heartbeat the pulse vanishes, leaving the baseline: the
    cuff's own pressure. Where that baseline moves by more than noise within a
    beat, the regulator has just pumped or vented (or the limb moved); those
    stretches are left out, and each clean stretch gets its own offset, with a
    common drift and the harmonics of the heart rate. The baseline's wander
    around its trend (``slow_rms``) shows movement.
    """
    n = len(pl.t)
    per = max(3, int(round(pl.fs / f)))
    base = moving_average(pl.p, per)
    half = per // 2
    jump = [base[min(n - 1, i + half)] - base[max(0, i - half)] for i in range(n)]
    thr = max(0.6, 4.0 * pl.sigma / math.sqrt(per))
    # Each run of samples where the baseline jumps (one sign) marks one correction, centred on
    # the largest jump; a short stretch around that centre is left out.
    flagged = [False] * n
    centres: list[int] = []
    reach = max(1, int(round(0.3 * pl.fs)))
    i = 0
    while i < n:
        if abs(jump[i]) <= thr:
            i += 1
            continue
        sign = jump[i] > 0
        j = i
        while j < n and abs(jump[j]) > thr and (jump[j] > 0) == sign:
            j += 1
        c = max(range(i, j), key=lambda k: abs(jump[k]))
        centres.append(c)
        for k in range(max(0, c - reach), min(n, c + reach + 1)):
            flagged[k] = True
        i = j
    min_len = max(3, per)  # shorter stretches would let their offsets soak up the pulse
    segments: list[tuple[int, int]] = []
    i = 0
    while i < n:
        if flagged[i]:
            i += 1
            continue
        j = i
        while j < n and not flagged[j]:
            j += 1
        if j - i >= min_len:
            segments.append((i, j))
        i = j
    idx = [k for a, b in segments for k in range(a, b)]
    if len(idx) >= 0.6 * n:
        # Few corrections: leave them out, one offset per clean stretch.
        t = [pl.t[k] for k in idx]
        y = [pl.p[k] for k in idx]
        cols: list[list[float]] = [[1.0 if a <= k < b else 0.0 for k in idx] for a, b in segments]
    else:
        # Corrections all along: leave out only the bursts themselves (0.2 s around each), a level shift at each.
        near = max(1, int(round(0.2 * pl.fs)))
        idx = [k for k in range(n) if all(abs(k - c) > near for c in centres)]
        t = [pl.t[k] for k in idx]
        y = [pl.p[k] for k in idx]
        cols = [[1.0] * len(idx)] + [[1.0 if k >= c else 0.0 for k in idx] for c in centres if 0 < c < n]
    m = len(t)
    if m < 0.9 * pl.fs:
        if len(centres) > MAX_CORRECTIONS:  # cut to pieces: too disturbed to read
            return StepAmplitude(
                pl.target,
                pl.mean,
                0.0,
                0.0,
                math.inf,
                math.inf,
                0.0,
                pl.sigma,
                math.inf,
                n,
                False,
                True,
                corrections=len(centres),
                cut_up=True,
            )
        return None
    cols.append(t)
    harmonics: list[list[float]] = []
    for h in _harmonics(pl.fs, f):
        w = 2.0 * math.pi * h * f
        harmonics.append([math.cos(w * ti) for ti in t])
        harmonics.append([math.sin(w * ti) for ti in t])
    fit = lstsq(cols + harmonics, y)
    if fit is None:
        return None
    # Second pass: corrections too small for the jump test (a few tenths of a mmHg) show in what the
    # fit leaves; each becomes a level shift of its own, so no step leaks into the pulse's band.
    coef, _inv = fit
    full = cols + harmonics
    left = [yi - math.fsum(coef[c] * full[c][k] for c in range(len(full))) for k, yi in enumerate(y)]
    steps = small_steps(left, per, pl.sigma)
    if steps:
        # Each small step gets its own level, and the ramp around it is left out (a level shift
        # models a ramp badly, and what it misses looks like a beat).
        near = max(1, int(round(0.2 * pl.fs)))
        keep = [k for k in range(m) if all(abs(k - c) > near for c in steps)]
        cols = [[0.0] * c + [1.0] * (m - c) for c in steps] + cols
        cols = [[col[k] for k in keep] for col in cols]
        harmonics = [[col[k] for k in keep] for col in harmonics]
        t = [t[k] for k in keep]
        y = [y[k] for k in keep]
        m = len(keep)
        fit = lstsq(cols + harmonics, y)
        if fit is None:
            return None
    first = len(cols)
    cols = cols + harmonics
    coef, inv = fit
    resid = [yi - math.fsum(coef[c] * cols[c][k] for c in range(len(cols))) for k, yi in enumerate(y)]
    # Baseline wander left after the offsets and drift, averaged over a beat: movement.
    slow = moving_average(resid, per)
    slow_rms = math.sqrt(math.fsum(v * v for v in slow) / m)
    # ... and the baseline's wander around a straight line, jumps included: a correction or two
    # of a few mmHg stay under the limit, a moving limb's swings do not.
    wander = math.sqrt(math.fsum(v * v for v in _detrend(pl.t, base)) / n)
    slow_rms = max(slow_rms, wander - (MOVEMENT_WANDER_MMHG - MOVEMENT_MMHG))
    disturbed = slow_rms > max(MOVEMENT_MMHG, 3.0 * pl.sigma / math.sqrt(per))
    dof = max(1, m - len(cols))
    s2 = max(pl.sigma * pl.sigma, math.fsum(r * r for r in resid) / dof)
    tr_c = s2 * (inv[first][first] + inv[first + 1][first + 1])
    raw = coef[first] ** 2 + coef[first + 1] ** 2
    power = raw - tr_c
    z = raw / tr_c if tr_c > 0 else 0.0
    # The band is read from what the offsets, steps and drift alone leave (a fit of its own: sharing
    # the offsets with the harmonics would hand it whatever they trade between them).
    base_only = lstsq(cols[:first], y)
    if base_only is None:
        return None
    bc = base_only[0]
    left = [yi - math.fsum(bc[c] * cols[c][k] for c in range(first)) for k, yi in enumerate(y)]
    band_pow, band_var, band_z = band_power(t, left, pl.sigma)
    corrections = len(centres) + len(steps)
    if corrections:
        # A correction's edge has power in the band too: the band says nothing on such a plateau.
        band_pow, band_var, band_z = 0.0, math.inf, 0.0
    present = (z > PRESENT_Z or band_z > BAND_PRESENT_Z) and not disturbed
    return StepAmplitude(
        target=pl.target,
        pressure=pl.mean,
        amplitude=math.sqrt(max(0.0, power)),
        power=power,
        power_var=pulse_power_var(tr_c, power),
        noise_power=tr_c,
        z=z,
        noise=math.sqrt(s2),
        slow_rms=slow_rms,
        samples=m,
        present=present,
        disturbed=disturbed,
        corrections=corrections,
        band_power=band_pow,
        band_var=band_var,
        band_z=band_z,
    )


PlateauCache = dict[tuple[float, float, float], _Plateau]
"""Plateaus already prepared, by (target, start, end): the procedure analyses after every step."""


def analyse_steps(
    times: Sequence[float],
    pressures: Sequence[float],
    steps: Sequence[StepInfo],
    cache: PlateauCache | None = None,
) -> tuple[list[StepAmplitude], float | None, float | None]:
    """Per-plateau pulse (sorted by pressure), the heart rate (Hz) and the median noise; short plateaus are left out."""
    plats: list[_Plateau] = []
    for st in steps:
        key = (st.target, st.t_start, st.t_end)
        pl = cache.get(key) if cache is not None else None
        if pl is None:
            i0 = bisect_left(times, st.t_start)
            i1 = bisect_right(times, st.t_end)
            t = [times[i] for i in range(i0, i1) if math.isfinite(pressures[i])]
            p = [pressures[i] for i in range(i0, i1) if math.isfinite(pressures[i])]
            if len(t) < 20 or t[-1] - t[0] < 0.8:
                continue
            pl = _plateau(st.target, t, p)
            if cache is not None:
                cache[key] = pl
        plats.append(pl)
    if not plats:
        return [], None, None
    noise = statistics.median(pl.sigma for pl in plats)
    f = _heart_rate(plats)
    if f is None:
        f = _GRID[len(_GRID) // 2]
        found = False
    else:
        found = True
    out: list[StepAmplitude] = []
    fk = round(f, 4)
    for pl in plats:
        if fk not in pl.fits:
            pl.fits[fk] = _fit_plateau(pl, f)
        a = pl.fits[fk]
        if a is not None:
            out.append(a)
    out.sort(key=lambda a: a.pressure)
    return out, (f if found else None), noise
