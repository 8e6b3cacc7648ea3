"""The limb under an emulated cuff: how its pulse fades, its rhythm, its breathing, and a twitchy regulator.

Its own module so the physics (:mod:`.physics`) keeps the pneumatics and the
sensor, and so a test or the program can draw limbs unlike the one the
console was first tuned on. Nobody knows the shape of a real patient's fade
(protocol section 6 only says the pulse is largest around mean arterial
pressure and fades to nothing at the LOP), so several are offered.

Every shape is 1 at the pulse's peak (``peak_at`` x LOP), reaches exactly 0 at
the LOP and stays 0 above it; below the peak the pulse rises from nothing in
a slack cuff as a raised cosine. With ``u`` = (P - peak) / (LOP - peak):

- ``cos2``: cos^2(pi u / 2), the classic smooth oscillometric envelope;
- ``linear``: 1 - u;
- ``sqrt``: sqrt(1 - u), falling steeply at the end;
- ``gauss``: a Gaussian tail exp(-u^2 / (2 * 0.4^2)), shifted and scaled so it
  ends at 0 (about 4 % of the peak left at the LOP before the shift);
- ``sigmoid``: a logistic step centred half-way with slope 8, shifted and
  scaled the same way (a flat, long end).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

FADES = ("cos2", "linear", "sqrt", "gauss", "sigmoid")
"""The fade shapes the emulator can draw."""
GAUSS_WIDTH = 0.4
"""Width (share of the fade) of the ``gauss`` shape."""
SIGMOID_CENTRE = 0.5
SIGMOID_SLOPE = 8.0
CORRECTION_MMHG = 3.0
"""A correcting regulator keeps the cuff within this of where it settled."""
CORRECTION_EVERY_S = (1.0, 3.0)
"""... and corrects once every so many seconds (uniform)."""
CORRECTION_RAMP_S = 0.15
"""One correction (a pump or vent burst) takes this long."""
QUIET_BEFORE_S = 0.5
"""The correcting regulator takes over once the firmware's pump and valve were shut this long."""


def _logistic(u: float) -> float:
    return 1.0 / (1.0 + math.exp(SIGMOID_SLOPE * (u - SIGMOID_CENTRE)))


def _gauss(u: float) -> float:
    return math.exp(-(u * u) / (2.0 * GAUSS_WIDTH * GAUSS_WIDTH))


_G1 = _gauss(1.0)
_L0, _L1 = _logistic(0.0), _logistic(1.0)


def fade(shape: str, u: float) -> float:
    """The pulse relative to its peak at ``u`` of the way from the peak (0) to the LOP (1)."""
    if u <= 0.0:
        return 1.0
    if u >= 1.0:
        return 0.0
    if shape == "cos2":
        c = math.cos(0.5 * math.pi * u)
        return c * c
    if shape == "linear":
        return 1.0 - u
    if shape == "sqrt":
        return math.sqrt(1.0 - u)
    if shape == "gauss":
        return (_gauss(u) - _G1) / (1.0 - _G1)
    if shape == "sigmoid":
        return (_logistic(u) - _L1) / (_L0 - _L1)
    raise ValueError(f"unknown fade {shape!r}; known: {', '.join(FADES)}")


@dataclass(frozen=True, slots=True)
class LimbModel:
    """How one limb shows its pulse in the cuff. The defaults are the emulator's first limb (cos^2, peak at 0.6)."""

    fade: str = "cos2"
    peak_at: float = 0.6
    """Where the pulse is largest, as a share of the LOP (0.4..0.8)."""
    rhythm_var: float = 0.03
    """Beat-to-beat variation of the heart period (one SD, share of it): 0.03 a healthy rhythm, up to 0.2
    (atrial fibrillation)."""
    breathing: float = 0.0
    """Depth of the breathing's swell of the pulse (share, 0..0.3): the pulse is (1 + depth * sin) times."""
    breathing_hz: float = 0.25
    """Breathing rate, Hz (0.1..0.5)."""
    corrections: bool = False
    """A regulator that keeps correcting while holding: a pump or vent burst every 1 to 3 s, within 3 mmHg."""

    def __post_init__(self) -> None:
        if self.fade not in FADES:
            raise ValueError(f"unknown fade {self.fade!r}; known: {', '.join(FADES)}")
        if not 0.3 <= self.peak_at <= 0.9:
            raise ValueError(f"peak_at must be 0.3..0.9 of the LOP, got {self.peak_at}")
        if not 0.0 <= self.rhythm_var <= 0.3:
            raise ValueError(f"rhythm_var must be 0..0.3, got {self.rhythm_var}")
        if not 0.0 <= self.breathing <= 0.3:
            raise ValueError(f"breathing must be 0..0.3, got {self.breathing}")
        if not 0.1 <= self.breathing_hz <= 0.5:
            raise ValueError(f"breathing_hz must be 0.1..0.5 Hz, got {self.breathing_hz}")

    def envelope(self, pressure: float, lop: float) -> float:
        """How much of the arterial pulse shows in the cuff at ``pressure``, 0..1."""
        if pressure <= 0.0 or pressure >= lop:
            return 0.0
        peak = self.peak_at * lop
        if pressure <= peak:
            return 0.5 * (1.0 - math.cos(math.pi * pressure / peak))
        return fade(self.fade, (pressure - peak) / (lop - peak))


class Corrector:
    """A regulator that keeps correcting a held cuff: small pump and vent bursts the firmware did not ask for.

    Real controllers do this (a valve that seeps, a regulator with a tight
    deadband). Once the firmware's pump and valve have been shut for
    :data:`QUIET_BEFORE_S`, the level there is the anchor; every 1 to 3 s a
    burst of :data:`CORRECTION_RAMP_S` moves the cuff to a new level within
    :data:`CORRECTION_MMHG` of it. Any firmware pump or vent re-anchors.
    """

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.t = 0.0
        self.quiet_since: float | None = None
        self.anchor: float | None = None
        self.next_at = 0.0
        self.rate = 0.0
        self.until = 0.0
        self.count = 0
        """Bursts made so far."""

    def step(self, dt: float, base: float, active: bool) -> float:
        """The change of the cuff's gas pressure over this step (mmHg); ``active``: the firmware pumps or vents."""
        self.t += dt
        if active or base < 20.0:
            self.quiet_since = self.anchor = None
            self.until = 0.0
            return 0.0
        if self.quiet_since is None:
            self.quiet_since = self.t
        if self.anchor is None:
            if self.t - self.quiet_since < QUIET_BEFORE_S:
                return 0.0
            self.anchor = base
            self.next_at = self.t + self.rng.uniform(*CORRECTION_EVERY_S)
        if self.t >= self.next_at:
            goal = self.anchor + self.rng.uniform(-CORRECTION_MMHG, CORRECTION_MMHG)
            if abs(goal - base) < 0.5:
                goal = base + math.copysign(0.5, goal - base if goal != base else 1.0)
            goal = min(self.anchor + CORRECTION_MMHG, max(self.anchor - CORRECTION_MMHG, goal))
            self.rate = (goal - base) / CORRECTION_RAMP_S
            self.until = self.t + CORRECTION_RAMP_S
            self.next_at = self.t + self.rng.uniform(*CORRECTION_EVERY_S)
            self.count += 1
        if self.t < self.until:
            return self.rate * dt
        return 0.0
