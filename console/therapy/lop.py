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

The parts live in their own modules, re-exported here so callers need only
this one: :mod:`console.therapy.lop_signal` (the pulse on each plateau) and
:mod:`console.therapy.lop_estimate` (the envelope fit and :func:`estimate_lop`).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass

from console.common.api import LopProgress
from console.common.clock import Clock
from console.therapy.lop_estimate import (
    MAX_LOP_MMHG,
    STRONG_Z,
    LopResult,
    best_fade,
    estimate_lop,
    fade_state,
    failure,
)
from console.therapy.lop_signal import (
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
