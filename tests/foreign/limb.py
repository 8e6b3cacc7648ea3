"""The foreign controller's plant: a cuff on a limb, a pump, a vent valve and a sensor.

Written from ``shared/protocol.md`` section 6 alone, with choices of its own: the pump's flow
falls linearly with the pressure it pushes against (it stalls at ``PUMP_STALL_MMHG``), the
valve vents exponentially, the cuff seeps a little so the regulator has work to do while
holding, and the arterial pulse is a Gaussian bump over the cuff pressure (largest at
``PULSE_PEAK_FRACTION`` of the LOP) that a linear taper brings to nothing at the LOP.
Pure physics: no wire, no firmware; time steps come from the caller.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

PUMP_FLOW_MMHG_S = 68.0
"""Pump flow into an empty thigh cuff: 0 to 200 mmHg in about 4 s, 0 to 280 in about 7 s."""
PUMP_STALL_MMHG = 430.0
"""The pressure at which the pump's flow has fallen to nothing."""
VENT_TAU_S = 0.65
"""Open valve: 200 to under 10 mmHg in about 2 s."""
SEEP_PER_S = 0.01
"""The cuff's own small loss (1 mmHg/s at 100 mmHg): holding needs a top-up every 1-3 s."""
PULSE_PEAK_FRACTION = 0.62
"""The pulse is largest at this fraction of the LOP (around the mean arterial pressure)."""
PULSE_WIDTH_FRACTION = 0.2
"""Width (sigma) of the pulse's Gaussian bump, as a fraction of the LOP."""
PULSE_TAPER_FRACTION = 0.15
"""Over the last part of the way to the LOP the pulse fades linearly to nothing."""
SENSOR_NOISE_MMHG = 0.3


def pulse_amplitude(pressure: float, lop: float, peak_mmhg: float) -> float:
    """How large the arterial pulse is in the cuff at this pressure: none at or above the LOP."""
    if pressure >= lop or pressure <= 0:
        return 0.0
    bump = math.exp(-0.5 * ((pressure - PULSE_PEAK_FRACTION * lop) / (PULSE_WIDTH_FRACTION * lop)) ** 2)
    taper = min(1.0, (lop - pressure) / (PULSE_TAPER_FRACTION * lop))
    return peak_mmhg * bump * taper


def pulse_shape(phase: float) -> float:
    """One heartbeat, phase 0..1: a sharp systolic peak and a smaller dicrotic wave, about zero mean."""
    systole = math.exp(-0.5 * ((phase - 0.12) / 0.05) ** 2)
    dicrotic = 0.35 * math.exp(-0.5 * ((phase - 0.42) / 0.07) ** 2)
    return systole + dicrotic - 0.19


@dataclass
class Cuff:
    """The gas in one cuff, driven by the pump and the valve the firmware switches."""

    flow_mmhg_s: float = PUMP_FLOW_MMHG_S
    pressure: float = 0.0
    """True gas pressure in mmHg (what a perfect sensor would read with the limb at rest)."""
    pump_on: bool = False
    valve_open: bool = True
    leak_per_s: float = 0.0
    """An extra leak (a test's fault): 1.5/s is more than the pump can make up above about 40 mmHg."""
    vent_blocked: bool = False
    """A kinked vent line (a test's fault): the valve opens but no air goes out."""

    def step(self, dt: float) -> None:
        p = self.pressure
        dp = -(SEEP_PER_S + self.leak_per_s) * p
        if self.pump_on:
            dp += self.flow_mmhg_s * max(0.0, 1.0 - p / PUMP_STALL_MMHG)
        if self.valve_open and not self.vent_blocked:
            dp -= p / VENT_TAU_S
        self.pressure = max(0.0, p + dp * dt)


@dataclass
class Contractions:
    """Exercise: each contraction raises the cuff pressure by ``rise`` for ``length_s`` every ``cadence_s``."""

    cadence_s: float = 3.0
    length_s: float = 1.2
    rise: float = 0.1
    started_at: float = 0.0

    def factor(self, t: float) -> float:
        into = (t - self.started_at) % self.cadence_s
        if into >= self.length_s:
            return 1.0
        return 1.0 + self.rise * math.sin(math.pi * into / self.length_s)


@dataclass
class Limb:
    """The limb under one cuff: its LOP, its pulse, and muscle contractions when exercising."""

    lop: float
    pulse_mmhg: float = 1.6
    heart_rate: float = 68.0
    rng: random.Random = field(default_factory=random.Random)
    contractions: Contractions | None = None
    _beat_start: float = 0.0
    _beat_len: float = 0.0

    def squeeze(self, t: float) -> float:
        """The factor muscle contraction multiplies the cuff pressure by (1.0 at rest)."""
        return 1.0 if self.contractions is None else self.contractions.factor(t)

    def pulse(self, pressure: float, t: float) -> float:
        """The pulse riding on the cuff pressure at time ``t``; beats vary a little in length."""
        if self._beat_len <= 0 or t - self._beat_start >= self._beat_len:
            self._beat_start = (
                t if self._beat_len <= 0 or t - self._beat_start > 5 else self._beat_start + self._beat_len
            )
            self._beat_len = 60.0 / self.heart_rate * (1.0 + 0.03 * self.rng.gauss(0.0, 1.0))
        phase = (t - self._beat_start) / self._beat_len
        return pulse_amplitude(pressure, self.lop, self.pulse_mmhg) * pulse_shape(min(max(phase, 0.0), 1.0))


@dataclass
class Sensor:
    """A pressure sensor with a small bias, noise, a zero offset the firmware sets, and a frozen fault."""

    rng: random.Random
    bias_mmhg: float = 0.0
    noise_mmhg: float = SENSOR_NOISE_MMHG
    offset: float = 0.0
    """Subtracted from every raw reading (set by ZERO)."""
    frozen: bool = False
    _last_raw: float = 0.0

    def raw(self, true_mmhg: float) -> float:
        """The reading before the zero offset; a frozen sensor repeats its last one."""
        if not self.frozen:
            self._last_raw = true_mmhg + self.bias_mmhg + self.rng.gauss(0.0, self.noise_mmhg)
        return self._last_raw

    def read(self, true_mmhg: float) -> float:
        return self.raw(true_mmhg) - self.offset
