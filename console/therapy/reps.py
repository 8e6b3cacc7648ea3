"""Reps: the metronome of a set, a contraction detector on the cuff pressure, and the count of a set.

Pure logic. The metronome is a function of the set's start time and cadence, so
it never drifts and pausing is just moving the start. The detector reads the
cuff pressure the station already streams: a muscle contraction under the cuff
raises its pressure by 5-15 % for about a second until the regulator pulls it
back; the arterial pulse (a few mmHg at the heart rate) and sensor noise must
not count as reps. :class:`SetCount` puts the two together: the metronome's
count, held back to the contractions seen once they are seen (a patient trailing
the metronome finishes the reps), corrected by hand.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Metronome:
    """Beat phase and rep count from a start time and a cadence.

    Each period of ``cadence_s`` is one rep: the patient contracts in the first
    half (``beat`` is True) and relaxes in the second; the rep is complete at the
    end of the period.
    """

    start: float
    cadence_s: float

    def __post_init__(self) -> None:
        if not (self.cadence_s > 0 and math.isfinite(self.cadence_s)):
            raise ValueError(f"cadence must be a positive number of seconds, got {self.cadence_s!r}")

    def elapsed(self, now: float) -> float:
        return max(0.0, now - self.start)

    def phase(self, now: float) -> float:
        """Where in the current period we are, 0 <= phase < 1."""
        return (self.elapsed(now) / self.cadence_s) % 1.0

    def beat(self, now: float) -> bool:
        """True in the contract half of the period."""
        return now >= self.start and self.phase(now) < 0.5

    def reps_done(self, now: float) -> int:
        """Whole periods completed since the start."""
        # A hair of slack so that ``start + n * cadence`` counts as n despite float rounding.
        return int(self.elapsed(now) / self.cadence_s + 1e-9)

    def period_start(self, n: int) -> float:
        """Time at which period ``n`` (0-based) begins."""
        return self.start + n * self.cadence_s


LAG_SEEN_MIN = 3
"""Contractions seen in a set before the rep count trusts them to hold the metronome back.
With fewer (a passive patient, or squeezes too small to see), the metronome alone counts."""

LAG_ALLOWED = 1
"""How many reps the patient may trail the metronome before the count waits for them."""


class SetCount:
    """The reps of the set under way, and the metronome beats to click.

    Args:
        cadence_s: one rep every this many seconds.
    """

    def __init__(self, cadence_s: float) -> None:
        self.cadence_s = cadence_s
        self.metronome: Metronome | None = None
        """None between sets."""
        self.adjust = 0
        """The therapist's corrections (+1 / -1) in this set."""
        self._beats_sent = 0

    def start(self, now: float, carry_s: float) -> None:
        """Begin a set, or go on with one after ``carry_s`` already done (at the start of the interrupted rep)."""
        if carry_s == 0.0:
            self.adjust = 0
        done = int(carry_s / self.cadence_s + 1e-9)
        self.metronome = Metronome(now - done * self.cadence_s, self.cadence_s)
        self._beats_sent = done

    def stop(self) -> None:
        self.metronome = None

    def reps(self, now: float, seen: int, *, paused_carry_s: float | None = None) -> int:
        """Reps done: the metronome's count (or the time done before a pause), held back to the ``seen``
        contractions once there are enough of them, plus the corrections."""
        if self.metronome is None:
            return 0
        if paused_carry_s is not None:
            paced = int(paused_carry_s / self.cadence_s + 1e-9)
        else:
            paced = self.metronome.reps_done(now)
        if seen >= LAG_SEEN_MIN and paced > seen + LAG_ALLOWED:
            # The patient is behind the metronome (fatigue, a slow start): the set waits for the reps.
            paced = seen + LAG_ALLOWED
        return max(0, paced + self.adjust)

    def new_beats(self, now: float) -> list[int]:
        """The numbers of the reps whose metronome periods began since last asked (the one under way has)."""
        assert self.metronome is not None
        periods = self.metronome.reps_done(now) + 1
        out: list[int] = []
        while self._beats_sent < periods:
            self._beats_sent += 1
            out.append(self._beats_sent + self.adjust)
        return out

    def beat(self, now: float) -> bool:
        """True in the contract half of a period of a set under way."""
        return self.metronome is not None and self.metronome.beat(now)


@dataclass(frozen=True, slots=True)
class Contraction:
    """One detected contraction."""

    start: float
    end: float
    peak_rise: float
    """Highest rise over the baseline, mmHg."""


class ContractionDetector:
    """Counts contractions in one cuff's pressure stream.

    How: a short moving average (``smooth_s``, about half a heartbeat) damps
    the noise and most of the pulse; a slow baseline follows the regulated
    pressure only while no contraction is under way; the spread of the smoothed
    signal around the baseline at rest (pulse plus noise) is tracked robustly.
    A contraction starts when the smoothed pressure rises above the baseline by
    more than ``max(min_rise_frac * baseline, spread_k * spread, min_rise_mmhg)``
    and ends when it falls back below half that; it counts if it lasted at least
    ``min_duration_s``. A ``refractory_s`` gap keeps one contraction from
    counting twice. Nothing is detected during the first ``warmup_s`` (the
    baseline is not known yet) or when the baseline is under ``min_baseline``
    (a vented cuff).
    """

    def __init__(
        self,
        *,
        smooth_s: float = 0.4,
        baseline_tau_s: float = 3.0,
        min_rise_frac: float = 0.03,
        min_rise_mmhg: float = 1.5,
        spread_k: float = 3.0,
        min_duration_s: float = 0.25,
        max_duration_s: float = 4.0,
        refractory_s: float = 0.3,
        warmup_s: float = 1.0,
        min_baseline: float = 15.0,
    ) -> None:
        self.smooth_s = smooth_s
        self.baseline_tau_s = baseline_tau_s
        self.min_rise_frac = min_rise_frac
        self.min_rise_mmhg = min_rise_mmhg
        self.spread_k = spread_k
        self.min_duration_s = min_duration_s
        self.max_duration_s = max_duration_s
        self.refractory_s = refractory_s
        self.warmup_s = warmup_s
        self.min_baseline = min_baseline
        self.count = 0
        self.contractions: list[Contraction] = []
        self._win: deque[tuple[float, float]] = deque()
        self._sum = 0.0
        self._baseline: float | None = None
        self._spread = 0.0
        self._first_t: float | None = None
        self._last_t: float | None = None
        self._in: bool = False
        self._in_start = 0.0
        self._in_peak = 0.0
        self._last_end = -math.inf
        self.dropped = 0
        """Samples refused: not finite, or time running backwards."""

    def reset(self) -> None:
        """Forget everything (a new set, a cuff re-inflated)."""
        self.__init__(  # type: ignore[misc]
            smooth_s=self.smooth_s,
            baseline_tau_s=self.baseline_tau_s,
            min_rise_frac=self.min_rise_frac,
            min_rise_mmhg=self.min_rise_mmhg,
            spread_k=self.spread_k,
            min_duration_s=self.min_duration_s,
            max_duration_s=self.max_duration_s,
            refractory_s=self.refractory_s,
            warmup_s=self.warmup_s,
            min_baseline=self.min_baseline,
        )

    @property
    def baseline(self) -> float | None:
        return self._baseline

    def threshold(self) -> float:
        """Rise over the baseline (mmHg) that starts a contraction."""
        base = self._baseline or 0.0
        return max(self.min_rise_frac * base, self.spread_k * self._spread, self.min_rise_mmhg)

    def feed(self, t: float, p: float) -> bool:
        """Take one sample; True when it completes a newly counted contraction."""
        if not (math.isfinite(t) and math.isfinite(p)) or (self._last_t is not None and t < self._last_t):
            self.dropped += 1
            return False
        dt = 0.0 if self._last_t is None else t - self._last_t
        self._last_t = t
        if self._first_t is None:
            self._first_t = t
        # Moving average over the last smooth_s seconds.
        self._win.append((t, p))
        self._sum += p
        while self._win and self._win[0][0] < t - self.smooth_s:
            self._sum -= self._win.popleft()[1]
        smooth = self._sum / len(self._win)
        if self._baseline is None:
            self._baseline = smooth
            return False
        rise = smooth - self._baseline
        if self._baseline < self.min_baseline or abs(rise) > 0.25 * max(self._baseline, 1.0):
            # Vented, filling or a new target: learn the level and the spread afresh.
            self._first_t = t
            self._baseline = smooth
            self._spread = 0.0
            return False
        warm = t - self._first_t >= self.warmup_s
        thr = self.threshold()
        if not self._in:
            # Follow the regulated pressure and learn the resting spread.
            a = 1.0 - math.exp(-dt / (self.baseline_tau_s if warm else 0.5)) if dt > 0 else 0.0
            # Once warm, rises above the threshold move the baseline slowly (they may be a contraction's
            # onset); while warming up it follows everything (the end of a fill is no contraction).
            self._baseline += a * (rise if rise < thr or not warm else 0.1 * rise)
            # The spread is learned fast while warming up, slowly after.
            tau = 0.5 if not warm else 2 * self.baseline_tau_s
            b = 1.0 - math.exp(-dt / tau) if dt > 0 else 0.0
            # Learned from the dips under the baseline only: pulse and noise swing both ways, a
            # contraction only up, so squeezes too small to count cannot raise the threshold that
            # then misses the next ones. Capped at the floor threshold: one big swing cannot inflate it.
            if rise <= 0.0:
                dev = min(-rise, max(self.min_rise_frac * self._baseline, self.min_rise_mmhg))
                self._spread += b * (dev - self._spread)
            if warm and rise > thr and t - self._last_end >= self.refractory_s:
                self._in = True
                self._in_start = t
                self._in_peak = rise
            return False
        self._in_peak = max(self._in_peak, rise)
        if rise < 0.5 * thr or t - self._in_start > self.max_duration_s:
            self._in = False
            self._last_end = t
            too_long = t - self._in_start > self.max_duration_s
            if too_long:
                # A step change of the target, not a contraction: take the new level as baseline.
                self._baseline = smooth
                return False
            if t - self._in_start >= self.min_duration_s:
                c = Contraction(self._in_start, t, self._in_peak)
                self.contractions.append(c)
                self.count += 1
                return True
        return False
