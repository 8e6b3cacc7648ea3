"""A CUFF-LINK/1 cuff controller written from ``shared/protocol.md`` alone: the "someone else's" box.

Its firmware follows the contract but keeps habits of its own where the text allows:

- answers come 4-22 ms after the line (never at once, always within 50 ms), in order; a
  ``DEFLATE`` opens its valves the moment the line is read and its answer keeps its place;
  a ``SET`` queued before a ``DEFLATE`` of its channel is answered OK but never applied (the
  deflate happened after it, in the order received);
- the ``C`` line of a state change goes out as soon as the change happens, so the one a ``SET``
  causes comes before that ``SET``'s OK; while streaming each channel repeats its ``C`` line once
  a second, the channels spread over the second rather than bunched;
- HELLO's fields come in its own order (``proto channels max rates model fw serial``), its
  stream rates are ``10,20,50,100,200`` and its maximum 280 mmHg;
- pressures go out without a fraction when whole (``100``, not ``100.0``) and slightly negative
  around zero (the sensor's noise is not clipped);
- regulation with hysteresis: fill flat out, then hold with top-ups below -1.8 mmHg and bleeds
  above +2.4 mmHg (a filtered reading); a lower target is reached in state ``VENTING``;
- events carry a short text (``E LEAK 2 pump 7.0 s``).

The framing is :mod:`tests.foreign.wire`, the plant :mod:`tests.foreign.limb`.
Its own safety (section 4): watchdog, latches, ceiling (``max + 10`` vents and latches), deflate
first, VENTFAIL, SENSOR (impossible or frozen reading) and LEAK. Faults a test switches on are in
:class:`Faults`. Time is whatever the caller passes (the pty server passes ``time.monotonic()``),
so the firmware can also be stepped by hand.
"""

from __future__ import annotations

import math
import random
import re
import time
from collections import deque
from dataclasses import dataclass, field

from tests.foreign.limb import Contractions, Cuff, Limb, Sensor
from tests.foreign.wire import LineAssembler, fmt, frame

RATES = (10, 20, 50, 100, 200)
BOOT_WATCHDOG_MS = 2000
STEP_S = 0.004
"""Physics and regulation step."""
ANSWER_DELAY_MS = (4.0, 22.0)
"""This controller's own answer time, always inside the protocol's 50 ms."""
BOOT_S = 0.25
"""A reboot is deaf and mute this long before its ``E BOOT``."""

VENTED, INFLATING, HOLDING, VENTING, FAULT = "VENTED", "INFLATING", "HOLDING", "VENTING", "FAULT"
HOLD_LOW, HOLD_HIGH, HOLD_STOP_UP, HOLD_STOP_DOWN = 1.8, 2.4, 0.6, 0.2
"""Hysteresis while holding (mmHg from target): top up below -LOW, bleed above +HIGH, aim at the STOPs."""
CATCH_UP_MMHG = 5.0
"""Further under target than this while holding, the pump runs without pause until back."""
SETTLE_S = 0.5
"""After a correction the reading settles this long before the next one is judged."""
VENT_LAG_MMHG = 2.0
"""Venting down to a lower target closes the valve this far above it (the reading lags the valve)."""
NOMINAL_FLOW, NOMINAL_STALL, NOMINAL_VENT_TAU = 68.0, 430.0, 0.65
"""The firmware's idea of its pump and valve (the plant's own figures differ a little per box)."""
REFILL_BELOW = 12.0
"""A holding channel this far under target goes back to INFLATING."""
VENTED_BELOW = 3.0
LEAK_PUMP_S = 7.0
VENTFAIL_S, VENTFAIL_MMHG = 5.0, 10.0
FROZEN_S = 1.5
SENSOR_RANGE = (-30.0, 450.0)

_SEQ = re.compile(r"#([1-9][0-9]{0,4})\Z")
_INT = re.compile(r"(0|[1-9][0-9]{0,5})\Z")
_PRESSURE = re.compile(r"[0-9]{1,6}(\.[0-9])?\Z")


@dataclass
class Faults:
    """What a test can break. Each is read live by the firmware."""

    no_samples: bool = False
    """(a) Every command answered, C and E lines sent, no S line."""
    sample_channels: int | None = None
    """(b) S lines carry this many pressures (zeros past the last channel)."""
    deflate_refused: set[int] = field(default_factory=set)
    """(c) DEFLATE of these channels answered ERR BUSY and not done; they keep regulating.
    DEFLATE ALL vents the others and answers ERR BUSY. The watchdog still vents them."""
    silent: bool = False
    """(e) The transmitter is dead: nothing goes out; commands are still heard and done."""
    garbage_every_s: float | None = None
    """Random bytes between lines this often."""
    answer_delay_ms: tuple[float, float] | None = None
    """Slow answers: this delay range instead of the usual one (over 50 ms breaks the contract)."""


@dataclass
class Channel:
    number: int
    cuff: Cuff
    limb: Limb
    sensor: Sensor
    target: float = 0.0
    state: str = VENTED
    latched: bool = False
    catching_up: bool = False
    correction_until: float | None = None
    settle_until: float = 0.0
    fast: float = 0.0
    slow: float = 0.0
    reading: float = 0.0
    deflated_at_index: int = 0
    """Arrival index of the latest DEFLATE that vented this channel (a SET queued before it is void)."""
    pump_since: float | None = None
    leak_told: bool = False
    vent_since: float | None = None
    same_since: float | None = None
    last_raw: float | None = None
    next_status_at: float = 0.0
    duty_buckets: list[float] = field(default_factory=lambda: [0.0] * 50)
    duty_bucket: int = 0

    def duty(self) -> int:
        return min(100, round(sum(self.duty_buckets) * 100))


@dataclass
class Pending:
    due: float
    index: int
    seq: str
    verb: str
    args: list[str]
    answer: str | None = None
    """Decided on arrival (a DEFLATE, done at once); else decided when due."""


class ForeignController:
    """The firmware and its plant. Feed it bytes and time; take its bytes out."""

    def __init__(
        self,
        *,
        channels: int = 4,
        serial: str = "FC-0042",
        model: str = "FCX-4",
        fw: str = "0.9.7",
        max_mmhg: float = 280.0,
        lops: list[float] | None = None,
        pulse_mmhg: float = 1.6,
        heart_rate: float = 68.0,
        seed: int = 7,
        now: float | None = None,
        uptime_ms: int = 0,
    ) -> None:
        """``now``: the power-up time on the caller's clock (default ``time.monotonic()``, the pty server's);
        ``uptime_ms``: the uptime it has at ``now`` (near 2**32 to see the S lines' T wrap)."""
        if not 1 <= channels <= 8:
            raise ValueError("1 to 8 channels")
        if now is None:
            now = time.monotonic()
        self.n = channels
        self.serial = serial
        self.model = model
        self.fw = fw
        self.max = max_mmhg
        self.rng = random.Random(seed)
        self.faults = Faults()
        lops = list(lops or [176.0, 204.0, 148.0, 232.0, 190.0, 160.0, 215.0, 240.0])
        self.channels = [
            Channel(
                number=i + 1,
                cuff=Cuff(flow_mmhg_s=68.0 * (1.0 + 0.04 * self.rng.uniform(-1, 1))),
                limb=Limb(lop=lops[i % len(lops)], pulse_mmhg=pulse_mmhg, heart_rate=heart_rate, rng=self.rng),
                sensor=Sensor(rng=self.rng, bias_mmhg=self.rng.uniform(-0.8, 0.8)),
            )
            for i in range(channels)
        ]
        self.reader = LineAssembler()
        self.out = bytearray()
        self.t = now
        self.pending: deque[Pending] = deque()
        self.arrivals = 0
        self.heard: deque[tuple[float, str]] = deque(maxlen=20000)
        """(time, body) of every valid line heard, for tests."""
        self.wdt_trips = 0
        self.boots = 0
        self.last_sample_at: float | None = None
        """When the last S line went out (for tests of what the host does once they stop)."""
        self._power_up(now, uptime_ms)

    # ------------------------------------------------------------------ power

    def _power_up(self, now: float, uptime_ms: int) -> None:
        self.uptime_origin = now - uptime_ms / 1000.0
        self.watchdog_s = BOOT_WATCHDOG_MS / 1000.0
        self.last_frame_at = now
        self.wdt_tripped = False
        self.stream_hz = 0
        self.next_sample_at = now
        self.next_garbage_at = now
        self.pending.clear()
        self.reader.clear()
        self.booting_until = now + BOOT_S
        self.boot_told = False
        for ch in self.channels:
            ch.target = 0.0
            ch.latched = False
            self._end_correction(ch, now)
            ch.cuff.pump_on = False
            ch.cuff.valve_open = True  # normally-open vent valves: a cuff vents while the firmware starts
            ch.state = VENTED
            ch.pump_since = ch.vent_since = None

    def reboot(self, now: float, *, serial: str | None = None) -> None:
        """A power cycle or a reset: channels vented, watchdog 2000 ms, stream off, then ``E BOOT``."""
        self.run(now)
        if serial is not None:
            self.serial = serial
        self.boots += 1
        self._power_up(now, 0)

    @property
    def booting(self) -> bool:
        return self.t < self.booting_until

    # ------------------------------------------------------------------ the outside

    def channel(self, number: int) -> Channel:
        return self.channels[number - 1]

    def true_pressure(self, number: int) -> float:
        ch = self.channel(number)
        return ch.cuff.pressure * ch.limb.squeeze(self.t)

    def exercise(self, number: int, *, cadence_s: float = 3.0, rise: float = 0.1) -> None:
        self.channel(number).limb.contractions = Contractions(cadence_s=cadence_s, rise=rise, started_at=self.t)

    def set_leak(self, number: int, per_s: float) -> None:
        self.channel(number).cuff.leak_per_s = per_s

    def block_vent(self, number: int, blocked: bool = True) -> None:
        self.channel(number).cuff.vent_blocked = blocked

    def freeze_sensor(self, number: int, frozen: bool = True) -> None:
        self.channel(number).sensor.frozen = frozen

    def take_output(self) -> bytes:
        data = bytes(self.out)
        self.out.clear()
        return data

    def next_due(self) -> float:
        due = self.t + STEP_S
        if self.pending:
            due = min(due, self.pending[0].due)
        return due

    def feed(self, data: bytes, now: float) -> None:
        """Bytes from the host arrived at ``now``."""
        self.run(now)
        if self.booting:
            return
        for body in self.reader.feed(data):
            self.heard.append((now, body))
            self.last_frame_at = now  # every valid frame feeds the watchdog
            self._arrive(body, now)

    def run(self, now: float) -> None:
        """Bring the plant and the firmware up to ``now``."""
        while self.t < now:
            t = min(now, self.t + STEP_S)
            dt = t - self.t
            self.t = t
            self._step(t, dt)

    # ------------------------------------------------------------------ output

    def _send(self, body: str) -> None:
        if not self.faults.silent:
            self.out += frame(body)

    def _status(self, ch: Channel) -> None:
        self._send(f"C {ch.number} {ch.state} {fmt(ch.target)} {ch.duty()}")

    def _set_state(self, ch: Channel, state: str) -> None:
        if ch.state != state:
            ch.state = state
            self._status(ch)

    def _event(self, code: str, where: str, text: str = "") -> None:
        self._send(f"E {code} {where}" + (f" {text}" if text else ""))

    # ------------------------------------------------------------------ commands

    def _arrive(self, body: str, now: float) -> None:
        parts = body.split(" ")
        m = _SEQ.match(parts[0])
        if m is None or int(m.group(1)) > 65535 or len(parts) < 2:
            return  # no SEQ to answer under: heard (it fed the watchdog), never answered
        self.arrivals += 1
        lo, hi = self.faults.answer_delay_ms or ANSWER_DELAY_MS
        due = now + self.rng.uniform(lo, hi) / 1000.0
        if self.pending:
            due = max(due, self.pending[-1].due)
        p = Pending(due, self.arrivals, parts[0], parts[1], parts[2:])
        if "" in parts:
            p.answer = "ERR ARGS empty field"
        elif p.verb == "DEFLATE":
            p.answer = self._deflate(p)  # deflate first: the valve opens now, the answer keeps its place
        self.pending.append(p)

    def _answer_due(self, t: float) -> None:
        while self.pending and self.pending[0].due <= t:
            p = self.pending.popleft()
            answer = p.answer if p.answer is not None else self._do(p)
            self._send(f"{p.seq} {answer}")

    def _do(self, p: Pending) -> str:
        verb = p.verb
        handler = {
            "HELLO": self._hello,
            "PING": self._ping,
            "WATCHDOG": self._watchdog,
            "STREAM": self._stream,
            "SET": self._set,
            "ZERO": self._zero,
            "STATUS": self._status_all,
            "CLEAR": self._clear,
        }.get(verb)
        if handler is None:
            return f"ERR UNKNOWN {verb[:20]}"
        return handler(p)

    def _channel_arg(self, text: str) -> int | str:
        if not _INT.match(text):
            return "ERR ARGS channel"
        ch = int(text)
        if not 1 <= ch <= self.n:
            return f"ERR CHANNEL {ch} of {self.n}"
        return ch

    def _hello(self, p: Pending) -> str:
        if p.args:
            return "ERR ARGS"
        rates = ",".join(str(r) for r in RATES)
        return (
            f"OK proto=1 channels={self.n} max={fmt(self.max)} rates={rates} model={self.model} fw={self.fw} "
            f"serial={self.serial}"
        )

    def _ping(self, p: Pending) -> str:
        return "ERR ARGS" if p.args else "OK"

    def _watchdog(self, p: Pending) -> str:
        if len(p.args) != 1 or not _INT.match(p.args[0]):
            return "ERR ARGS"
        ms = int(p.args[0])
        if not 200 <= ms <= 10000:
            return "ERR RANGE 200..10000"
        self.watchdog_s = ms / 1000.0
        return f"OK ms={ms}"

    def _stream(self, p: Pending) -> str:
        if len(p.args) != 1 or not _INT.match(p.args[0]):
            return "ERR ARGS"
        hz = int(p.args[0])
        if hz != 0 and hz not in RATES:
            return "ERR RANGE rates " + ",".join(str(r) for r in RATES)
        self.stream_hz = hz
        if hz:
            self.next_sample_at = self.t + 1.0 / hz
            for i, ch in enumerate(self.channels):
                ch.next_status_at = self.t + 0.25 + i / self.n
        return f"OK hz={hz}"

    def _set(self, p: Pending) -> str:
        if len(p.args) != 2:
            return "ERR ARGS"
        got = self._channel_arg(p.args[0])
        if isinstance(got, str):
            return got
        if not _PRESSURE.match(p.args[1]):
            return "ERR ARGS pressure"
        mmhg = float(p.args[1])
        if not 0 < mmhg <= self.max:
            return f"ERR RANGE 0<P<={fmt(self.max)}"
        ch = self.channel(got)
        if ch.latched:
            return "ERR LATCHED"
        answer = f"OK ch={got} target={fmt(mmhg)}"
        if ch.deflated_at_index > p.index:
            return answer  # a DEFLATE that came after it was done first: in arrival order this SET is over
        ch.target = mmhg
        ch.vent_since = None
        self._end_correction(ch, self.t)
        if ch.fast > mmhg + HOLD_HIGH:
            self._set_state(ch, VENTING)
        elif ch.fast >= mmhg - HOLD_LOW and ch.state == HOLDING:
            pass
        else:
            self._set_state(ch, INFLATING)
        return answer

    def _deflate(self, p: Pending) -> str:
        if len(p.args) != 1:
            return "ERR ARGS"
        if p.args[0] == "ALL":
            chosen = list(self.channels)
        else:
            got = self._channel_arg(p.args[0])
            if isinstance(got, str):
                return got
            chosen = [self.channel(got)]
        refused = [ch.number for ch in chosen if ch.number in self.faults.deflate_refused]
        for ch in chosen:
            if ch.number not in refused:
                self._vent(ch, p.index)
        if refused:
            return "ERR BUSY cannot vent " + ",".join(str(n) for n in refused)
        return f"OK ch={p.args[0]}"

    def _vent(self, ch: Channel, index: int = 0) -> None:
        ch.target = 0.0
        ch.deflated_at_index = max(ch.deflated_at_index, index)
        ch.cuff.pump_on = False
        self._end_correction(ch, self.t)
        ch.cuff.valve_open = True
        ch.pump_since = None
        if ch.vent_since is None:
            ch.vent_since = self.t
        if not ch.latched:
            self._set_state(ch, VENTING if ch.fast >= VENTED_BELOW else VENTED)

    def _latch(self, ch: Channel) -> None:
        ch.latched = True
        self._vent(ch)
        self._set_state(ch, FAULT)

    def _zero(self, p: Pending) -> str:
        if len(p.args) != 1:
            return "ERR ARGS"
        got = self._channel_arg(p.args[0])
        if isinstance(got, str):
            return got
        ch = self.channel(got)
        if ch.state != VENTED or ch.target > 0 or ch.reading >= 5.0:
            return f"ERR BUSY not vented ({ch.state}, {fmt(ch.reading)} mmHg)"
        ch.sensor.offset += ch.reading
        ch.fast = ch.slow = ch.reading = 0.0
        return f"OK ch={got} offset={fmt(ch.sensor.offset)}"

    def _status_all(self, p: Pending) -> str:
        if p.args:
            return "ERR ARGS"
        for ch in self.channels:
            self._status(ch)
        return "OK"

    def _clear(self, p: Pending) -> str:
        if p.args:
            return "ERR ARGS"
        self.wdt_tripped = False
        for ch in self.channels:
            if ch.latched:
                ch.latched = False
                self._set_state(ch, VENTING if ch.fast >= VENTED_BELOW else VENTED)
        return "OK"

    # ------------------------------------------------------------------ the loop

    def _step(self, t: float, dt: float) -> None:
        for ch in self.channels:
            ch.cuff.step(dt)
            self._sense(ch, t, dt)
        if self.booting:
            return
        if not self.boot_told:
            self.boot_told = True
            self._event("BOOT", "-", f"fw={self.fw}")
            for ch in self.channels:
                self._status(ch)
        self._watch(t)
        for ch in self.channels:
            self._regulate(ch, t)
            self._safety(ch, t)
            self._account_duty(ch, t, dt)
        self._answer_due(t)
        self._report(t)

    def _sense(self, ch: Channel, t: float, dt: float) -> None:
        p = ch.cuff.pressure * ch.limb.squeeze(t)
        raw = ch.sensor.raw(p + ch.limb.pulse(p, t))
        ch.reading = raw - ch.sensor.offset
        ch.fast += (ch.reading - ch.fast) * min(1.0, dt / 0.025)
        ch.slow += (ch.reading - ch.slow) * min(1.0, dt / 0.3)
        if ch.last_raw is not None and raw == ch.last_raw:
            ch.same_since = ch.same_since if ch.same_since is not None else t
        else:
            ch.same_since = None
        ch.last_raw = raw

    def _watch(self, t: float) -> None:
        if self.wdt_tripped or t - self.last_frame_at <= self.watchdog_s:
            return
        if not any(ch.target > 0 for ch in self.channels):
            return
        self.wdt_tripped = True
        self.wdt_trips += 1
        for ch in self.channels:
            self._latch(ch)
        self._event("WDT", "-", f"{round(self.watchdog_s * 1000)} ms")

    def _regulate(self, ch: Channel, t: float) -> None:
        cuff = ch.cuff
        if ch.latched or ch.target <= 0:
            cuff.pump_on, cuff.valve_open = False, True
            if ch.state == VENTING and ch.fast < VENTED_BELOW:
                self._set_state(ch, VENTED)
            return
        target = ch.target
        if ch.state == INFLATING:
            cuff.pump_on, cuff.valve_open = True, False
            if ch.fast >= target + 0.3:
                cuff.pump_on = False
                ch.slow = ch.fast
                ch.settle_until = t + SETTLE_S
                self._set_state(ch, HOLDING)
        elif ch.state == VENTING:
            cuff.pump_on, cuff.valve_open = False, True
            if ch.fast <= target + VENT_LAG_MMHG:
                cuff.valve_open = False
                ch.slow = ch.fast
                ch.settle_until = t + SETTLE_S
                self._set_state(ch, HOLDING)
        else:
            self._hold(ch, t)
            if ch.fast < target - REFILL_BELOW:
                self._end_correction(ch, t)
                self._set_state(ch, INFLATING)
        if cuff.pump_on:
            ch.pump_since = ch.pump_since if ch.pump_since is not None else t
        else:
            ch.pump_since = None
            ch.leak_told = False

    def _hold(self, ch: Channel, t: float) -> None:
        """Hold with hysteresis: short timed top-ups and bleeds, each followed by a settling pause;
        far under target (a leak, a contraction's end) the pump runs without pause until back."""
        cuff, target = ch.cuff, ch.target
        if not ch.catching_up and ch.fast < target - CATCH_UP_MMHG:
            ch.correction_until = None  # no settling pause when it is falling away
            ch.catching_up = True
        if ch.catching_up:
            cuff.pump_on, cuff.valve_open = True, False
            if ch.fast >= target + HOLD_STOP_UP:
                self._end_correction(ch, t)
                ch.slow = ch.fast
        elif ch.correction_until is not None:
            if t >= ch.correction_until:
                self._end_correction(ch, t)
        elif t >= ch.settle_until:
            err = ch.slow - target
            if err < -HOLD_LOW:
                rate = NOMINAL_FLOW * max(0.05, 1.0 - ch.slow / NOMINAL_STALL)
                ch.correction_until = t + min(0.5, max(0.01, (target + HOLD_STOP_UP - ch.slow) / rate))
                cuff.pump_on = True
            elif err > HOLD_HIGH:
                ratio = max(1.0, ch.slow / (target + HOLD_STOP_DOWN))
                ch.correction_until = t + min(0.5, max(0.005, NOMINAL_VENT_TAU * math.log(ratio)))
                cuff.valve_open = True

    def _end_correction(self, ch: Channel, t: float) -> None:
        ch.cuff.pump_on = False
        ch.cuff.valve_open = False
        ch.catching_up = False
        ch.correction_until = None
        ch.settle_until = t + SETTLE_S

    def _safety(self, ch: Channel, t: float) -> None:
        if ch.latched:
            return
        raw = ch.last_raw if ch.last_raw is not None else 0.0
        if not SENSOR_RANGE[0] <= raw <= SENSOR_RANGE[1] or (
            ch.same_since is not None and ch.cuff.pump_on and t - ch.same_since > FROZEN_S
        ):
            self._latch(ch)
            self._event("SENSOR", str(ch.number), f"reading {fmt(raw)}")
            return
        if ch.fast > self.max + 10:
            self._latch(ch)
            self._event("OVERPRESSURE", str(ch.number), f"{fmt(ch.fast)} mmHg")
            return
        if ch.state == HOLDING and ch.pump_since is not None and not ch.leak_told and t - ch.pump_since > LEAK_PUMP_S:
            ch.leak_told = True
            self._event("LEAK", str(ch.number), f"pump {t - ch.pump_since:.1f} s")
        if ch.target <= 0 and ch.vent_since is not None:
            if ch.fast <= VENTFAIL_MMHG:
                ch.vent_since = None
            elif t - ch.vent_since > VENTFAIL_S:
                ch.vent_since = None
                self._latch(ch)
                self._event("VENTFAIL", str(ch.number), f"{fmt(ch.fast)} mmHg after {VENTFAIL_S:g} s")

    def _account_duty(self, ch: Channel, t: float, dt: float) -> None:
        """Pump time in 20 ms buckets over the last second."""
        bucket = int(t * 50)
        for skipped in range(max(ch.duty_bucket + 1, bucket - 49), bucket + 1):
            ch.duty_buckets[skipped % 50] = 0.0
        ch.duty_bucket = max(ch.duty_bucket, bucket)
        if ch.cuff.pump_on:
            ch.duty_buckets[bucket % 50] += dt

    def _report(self, t: float) -> None:
        if not self.stream_hz:
            return
        period = 1.0 / self.stream_hz
        if t >= self.next_sample_at:
            self.next_sample_at += period
            if self.next_sample_at <= t:
                self.next_sample_at = t + period
            if not self.faults.no_samples:
                uptime = round((t - self.uptime_origin) * 1000) & 0xFFFFFFFF
                count = self.faults.sample_channels or self.n
                values = [fmt(self.channels[i].reading) if i < self.n else "0" for i in range(count)]
                self._send(f"S {uptime} " + " ".join(values))
                self.last_sample_at = t
        for ch in self.channels:
            if t >= ch.next_status_at:
                ch.next_status_at += 1.0
                if ch.next_status_at <= t:
                    ch.next_status_at = t + 1.0
                self._status(ch)
        if self.faults.garbage_every_s and t >= self.next_garbage_at:
            self.next_garbage_at = t + self.faults.garbage_every_s
            self.out += bytes(self.rng.randrange(256) for _ in range(self.rng.randrange(3, 20)))
