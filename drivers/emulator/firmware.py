"""The CUFF-LINK/1 controller firmware, run over the physics model.

Implements ``shared/protocol.md`` sections 2-4: every verb with its error
codes, the reports, and the safety rules the controller keeps on its own
(watchdog, latches, ceiling, leak, sensor and vent checks). No I/O and no
clock of its own: the caller hands it bytes and the time, and takes the bytes
it wants to send, so tests drive it with a manual ``now`` and the pty server
drives it with the event loop's clock.

The verbs live in :mod:`.commands`, the per-channel state in :mod:`.channel`,
the way lines reach the wire (line faults, late answers) in :mod:`.outbox` and
the tuning numbers in :mod:`.limits`; this module keeps regulation, safety,
watchdog and stream.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

from drivers import codec
from drivers.codec import Command, DropCounts, LineReader, MalformedLine
from drivers.emulator.channel import Channel, ChannelView, Faults
from drivers.emulator.commands import CommandSet
from drivers.emulator.limb import LimbModel
from drivers.emulator.limits import (
    BIG_DROP,
    BOOT_WATCHDOG_MS,
    DEADBAND,
    FAST_TAU,
    FROZEN_EPS,
    FROZEN_S,
    LEAK_S,
    MAX_PUMP_BURST_S,
    MAX_VENT_BURST_MMHG,
    OVER_MARGIN,
    REFILL_BELOW,
    SENSOR_OUT_S,
    SENSOR_RANGE,
    SETTLE_S,
    STOP_EARLY,
    UNSTEADY_RETRY_S,
    VENTED_BELOW,
    VENTFAIL_MMHG,
    VENTFAIL_S,
)
from drivers.emulator.outbox import Outbox
from drivers.emulator.physics import (
    DT,
    SENSOR_NOISE,
    VENT_K,
    ChannelPhysics,
    Exercise,
    pump_rate,
)

_NAME = re.compile(r"[!-)+-~]{1,16}\Z")  # printable, no space, no '*'

MAX_SAMPLE_FIELDS = 12
"""Most pressures the ``sample_channels`` fault puts in an S line (the body stays under 100 characters)."""


class ControllerFirmware(CommandSet):
    """An emulated CUFF-LINK/1 controller: feed it bytes and time, take the bytes it sends."""

    def __init__(
        self,
        *,
        channels: int = 4,
        max_pressure: float = 300.0,
        lops: list[float] | None = None,
        heart_rate: float = 70.0,
        pulse_amplitude: float = 2.0,
        sensor_noise: float = SENSOR_NOISE,
        seed: int = 0,
        model: str = "EMU-4",
        fw: str = "1.0",
        serial: str = "E0001",
        start: float = 0.0,
        limb: LimbModel | None = None,
    ) -> None:
        """``limb``: how every channel's limb shows its pulse (:mod:`.limb`); None for the default limb."""
        if not 1 <= channels <= 8:
            raise ValueError(f"channels must be 1..8, got {channels}")
        if not 50.0 <= max_pressure <= 400.0:
            raise ValueError(f"max_pressure must be 50..400 mmHg, got {max_pressure}")
        if not 20.0 <= heart_rate <= 220.0:
            raise ValueError(f"heart_rate must be 20..220 /min, got {heart_rate}")
        if not 0.0 <= pulse_amplitude <= 20.0:
            raise ValueError(f"pulse_amplitude must be 0..20 mmHg, got {pulse_amplitude}")
        if not 0.0 <= sensor_noise <= 20.0:
            raise ValueError(f"sensor_noise must be 0..20 mmHg, got {sensor_noise}")
        for name, value in (("model", model), ("fw", fw), ("serial", serial)):
            if not _NAME.match(value):
                raise ValueError(f"{name} must be 1..16 printable characters without space or '*', got {value!r}")
        self._rng = random.Random(seed)
        if lops is None:
            lops = [round(self._rng.uniform(150.0, 250.0), 1) for _ in range(channels)]
        if len(lops) != channels:
            raise ValueError(f"need one LOP per channel ({channels}), got {len(lops)}")
        for lop in lops:
            if not 100.0 <= lop <= 300.0:
                raise ValueError(f"LOP must be 100..300 mmHg, got {lop}")
        self.channels = channels
        self.max_pressure = float(max_pressure)
        self.model, self.fw, self.serial = model, fw, serial
        self.faults = Faults()
        self._outbox = Outbox(self.faults, random.Random(seed ^ 0x5EED))
        self._chans = [
            Channel(
                i + 1,
                ChannelPhysics(
                    random.Random(self._rng.getrandbits(64)),
                    float(lops[i]),
                    heart_rate=heart_rate,
                    pulse_amplitude=pulse_amplitude,
                    sensor_noise=sensor_noise,
                    limb=limb or LimbModel(),
                ),
            )
            for i in range(channels)
        ]
        self._t = float(start)
        self._reader = LineReader()
        self.uptime_offset_ms = 0
        """Added to the uptime in ``S`` lines (a test can start near the u32 wrap)."""
        self.on_state: Callable[[int, str, float, float], None] | None = None
        """Called on every channel state change: (channel, state, target, reading)."""
        self.on_event: Callable[[str], None] | None = None
        """Called with the body of every event actually sent."""
        self._boot(self._t)

    # ------------------------------------------------------------------ public API

    @property
    def now(self) -> float:
        """The firmware's own time (seconds, same base as ``now`` arguments)."""
        return self._t

    @property
    def watchdog_ms(self) -> int:
        return self._watchdog_ms

    @property
    def stream_hz(self) -> int:
        return self._stream_hz

    @property
    def drops(self) -> DropCounts:
        """Host lines this controller dropped (bad framing, or good CRC but no command)."""
        return self._reader.drops

    @property
    def garbage_sent(self) -> int:
        """Garbage bursts sent (each one a line the host should drop and count)."""
        return self._outbox.garbage_sent

    @property
    def corrupted_sent(self) -> int:
        """Lines sent with one character changed (each one lost to the host)."""
        return self._outbox.corrupted_sent

    @property
    def uptime_ms(self) -> int:
        return (round((self._t - self._boot_t) * 1000.0) + self.uptime_offset_ms) & 0xFFFFFFFF

    def channel(self, ch: int) -> ChannelView:
        return ChannelView(self._chan(ch))

    def true_reps(self, ch: int) -> int:
        """Contractions begun on this channel's limb since exercise was switched on."""
        return self._chan(ch).phys.reps

    def push(self, ch: int, mmhg: float) -> None:
        self._chan(ch).phys.push(mmhg)

    def exercise(
        self, ch: int, *, cadence_s: float = 2.0, contraction_s: float = 1.0, rise_pct: float = 10.0, on: bool = True
    ) -> None:
        """Start (or with ``on=False`` stop) rhythmic contractions under channel ``ch``'s cuff."""
        phys = self._chan(ch).phys
        if not on:
            phys.start_exercise(None)
            return
        phys.start_exercise(Exercise(cadence_s, contraction_s, rise_pct, True))
        phys.reps = 0

    def receive(self, data: bytes, now: float) -> None:
        """Bytes from the host, arriving at ``now``. DEFLATEs act before anything else in them."""
        self.advance(now)
        if self.faults.silent or not data:
            return
        commands: list[Command] = []
        for body in self._reader.feed(data):
            try:
                commands.append(codec.parse_command(body))
            except MalformedLine:
                self._reader.drops.malformed += 1
        if not commands:
            return
        self._last_feed = self._t
        with self._outbox.answers_first():
            self._run_commands(commands)

    def advance(self, now: float) -> None:
        """Run physics and firmware in fixed steps up to ``now``."""
        while self._t + DT <= now + 1e-12:
            self._t += DT
            self._step()
        self._outbox.release(self._t)

    def take_output(self) -> bytes:
        return self._outbox.take()

    def reboot(self, now: float) -> None:
        """A power cycle at ``now``: all vented, watchdog 2000 ms, stream off, latches cleared, E BOOT."""
        self.advance(now)
        drops = self._reader.drops
        self._reader = LineReader()
        self._reader.drops = drops
        self._outbox.drop_delayed()
        self._boot(self._t)

    # ------------------------------------------------------------------ boot and output

    def _boot(self, t: float) -> None:
        self._boot_t = t
        self._watchdog_ms = BOOT_WATCHDOG_MS
        self._last_feed = t
        self._stream_hz = 0
        self._next_sample = t
        self._next_status = t
        self._wdt_sent = False
        for c in self._chans:
            c.target = 0.0
            c.latched = False
            c.zero = 0.0
            c.mode = "idle"
            c.pump_since = None
            c.leak_sent = False
            c.out_since = None
            c.frozen_since = None
            c.phys.pump_on = False
            c.phys.valve_cmd = True
            c.raw = c.phys.read()
            c.reading = c.fast = c.raw
            c.reset_slow(c.raw)
            c.state = "VENTING" if c.reading >= VENTED_BELOW else "VENTED"
            c.vent_since = t if c.state == "VENTING" else None
        self._event("BOOT", None, f"fw={self.fw}")

    def _answer(self, body: str) -> None:
        """Queue an answer line (late if the slow-answer fault is on)."""
        self._outbox.answer(body, self._t)

    def _event(self, code: str, ch: int | None, text: str = "") -> None:
        body = codec.event_body(code, ch, text)
        self._outbox.report(body)
        if not self.faults.silent and self.on_event is not None:
            self.on_event(body)

    def _status(self, c: Channel, answer: bool = False) -> None:
        body = codec.status_body(c.number, c.state, c.target, c.duty())
        if answer:
            self._answer(body)
        else:
            self._outbox.report(body)

    def _set_state(self, c: Channel, state: str) -> None:
        if c.state == state:
            return
        c.state = state
        c.pump_since = None
        c.leak_sent = False
        self._status(c)
        if self.on_state is not None:
            self.on_state(c.number, state, c.target, c.reading)

    # ------------------------------------------------------------------ commands

    def _chan(self, ch: int) -> Channel:
        if not 1 <= ch <= self.channels:
            raise ValueError(f"no channel {ch}: this controller has 1..{self.channels}")
        return self._chans[ch - 1]

    # ------------------------------------------------------------------ channel actions

    def _set_target(self, c: Channel, p: float) -> None:
        old = c.target
        c.target = p
        c.phys.valve_cmd = False
        c.vent_since = None
        c.settle_until = self._t + SETTLE_S
        if c.fast < p - STOP_EARLY:
            c.mode = "idle"
            c.phys.pump_on = True
            self._set_state(c, "INFLATING")
            return
        c.phys.pump_on = False
        c.mode = "idle"
        if c.state == "HOLDING" and old - p > BIG_DROP or c.fast > p + BIG_DROP:
            c.mode = "vent_down"
            c.phys.valve_cmd = True
        self._set_state(c, "HOLDING")

    def _deflate(self, c: Channel) -> None:
        c.target = 0.0
        c.mode = "idle"
        c.phys.pump_on = False
        if not c.phys.valve_cmd or c.vent_since is None and c.fast >= VENTFAIL_MMHG:
            c.vent_since = self._t
        c.phys.valve_cmd = True
        if not c.latched and c.state != "VENTED":
            self._set_state(c, "VENTING")

    def _latch(self, c: Channel, code: str | None, text: str = "") -> None:
        """Vent and latch a channel; send its event (WDT sends one for all, so passes None)."""
        self._deflate(c)
        c.latched = True
        self._set_state(c, "FAULT")
        if code is not None:
            self._event(code, c.number, text)

    # ------------------------------------------------------------------ the step

    def _step(self) -> None:
        t = self._t
        f = self.faults
        for c in self._chans:
            phys = c.phys
            n = c.number
            phys.leak_rate = f.leak.get(n, 0.0) if f.leak else 0.0
            phys.frozen = n in f.frozen_sensor
            phys.vent_stuck = n in f.vent_stuck
            phys.moving = n in f.movement
            phys.broken = n in f.broken_sensor
            phys.step(DT)
            c.raw = phys.read()
            c.reading = c.raw - c.zero
            c.fast += (c.reading - c.fast) * (DT / FAST_TAU)
            c.note_reading(c.reading)
            self._safety(c, t)
            if not c.latched:
                self._regulate(c, t)
            c.note_pump(phys.pump_on)
        self._watchdog(t)
        self._stream(t)

    def _safety(self, c: Channel, t: float) -> None:
        lo, hi = SENSOR_RANGE
        if not lo <= c.reading <= hi:
            if c.out_since is None:
                c.out_since = t
            elif t - c.out_since >= SENSOR_OUT_S and not c.latched:
                self._latch(c, "SENSOR", f"reading={codec.format_pressure(c.reading)}")
                return
        else:
            c.out_since = None
        if c.phys.pump_on:
            if c.frozen_since is None or abs(c.reading - c.frozen_ref) > FROZEN_EPS:
                c.frozen_since = t
                c.frozen_ref = c.reading
            elif t - c.frozen_since >= FROZEN_S and not c.latched:
                c.frozen_since = None
                self._latch(c, "SENSOR", "frozen")
                return
        else:
            c.frozen_since = None
        if c.fast > self.max_pressure + OVER_MARGIN and not c.latched:
            self._latch(c, "OVERPRESSURE", f"p={codec.format_pressure(c.fast)}")
            return
        if c.vent_since is not None:
            if c.fast < VENTFAIL_MMHG:
                c.vent_since = None
            elif t - c.vent_since >= VENTFAIL_S:
                c.vent_since = None
                self._latch(c, None)
                self._event("VENTFAIL", c.number, f"p={codec.format_pressure(c.fast)}")

    def _regulate(self, c: Channel, t: float) -> None:
        phys = c.phys
        state = c.state
        if state == "VENTING":
            if c.fast < VENTED_BELOW:
                self._set_state(c, "VENTED")
            return
        if state == "VENTED" or c.target <= 0.0:
            return
        ceiling = self.max_pressure
        if state == "INFLATING":
            if c.fast >= c.target - STOP_EARLY or c.fast >= ceiling:
                phys.pump_on = False
                c.mode = "idle"
                c.settle_until = t + SETTLE_S
                self._set_state(c, "HOLDING")
            else:
                phys.pump_on = True
            return
        # HOLDING
        mode = c.mode
        if mode == "pump_fill":
            if c.fast >= c.target - STOP_EARLY or c.fast >= ceiling:
                phys.pump_on = False
                c.mode = "idle"
                c.settle_until = t + SETTLE_S
        elif mode == "vent_down":
            if c.fast <= c.target + STOP_EARLY:
                phys.valve_cmd = False
                c.mode = "idle"
                c.settle_until = t + SETTLE_S
        elif mode in ("pump_burst", "vent_burst"):
            if t >= c.burst_until or (mode == "pump_burst" and c.fast >= ceiling):
                phys.pump_on = False
                phys.valve_cmd = False
                c.mode = "idle"
                c.settle_until = t + SETTLE_S
        elif t >= c.settle_until:
            err = c.slow - c.target
            if err < -REFILL_BELOW and c.fast < ceiling:
                c.mode = "pump_fill"
                phys.pump_on = True
            elif abs(err) > DEADBAND and c.unsteady():
                c.settle_until = t + UNSTEADY_RETRY_S  # a contraction or movement: do not chase it
            elif err < -DEADBAND and c.fast < ceiling:
                rate = pump_rate(max(0.0, c.slow))
                if rate > 0.0:
                    c.mode = "pump_burst"
                    c.burst_until = t + max(DT, min(MAX_PUMP_BURST_S, -err / rate))
                    phys.pump_on = True
            elif err > DEADBAND:
                drop = min(err, MAX_VENT_BURST_MMHG)
                rate = VENT_K * max(c.slow, 1.0)
                c.mode = "vent_burst"
                c.burst_until = t + max(DT, drop / rate)
                phys.valve_cmd = True
        # leak: the pump running without a pause for over 7 s while HOLDING
        if phys.pump_on:
            if c.pump_since is None:
                c.pump_since = t
            elif not c.leak_sent and t - c.pump_since > LEAK_S:
                c.leak_sent = True
                self._event("LEAK", c.number, f"p={codec.format_pressure(c.slow)}")
        else:
            c.pump_since = None
            c.leak_sent = False

    def _watchdog(self, t: float) -> None:
        if t - self._last_feed <= self._watchdog_ms / 1000.0:
            return
        if not any(c.target > 0.0 for c in self._chans):
            return
        for c in self._chans:
            self._latch(c, None)
        if not self._wdt_sent:
            self._wdt_sent = True
            self._event("WDT", None)

    def _sample_pressures(self) -> list[float]:
        readings = [c.reading if c.reading > 0.0 else 0.0 for c in self._chans]
        wrong = self.faults.sample_channels
        if wrong is None:
            return readings
        n = max(1, min(wrong, MAX_SAMPLE_FIELDS))
        return (readings + [0.0] * n)[:n]

    def _stream(self, t: float) -> None:
        hz = self._stream_hz
        if hz == 0:
            return
        if t + 1e-9 >= self._next_sample:
            if not self.faults.no_samples:
                self._outbox.report(codec.sample_body(self.uptime_ms, self._sample_pressures()))
            self._next_sample += 1.0 / hz
            if self._next_sample <= t:
                self._next_sample = t + 1.0 / hz
        if t + 1e-9 >= self._next_status:
            for c in self._chans:
                self._status(c)
            self._next_status += 1.0
            if self._next_status <= t:
                self._next_status = t + 1.0
