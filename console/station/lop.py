"""Limb occlusion pressure (LOP) from the cuff's own pressure signal.

The method of automated tourniquet systems (Masri et al. 2016): step the cuff
pressure up, hold each step for a few heartbeats, and watch the arterial pulse
that rides on the cuff pressure. Its amplitude (the oscillometric envelope) is
largest near mean arterial pressure and fades to nothing at the LOP.

Two parts, both pure (no I/O, no clock reads, no knowledge of any emulator):

- :func:`estimate_lop` turns a recorded pressure stream and the plateaus of
  the steps into a :class:`LopResult`, or a clear failure with a reason.
- :class:`LopMeasurement` is the procedure as a state machine: the station
  feeds it every sample and asks it what to do next (set a target, wait, or
  deflate and finish). Coarse, short plateaus climb until the pulse has
  clearly faded; longer plateaus then fill the fading side where they tell
  most about the LOP.

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

import cmath
import math
import statistics
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field

from console.station.api import LopProgress
from console.station.clock import Clock

MAX_LOP_MMHG = 300.0
"""Never step above this, whatever the station allows."""

HR_MIN_HZ = 0.7
"""Lowest heart rate searched, Hz (42 /min)."""
HR_MAX_HZ = 2.1
"""Highest heart rate searched, Hz (126 /min)."""
HARMONICS = 3
"""Harmonics of the heart rate fitted on each plateau (the fundamental gives the amplitude)."""

PRESENT_Z = 10.0
"""A plateau shows a pulse when its fundamental's power exceeds this many times the noise expectation.

Noise alone gives an exponentially distributed ratio with mean 1: a false pulse in 1 plateau out of 20000."""
STRONG_Z = 18.0
"""The strongest plateau must reach this ratio, or the pulse is too weak to follow as it fades."""
MOVEMENT_MMHG = 1.0
"""RMS of the baseline (pressure averaged over a heartbeat) around its fit above which a plateau is disturbed."""
MOVEMENT_WANDER_MMHG = 2.0
"""RMS of the one-beat baseline around a straight line, corrections included, above which a plateau is disturbed."""
MAX_CORRECTIONS = 3
"""More baseline jumps than this on one plateau: the limb is moving (or the cuff is loose)."""
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


@dataclass(frozen=True, slots=True)
class LopResult:
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


def _fail(reason: str, amps: Sequence[StepAmplitude] = (), hr: float | None = None, noise: float | None = None) -> LopResult:
    return LopResult(False, None, 0.0, reason, tuple(amps), hr, noise)


# --------------------------------------------------------------------------- small linear algebra


def _invert(a: list[list[float]]) -> list[list[float]] | None:
    """Inverse of a small dense matrix (Gauss-Jordan, partial pivoting); None if singular."""
    n = len(a)
    m = [row[:] + [1.0 if i == j else 0.0 for j in range(n)] for i, row in enumerate(a)]
    for col in range(n):
        piv = max(range(col, n), key=lambda r: abs(m[r][col]))
        if abs(m[piv][col]) < 1e-12:
            return None
        m[col], m[piv] = m[piv], m[col]
        top = m[col]
        p = top[col]
        for c in range(2 * n):
            top[c] /= p
        for r in range(n):
            if r != col:
                f = m[r][col]
                if f:
                    row = m[r]
                    for c in range(col, 2 * n):
                        row[c] -= f * top[c]
    return [row[n:] for row in m]


def _lstsq(columns: list[list[float]], y: Sequence[float]) -> tuple[list[float], list[list[float]]] | None:
    """Least squares: (coefficients, inverse of the normal matrix) or None when degenerate."""
    k = len(columns)
    ata = [[0.0] * k for _ in range(k)]
    for i in range(k):
        ci = columns[i]
        for j in range(i, k):
            s = math.fsum(a * b for a, b in zip(ci, columns[j]))
            ata[i][j] = ata[j][i] = s
    inv = _invert(ata)
    if inv is None:
        return None
    aty = [math.fsum(a * b for a, b in zip(c, y)) for c in columns]
    coef = [math.fsum(inv[i][j] * aty[j] for j in range(k)) for i in range(k)]
    return coef, inv


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


def _remove_level_shifts(t: Sequence[float], x: list[float], sigma: float, window_s: float = 1.2) -> list[float]:
    """Take out the regulator's pump/vent bursts (level shifts) before the heart rate is known.

    Compares the means of the ``window_s`` before and after each sample (a
    window of a heartbeat or more averages most of the pulse away); the largest
    jump over 0.8 mmHg is removed as a step, up to three times.
    """
    n = len(x)
    if n < 10 or t[-1] <= t[0]:
        return x
    w = min(max(3, int(round(window_s * (n - 1) / (t[-1] - t[0])))), n // 3)
    if w < 3:
        return x
    thr = max(0.8, 6.0 * sigma / math.sqrt(w))
    for _ in range(3):
        pre = [0.0]
        for v in x:
            pre.append(pre[-1] + v)
        best_k, best_d = -1, 0.0
        for k in range(w, n - w + 1):
            d = (pre[k + w] - pre[k]) / w - (pre[k] - pre[k - w]) / w
            if abs(d) > abs(best_d):
                best_k, best_d = k, d
        if best_k < 0 or abs(best_d) < thr:
            break
        x = _detrend(t, [xi - (best_d if i >= best_k else 0.0) for i, xi in enumerate(x)])
    return x


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
    x = _remove_level_shifts(dt, _detrend(dt, p), sigma)
    fs = (n - 1) / (t[-1] - t[0])
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
    total = [math.fsum(pl.spectrum[i] for pl in plateaus) for i in range(len(_GRID))]
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


def _moving_average(x: Sequence[float], per: int) -> list[float]:
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
    base = _moving_average(pl.p, per)
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
    min_len = max(3, int(0.25 * pl.fs))
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
        # Corrections all along (a short plateau, a strong pulse): keep every sample, a level shift at each.
        t, y = pl.t, pl.p
        cols = [[1.0] * n] + [[0.0] * c + [1.0] * (n - c) for c in centres if 0 < c < n]
    m = len(t)
    if m < 0.9 * pl.fs:
        if len(centres) > MAX_CORRECTIONS:  # cut to pieces: too disturbed to read
            return StepAmplitude(pl.target, pl.mean, 0.0, 0.0, math.inf, math.inf, 0.0, pl.sigma, math.inf, n, False, True)
        return None
    cols.append(t)
    first = len(cols)
    for h in _harmonics(pl.fs, f):
        w = 2.0 * math.pi * h * f
        cols.append([math.cos(w * ti) for ti in t])
        cols.append([math.sin(w * ti) for ti in t])
    fit = _lstsq(cols, y)
    if fit is None:
        return None
    coef, inv = fit
    resid = [yi - math.fsum(coef[c] * cols[c][k] for c in range(len(cols))) for k, yi in enumerate(y)]
    # Baseline wander left after the offsets and drift, averaged over a beat: movement.
    slow = _moving_average(resid, per)
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
    return StepAmplitude(
        target=pl.target,
        pressure=pl.mean,
        amplitude=math.sqrt(max(0.0, power)),
        power=power,
        power_var=_power_var(tr_c, power),
        noise_power=tr_c,
        z=z,
        noise=math.sqrt(s2),
        slow_rms=slow_rms,
        samples=m,
        present=z > PRESENT_Z and not disturbed,
        disturbed=disturbed,
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


# --------------------------------------------------------------------------- the fade and the estimate


def _power_var(noise_power: float, power: float) -> float:
    """Variance of a plateau's unbiased pulse power, given its noise expectation and the true power."""
    pos = max(0.0, power)
    return noise_power * noise_power + 2.0 * noise_power * pos + (2.0 * REL_SCATTER * pos) ** 2


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
    amps: Sequence[StepAmplitude], *, pm_range: tuple[float, float], lop_range: tuple[float, float], model: str = "cosine"
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
            (a.pressure, a.power, 1.0 / max(_power_var(a.noise_power, m), 1e-12)) for a, m in zip(amps, model_power)
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
    return max(present, key=lambda a: a.power - 2.0 * math.sqrt(_power_var(a.noise_power, a.power)))


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
        sure = any(a.power + 2.0 * math.sqrt(_power_var(a.noise_power, a.power)) < cut * cut for a in faded)
        confirmed = spread >= 3.0 or sure
    return FadeState(peak, faded, confirmed, top)


def _fade_points(amps: Sequence[StepAmplitude]) -> tuple[list[StepAmplitude], tuple[float, float], StepAmplitude] | None:
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
        return _fail("too few usable pressure steps (need at least 3 plateaus of 1 s)", amps, hr, noise)
    disturbed = [a for a in amps if a.disturbed]
    if disturbed:
        worst = max(disturbed, key=lambda a: a.slow_rms)
        return _fail(
            f"movement artefact: the pressure wanders by {worst.slow_rms:.1f} mmHg at the {worst.target:.0f} mmHg "
            "step; keep the limb still and measure again",
            amps,
            hr,
            noise,
        )
    present = [a for a in amps if a.present]
    if not present or f is None:
        return _fail("no arterial pulsation seen in the cuff pressure at any step", amps, hr, noise)
    peak = _peak(present)
    if max(a.z for a in present) < STRONG_Z:
        return _fail(
            f"pulsation too weak for the noise (pulse {peak.amplitude:.2f} mmHg, noise {noise or 0:.2f} mmHg)",
            amps,
            hr,
            noise,
        )
    state = fade_state(amps)
    assert state is not None
    above = [a for a in amps if a.pressure > peak.pressure]
    if not state.faded:
        return _fail(
            f"pulsation never faded below the ceiling ({ceiling:.0f} mmHg): the LOP is higher, "
            "or the cuff is too narrow for this limb",
            amps,
            hr,
            noise,
        )
    if not state.confirmed:
        return _fail(
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
                return _fail(
                    f"pulsation came back at {a.target:.0f} mmHg after vanishing at {first_gone.target:.0f} mmHg "
                    "(movement or a loose cuff?)",
                    amps,
                    hr,
                    noise,
                )
    fit = best_fade(amps, ceiling)
    if fit is None:
        return _fail("the fading pulse does not point to an LOP within reach (too few or too noisy steps)", amps, hr, noise)
    if fit.reduced_chi2 > MAX_REDUCED_CHI2:
        return _fail(
            f"the pulse does not fade smoothly (fit {fit.reduced_chi2:.1f} times worse than noise; movement?)",
            amps,
            hr,
            noise,
        )
    limit = min(ceiling, MAX_LOP_MMHG)
    if fit.lop - state.top > REACH * (fit.lop - fit.peak) + 5.0:
        return _fail(
            f"the fade points to {fit.lop:.0f} mmHg, too far above the highest step ({state.top:.0f} mmHg) to trust",
            amps,
            hr,
            noise,
        )
    if fit.lop > limit + 2.0:
        return _fail(f"the LOP ({fit.lop:.0f} mmHg) lies above the ceiling ({limit:.0f} mmHg)", amps, hr, noise)
    if fit.se > MAX_SE_MMHG:
        se = "more than the search range" if math.isinf(fit.se) else f"+-{fit.se:.0f} mmHg"
        return _fail(
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


# --------------------------------------------------------------------------- the procedure


@dataclass(frozen=True, slots=True)
class Action:
    """What the station should do now: ``set`` (inflate/step to ``target``), ``wait``, ``deflate``, ``done``.

    ``deflate`` comes exactly once, when the measurement ends (well or not); the
    station vents the cuff and reads :attr:`LopMeasurement.result`.
    """

    kind: str
    target: float | None = None


WAIT = Action("wait")
DEFLATE = Action("deflate")
DONE = Action("done")

RETARGET_MMHG = 1.2
"""A plateau that stopped further than this from its target is re-targeted to where it stopped."""
FINE_SLOTS = (0.62, 0.48, 0.76, 0.55, 0.69, 0.84, 0.4)
"""Where on the fade (0 = peak, 1 = LOP) the fine plateaus go, in order: the LOP is best told around 0.5-0.8."""


@dataclass
class _Stepping:
    target: float
    set_at: float
    dwell_s: float
    from_pressure: float
    settled_at: float | None = None
    retargeted: bool = False


class LopMeasurement:
    """The LOP measurement procedure: an adaptive staircase, driven by the station.

    The station zeroes the sensor first, then calls :meth:`feed` for every
    sample of the cuff and :meth:`next_action` at 10 Hz or more; it performs
    the action (``SET`` the cuff, ``DEFLATE`` it) and reads :attr:`result`
    once the action was ``deflate``.

    Plan: fill to ``start_mmhg``; coarse plateaus (``coarse_dwell_s``) climb
    by 20 % of the pressure (15..30 mmHg) until the pulse has fallen under
    35 % of its peak; then fine plateaus (``fine_dwell_s``) go where the
    envelope fit places 40..85 % of the way from the peak to the LOP, until
    the LOP is known well or the time budget (``budget_s``) is spent. Never
    targets above ``ceiling_mmhg`` or 300. At ``timeout_s`` it gives up.
    Every ending deflates.
    """

    def __init__(
        self,
        *,
        start_mmhg: float = 50.0,
        ceiling_mmhg: float = MAX_LOP_MMHG,
        timeout_s: float = 60.0,
        budget_s: float = 43.0,
        coarse_dwell_s: float = 1.6,
        fine_dwell_s: float = 3.0,
        max_fine: int = 6,
        settle_extra_s: float = 0.3,
        step_timeout_s: float = 8.0,
        clock: Clock,
    ) -> None:
        ceiling = min(float(ceiling_mmhg), MAX_LOP_MMHG)
        if not math.isfinite(ceiling) or ceiling <= 0:
            raise ValueError(f"ceiling must be a positive pressure, got {ceiling_mmhg!r}")
        if not 0 < start_mmhg < ceiling:
            raise ValueError(f"start pressure {start_mmhg} must be above 0 and below the ceiling {ceiling}")
        if timeout_s <= 0 or budget_s <= 0:
            raise ValueError("timeout and budget must be positive")
        if coarse_dwell_s < 1.0 or fine_dwell_s < 1.0:
            raise ValueError("plateaus must last at least 1 s")
        self.start_mmhg = float(start_mmhg)
        self.ceiling = ceiling
        self.timeout_s = float(timeout_s)
        self.budget_s = min(float(budget_s), self.timeout_s)
        self.coarse_dwell_s = coarse_dwell_s
        self.fine_dwell_s = fine_dwell_s
        self.max_fine = max_fine
        self.settle_extra_s = settle_extra_s
        self.step_timeout_s = step_timeout_s
        self.clock = clock
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self.result: LopResult | None = None
        self.times: list[float] = []
        self.pressures: list[float] = []
        self.steps: list[StepInfo] = []
        self.dropped = 0
        """Samples refused (not finite, or older than the previous one)."""
        self._cur: _Stepping | None = None
        self._fine = 0
        self._amps: list[StepAmplitude] = []
        self._cache: PlateauCache = {}
        self._finished = False
        self._deflate_sent = False
        self._cancel_reason: str | None = None

    # -- inputs

    def feed(self, t: float, pressure: float) -> None:
        """One sample of the cuff's pressure (station clock time, mmHg)."""
        if not (math.isfinite(t) and math.isfinite(pressure)) or (self.times and t < self.times[-1]):
            self.dropped += 1
            return
        if self.started_at is None or self._finished:
            return
        self.times.append(t)
        self.pressures.append(pressure)

    def cancel(self, reason: str = "cancelled") -> None:
        """Stop now (an alarm, the operator): the next action deflates, the result is a failure."""
        if not self._finished:
            self._cancel_reason = reason

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def current_target(self) -> float:
        return self._cur.target if self._cur else 0.0

    # -- the procedure

    def next_action(self, now: float) -> Action:
        if self._finished:
            if not self._deflate_sent:
                self._deflate_sent = True
                return DEFLATE
            return DONE
        if self.started_at is None:
            self.started_at = now
            return self._go(self.start_mmhg, now, self.coarse_dwell_s)
        elapsed = now - self.started_at
        if self._cancel_reason is not None:
            return self._finish(now, _fail(self._cancel_reason, self._amps))
        if elapsed >= self.timeout_s:
            return self._finish(now, _fail(f"gave up after {self.timeout_s:.0f} s without a result", self._amps))
        cur = self._cur
        assert cur is not None
        if cur.settled_at is None:
            if self._settled(cur, now):
                cur.settled_at = now + self.settle_extra_s
            elif now - cur.set_at > self.step_timeout_s:
                return self._finish(
                    now,
                    _fail(
                        f"the cuff did not reach {cur.target:.0f} mmHg within {self.step_timeout_s:.0f} s "
                        "(leak or kinked tube?)",
                        self._amps,
                    ),
                )
            return WAIT
        if not cur.retargeted and now >= cur.settled_at:
            cur.retargeted = True
            reached = self._latest(now, 0.3)
            if reached:
                level = round(min(math.fsum(reached) / len(reached), self.ceiling), 1)
                if abs(level - cur.target) > RETARGET_MMHG and level > 0:
                    # Hold where the cuff stopped: the controller would otherwise correct mid-plateau.
                    cur.target = level
                    return Action("set", level)
        if now < cur.settled_at + cur.dwell_s:
            return WAIT
        self.steps.append(StepInfo(cur.target, cur.settled_at, now))
        return self._after_step(now)

    def _latest(self, now: float, span: float) -> list[float]:
        return self.pressures[bisect_left(self.times, now - span) :]

    def _go(self, target: float, now: float, dwell: float) -> Action:
        target = round(min(target, self.ceiling), 1)
        recent = self._latest(now, 0.3)
        here = math.fsum(recent) / len(recent) if recent else 0.0
        self._cur = _Stepping(target, now, dwell, here)
        return Action("set", target)

    def _settled(self, cur: _Stepping, now: float) -> bool:
        """Near the target (the pump or vent stops within a few tenths of a second from there)."""
        if now - cur.set_at < 0.25:
            return False
        window = self._latest(now, 0.2)
        if len(window) < 3:
            return False
        mean = math.fsum(window) / len(window)
        if cur.target >= cur.from_pressure:
            return mean >= cur.target - 5.0
        return mean <= cur.target + 5.0

    def _finish(self, now: float, result: LopResult) -> Action:
        self.result = result
        self.ended_at = now
        self._finished = True
        self._deflate_sent = True
        return DEFLATE

    def _estimate(self) -> LopResult:
        return estimate_lop(self.times, self.pressures, self.steps, ceiling=self.ceiling, cache=self._cache)

    def _cost(self, target: float, dwell: float) -> float:
        """Time a plateau at ``target`` takes from here: travel, settling, dwell (pessimistic)."""
        here = self.steps[-1].target if self.steps else 0.0
        rate = 20.0 if target > here else 60.0
        return abs(target - here) / rate + 0.3 + self.settle_extra_s + dwell

    def _after_step(self, now: float) -> Action:
        amps, _f, _noise = analyse_steps(self.times, self.pressures, self.steps, self._cache)
        self._amps = amps
        if any(a.disturbed for a in amps):
            return self._finish(now, self._estimate())
        nxt = self._plan_next(amps)
        elapsed = now - (self.started_at or now)
        if nxt is not None:
            target, dwell = nxt
            if elapsed + self._cost(target, dwell) <= self.budget_s:
                if self._fading(amps):
                    self._fine += 1
                return self._go(target, now, dwell)
        return self._finish(now, self._estimate())

    @staticmethod
    def _fading(amps: list[StepAmplitude]) -> bool:
        state = fade_state(amps)
        return state is not None and state.confirmed

    def _plan_next(self, amps: list[StepAmplitude]) -> tuple[float, float] | None:
        """The next (target, dwell), or None when the staircase is complete."""
        top = max(s.target for s in self.steps)
        at_ceiling = top >= self.ceiling - 0.05
        strongest = max((a.z for a in amps), default=0.0)
        dwell = self.coarse_dwell_s if strongest >= 2 * STRONG_Z else self.coarse_dwell_s + 0.8
        state = fade_state(amps)
        if state is not None and state.faded and not state.confirmed:
            # Something faded: check it one moderate step up, with a plateau long enough to tell.
            step, dwell = min(25.0, max(10.0, 0.12 * top)), max(dwell, self.fine_dwell_s - 0.6)
        else:
            step = min(35.0, max(15.0, 0.22 * top))
        climb = (min(self.ceiling, top + step), dwell)
        if state is None or not state.confirmed:
            return None if at_ceiling else climb
        if self._fine >= self.max_fine:
            return None
        fit = best_fade(amps, self.ceiling)
        if fit is not None and self._fine >= 3 and fit.se < 1.5:
            return None
        peak = state.peak
        taken = [a.pressure for a in amps] + [s.target for s in self.steps]
        if fit is not None and math.isfinite(fit.lop):
            pm, lop = fit.peak, min(fit.lop, self.ceiling + 20.0)
        else:
            gone = state.faded[0]
            pm, lop = peak.pressure, gone.pressure + 0.3 * (gone.pressure - peak.pressure)
        slots = [round(pm + u * (lop - pm), 1) for u in FINE_SLOTS]
        if state.top < pm + 0.75 * (lop - pm):
            # Nothing measured high on the fade yet: that tells the LOP most.
            slots.insert(0, round(pm + 0.85 * (lop - pm), 1))
        slots = [p for p in slots if peak.pressure < p <= self.ceiling]
        # Apart by a fair share of the fade: a fit that moves a little between plateaus
        # must not stack every fine plateau at one pressure.
        gap = max(3.0, 0.06 * (lop - pm))
        for p in slots:
            if all(abs(p - q) >= gap for q in taken):
                return (p, self.fine_dwell_s)
        if slots:
            # A narrow fade, already covered: measure the most telling pressures again.
            return (slots[self._fine % min(2, len(slots))], self.fine_dwell_s)
        return None

    # -- outputs

    def progress(self, now: float | None = None) -> LopProgress:
        now = self.clock.monotonic() if now is None else now
        start = self.started_at if self.started_at is not None else now
        end = self.ended_at if self.ended_at is not None else now
        elapsed = max(0.0, end - start)
        res = self.result
        if res is None:
            msg = f"step {len(self.steps) + 1} at {self.current_target:.0f} mmHg" if self._cur else "starting"
            return LopProgress("running", self.current_target, elapsed, message=msg)
        state = "done" if res.ok else "failed"
        return LopProgress(state, self.current_target, elapsed, res.lop, res.confidence, res.reason)
