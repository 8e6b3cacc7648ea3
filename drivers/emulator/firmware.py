"""The CUFF-LINK/1 controller firmware, run over the physics model.

Implements ``shared/protocol.md`` sections 2-4: every verb with its error
codes, the reports, and the safety rules the controller keeps on its own
(watchdog, latches, ceiling, leak, sensor and vent checks). No I/O and no
clock of its own: the caller hands it bytes and the time, and takes the bytes
it wants to send, so tests drive it with a manual ``now`` and the pty server
drives it with the event loop's clock.
"""

from __future__ import annotations

import random
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from drivers import codec
from drivers.codec import Command, DropCounts, LineReader, MalformedLine

from .physics import DT, SENSOR_NOISE, ChannelPhysics, Exercise, VENT_K, pump_rate

RATES = (10, 25, 50, 100)
"""Stream rates this controller offers (besides 0, off)."""

BOOT_WATCHDOG_MS = 2000
WATCHDOG_RANGE = (200, 10000)
LEAK_S = 7.0
"""Pump running without pause for longer than this while HOLDING is a leak."""
VENTFAIL_S = 5.0
VENTFAIL_MMHG = 10.0
OVER_MARGIN = 10.0
"""Above max + this, a channel is vented and latched (OVERPRESSURE)."""
VENTED_BELOW = 5.0
"""A venting channel counts as VENTED under this reading."""
ZERO_BELOW = 5.0
SENSOR_RANGE = (-20.0, 500.0)
"""Readings outside this cannot be a cuff pressure: the sensor is broken."""
SENSOR_OUT_S = 0.02
FROZEN_S = 0.5
"""A reading that does not move for this long while the pump runs is frozen."""
FROZEN_EPS = 0.05

FAST_TAU = 0.02
"""Fast reading filter (noise only; the pulse passes): stops the pump, safety checks."""
SLOW_WINDOW_S = 1.2
"""Holding regulation judges the moving mean of the reading over this window.

At least one heartbeat (50 /min) long, so the arterial pulse averages out
instead of triggering corrections the way a short low-pass lets it."""
SETTLE_S = 1.3
"""Wait after a fill, pump or vent burst before judging its effect (longer than the mean's window)."""
DEADBAND = 2.0
"""No correction while the mean reading is within this of target: a sealed cuff holds with pump and valve shut."""
UNSTEADY_MMHG = 3.0
"""Thirds of the mean's window differing by more than this: the limb is contracting or moving.

Small corrections wait until it is steady again (a refill for a big loss does not)."""
UNSTEADY_RETRY_S = 0.1
REFILL_BELOW = 5.0
"""Under target by more than this, the pump runs continuously (no bursts)."""
STOP_EARLY = 1.0
"""A continuous fill stops this far under target (the fast filter lags a little)."""
MAX_PUMP_BURST_S = 0.4
MAX_VENT_BURST_MMHG = 10.0
BIG_DROP = 5.0
"""A SET lowering the target by more than this vents continuously down to it."""

_INT = re.compile(r"-?[0-9]+\Z")
_PRESSURE = re.compile(r"-?[0-9]+(?:\.[0-9])?\Z")
_NAME = re.compile(r"[!-)+-~]{1,16}\Z")  # printable, no space, no '*'


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
    corrupt_rate: float = 0.0
    """Chance, per line sent, that the line itself is corrupted (so the host loses it)."""


class ChannelView:
    """A read-only, live view of one channel: the truth and what the firmware thinks."""

    __slots__ = ("_c",)

    def __init__(self, chan: _Channel) -> None:
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
class _Channel:
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


class _ArgError(Exception):
    def __init__(self, code: str, text: str = "") -> None:
        super().__init__(code, text)
        self.code = code
        self.text = text


class ControllerFirmware:
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
    ) -> None:
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
        self._line_rng = random.Random(seed ^ 0x5EED)
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
        self._chans = [
            _Channel(
                i + 1,
                ChannelPhysics(
                    random.Random(self._rng.getrandbits(64)),
                    float(lops[i]),
                    heart_rate=heart_rate,
                    pulse_amplitude=pulse_amplitude,
                    sensor_noise=sensor_noise,
                ),
            )
            for i in range(channels)
        ]
        self._t = float(start)
        self._deferred: list[str] | None = None
        """While commands run, their reports wait here so that answers go out first."""
        self._reader = LineReader()
        self._out = bytearray()
        self._delayed: deque[tuple[float, bytes]] = deque()
        self.garbage_sent = 0
        """Garbage bursts sent (each one a line the host should drop and count)."""
        self.corrupted_sent = 0
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
        self._deferred = []
        try:
            self._run_commands(commands)
        finally:
            deferred, self._deferred = self._deferred, None
            for body in deferred:
                self._send(body)

    def _run_commands(self, commands: list[Command]) -> None:
        deflates: list[tuple[int, set[int]]] = []
        for i, cmd in enumerate(commands):
            if cmd.verb == "DEFLATE":
                chans = self._deflate_channels(cmd)
                if chans:
                    deflates.append((i, chans))
                    for ch in chans:
                        self._deflate(self._chans[ch - 1])
        for i, cmd in enumerate(commands):
            superseded = {ch for j, chans in deflates if j > i for ch in chans}
            self._execute(cmd, superseded)

    def advance(self, now: float) -> None:
        """Run physics and firmware in fixed steps up to ``now``."""
        while self._t + DT <= now + 1e-12:
            self._t += DT
            self._step()
        self._release_delayed()

    def take_output(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def reboot(self, now: float) -> None:
        """A power cycle at ``now``: all vented, watchdog 2000 ms, stream off, latches cleared, E BOOT."""
        self.advance(now)
        drops = self._reader.drops
        self._reader = LineReader()
        self._reader.drops = drops
        self._delayed.clear()
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

    def _send(self, body: str) -> None:
        if self._deferred is not None:
            self._deferred.append(body)
        else:
            self._out += self._wire(body)

    def _wire(self, body: str) -> bytes:
        if self.faults.silent:
            return b""
        line = codec.frame(body)
        rng = self._line_rng
        out = b""
        if self.faults.garbage_rate > 0.0 and rng.random() < self.faults.garbage_rate:
            out += self._garbage(line)
            self.garbage_sent += 1
        if self.faults.corrupt_rate > 0.0 and rng.random() < self.faults.corrupt_rate:
            i = rng.randrange(len(body))  # one changed character: CRC-16 always catches it
            bad = b"!" if line[i] != ord("!") else b"?"
            line = line[:i] + bad + line[i + 1 :]
            self.corrupted_sent += 1
        return out + line

    def _garbage(self, line: bytes) -> bytes:
        rng = self._line_rng
        kind = rng.randrange(3)
        if kind == 0:  # the line with a bad CRC
            crc = int(line[-5:-1], 16) ^ (1 + rng.randrange(0xFFFF))
            return line[:-5] + b"%04X\n" % crc
        if kind == 1:  # bytes outside printable ASCII
            n = rng.randrange(1, 12)
            junk = bytes(rng.choice((0x00, 0x07, 0x1B, 0x7F, 0x80, 0xFF, 0xC3)) for _ in range(n))
            return junk + line[: rng.randrange(len(line) - 1)] + b"\n"
        n = rng.randrange(codec.MAX_LINE + 1, 400)  # over-long
        return bytes(rng.randrange(0x20, 0x7F) for _ in range(n)) + b"\n"

    def _answer(self, body: str) -> None:
        """Queue an answer line, late if the slow-answer fault is on, always in order."""
        delay = self.faults.slow_answer_s
        if delay > 0.0 or self._delayed:
            self._delayed.append((self._t + max(0.0, delay), self._wire(body)))
        else:
            self._out += self._wire(body)

    def _release_delayed(self) -> None:
        while self._delayed and self._delayed[0][0] <= self._t + 1e-12:
            self._out += self._delayed.popleft()[1]

    def _event(self, code: str, ch: int | None, text: str = "") -> None:
        body = codec.event_body(code, ch, text)
        self._send(body)
        if not self.faults.silent and self.on_event is not None:
            self.on_event(body)

    def _status(self, c: _Channel, answer: bool = False) -> None:
        body = codec.status_body(c.number, c.state, c.target, c.duty())
        if answer:
            self._answer(body)
        else:
            self._send(body)

    def _set_state(self, c: _Channel, state: str) -> None:
        if c.state == state:
            return
        c.state = state
        c.pump_since = None
        c.leak_sent = False
        self._status(c)
        if self.on_state is not None:
            self.on_state(c.number, state, c.target, c.reading)

    # ------------------------------------------------------------------ commands

    def _chan(self, ch: int) -> _Channel:
        if not 1 <= ch <= self.channels:
            raise ValueError(f"no channel {ch}: this controller has 1..{self.channels}")
        return self._chans[ch - 1]

    def _deflate_channels(self, cmd: Command) -> set[int] | None:
        if len(cmd.args) != 1:
            return None
        arg = cmd.args[0]
        if arg == "ALL":
            return set(range(1, self.channels + 1))
        if _INT.match(arg) and 1 <= int(arg) <= self.channels:
            return {int(arg)}
        return None

    def _execute(self, cmd: Command, superseded: set[int]) -> None:
        handler = _HANDLERS.get(cmd.verb)
        if handler is None:
            self._answer(codec.err_body(cmd.seq, "UNKNOWN", "no such verb"))
            return
        try:
            fields = handler(self, cmd.args, superseded)
        except _ArgError as e:
            self._answer(codec.err_body(cmd.seq, e.code, e.text))
            return
        self._answer(codec.ok_body(cmd.seq, fields))

    @staticmethod
    def _nargs(args: tuple[str, ...], n: int, usage: str) -> None:
        if len(args) != n:
            raise _ArgError("ARGS", f"usage: {usage}")

    def _channel_arg(self, text: str) -> _Channel:
        if not _INT.match(text):
            raise _ArgError("ARGS", f"not a channel: {text[:20]}")
        n = int(text)
        if not 1 <= n <= self.channels:
            raise _ArgError("CHANNEL", f"channels are 1..{self.channels}")
        return self._chans[n - 1]

    def _cmd_hello(self, args: tuple[str, ...], _s: set[int]) -> dict[str, object]:
        self._nargs(args, 0, "HELLO")
        return {
            "proto": 1,
            "model": self.model,
            "fw": self.fw,
            "serial": self.serial,
            "channels": self.channels,
            "max": codec.format_pressure(self.max_pressure),
            "rates": ",".join(str(r) for r in RATES),
        }

    def _cmd_ping(self, args: tuple[str, ...], _s: set[int]) -> dict[str, object]:
        self._nargs(args, 0, "PING")
        return {}

    def _cmd_watchdog(self, args: tuple[str, ...], _s: set[int]) -> dict[str, object]:
        self._nargs(args, 1, "WATCHDOG MS")
        if not _INT.match(args[0]):
            raise _ArgError("ARGS", "MS is whole milliseconds")
        ms = int(args[0])
        lo, hi = WATCHDOG_RANGE
        if not lo <= ms <= hi:
            raise _ArgError("RANGE", f"MS is {lo}..{hi}")
        self._watchdog_ms = ms
        return {"ms": ms}

    def _cmd_stream(self, args: tuple[str, ...], _s: set[int]) -> dict[str, object]:
        self._nargs(args, 1, "STREAM HZ")
        if not _INT.match(args[0]):
            raise _ArgError("ARGS", "HZ is a whole number")
        hz = int(args[0])
        if hz != 0 and hz not in RATES:
            raise _ArgError("RANGE", "HZ is 0 or " + ",".join(str(r) for r in RATES))
        if hz != self._stream_hz:
            if self._stream_hz == 0:  # first sample and status at the next step
                self._next_sample = self._next_status = self._t + DT
            self._stream_hz = hz
        return {"hz": hz}

    def _cmd_set(self, args: tuple[str, ...], superseded: set[int]) -> dict[str, object]:
        self._nargs(args, 2, "SET CH P")
        c = self._channel_arg(args[0])
        if not _PRESSURE.match(args[1]):
            raise _ArgError("ARGS", "P is mmHg with at most one decimal")
        p = float(args[1])
        if not 0.0 < p <= self.max_pressure:
            raise _ArgError("RANGE", f"P is 0..{codec.format_pressure(self.max_pressure)}, 0 excluded")
        if c.latched:
            raise _ArgError("LATCHED", "CLEAR first")
        if c.number not in superseded:
            self._set_target(c, p)
        return {"ch": c.number, "target": codec.format_pressure(p)}

    def _cmd_deflate(self, args: tuple[str, ...], _s: set[int]) -> dict[str, object]:
        self._nargs(args, 1, "DEFLATE CH|ALL")
        if args[0] == "ALL":
            for c in self._chans:
                self._deflate(c)
            return {"ch": "ALL"}
        c = self._channel_arg(args[0])
        self._deflate(c)
        return {"ch": c.number}

    def _cmd_zero(self, args: tuple[str, ...], _s: set[int]) -> dict[str, object]:
        self._nargs(args, 1, "ZERO CH")
        c = self._channel_arg(args[0])
        if c.latched:
            raise _ArgError("LATCHED", "CLEAR first")
        if c.state != "VENTED" or c.fast >= ZERO_BELOW:
            raise _ArgError("BUSY", "only while vented and under 5 mmHg")
        c.zero += c.fast
        c.fast = c.reading = 0.0
        c.reset_slow(0.0)
        return {"ch": c.number, "offset": codec.format_pressure(c.zero)}

    def _cmd_status(self, args: tuple[str, ...], _s: set[int]) -> dict[str, object]:
        self._nargs(args, 0, "STATUS")
        for c in self._chans:
            self._status(c, answer=True)
        return {}

    def _cmd_clear(self, args: tuple[str, ...], _s: set[int]) -> dict[str, object]:
        self._nargs(args, 0, "CLEAR")
        self._wdt_sent = False
        for c in self._chans:
            if c.latched:
                c.latched = False
                self._set_state(c, "VENTED" if c.fast < VENTED_BELOW else "VENTING")
        return {}

    # ------------------------------------------------------------------ channel actions

    def _set_target(self, c: _Channel, p: float) -> None:
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

    def _deflate(self, c: _Channel) -> None:
        c.target = 0.0
        c.mode = "idle"
        c.phys.pump_on = False
        if not c.phys.valve_cmd or c.vent_since is None and c.fast >= VENTFAIL_MMHG:
            c.vent_since = self._t
        c.phys.valve_cmd = True
        if not c.latched and c.state != "VENTED":
            self._set_state(c, "VENTING")

    def _latch(self, c: _Channel, code: str | None, text: str = "") -> None:
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

    def _safety(self, c: _Channel, t: float) -> None:
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

    def _regulate(self, c: _Channel, t: float) -> None:
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

    def _stream(self, t: float) -> None:
        hz = self._stream_hz
        if hz == 0:
            return
        if t + 1e-9 >= self._next_sample:
            self._send(codec.sample_body(self.uptime_ms, [c.reading if c.reading > 0.0 else 0.0 for c in self._chans]))
            self._next_sample += 1.0 / hz
            if self._next_sample <= t:
                self._next_sample = t + 1.0 / hz
        if t + 1e-9 >= self._next_status:
            for c in self._chans:
                self._status(c)
            self._next_status += 1.0
            if self._next_status <= t:
                self._next_status = t + 1.0


_HANDLERS: dict[str, Callable[[ControllerFirmware, tuple[str, ...], set[int]], dict[str, object]]] = {
    "HELLO": ControllerFirmware._cmd_hello,
    "PING": ControllerFirmware._cmd_ping,
    "WATCHDOG": ControllerFirmware._cmd_watchdog,
    "STREAM": ControllerFirmware._cmd_stream,
    "SET": ControllerFirmware._cmd_set,
    "DEFLATE": ControllerFirmware._cmd_deflate,
    "ZERO": ControllerFirmware._cmd_zero,
    "STATUS": ControllerFirmware._cmd_status,
    "CLEAR": ControllerFirmware._cmd_clear,
}

__all__ = ["ChannelView", "ControllerFirmware", "Faults", "RATES", "SENSOR_NOISE"]
