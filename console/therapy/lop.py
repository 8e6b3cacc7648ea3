"""Limb occlusion pressure (LOP) from the cuff's own pressure signal.

The method of automated tourniquet systems (Masri et al. 2016): step the cuff
pressure up, hold each step for a few heartbeats, and watch the arterial pulse
that rides on the cuff pressure. Its amplitude (the oscillometric envelope) is
largest near mean arterial pressure and fades to nothing at the LOP.

Two parts, both pure (no I/O, no clock reads, no knowledge of any emulator):

- :func:`~console.therapy.lop_estimate.estimate_lop` turns a recorded pressure
  stream and the plateaus of the steps into a
  :class:`~console.therapy.lop_estimate.LopResult`: the LOP bracketed by
  plateaus the procedure held, or a clear failure with a reason.
- :class:`LopMeasurement` is the procedure as a state machine: the station
  feeds it every sample and asks it what to do next (set a target, wait, or
  deflate and finish). As a Doppler probe is used: short plateaus climb until
  the pulse has faded, longer ones go up past the loss of the signal until
  its absence is confirmed, then halving steps back down close the bracket
  between the highest plateau with a pulse and the lowest without one.

The parts live in their own modules: :mod:`console.therapy.lop_signal` (the
pulse on each plateau) and :mod:`console.therapy.lop_estimate` (the bracket
and the verdict).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass, replace

from console.common.api import LopProgress
from console.common.clock import Clock
from console.therapy.lop_estimate import (
    MAX_ERROR_MMHG,
    MAX_LOP_MMHG,
    STRONG_Z,
    Bracket,
    Level,
    LopResult,
    bracket,
    failure,
    verdict,
)
from console.therapy.lop_signal import (
    HR_MIN_HZ,
    PlateauCache,
    StepAmplitude,
    StepInfo,
    analyse_steps,
)


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
SETTLED_MMHG = 2.5
"""A plateau has settled once the pressure is this close to its target (small steps down take a vent burst)."""
LOSS_FRACTION = 0.4
"""The climb slows down once the pulse on the top plateau is under this share of the peak's amplitude."""
RESOLUTION_MMHG = 8.0
"""The halving steps stop once the bracket is this narrow (narrower gains little: what may hide above the
bracket, not its width, is what usually limits the result, and re-holding its ends lowers that)."""
MAX_REHOLDS = 2
"""Times one level is held again to lower its floor (or to make an unclear reading clear)."""
FINAL_REHOLDS = 5
"""Times the bracket's two levels may be held again once it is narrow, to lower what may hide above it."""
CLIMB_SHARE = 0.25
"""While the pulse is strong, each coarse step climbs by this share of the pressure (15 mmHg at least) ..."""
CLIMB_MAX_MMHG = 40.0
"""... and at most this: the climb should leave most of the budget for the plateaus around the LOP."""
COARSE_BEATS = 2.5
"""Heartbeats a coarse plateau holds at least."""
MAX_COARSE_S = 3.6
"""... but never longer than this (a slow heart at 42 /min)."""


@dataclass
class _Stepping:
    target: float
    set_at: float
    dwell_s: float
    from_pressure: float
    settled_at: float | None = None
    retargeted: bool = False


def _held_again(lv: Level) -> Level:
    """``lv`` as it would likely read after one more plateau: the same pulse, its noise pooled over one more."""
    k = lv.plateaus
    return replace(lv, plateaus=k + 1, noise=lv.noise * k / (k + 1), var=lv.var * k / (k + 1))


def _best_rehold(br: Bracket) -> Level | None:
    """The level whose re-hold should shrink the error bound most: the upper end (a lower floor) or a level with
    a pulse on the fading side (a surer amplitude), judged by the bound the verdict would compute after it.

    Looks one plateau ahead: a level whose pulse is still near its noise (no bound from it yet) can win, which
    the bound as it stands would never pick. Assumes the next plateau reads like the ones before it."""
    assert br.lo is not None and br.hi is not None
    hi = br.hi
    cands = [hi] + [x for x in br.levels if x.present and br.peak.pressure <= x.pressure < hi.pressure]
    best: tuple[float, int, Level] | None = None
    for c in cands:
        if c.plateaus > FINAL_REHOLDS:
            continue
        again = _held_again(c)
        lvls = tuple(again if x is c else x for x in br.levels)
        trial = replace(br, levels=lvls, hi=again if c is hi else hi, lo=again if c is br.lo else br.lo)
        key = (trial.error_bound(), c.plateaus)  # no bound either way: the level held fewer times
        if best is None or key < best[:2]:
            best = (*key, c)
    return best[2] if best is not None else None


class LopMeasurement:
    """The LOP measurement procedure: an adaptive staircase, driven by the station.

    The station zeroes the sensor first, then calls :meth:`feed` for every
    sample of the cuff and :meth:`next_action` at 10 Hz or more; it performs
    the action (``SET`` the cuff, ``DEFLATE`` it) and reads :attr:`result`
    once the action was ``deflate``.

    Plan: fill to ``start_mmhg``; coarse plateaus (``coarse_dwell_s``) climb
    by :data:`CLIMB_SHARE` of the pressure (15..:data:`CLIMB_MAX_MMHG` mmHg) while the pulse is strong; once it
    has faded under :data:`LOSS_FRACTION` of its peak, longer plateaus
    (``fine_dwell_s``) go up in small steps past the loss of the signal until
    its absence is confirmed; halving steps then narrow the bracket to
    :data:`RESOLUTION_MMHG`; a level whose reading is unclear is held again, and
    while the floor above leaves too much room for a hidden pulse the bracket's
    two ends are held again in turn (``final_dwell_s``, up to :data:`FINAL_REHOLDS`
    times; re-holds of one level pool into one reading). No plateau starts that
    would end after ``budget_s``. Never targets above ``ceiling_mmhg`` or 300.
    At ``timeout_s`` it gives up. Every ending deflates.
    """

    def __init__(
        self,
        *,
        start_mmhg: float = 50.0,
        ceiling_mmhg: float = MAX_LOP_MMHG,
        timeout_s: float = 60.0,
        budget_s: float = 56.0,
        coarse_dwell_s: float = 1.4,
        fine_dwell_s: float = 4.0,
        final_dwell_s: float = 6.0,
        max_fine: int = 16,
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
        self.final_dwell_s = final_dwell_s
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
        self._hr: float | None = None
        self._noise: float | None = None
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
            return self._go(self.start_mmhg, now, self._coarse())
        elapsed = now - self.started_at
        if self._cancel_reason is not None:
            return self._finish(now, failure(self._cancel_reason, self._amps))
        if elapsed >= self.timeout_s:
            return self._finish(now, failure(f"gave up after {self.timeout_s:.0f} s without a result", self._amps))
        cur = self._cur
        assert cur is not None
        if cur.settled_at is None:
            if self._settled(cur, now):
                cur.settled_at = now + self.settle_extra_s
            elif now - cur.set_at > self.step_timeout_s:
                return self._finish(
                    now,
                    failure(
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
            return mean >= cur.target - SETTLED_MMHG
        return mean <= cur.target + SETTLED_MMHG

    def _finish(self, now: float, result: LopResult) -> Action:
        self.result = result
        self.ended_at = now
        self._finished = True
        self._deflate_sent = True
        return DEFLATE

    def _cost(self, target: float, dwell: float) -> float:
        """Time a plateau at ``target`` takes from here: travel, settling, dwell (pessimistic)."""
        here = self.steps[-1].target if self.steps else 0.0
        rate = 20.0 if target > here else 60.0
        return abs(target - here) / rate + 0.3 + self.settle_extra_s + dwell

    def _after_step(self, now: float) -> Action:
        amps, f, noise = analyse_steps(self.times, self.pressures, self.steps, self._cache)
        self._amps = amps
        # A heart rate counts for the plateaus' length only once a plateau's pulse stands out at it: one read
        # off noise is often too fast, and plateaus cut to it are then too short to find the true, slower one.
        self._hr = f if any(a.z >= STRONG_Z and not a.corrections for a in amps) else None
        self._noise = noise
        if any(a.disturbed for a in amps):
            return self._finish(now, verdict(amps, f, noise, ceiling=self.ceiling))
        nxt = self._plan_next(amps)
        elapsed = now - (self.started_at or now)
        if nxt is not None:
            target, dwell = nxt
            if elapsed + self._cost(target, dwell) <= self.budget_s:
                if dwell >= self.fine_dwell_s:
                    self._fine += 1
                return self._go(target, now, dwell)
        return self._finish(now, verdict(amps, f, noise, ceiling=self.ceiling))

    def _coarse(self) -> float:
        """A coarse plateau holds at least :data:`COARSE_BEATS` heartbeats (the slowest rate searched
        until the heart rate is known): shorter, one beat's upstroke looks like a regulator's burst."""
        beat_s = 1.0 / self._hr if self._hr else 1.0 / HR_MIN_HZ
        return max(self.coarse_dwell_s, min(MAX_COARSE_S, COARSE_BEATS * beat_s))

    def _climb(self, top: float) -> float:
        return min(self.ceiling, top + min(CLIMB_MAX_MMHG, max(15.0, CLIMB_SHARE * top)))

    def _plan_next(self, amps: list[StepAmplitude]) -> tuple[float, float] | None:
        """The next (target, dwell), or None when the staircase is complete."""
        top = max(s.target for s in self.steps)
        at_ceiling = top >= self.ceiling - 0.05
        br = bracket(amps)
        if br is None or br.lo is None:
            # No pulse yet: climb (a little longer plateaus in case it is weak).
            return None if at_ceiling else (self._climb(top), self._coarse() + 0.6)
        if br.back_above is not None or self._fine >= self.max_fine:
            return None
        lo = br.lo
        above = [x for x in br.levels if x.pressure > lo.pressure]
        if not above:
            # The pulse shows on the top plateau: climb on, in small steps once it has faded.
            if at_ceiling:
                return (top, self.fine_dwell_s) if lo.plateaus <= MAX_REHOLDS and lo.target >= top - 0.5 else None
            if lo.amplitude > LOSS_FRACTION * br.peak.amplitude:
                return (self._climb(top), self._coarse())
            return (min(self.ceiling, top + max(6.0, 0.04 * top)), self.fine_dwell_s)
        first = above[0]
        if br.hi is not None and first is not br.hi and br.width > RESOLUTION_MMHG:
            # An unclear level inside a bracket already closed above: halve it (a level met again pools).
            return (round(0.5 * (lo.target + br.hi.target), 1), self.fine_dwell_s)
        if br.hi is None and first.target >= top - 0.5 and lo.amplitude > LOSS_FRACTION * br.peak.amplitude:
            # Still climbing, the pulse strong just below: an unclear short plateau is no loss; climb on.
            return None if at_ceiling else (self._climb(top), self._coarse())
        if br.hi is None or first is not br.hi:
            # The first level above the pulse is unclear: hold it again, else look under it.
            if first.plateaus <= MAX_REHOLDS:
                return (first.target, self.fine_dwell_s)
            if first.pressure - lo.pressure > RESOLUTION_MMHG:
                return (round(0.5 * (lo.target + first.target), 1), self.fine_dwell_s)
            if br.hi is None:
                # Nothing confirmed above: one step past the top.
                return None if at_ceiling else (min(self.ceiling, top + max(6.0, 0.04 * top)), self.fine_dwell_s)
            return None
        if br.width > RESOLUTION_MMHG:
            return (round(0.5 * (lo.target + br.hi.target), 1), self.fine_dwell_s)
        if br.error_bound() <= MAX_ERROR_MMHG:
            return None
        # Too much room above the bracket: lower the upper floor, or make the lower pulse surer (what
        # may hide shrinks with the ratio of the two; both are held again, in turn, as the budget allows).
        pick = _best_rehold(br)
        return (pick.target, self.final_dwell_s) if pick is not None else None

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
        low, high = res.bracket if res.bracket is not None else (None, None)
        return LopProgress(
            state,
            self.current_target,
            elapsed,
            res.lop,
            res.confidence,
            res.reason,
            bracket_low=low,
            bracket_high=high,
            resolution=res.resolution_mmhg,
        )
