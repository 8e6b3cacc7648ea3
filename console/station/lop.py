"""Limb occlusion pressure (LOP) from the cuff's own pressure signal.

The method of automated tourniquet systems (Masri et al. 2016): step the cuff
pressure up, hold each step for a few heartbeats, and watch the arterial pulse
that rides on the cuff pressure. It is largest near mean arterial pressure and
fades to nothing at the LOP; the LOP is where it vanishes.

Two parts, both pure (no I/O, no clock reads):

- :func:`estimate_lop` turns a recorded pressure stream and the plateaus of
  the steps into a :class:`LopResult`, or a clear failure with a reason.
- :class:`LopMeasurement` is the procedure as a state machine: the station
  feeds it every sample and asks it what to do next (set a target, wait, or
  deflate and finish). It plans its steps adaptively: coarse until the pulse
  is clearly fading, then finer where the estimate is made.

How the amplitude is measured. The pulse is periodic at the heart rate; the
heart rate is found once, from the steps with the strongest pulse (harmonic
power summed over steps, each step with its own phase), and each plateau is
then fitted by least squares with an offset, a linear drift and the first two
harmonics of the heart rate. The pulse amplitude of a step is the fitted
fundamental, corrected for the part noise adds (noise alone gives an expected
squared amplitude of 4 sigma^2 / N). Sensor noise sigma comes from second
differences (robust median), so neither the drift nor the pulse inflate it.

How the LOP is read off. Near the LOP an oscillometric pulse fades
tangentially (roughly quadratically in the distance to the LOP), so the point
where the measured amplitude drops under the noise floor lies well below the
LOP, by an amount that depends on the noise. The square root of the amplitude,
however, falls about linearly to zero at the LOP; a weighted straight line
through sqrt(amplitude) of the steps on the fading side, extrapolated to zero,
gives the LOP. Steps above it must show no pulse (checked).
"""

from __future__ import annotations

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

PRESENT_Z = 9.0
"""A step shows a pulse when its squared fundamental exceeds this many times the noise expectation.

Noise alone gives an exponentially distributed ratio with mean 1: a false pulse in 1 step out of 8000."""
STRONG_Z = 40.0
"""The strongest step must reach this ratio, or the signal is too noisy to measure a LOP."""
MOVEMENT_MMHG = 1.5
"""RMS of the slow residual (after the fit, averaged over 0.5 s) above which a step is disturbed."""
MAX_SE_MMHG = 12.0
"""Standard error of the extrapolated LOP above which the result is refused as too noisy."""


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
    """Pulse amplitude (fitted fundamental at the heart rate, noise bias removed), mmHg."""
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


def _fail(reason: str, amps: Sequence[StepAmplitude] = (), hr: float | None = None, noise: float | None = None) -> LopResult:
    return LopResult(False, None, 0.0, reason, tuple(amps), hr, noise)


# --------------------------------------------------------------------------- small linear algebra


def _solve(a: list[list[float]], b: list[float]) -> list[float] | None:
    """Solve a small dense system by Gaussian elimination with partial pivoting; None if singular."""
    n = len(b)
    m = [row[:] + [b[i]] for i, row in enumerate(a)]
    for col in range(n):
        piv = max(range(col, n), key=lambda r: abs(m[r][col]))
        if abs(m[piv][col]) < 1e-12:
            return None
        m[col], m[piv] = m[piv], m[col]
        p = m[col][col]
        for r in range(col + 1, n):
            f = m[r][col] / p
            if f:
                row, top = m[r], m[col]
                for c in range(col, n + 1):
                    row[c] -= f * top[c]
    x = [0.0] * n
    for r in range(n - 1, -1, -1):
        s = m[r][n] - sum(m[r][c] * x[c] for c in range(r + 1, n))
        x[r] = s / m[r][r]
    return x


def _lstsq(columns: list[list[float]], y: list[float]) -> list[float] | None:
    k = len(columns)
    ata = [[math.fsum(ci * cj for ci, cj in zip(columns[i], columns[j])) for j in range(k)] for i in range(k)]
    aty = [math.fsum(ci * yi for ci, yi in zip(columns[i], y)) for i in range(k)]
    return _solve(ata, aty)


# --------------------------------------------------------------------------- per-plateau analysis


@dataclass
class _Plateau:
    target: float
    t: list[float]
    x: list[float]
    """Pressure with its linear trend removed."""
    mean: float
    sigma: float
    rough_power: float = 0.0
    """Variance beyond the sensor noise: a cheap ranking of pulse strength."""


def _sigma_from_second_differences(x: Sequence[float]) -> float:
    d2 = [x[i + 1] - 2.0 * x[i] + x[i - 1] for i in range(1, len(x) - 1)]
    if not d2:
        return 0.0
    med = statistics.median(d2)
    mad = statistics.median(abs(d - med) for d in d2)
    # Second differences of white noise have SD sigma*sqrt(6); MAD/0.6745 estimates an SD.
    # The 0.1 mmHg quantisation of the wire sets a floor.
    return max(mad / 0.6745 / math.sqrt(6.0), 0.03)


def _plateau(target: float, t: Sequence[float], p: Sequence[float]) -> _Plateau:
    n = len(t)
    tm = math.fsum(t) / n
    pm = math.fsum(p) / n
    dt = [ti - tm for ti in t]
    sxx = math.fsum(d * d for d in dt)
    slope = math.fsum(d * (pi - pm) for d, pi in zip(dt, p)) / sxx if sxx > 0 else 0.0
    x = [pi - pm - slope * d for d, pi in zip(dt, p)]
    sigma = _sigma_from_second_differences(p)
    x = _remove_level_shifts(dt, x, sigma)
    var = math.fsum(v * v for v in x) / n
    return _Plateau(target, list(dt), x, pm, sigma, max(0.0, var - sigma * sigma))


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


def _harmonic_power(pl: _Plateau, f: float, harmonics: int = 2) -> float:
    """Squared amplitude of the first harmonics at ``f`` by projection (fast, approximate)."""
    n = len(pl.t)
    total = 0.0
    for h in range(1, harmonics + 1):
        w = 2.0 * math.pi * h * f
        c = s = 0.0
        for ti, xi in zip(pl.t, pl.x):
            a = w * ti
            c += xi * math.cos(a)
            s += xi * math.sin(a)
        total += (c * c + s * s) * 4.0 / (n * n)
    return total


def _heart_rate(plateaus: Sequence[_Plateau]) -> float | None:
    """The frequency (Hz) that carries the most pulse power over the strongest plateaus."""
    ranked = sorted(plateaus, key=lambda pl: pl.rough_power, reverse=True)[:3]
    ranked = [pl for pl in ranked if pl.rough_power > 0.0] or ranked[:1]
    if not ranked:
        return None

    def score(f: float) -> float:
        return sum(_harmonic_power(pl, f) / max(pl.sigma, 0.05) ** 2 for pl in ranked)

    step = 0.025
    grid = [HR_MIN_HZ + i * step for i in range(int((HR_MAX_HZ - HR_MIN_HZ) / step) + 1)]
    best = max(grid, key=score)
    for step in (0.008, 0.002):
        lo, hi = max(HR_MIN_HZ, best - 4 * step), min(HR_MAX_HZ, best + 4 * step)
        grid = [lo + i * step for i in range(int((hi - lo) / step) + 1)]
        best = max(grid, key=score)
    return best


def _fit_step(
    pl: _Plateau, f: float, smooth_s: float = 0.5, max_shifts: int = 3
) -> tuple[float, float, float, list[float]]:
    """(squared fundamental, its noise expectation, slow residual RMS, x without its shifts) at heart rate ``f``.

    The regulator corrects the pressure with short pump or vent bursts: each is a
    level shift in the plateau. Up to ``max_shifts`` of them are found (the
    largest cumulative-sum excursion of the residual, kept when it explains far
    more than noise) and fitted as steps, so they neither leak into the pulse
    amplitude nor pass for movement.
    """
    n = len(pl.t)
    cols: list[list[float]] = [[1.0] * n, pl.t]
    for h in (1, 2):
        w = 2.0 * math.pi * h * f
        cols.append([math.cos(w * ti) for ti in pl.t])
        cols.append([math.sin(w * ti) for ti in pl.t])
    sigma2 = max(pl.sigma, 0.03) ** 2
    edge = max(3, n // 20)
    coef: list[float] | None = None
    resid: list[float] = pl.x
    for _ in range(max_shifts + 1):
        coef = _lstsq(cols, pl.x)
        if coef is None:
            return 0.0, 1.0, math.inf, pl.x
        resid = [xi - math.fsum(coef[k] * cols[k][i] for k in range(len(cols))) for i, xi in enumerate(pl.x)]
        # Largest level shift left in the residual (CUSUM change point).
        best_k, best_gain = -1, 0.0
        run = 0.0
        for k in range(n - 1):
            run += resid[k]
            m = k + 1
            if edge <= m <= n - edge:
                gain = run * run * n / (m * (n - m))
                if gain > best_gain:
                    best_k, best_gain = m, gain
        if best_k < 0 or best_gain < 30.0 * sigma2 or len(cols) >= 6 + max_shifts:
            break
        cols.append([0.0] * best_k + [1.0] * (n - best_k))
    assert coef is not None
    a1sq = coef[2] ** 2 + coef[3] ** 2
    noise_sq = 4.0 * pl.sigma**2 / n
    # Slow residual: moving average over smooth_s; movement (slow, large) shows, noise averages out.
    span = pl.t[-1] - pl.t[0]
    per = max(1, int(round(smooth_s / (span / max(n - 1, 1))))) if span > 0 else 1
    run = 0.0
    acc = 0.0
    count = 0
    for i, r in enumerate(resid):
        run += r
        if i >= per:
            run -= resid[i - per]
        if i >= per - 1:
            acc += (run / per) ** 2
            count += 1
    slow_rms = math.sqrt(acc / count) if count else 0.0
    shifts = [
        xi - math.fsum(coef[k] * cols[k][i] for k in range(6, len(cols))) - coef[1] * pl.t[i]
        for i, xi in enumerate(pl.x)
    ]
    return a1sq, noise_sq, slow_rms, shifts


def analyse_steps(
    times: Sequence[float], pressures: Sequence[float], steps: Sequence[StepInfo]
) -> tuple[list[StepAmplitude], float | None, float | None]:
    """Per-step pulse amplitudes, the heart rate (Hz) and the median noise; steps too short are left out."""
    plats: list[_Plateau] = []
    for st in steps:
        i0 = bisect_left(times, st.t_start)
        i1 = bisect_right(times, st.t_end)
        t = [times[i] for i in range(i0, i1) if math.isfinite(pressures[i])]
        p = [pressures[i] for i in range(i0, i1) if math.isfinite(pressures[i])]
        if len(t) < 20 or t[-1] - t[0] < 0.8:
            continue
        plats.append(_plateau(st.target, t, p))
    if not plats:
        return [], None, None
    noise = statistics.median(pl.sigma for pl in plats)
    f = _heart_rate(plats)
    if f is None:
        return [], None, noise
    # Second pass: the fit at the first heart rate finds the level shifts the
    # first cleaning missed; the heart rate is searched again without them.
    for pl in plats:
        clean = _fit_step(pl, f)[3]
        pl.x = clean
        var = math.fsum(v * v for v in clean) / len(clean)
        pl.rough_power = max(0.0, var - pl.sigma**2)
    f = _heart_rate(plats) or f
    out: list[StepAmplitude] = []
    for pl in plats:
        a1sq, nsq, slow, _clean = _fit_step(pl, f)
        z = a1sq / nsq if nsq > 0 else 0.0
        amp = math.sqrt(max(0.0, a1sq - nsq))
        disturbed = slow > max(MOVEMENT_MMHG, 6.0 * pl.sigma / math.sqrt(max(1.0, len(pl.t) / 4)))
        out.append(
            StepAmplitude(
                target=pl.target,
                pressure=pl.mean,
                amplitude=amp,
                z=z,
                noise=pl.sigma,
                slow_rms=slow,
                samples=len(pl.t),
                present=z > PRESENT_Z and not disturbed,
                disturbed=disturbed,
            )
        )
    out.sort(key=lambda a: a.pressure)
    return out, f, noise


# --------------------------------------------------------------------------- the estimate


def estimate_lop(
    times: Sequence[float],
    pressures: Sequence[float],
    steps: Sequence[StepInfo],
    *,
    ceiling: float = MAX_LOP_MMHG,
) -> LopResult:
    """LOP from a staircase recording, or ok=False with the reason. Pure; stdlib only.

    ``times`` must not decrease; ``steps`` name the settled window of each plateau.
    """
    if len(times) != len(pressures):
        raise ValueError(f"times and pressures differ in length ({len(times)} vs {len(pressures)})")
    if any(b < a for a, b in zip(times, times[1:])):
        raise ValueError("times must not decrease")
    amps, f, noise = analyse_steps(times, pressures, steps)
    hr = f * 60.0 if f is not None else None
    if len(amps) < 3:
        return _fail("too few usable pressure steps (need at least 3 plateaus of 1 s)", amps, hr, noise)
    if any(a.disturbed for a in amps):
        worst = max(amps, key=lambda a: a.slow_rms)
        return _fail(
            f"movement artefact: slow pressure swings of {worst.slow_rms:.1f} mmHg at the "
            f"{worst.target:.0f} mmHg step; keep the limb still and measure again",
            amps,
            hr,
            noise,
        )
    peak = max(amps, key=lambda a: a.z)
    if peak.z < STRONG_Z:
        if peak.z < PRESENT_Z:
            return _fail("no arterial pulsation seen in the cuff pressure at any step", amps, hr, noise)
        return _fail(
            f"pulsation too weak for the noise (pulse {peak.amplitude:.2f} mmHg, noise {noise or 0:.2f} mmHg)",
            amps,
            hr,
            noise,
        )
    peak_i = amps.index(peak)
    above = amps[peak_i + 1 :]
    absent_above = [a for a in above if not a.present]
    if not absent_above:
        return _fail(
            f"pulsation never vanished below the ceiling ({ceiling:.0f} mmHg): the LOP is higher, "
            "or the cuff is too narrow for this limb",
            amps,
            hr,
            noise,
        )
    first_absent = absent_above[0]
    # Past the first step without a pulse, no step may show a clear one again.
    for a in above:
        if a.pressure > first_absent.pressure and a.z > 3 * PRESENT_Z:
            return _fail(
                f"pulsation came back at {a.target:.0f} mmHg after vanishing at {first_absent.target:.0f} mmHg "
                "(movement or a loose cuff?)",
                amps,
                hr,
                noise,
            )
    # The fading side must fade: each step no stronger than the one below, within its noise.
    fading = [peak] + [a for a in above if a.pressure < first_absent.pressure]
    for lo, hi in zip(fading, fading[1:]):
        tol = 3.0 * (_amp_se(lo) + _amp_se(hi))
        if hi.amplitude > lo.amplitude * 1.15 + tol:
            return _fail(
                f"pulse amplitude rose from {lo.amplitude:.2f} to {hi.amplitude:.2f} mmHg between "
                f"{lo.target:.0f} and {hi.target:.0f} mmHg on the fading side (movement?)",
                amps,
                hr,
                noise,
            )
    fit = _extrapolate(amps, peak_i, fading)
    if fit is None:
        return _fail("too few steps with a fading pulse to extrapolate the LOP", amps, hr, noise)
    lop, se, npts = fit
    last_present = fading[-1]
    lo_bound = last_present.pressure
    hi_bound = first_absent.pressure + max(10.0, first_absent.pressure - peak.pressure)
    if not lo_bound - 3.0 <= lop <= hi_bound:
        return _fail(
            f"inconsistent steps: the fading pulse points to {lop:.0f} mmHg, outside "
            f"{lo_bound:.0f}..{hi_bound:.0f} mmHg",
            amps,
            hr,
            noise,
        )
    lop = max(lop, lo_bound)
    if lop > min(ceiling, MAX_LOP_MMHG) + 2.0:
        return _fail(
            f"the LOP ({lop:.0f} mmHg) lies above the ceiling ({ceiling:.0f} mmHg)", amps, hr, noise
        )
    if se > MAX_SE_MMHG:
        return _fail(
            f"signal too noisy: LOP uncertain by +-{se:.0f} mmHg (pulse {peak.amplitude:.2f} mmHg, "
            f"noise {noise or 0:.2f} mmHg)",
            amps,
            hr,
            noise,
        )
    confidence = max(0.0, min(1.0, math.exp(-se / 6.0) * min(1.0, npts / 3.0)))
    return LopResult(
        True,
        round(lop, 1),
        round(confidence, 3),
        f"pulsation vanishes at {lop:.0f} mmHg (+-{se:.1f}; {npts} fading steps, heart rate "
        f"{hr:.0f}/min)",
        tuple(amps),
        hr,
        noise,
        round(se, 2),
    )


def _amp_se(a: StepAmplitude) -> float:
    """Standard error of a step's fitted amplitude (noise only)."""
    return math.sqrt(2.0 / max(a.samples, 1)) * a.noise


def _peak_pressure(amps: Sequence[StepAmplitude], peak_i: int) -> float:
    """Where the pulse is largest: vertex of a parabola through the peak step and its neighbours."""
    if 0 < peak_i < len(amps) - 1:
        (x0, y0), (x1, y1), (x2, y2) = ((amps[j].pressure, amps[j].amplitude) for j in (peak_i - 1, peak_i, peak_i + 1))
        den = (x0 - x1) * (x0 - x2) * (x1 - x2)
        if den != 0:
            aa = (x2 * (y1 - y0) + x1 * (y0 - y2) + x0 * (y2 - y1)) / den
            bb = (x2 * x2 * (y0 - y1) + x1 * x1 * (y2 - y0) + x0 * x0 * (y1 - y2)) / den
            if aa < 0:
                v = -bb / (2 * aa)
                if x0 <= v <= x2:
                    return v
    return amps[peak_i].pressure


def _extrapolate(
    amps: Sequence[StepAmplitude], peak_i: int, fading: Sequence[StepAmplitude]
) -> tuple[float, float, int] | None:
    """Fit the fading side with the oscillometric envelope and return (LOP, SE, points used).

    Model: amplitude = A * cos^2(pi/2 * (P - Pm) / (L - Pm)) for Pm <= P <= L
    (a raised cosine from its peak at Pm to nothing at the LOP L: it fades
    tangentially, as oscillometric envelopes do), i.e. sqrt(amplitude) is a
    quarter cosine. Pm is the vertex of the peak; A is linear given L; L is
    found by a 1-D search minimising the weighted squared error of
    sqrt(amplitude). Its SE comes from the curvature of that error.
    """
    pm = _peak_pressure(amps, peak_i)
    pts: list[tuple[float, float, float]] = []
    for a in fading:
        if a.pressure <= pm or a.amplitude <= 0 or not a.present:
            continue
        s = math.sqrt(a.amplitude)
        var_s = _amp_se(a) ** 2 / (4.0 * a.amplitude) + 1e-6
        pts.append((a.pressure, s, 1.0 / var_s))
    if len(pts) < 2:
        return None
    top = max(x for x, _, _ in pts)

    def sse(lop: float) -> tuple[float, float]:
        g = [(math.cos(0.5 * math.pi * (x - pm) / (lop - pm)), y, w) for x, y, w in pts]
        sgg = math.fsum(w * gi * gi for gi, _, w in g)
        if sgg <= 0:
            return math.inf, 0.0
        amp = math.fsum(w * gi * y for gi, y, w in g) / sgg
        return math.fsum(w * (y - amp * gi) ** 2 for gi, y, w in g), amp

    lo, hi = top + 0.5, pm + 3.0 * (top - pm) + 40.0
    grid_n = 120
    xs = [lo + (hi - lo) * i / grid_n for i in range(grid_n + 1)]
    errs = [sse(x)[0] for x in xs]
    i = min(range(len(xs)), key=errs.__getitem__)
    # Golden-section refinement between the neighbours of the best grid point.
    a_, b_ = xs[max(0, i - 1)], xs[min(len(xs) - 1, i + 1)]
    g = (math.sqrt(5) - 1) / 2
    c_, d_ = b_ - g * (b_ - a_), a_ + g * (b_ - a_)
    for _ in range(40):
        if sse(c_)[0] < sse(d_)[0]:
            b_ = d_
        else:
            a_ = c_
        c_, d_ = b_ - g * (b_ - a_), a_ + g * (b_ - a_)
    lop = 0.5 * (a_ + b_)
    best, _amp = sse(lop)
    if i == len(xs) - 1 or not math.isfinite(best):
        return None
    # SE from the curvature of the error: SSE(L) ~ best + (L - lop)^2 / var(L), scaled by the fit quality.
    h = max(1.0, 0.01 * lop)
    curv = (sse(lop + h)[0] - 2 * best + sse(max(top + 0.1, lop - h))[0]) / (h * h)
    dof = len(pts) - 2
    scale = max(1.0, best / dof) if dof > 0 else 1.0
    se = math.sqrt(2.0 * scale / curv) if curv > 0 else math.inf
    return lop, se, len(pts)


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


@dataclass
class _Stepping:
    target: float
    set_at: float
    dwell_s: float
    settled_at: float | None = None


class LopMeasurement:
    """The LOP measurement procedure: an adaptive staircase, driven by the station.

    The station calls :meth:`feed` for every sample of the cuff and
    :meth:`next_action` regularly (every sample or at 10 Hz); it performs the
    action (``SET`` the cuff, ``DEFLATE`` it) and reads :attr:`result` once the
    action was ``deflate``.

    Plan: steps of ``step_mmhg`` from ``start_mmhg`` with short plateaus while
    the pulse grows; once it fades below half its peak (or vanishes), finer
    steps of ``fine_step_mmhg`` (default 5 % of the pressure, at least 5)
    with longer plateaus, filling any gap between the last step with a pulse
    and the first without, until two steps show none. Never targets above
    ``ceiling_mmhg`` or 300. The result is computed when enough is known, the
    ceiling is reached, or the time budget (``budget_s``) is spent; at
    ``timeout_s`` it gives up. Every ending deflates.
    """

    def __init__(
        self,
        *,
        start_mmhg: float = 40.0,
        step_mmhg: float = 30.0,
        fine_step_mmhg: float | None = None,
        ceiling_mmhg: float = MAX_LOP_MMHG,
        timeout_s: float = 60.0,
        budget_s: float = 42.0,
        coarse_dwell_s: float = 1.8,
        fine_dwell_s: float = 3.0,
        settle_tolerance_mmhg: float = 1.5,
        settle_extra_s: float = 0.8,
        step_timeout_s: float = 8.0,
        clock: Clock,
    ) -> None:
        ceiling = min(float(ceiling_mmhg), MAX_LOP_MMHG)
        if not math.isfinite(ceiling) or ceiling <= 0:
            raise ValueError(f"ceiling must be a positive pressure, got {ceiling_mmhg!r}")
        if not 0 < start_mmhg < ceiling:
            raise ValueError(f"start pressure {start_mmhg} must be above 0 and below the ceiling {ceiling}")
        if step_mmhg <= 0 or (fine_step_mmhg is not None and fine_step_mmhg <= 0):
            raise ValueError("steps must be positive")
        if timeout_s <= 0:
            raise ValueError("timeout must be positive")
        self.start_mmhg = float(start_mmhg)
        self.step_mmhg = float(step_mmhg)
        self.fine_step_mmhg = fine_step_mmhg
        self.ceiling = ceiling
        self.timeout_s = float(timeout_s)
        self.budget_s = min(float(budget_s), self.timeout_s)
        self.coarse_dwell_s = coarse_dwell_s
        self.fine_dwell_s = fine_dwell_s
        self.settle_tolerance = settle_tolerance_mmhg
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
        self._pending_set: float | None = None
        self._fine = False
        self._amps: list[StepAmplitude] = []
        self._peak_pressure: float | None = None
        self._finished = False
        self._deflate_sent = False
        self._cancel_reason: str | None = None
        self._final_result: LopResult | None = None

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
        if now < cur.settled_at + cur.dwell_s:
            return WAIT
        self.steps.append(StepInfo(cur.target, cur.settled_at, now))
        return self._after_step(now)

    def _go(self, target: float, now: float, dwell: float) -> Action:
        target = round(min(target, self.ceiling), 1)
        self._cur = _Stepping(target, now, dwell)
        return Action("set", target)

    def _settled(self, cur: _Stepping, now: float) -> bool:
        if now - cur.set_at < 0.3:
            return False
        i0 = bisect_left(self.times, now - 0.5)
        window = self.pressures[i0:]
        if len(window) < 5:
            return False
        mean = math.fsum(window) / len(window)
        return abs(mean - cur.target) <= self.settle_tolerance

    def _finish(self, now: float, result: LopResult) -> Action:
        self.result = result
        self.ended_at = now
        self._finished = True
        self._deflate_sent = True
        return DEFLATE

    def _fine_step(self, pressure: float) -> float:
        if self.fine_step_mmhg is not None:
            return self.fine_step_mmhg
        return max(5.0, 0.05 * pressure)

    def _after_step(self, now: float) -> Action:
        amps, _f, _noise = analyse_steps(self.times, self.pressures, self.steps)
        self._amps = amps
        elapsed = now - (self.started_at or now)
        if any(a.disturbed for a in amps):
            return self._finish(now, estimate_lop(self.times, self.pressures, self.steps, ceiling=self.ceiling))
        nxt = self._plan_next(amps)
        if nxt is not None:
            target, dwell = nxt
            # Time left for one more step: settling plus the plateau.
            if elapsed + dwell + 1.2 <= self.budget_s:
                return self._go(target, now, dwell)
        return self._finish(now, estimate_lop(self.times, self.pressures, self.steps, ceiling=self.ceiling))

    def _plan_next(self, amps: list[StepAmplitude]) -> tuple[float, float] | None:
        """The next (target, dwell), or None when the staircase is complete."""
        last = self.steps[-1].target
        at_ceiling = last >= self.ceiling - 0.05
        strong = [a for a in amps if a.present]
        if not strong:
            # Nothing seen yet: keep climbing coarsely.
            return None if at_ceiling else (last + self.step_mmhg, self.coarse_dwell_s)
        peak = max(amps, key=lambda a: a.z)
        above = [a for a in amps if a.pressure > peak.pressure]
        fading = any((not a.present) or a.amplitude < 0.5 * peak.amplitude for a in above)
        if not fading:
            return None if at_ceiling else (last + self.step_mmhg, self.coarse_dwell_s)
        self._fine = True
        absent = [a for a in above if not a.present]
        fine = self._fine_step(peak.pressure)
        measured = sorted({round(s.target, 1) for s in self.steps})
        if absent:
            first_absent = absent[0]
            # Fill gaps on the fading side, from the peak to the first step without a pulse.
            region = [p for p in measured if peak.target <= p <= first_absent.target]
            gaps = [(b - a, a, b) for a, b in zip(region, region[1:]) if b - a > 1.5 * fine]
            if gaps:
                _, a, b = max(gaps)
                # The upper part of the fading side matters most: fill from the top of the gap.
                return (max(a + fine, b - fine), self.fine_dwell_s)
            absent_count = sum(1 for a in above if not a.present)
            if absent_count >= 2 or at_ceiling:
                return None
            highest = max(measured)
            if highest >= self.ceiling - 0.05:
                return None
            return (highest + fine, self.fine_dwell_s)
        return None if at_ceiling else (max(s.target for s in self.steps) + fine, self.fine_dwell_s)

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
