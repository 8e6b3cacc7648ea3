"""Physics of one emulated channel: cuff pneumatics, the limb under it, and the sensor.

The firmware only commands the pump and the valve and reads the sensor; every
other quantity here is the truth a test can compare the firmware (or the
console) against. Stepped with a fixed ``DT`` and a seeded ``random.Random``,
so a run is reproducible from its seed.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from drivers.emulator.limb import Corrector, LimbModel

DT = 0.002
"""Physics and firmware step, seconds."""

PUMP_FLOW0 = 69.3
"""Pump fill rate into an empty thigh cuff, mmHg/s (0 -> 200 mmHg in about 4 s)."""

PUMP_STALL = 400.0
"""Pressure at which the pump's flow falls to nothing, mmHg (rate falls linearly with pressure)."""

VENT_K = 1.7
"""Exponential vent constant, 1/s (200 -> under 10 mmHg in about 1.8 s)."""

VENT_LINEAR = 2.0
"""Extra constant vent rate, mmHg/s, so an open cuff really reaches 0."""

SENSOR_NOISE = 0.3
"""Gaussian sensor noise, mmHg (one standard deviation)."""

SENSOR_OPEN_WIRE = -100.0
"""What a broken (open-wire) sensor reads: far outside any possible pressure."""


def pump_rate(pressure: float, gain: float = 1.0) -> float:
    """Pump flow in mmHg/s at ``pressure``; the firmware uses the nominal curve (gain 1)."""
    return max(0.0, PUMP_FLOW0 * gain * (1.0 - pressure / PUMP_STALL))


_DEFAULT_LIMB = LimbModel()


def pulse_envelope(pressure: float, lop: float) -> float:
    """How much of the arterial pulse shows in the cuff of the default limb, 0..1.

    Oscillometric in shape: nothing in a slack cuff, largest at mean arterial
    pressure (0.6 LOP), fading smoothly (raised cosine) to nothing at the LOP
    and absent above it. Other limbs: :class:`~drivers.emulator.limb.LimbModel`.
    """
    return _DEFAULT_LIMB.envelope(pressure, lop)


_RISE = 0.12
_TAU = 0.22
_TAIL = math.exp(-(1.0 - _RISE) / _TAU)


def beat_shape(phase: float) -> float:
    """One heart beat, 0..1 of its period -> 0..1: sharp systolic upstroke, slower decay, a dicrotic notch."""
    if phase < _RISE:
        s = math.sin(0.5 * math.pi * phase / _RISE)
        return s * s
    x = phase - _RISE
    decay = (math.exp(-x / _TAU) - _TAIL) / (1.0 - _TAIL)
    notch = 0.12 * math.exp(-(((phase - 0.42) / 0.05) ** 2))
    return max(0.0, decay + notch)


def _smooth_step(x: float) -> float:
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    return 0.5 * (1.0 - math.cos(math.pi * x))


@dataclass
class Exercise:
    """A rhythmic contraction pattern; each contraction squeezes the cuff by ``rise_pct``."""

    cadence_s: float = 2.0
    contraction_s: float = 1.0
    rise_pct: float = 10.0
    on: bool = True

    def __post_init__(self) -> None:
        if not 0.2 <= self.cadence_s <= 60.0:
            raise ValueError(f"cadence_s must be 0.2..60 s, got {self.cadence_s}")
        if not 0.1 <= self.contraction_s < self.cadence_s:
            raise ValueError(f"contraction_s must be 0.1 s .. cadence_s, got {self.contraction_s}")
        if not 0.0 <= self.rise_pct <= 50.0:
            raise ValueError(f"rise_pct must be 0..50 %, got {self.rise_pct}")


@dataclass
class ChannelPhysics:
    """One cuff on one limb, with its pump, valve and sensor.

    ``base`` is the gas pressure with the limb relaxed; the cuff pressure
    (``pressure``) adds the contraction squeeze, the arterial pulse and any
    movement artefact on top.
    """

    rng: random.Random
    lop: float
    heart_rate: float = 70.0
    pulse_amplitude: float = 2.0
    base: float = 0.0
    pump_on: bool = False
    valve_cmd: bool = True
    leak_rate: float = 0.0
    vent_stuck: bool = False
    moving: bool = False
    sensor_noise: float = SENSOR_NOISE
    """Gaussian sensor noise of this channel, mmHg (one standard deviation)."""
    frozen: bool = False
    broken: bool = False
    pump_gain: float = field(init=False)
    vent_k: float = field(init=False)
    sensor_offset: float = field(init=False)
    pulse: float = 0.0
    squeeze: float = 0.0
    movement: float = 0.0
    exercise: Exercise | None = None
    reps: int = 0
    limb: LimbModel = field(default_factory=LimbModel)
    """How this limb shows its pulse: fade shape, peak, rhythm, breathing, a correcting regulator."""
    corrector: Corrector | None = None
    """The correcting regulator, made on the first step with ``limb.corrections`` on."""
    _breath_phase: float | None = None
    _beat_t: float = 0.0
    _beat_period: float = 1.0
    _beat_amp: float = 1.0
    _ex_t: float = 0.0
    _ex_rise: float = 0.0
    _frozen_value: float | None = None
    _move_raw: float = 0.0

    def __post_init__(self) -> None:
        self.pump_gain = self.rng.uniform(0.92, 1.08)
        self.vent_k = VENT_K * self.rng.uniform(0.95, 1.05)
        self.sensor_offset = self.rng.uniform(-1.5, 1.5)
        self._beat_t = self.rng.random()
        self._new_beat()

    # ------------------------------------------------------------------ truth

    @property
    def valve_open(self) -> bool:
        return self.valve_cmd and not self.vent_stuck

    @property
    def pressure(self) -> float:
        """The true cuff pressure, mmHg, everything included."""
        return max(0.0, self.base * (1.0 + self.squeeze) + self.pulse + self.movement)

    # ------------------------------------------------------------------ stepping

    def push(self, mmhg: float) -> None:
        """An external squeeze: add ``mmhg`` to the cuff pressure now."""
        self.base = max(0.0, self.base + mmhg / (1.0 + self.squeeze))

    def step(self, dt: float = DT) -> None:
        squeezed = self.base * (1.0 + self.squeeze)
        flow = 0.0
        if self.pump_on:
            flow += pump_rate(squeezed, self.pump_gain)
        if self.valve_open:
            flow -= self.vent_k * squeezed + VENT_LINEAR
        if self.leak_rate > 0.0:
            flow -= self.leak_rate * min(1.0, squeezed / 10.0)
        self.base = max(0.0, self.base + flow * dt / (1.0 + self.squeeze))
        if self.limb.corrections:
            if self.corrector is None:
                self.corrector = Corrector(random.Random(self.rng.getrandbits(64)))
            active = self.pump_on or self.valve_open
            self.base = max(0.0, self.base + self.corrector.step(dt, self.base, active))
        self._step_exercise(dt)
        self._step_pulse(dt)
        self._step_movement(dt)

    def _new_beat(self) -> None:
        hr = max(20.0, self.heart_rate)
        self._beat_period = 60.0 / hr * max(0.4, 1.0 + self.rng.gauss(0.0, self.limb.rhythm_var))
        self._beat_amp = max(0.0, 1.0 + self.rng.gauss(0.0, 0.06))

    def _step_pulse(self, dt: float) -> None:
        self._beat_t += dt / self._beat_period
        if self._beat_t >= 1.0:
            self._beat_t -= 1.0
            self._new_beat()
        cuff = self.base * (1.0 + self.squeeze)
        amp = self.pulse_amplitude * self._beat_amp * self.limb.envelope(cuff, self.lop)
        if self.limb.breathing > 0.0:
            if self._breath_phase is None:
                self._breath_phase = self.rng.random()
            self._breath_phase = (self._breath_phase + dt * self.limb.breathing_hz) % 1.0
            amp *= 1.0 + self.limb.breathing * math.sin(2.0 * math.pi * self._breath_phase)
        self.pulse = amp * beat_shape(self._beat_t) if amp > 0.0 else 0.0

    def _step_exercise(self, dt: float) -> None:
        ex = self.exercise
        if ex is None or not ex.on:
            self.squeeze = 0.0
            return
        before = self._ex_t
        self._ex_t += dt
        if before == 0.0 or self._ex_t >= ex.cadence_s:
            if self._ex_t >= ex.cadence_s:
                self._ex_t -= ex.cadence_s
            self.reps += 1
            self._ex_rise = ex.rise_pct / 100.0 * max(0.0, 1.0 + self.rng.gauss(0.0, 0.08))
        t = self._ex_t
        length = ex.contraction_s
        ramp = 0.2 * length
        if t >= length:
            shape = 0.0
        elif t < ramp:
            shape = _smooth_step(t / ramp)
        elif t > length - ramp:
            shape = _smooth_step((length - t) / ramp)
        else:
            shape = 1.0
        self.squeeze = self._ex_rise * shape

    def _step_movement(self, dt: float) -> None:
        if not self.moving and self.movement == 0.0:
            return
        if not self.moving:
            # settles back once the limb is still
            self.movement *= math.exp(-dt / 0.3)
            self._move_raw = self.movement
            if abs(self.movement) < 0.01:
                self.movement = self._move_raw = 0.0
            return
        # Ornstein-Uhlenbeck (tau 0.8 s, sd 8 mmHg) smoothed by a 0.25 s low-pass: large, slow
        # swings, only in a filled cuff
        tau, sd, smooth = 0.8, 8.0, 0.25
        target_sd = sd * min(1.0, self.base / 40.0)
        self._move_raw += -self._move_raw * dt / tau + target_sd * math.sqrt(2.0 * dt / tau) * self.rng.gauss(0.0, 1.0)
        self.movement += (self._move_raw - self.movement) * dt / smooth

    def start_exercise(self, exercise: Exercise | None) -> None:
        self.exercise = exercise
        self._ex_t = 0.0
        if exercise is None or not exercise.on:
            self.squeeze = 0.0

    # ------------------------------------------------------------------ sensor

    def read(self) -> float:
        """One raw sensor reading (before the firmware's zero): noise and offset included."""
        if self.broken:
            return SENSOR_OPEN_WIRE
        if self.frozen:
            if self._frozen_value is None:
                self._frozen_value = self.pressure + self.sensor_offset
            return self._frozen_value
        value = self.pressure + self.sensor_offset + self.rng.gauss(0.0, self.sensor_noise)
        self._frozen_value = None
        return value
