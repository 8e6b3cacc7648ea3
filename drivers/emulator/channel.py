"""One emulated channel: its state and filters, a read-only view of it, and the fault switches.

Kept out of :mod:`.firmware` so the firmware module holds only what the
controller does (regulation, safety, watchdog, stream), not its data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from drivers.emulator.limits import SLOW_WINDOW_S, UNSTEADY_MMHG
from drivers.emulator.physics import DT, ChannelPhysics


@dataclass
class Faults:
    """Faults a test switches on and off at any time (the firmware reads them every step)."""

    leak: dict[int, float] = field(default_factory=dict)
    """Channel -> leak rate, mmHg/s."""
    frozen_sensor: set[int] = field(default_factory=set)
    garbage_rate: float = 0.0
    """Chance, per line sent, of a garbage burst (bad CRC, bad bytes, over-long) sent before it."""
    silent: bool = False
    """Reads nothing, answers nothing, sends nothing; its own safety still runs."""
    slow_answer_s: float = 0.0
    """Answers (and STATUS's C lines) leave this late; commands still act at once."""
    vent_stuck: set[int] = field(default_factory=set)
    movement: set[int] = field(default_factory=set)
    """Channels with a limb-movement artefact (large slow swings)."""
    broken_sensor: set[int] = field(default_factory=set)
    """Channels whose sensor reads out of range (open wire)."""
    lose_answers: int = 0
    """The next this many answers go out damaged (one character changed), so the host drops them: the
    commands were done, their OKs never arrive. Counts down; deterministic, unlike ``corrupt_rate``."""
    lose_answers_to: dict[str, int] = field(default_factory=dict)
    """Verb -> how many of its next answers go out damaged (as ``lose_answers``, for one verb only)."""
    corrupt_rate: float = 0.0
    """Chance, per line sent, that the line itself is corrupted (so the host loses it)."""
    no_samples: bool = False
    """Answers every command as usual (STREAM included) and sends C and E lines, but no S line."""
    sample_channels: int | None = None
    """S lines carry this many pressures (1..12) instead of one per channel: the first channels' readings,
    0 past the last channel. None: the real count."""
    deflate_refused: set[int] = field(default_factory=set)
    """A DEFLATE naming these channels is answered ``ERR BUSY`` and they are not vented (DEFLATE ALL vents
    the others first); they keep regulating at their target and streaming. The controller's own vents
    (watchdog, ceiling, sensor) still vent them."""
    deflate_silent: set[int] = field(default_factory=set)
    """``DEFLATE CH`` of one of these channels gets no answer at all and is not done. DEFLATE ALL names
    every channel, not only these: it is answered and done as usual."""


class ChannelView:
    """A read-only, live view of one channel: the truth and what the firmware thinks."""

    __slots__ = ("_c",)

    def __init__(self, chan: Channel) -> None:
        self._c = chan

    @property
    def pressure(self) -> float:
        """True cuff pressure, mmHg."""
        return self._c.phys.pressure

    @property
    def reading(self) -> float:
        """The latest zero-corrected sensor reading, mmHg."""
        return self._c.reading

    @property
    def target(self) -> float:
        return self._c.target

    @property
    def state(self) -> str:
        return self._c.state

    @property
    def latched(self) -> bool:
        return self._c.latched

    @property
    def lop(self) -> float:
        return self._c.phys.lop

    @property
    def pump_on(self) -> bool:
        return self._c.phys.pump_on

    @property
    def valve_open(self) -> bool:
        return self._c.phys.valve_open

    @property
    def duty(self) -> int:
        return self._c.duty()

    @property
    def zero_offset(self) -> float:
        return self._c.zero

    def __repr__(self) -> str:
        c = self._c
        return (
            f"<channel {c.number} {c.state} target={c.target} pressure={c.phys.pressure:.1f} "
            f"reading={c.reading:.1f} latched={c.latched}>"
        )


_DUTY_N = round(1.0 / DT)
_SLOW_N = round(SLOW_WINDOW_S / DT)


@dataclass
class Channel:
    """One channel as the firmware keeps it: target, state, latch, zero offset, filters and timers."""

    number: int
    phys: ChannelPhysics
    target: float = 0.0
    state: str = "VENTED"
    latched: bool = False
    zero: float = 0.0
    raw: float = 0.0
    reading: float = 0.0
    fast: float = 0.0
    slow: float = 0.0
    """Moving mean of the reading over ``SLOW_WINDOW_S``."""
    slow_ring: list[float] = field(default_factory=lambda: [0.0] * _SLOW_N)
    slow_pos: int = 0
    slow_sum: float = 0.0
    mode: str = "idle"
    """Holding regulator: idle, pump_burst, vent_burst, pump_fill, vent_down."""
    burst_until: float = 0.0
    settle_until: float = 0.0
    pump_since: float | None = None
    leak_sent: bool = False
    vent_since: float | None = None
    out_since: float | None = None
    frozen_ref: float = 0.0
    frozen_since: float | None = None
    duty_ring: bytearray = field(default_factory=lambda: bytearray(_DUTY_N))
    duty_pos: int = 0
    duty_sum: int = 0

    def duty(self) -> int:
        return round(100 * self.duty_sum / _DUTY_N)

    def reset_slow(self, value: float) -> None:
        self.slow_ring = [value] * _SLOW_N
        self.slow_sum = value * _SLOW_N
        self.slow_pos = 0
        self.slow = value

    def unsteady(self) -> bool:
        """Whether the thirds of the mean's window differ by more than ``UNSTEADY_MMHG``."""
        ring, pos, third = self.slow_ring, self.slow_pos, _SLOW_N // 3
        ordered = ring[pos:] + ring[:pos]
        means = [sum(ordered[i * third : (i + 1) * third]) / third for i in range(3)]
        return max(means) - min(means) > UNSTEADY_MMHG

    def note_reading(self, value: float) -> None:
        """Push one reading into the moving mean (re-summed once per lap against rounding drift)."""
        pos = self.slow_pos
        self.slow_sum += value - self.slow_ring[pos]
        self.slow_ring[pos] = value
        pos += 1
        if pos == _SLOW_N:
            pos = 0
            self.slow_sum = sum(self.slow_ring)
        self.slow_pos = pos
        self.slow = self.slow_sum / _SLOW_N

    def note_pump(self, on: bool) -> None:
        v = 1 if on else 0
        self.duty_sum += v - self.duty_ring[self.duty_pos]
        self.duty_ring[self.duty_pos] = v
        self.duty_pos = (self.duty_pos + 1) % _DUTY_N


__all__ = ["Channel", "ChannelView", "Faults"]
