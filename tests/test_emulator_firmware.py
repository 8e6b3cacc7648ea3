"""The emulated controller's firmware against protocol.md sections 2-4, driven with a manual clock."""

from __future__ import annotations

import cmath
import math
import statistics

import pytest

from drivers import codec
from drivers.codec import Err, Event, LineReader, Ok, Report, Sample, Status
from drivers.emulator.firmware import ControllerFirmware


class Rig:
    """A host for the firmware: numbered commands, a manual clock, every report kept with its time."""

    def __init__(self, **kw: object) -> None:
        self.fw = ControllerFirmware(**kw)  # type: ignore[arg-type]
        self.t = 0.0
        self.seq = 0
        self.reader = LineReader()
        self.log: list[tuple[float, Report]] = []
        self.last_ping = 0.0
        self.collect()

    def collect(self) -> list[Report]:
        new = [codec.parse_report(b) for b in self.reader.feed(self.fw.take_output())]
        self.log += [(self.t, r) for r in new]
        return new

    def frames(self, *commands: str) -> bytes:
        out = b""
        for c in commands:
            self.seq += 1
            out += codec.frame(f"#{self.seq} {c}")
        return out

    def send(self, *commands: str) -> list[Report]:
        """Send commands in one read; return everything that came back at once."""
        self.fw.receive(self.frames(*commands), self.t)
        return self.collect()

    def ask(self, command: str) -> Ok | Err:
        (answer,) = [r for r in self.send(command) if isinstance(r, (Ok, Err)) and r.seq == self.seq]
        return answer

    def run(self, seconds: float, *, ping: float | None = 0.3, step: float = 0.01) -> None:
        """Let time pass; the host PINGs every ``ping`` seconds (None: the host is silent)."""
        end = self.t + seconds
        while self.t < end - 1e-9:
            self.t = min(end, self.t + step)
            if ping is not None and self.t - self.last_ping >= ping:
                self.send("PING")
                self.last_ping = self.t
            else:
                self.fw.advance(self.t)
                self.collect()

    def until(self, cond: object, timeout: float, *, ping: float | None = 0.3) -> float:
        start = self.t
        while not cond():  # type: ignore[operator]
            assert self.t - start < timeout, f"condition not met within {timeout} s"
            self.run(0.002, ping=ping, step=0.002)
        return self.t - start

    def events(self, code: str | None = None) -> list[tuple[float, Event]]:
        return [(t, r) for t, r in self.log if isinstance(r, Event) and (code is None or r.code == code)]

    def statuses(self, ch: int) -> list[str]:
        states: list[str] = []
        for _, r in self.log:
            if isinstance(r, Status) and r.channel == ch and (not states or states[-1] != r.state):
                states.append(r.state)
        return states

    def samples(self, since: float = 0.0) -> list[tuple[float, Sample]]:
        return [(t, r) for t, r in self.log if isinstance(r, Sample) and t > since]

    def inflate(self, ch: int, target: float) -> None:
        assert self.ask(f"SET {ch} {codec.format_pressure(target)}") == Ok(
            self.seq, {"ch": str(ch), "target": codec.format_pressure(target)}
        )
        self.until(lambda: self.fw.channel(ch).state == "HOLDING", 10.0)


@pytest.fixture
def rig() -> Rig:
    return Rig(channels=4, lops=[200.0, 180.0, 160.0, 250.0], seed=5)


# --------------------------------------------------------------------------- boot, HELLO, answers


def test_boot_event_and_hello(rig: Rig) -> None:
    assert rig.log[0][1] == Event("BOOT", None, "fw=1.0")
    assert rig.ask("HELLO") == Ok(
        1,
        {
            "proto": "1",
            "model": "EMU-4",
            "fw": "1.0",
            "serial": "E0001",
            "channels": "4",
            "max": "300",
            "rates": "10,25,50,100",
        },
    )
    assert rig.fw.watchdog_ms == 2000 and rig.fw.stream_hz == 0
    assert all(rig.fw.channel(ch).state == "VENTED" for ch in range(1, 5))


def test_constructor_rejects_bad_settings() -> None:
    for bad in (
        dict(channels=0),
        dict(channels=9),
        dict(lops=[200.0]),
        dict(lops=[90.0] * 4),
        dict(model="has space"),
        dict(max_pressure=10.0),
    ):
        with pytest.raises(ValueError):
            ControllerFirmware(**bad)  # type: ignore[arg-type]


def test_every_verb_answers_ok_with_its_fields(rig: Rig) -> None:
    assert rig.ask("PING") == Ok(rig.seq, {})
    assert rig.ask("WATCHDOG 1000") == Ok(rig.seq, {"ms": "1000"}) and rig.fw.watchdog_ms == 1000
    assert rig.ask("STREAM 25") == Ok(rig.seq, {"hz": "25"}) and rig.fw.stream_hz == 25
    assert rig.ask("SET 2 150.5") == Ok(rig.seq, {"ch": "2", "target": "150.5"})
    assert rig.fw.channel(2).target == 150.5
    assert rig.ask("DEFLATE 2") == Ok(rig.seq, {"ch": "2"}) and rig.fw.channel(2).target == 0
    assert rig.ask("DEFLATE ALL") == Ok(rig.seq, {"ch": "ALL"})
    rig.run(3.0)
    zero = rig.ask("ZERO 1")
    assert isinstance(zero, Ok) and set(zero.fields) == {"ch", "offset"} and zero.fields["ch"] == "1"
    assert rig.ask("CLEAR") == Ok(rig.seq, {})
    assert rig.ask("STREAM 0") == Ok(rig.seq, {"hz": "0"})
    got = rig.send("STATUS")
    assert [type(r) for r in got] == [Status] * 4 + [Ok]
    assert [r.channel for r in got[:4]] == [1, 2, 3, 4]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "command, code",
    [
        ("FLY", "UNKNOWN"),
        ("hello", "UNKNOWN"),
        ("HELLO x", "ARGS"),
        ("PING 1", "ARGS"),
        ("STATUS now", "ARGS"),
        ("CLEAR all", "ARGS"),
        ("WATCHDOG", "ARGS"),
        ("WATCHDOG 1.5", "ARGS"),
        ("WATCHDOG abc", "ARGS"),
        ("WATCHDOG 1 2", "ARGS"),
        ("WATCHDOG 199", "RANGE"),
        ("WATCHDOG 10001", "RANGE"),
        ("WATCHDOG -5", "RANGE"),
        ("STREAM", "ARGS"),
        ("STREAM fast", "ARGS"),
        ("STREAM 30", "RANGE"),
        ("STREAM 1000", "RANGE"),
        ("SET 1", "ARGS"),
        ("SET 1 100 2", "ARGS"),
        ("SET x 100", "ARGS"),
        ("SET 1 1e2", "ARGS"),
        ("SET 1 150.25", "ARGS"),
        ("SET 1 .5", "ARGS"),
        ("SET 0 100", "CHANNEL"),
        ("SET 5 100", "CHANNEL"),
        ("SET 1 0", "RANGE"),
        ("SET 1 -5", "RANGE"),
        ("SET 1 300.1", "RANGE"),
        ("SET 9 abc", "CHANNEL"),
        ("DEFLATE", "ARGS"),
        ("DEFLATE all", "ARGS"),
        ("DEFLATE 1 2", "ARGS"),
        ("DEFLATE 5", "CHANNEL"),
        ("ZERO", "ARGS"),
        ("ZERO ALL", "ARGS"),
        ("ZERO 0", "CHANNEL"),
    ],
)
def test_every_error_code(rig: Rig, command: str, code: str) -> None:
    answer = rig.ask(command)
    assert isinstance(answer, Err) and answer.code == code
    assert all(rig.fw.channel(ch).target == 0 for ch in range(1, 5))  # nothing acted on
    assert rig.fw.watchdog_ms == 2000 and rig.fw.stream_hz == 0


def test_max_is_the_limit_itself(rig: Rig) -> None:
    assert isinstance(rig.ask("SET 1 300"), Ok)
    assert isinstance(rig.ask("SET 1 300.1"), Err)
    assert Rig(max_pressure=250.0).ask("HELLO").fields["max"] == "250"  # type: ignore[union-attr]


def test_answers_once_each_in_order_and_dropped_lines_never(rig: Rig) -> None:
    first = rig.frames("PING", "HELLO")
    good = first + rig.frames("SET 1 100", "FLY", "STATUS", "WATCHDOG 5")
    bad_crc = codec.frame("#100 DEFLATE ALL")[:-4] + b"000\n"
    malformed = codec.frame("PING") + codec.frame("#0 PING") + codec.frame("#70000 PING")
    bad_bytes = b"#101 PI\x00NG*0000\n"
    too_long = b"#102 SET 1 " + b"1" * 200 + b"\n"
    data = good[: len(first)] + bad_crc + good[len(first) :] + malformed + bad_bytes + too_long
    rig.fw.receive(data[:7], 0.0)
    rig.fw.receive(data[7:], 0.0)
    answers = [r for r in rig.collect() if isinstance(r, (Ok, Err))]
    assert [a.seq for a in answers] == [1, 2, 3, 4, 5, 6]
    assert [type(a).__name__ for a in answers] == ["Ok", "Ok", "Ok", "Err", "Ok", "Err"]
    drops = rig.fw.drops
    assert (drops.bad_crc, drops.malformed, drops.bad_bytes, drops.too_long) == (1, 3, 1, 1)
    assert rig.fw.channel(1).target == 100  # the bad-CRC DEFLATE ALL was not acted on


def test_answer_comes_before_the_state_change_it_causes(rig: Rig) -> None:
    got = rig.send("SET 1 120")
    assert got == [Ok(1, {"ch": "1", "target": "120"}), Status(1, "INFLATING", 120.0, 0)]


# --------------------------------------------------------------------------- regulation


def test_fill_hold_and_vent_states_and_times(rig: Rig) -> None:
    rig.ask("WATCHDOG 10000")
    rig.ask("SET 1 200")
    fill = rig.until(lambda: rig.fw.channel(1).state == "HOLDING", 10.0)
    assert 3.0 <= fill <= 5.0
    assert rig.fw.channel(1).pressure == pytest.approx(200.0, abs=3.0)
    rig.ask("DEFLATE 1")
    assert rig.fw.channel(1).valve_open
    vent = rig.until(lambda: rig.fw.channel(1).pressure < 10.0, 5.0)
    assert 1.5 <= vent <= 2.5
    rig.until(lambda: rig.fw.channel(1).state == "VENTED", 3.0)
    assert rig.statuses(1) == ["INFLATING", "HOLDING", "VENTING", "VENTED"]


def test_duty_reports_pump_share_over_last_second(rig: Rig) -> None:
    rig.ask("WATCHDOG 10000")
    rig.ask("SET 1 200")
    rig.run(1.5)
    statuses = [r for r in rig.send("STATUS") if isinstance(r, Status)]
    assert statuses[0].state == "INFLATING" and statuses[0].duty == 100
    assert statuses[1].duty == 0
    rig.until(lambda: rig.fw.channel(1).state == "HOLDING", 10.0)
    rig.run(4.0)
    assert rig.fw.channel(1).duty < 20


@pytest.mark.parametrize("target", [60.0, 150.0, 220.0, 290.0])
def test_holds_within_3_mmhg_at_rest(target: float) -> None:
    rig = Rig(channels=1, lops=[200.0], seed=int(target))
    rig.run(1.0)
    assert isinstance(rig.ask("ZERO 1"), Ok)
    rig.ask("STREAM 100")
    rig.inflate(1, target)
    rig.run(2.0)
    start = rig.t
    rig.run(10.0)
    readings = [s.pressures[0] for _, s in rig.samples(start)]
    assert len(readings) >= 990
    # every one-second mean of the samples within 3 mmHg, and no single sample far off
    for i in range(0, len(readings) - 100, 50):
        assert statistics.fmean(readings[i : i + 100]) == pytest.approx(target, abs=3.0)
    assert max(abs(r - target) for r in readings) < 3.0 + 2.5 + 1.5  # band + pulse + noise


def test_zero_removes_the_sensor_offset(rig: Rig) -> None:
    rig.run(2.0)
    before = []
    for _ in range(50):
        rig.run(0.01)
        before.append(rig.fw.channel(1).reading)
    answer = rig.ask("ZERO 1")
    assert isinstance(answer, Ok)
    offset = float(answer.fields["offset"])
    assert offset != 0.0 and offset == pytest.approx(statistics.fmean(before), abs=0.5)
    rig.ask("STREAM 100")
    start = rig.t
    after, other = [], []
    for _ in range(100):
        rig.run(0.01)
        after.append(rig.fw.channel(1).reading)
        other.append(rig.fw.channel(2).reading)
    assert abs(statistics.fmean(after)) < 0.15
    assert statistics.fmean(other) != pytest.approx(0.0, abs=0.1)  # channel 2 was not zeroed
    # On the wire a reading is never negative: a strict host may not accept a minus sign.
    wire = [p for _, s in rig.samples(start) for p in s.pressures]
    assert wire and min(wire) >= 0.0


def test_zero_refused_unless_vented_and_low(rig: Rig) -> None:
    rig.ask("WATCHDOG 10000")
    rig.ask("SET 1 100")
    assert rig.ask("ZERO 1") == Err(rig.seq, "BUSY", "only while vented and under 5 mmHg")
    rig.until(lambda: rig.fw.channel(1).state == "HOLDING", 10.0)
    assert rig.ask("ZERO 1").code == "BUSY"  # type: ignore[union-attr]
    rig.ask("DEFLATE 1")
    assert rig.ask("ZERO 1").code == "BUSY"  # type: ignore[union-attr]  # still venting
    rig.until(lambda: rig.fw.channel(1).state == "VENTED", 5.0)
    assert isinstance(rig.ask("ZERO 1"), Ok)


def test_lower_target_vents_down_and_holds(rig: Rig) -> None:
    rig.ask("WATCHDOG 10000")
    rig.inflate(1, 200.0)
    rig.ask("SET 1 120")
    assert rig.fw.channel(1).state == "HOLDING"
    rig.run(3.0)
    assert rig.fw.channel(1).pressure == pytest.approx(120.0 - rig.fw.channel(1).zero_offset, abs=5.0)
    assert rig.statuses(1)[-1] == "HOLDING"


def pulse_at(target: float, lop: float = 200.0) -> float:
    """Amplitude of the heart-rate component in the samples while holding at ``target``."""
    rig = Rig(channels=1, lops=[lop], seed=11, heart_rate=60.0)
    rig.ask("STREAM 100")
    rig.inflate(1, target)
    rig.run(2.0)
    start = rig.t
    rig.run(10.0)
    values = [s.pressures[0] for _, s in rig.samples(start)]
    mean = statistics.fmean(values)
    acc = sum((v - mean) * cmath.exp(-2j * math.pi * 1.0 * k / 100) for k, v in enumerate(values))
    return 2 * abs(acc) / len(values)


def test_samples_show_the_pulse_largest_near_map_and_absent_above_lop() -> None:
    at_map, near_lop, above = pulse_at(120.0), pulse_at(190.0), pulse_at(215.0)
    assert at_map > 0.4
    assert at_map > 2 * near_lop
    assert above < 0.1
    assert near_lop > above


# --------------------------------------------------------------------------- streaming


def test_stream_rates_status_once_a_second_and_stop(rig: Rig) -> None:
    for hz in (10, 25, 50, 100):
        rig.ask(f"STREAM {hz}")
        start = rig.t
        rig.run(2.0)
        n = len(rig.samples(start))
        assert 2 * hz - 1 <= n <= 2 * hz + 1
    start = rig.t
    rig.run(5.0)
    times = [t for t, r in rig.log if t >= start and isinstance(r, Status) and r.channel == 4]
    assert len(times) >= 4 and all(b - a == pytest.approx(1.0, abs=0.011) for a, b in zip(times, times[1:]))
    assert all(len(s.pressures) == 4 for _, s in rig.samples())
    rig.ask("STREAM 0")
    start = rig.t
    rig.run(3.0)
    assert rig.samples(start) == [] and not [r for t, r in rig.log if t > start and isinstance(r, Status)]


def test_uptime_is_ms_and_wraps_at_u32() -> None:
    rig = Rig(channels=1)
    rig.fw.uptime_offset_ms = 2**32 - 500
    rig.ask("STREAM 10")
    rig.run(1.0)
    times = [s.uptime_ms for _, s in rig.samples()]
    assert times[0] >= 2**32 - 500 and times[-1] < 1000
    steps = [(b - a) % 2**32 for a, b in zip(times, times[1:])]
    assert all(s == 100 for s in steps)


# --------------------------------------------------------------------------- safety


def test_watchdog_trips_vents_latches_once_then_clear(rig: Rig) -> None:
    rig.inflate(1, 150.0)
    rig.ask("SET 2 100")
    rig.run(1.9, ping=None)
    assert rig.events("WDT") == []
    rig.run(0.2, ping=None)
    assert [e for _, e in rig.events("WDT")] == [Event("WDT", None)]
    for ch in range(1, 5):
        view = rig.fw.channel(ch)
        assert view.latched and view.state == "FAULT" and view.valve_open and not view.pump_on and view.target == 0
    rig.run(5.0, ping=None)
    assert len(rig.events("WDT")) == 1
    assert rig.fw.channel(1).pressure < 10
    assert rig.ask("SET 1 100") == Err(rig.seq, "LATCHED", "CLEAR first")
    assert rig.ask("DEFLATE ALL") == Ok(rig.seq, {"ch": "ALL"})
    assert rig.ask("CLEAR") == Ok(rig.seq, {})
    assert [rig.fw.channel(ch).state for ch in range(1, 5)] == ["VENTED"] * 4
    assert not any(rig.fw.channel(ch).latched for ch in range(1, 5))
    assert isinstance(rig.ask("SET 1 100"), Ok)


def test_watchdog_harmless_when_every_target_is_zero(rig: Rig) -> None:
    rig.inflate(1, 100.0)
    rig.ask("DEFLATE 1")
    rig.run(30.0, ping=None)
    assert rig.events("WDT") == [] and not rig.fw.channel(1).latched


def test_watchdog_timeout_is_settable_and_any_valid_frame_feeds_it(rig: Rig) -> None:
    rig.ask("WATCHDOG 500")
    rig.ask("SET 1 100")
    for _ in range(10):
        rig.run(0.4, ping=None)
        assert rig.ask("FLY").code == "UNKNOWN"  # type: ignore[union-attr]  # still a valid frame
    rig.fw.receive(codec.frame("no seq here"), rig.t)  # dropped: feeds nothing
    rig.run(0.45, ping=None)
    assert rig.events("WDT") == []
    rig.run(0.1, ping=None)
    assert len(rig.events("WDT")) == 1


def test_ceiling_overpressure_vents_and_latches_that_channel(rig: Rig) -> None:
    rig.ask("WATCHDOG 10000")
    rig.inflate(1, 290.0)
    rig.inflate(2, 100.0)
    rig.fw.push(1, 15.0)  # 305: above max, not above max + 10
    rig.run(2.0)
    assert rig.events("OVERPRESSURE") == [] and not rig.fw.channel(1).latched
    assert rig.fw.channel(1).pressure < 296  # pulled back under the ceiling
    rig.fw.push(1, 30.0)
    rig.run(0.1)
    ((_, event),) = rig.events("OVERPRESSURE")
    assert event.channel == 1
    one, two = rig.fw.channel(1), rig.fw.channel(2)
    assert one.latched and one.state == "FAULT" and one.valve_open and one.target == 0
    assert not two.latched and two.state == "HOLDING"
    assert rig.ask("SET 1 100").code == "LATCHED"  # type: ignore[union-attr]


def test_leak_event_after_7_s_of_pump_without_pause_and_regulation_goes_on(rig: Rig) -> None:
    rig.ask("WATCHDOG 10000")
    rig.inflate(1, 200.0)
    rig.run(1.0)
    rig.fw.faults.leak[1] = 60.0
    pump_start = 0.0
    was_on = False

    def leak_seen() -> bool:
        nonlocal pump_start, was_on
        on = rig.fw.channel(1).pump_on
        if on and not was_on:
            pump_start = rig.t
        was_on = on
        return bool(rig.events("LEAK"))

    rig.until(leak_seen, 15.0)
    assert 7.0 < rig.t - pump_start < 7.1
    assert rig.events("LEAK")[0][1].channel == 1
    view = rig.fw.channel(1)
    assert not view.latched and view.state == "HOLDING" and view.pump_on
    rig.run(10.0)
    assert len(rig.events("LEAK")) == 1  # once per uninterrupted run
    assert rig.ask("SET 1 150") == Ok(rig.seq, {"ch": "1", "target": "150"})


def test_small_leak_is_made_up_with_pauses_and_no_event(rig: Rig) -> None:
    rig.ask("WATCHDOG 10000")
    rig.inflate(1, 150.0)
    rig.fw.faults.leak[1] = 3.0
    rig.run(20.0)
    assert rig.events("LEAK") == []
    assert rig.fw.channel(1).pressure == pytest.approx(150.0 - rig.fw.channel(1).zero_offset, abs=6.0)


def test_frozen_sensor_while_pumping_vents_and_latches(rig: Rig) -> None:
    rig.ask("WATCHDOG 10000")
    rig.ask("SET 1 200")
    rig.run(1.0)
    rig.fw.faults.frozen_sensor.add(1)
    rig.until(lambda: bool(rig.events("SENSOR")), 2.0)
    event = rig.events("SENSOR")[0][1]
    assert event.channel == 1 and event.text == "frozen"
    view = rig.fw.channel(1)
    assert view.latched and view.state == "FAULT" and view.valve_open and not view.pump_on
    rig.run(3.0)
    assert view.pressure < 10  # the cuff really vented, whatever the sensor says


def test_frozen_sensor_at_rest_is_not_flagged(rig: Rig) -> None:
    rig.ask("WATCHDOG 10000")
    rig.inflate(1, 120.0)
    rig.fw.faults.frozen_sensor.add(1)
    rig.run(5.0)
    assert rig.events("SENSOR") == []


def test_out_of_range_sensor_vents_and_latches(rig: Rig) -> None:
    rig.ask("WATCHDOG 10000")
    rig.inflate(3, 120.0)
    rig.fw.faults.broken_sensor.add(3)
    rig.run(0.1)
    ((_, event),) = rig.events("SENSOR")
    assert event.channel == 3 and rig.fw.channel(3).latched and rig.fw.channel(3).valve_open
    assert rig.ask("ZERO 3").code == "LATCHED"  # type: ignore[union-attr]  # never zero a broken sensor


def test_ventfail_after_5_s_above_10_mmhg(rig: Rig) -> None:
    rig.ask("WATCHDOG 10000")
    rig.inflate(1, 150.0)
    rig.fw.faults.vent_stuck.add(1)
    rig.ask("DEFLATE 1")
    rig.run(4.9)
    assert rig.events("VENTFAIL") == [] and rig.fw.channel(1).state == "VENTING"
    rig.run(0.2)
    ((_, event),) = rig.events("VENTFAIL")
    assert event.channel == 1
    assert rig.fw.channel(1).latched and rig.fw.channel(1).state == "FAULT"
    assert rig.ask("SET 1 100").code == "LATCHED"  # type: ignore[union-attr]
    rig.fw.faults.vent_stuck.clear()
    rig.run(3.0)
    rig.ask("CLEAR")
    assert rig.fw.channel(1).state == "VENTED" and not rig.fw.channel(1).latched


def test_good_vent_has_no_ventfail(rig: Rig) -> None:
    rig.ask("WATCHDOG 10000")
    rig.inflate(1, 290.0)
    rig.ask("DEFLATE 1")
    rig.run(10.0)
    assert rig.events("VENTFAIL") == [] and rig.fw.channel(1).state == "VENTED"


def test_reboot_vents_resets_and_announces(rig: Rig) -> None:
    rig.ask("WATCHDOG 500")
    rig.ask("STREAM 50")
    rig.inflate(1, 150.0)
    rig.fw.faults.vent_stuck.add(2)
    rig.ask("SET 2 80")
    rig.fw.faults.leak.clear()
    rig.run(1.0, ping=None)  # watchdog trips, latching everything
    assert rig.fw.channel(1).latched
    rig.fw.reboot(rig.t)
    got = rig.collect()
    assert got[0] == Event("BOOT", None, "fw=1.0")
    assert rig.fw.watchdog_ms == 2000 and rig.fw.stream_hz == 0
    assert not any(rig.fw.channel(ch).latched for ch in range(1, 5))
    assert all(rig.fw.channel(ch).target == 0 for ch in range(1, 5))
    start = rig.t
    rig.run(10.0, ping=None)
    assert rig.samples(start) == [] and rig.events("WDT")[-1][0] < start  # targets 0: nothing trips
    assert rig.fw.channel(1).state == "VENTED"


def test_deflate_first_within_one_read(rig: Rig) -> None:
    rig.ask("WATCHDOG 10000")
    rig.inflate(1, 150.0)
    rig.inflate(2, 150.0)
    # a long queue ahead of the DEFLATE: the valve is open as soon as receive returns
    commands = ["STATUS"] * 5 + ["SET 2 200", "HELLO", "SET 1 180", "DEFLATE 1", "SET 3 100"]
    data = rig.frames(*commands)
    rig.fw.receive(data, rig.t)
    assert rig.fw.channel(1).valve_open and not rig.fw.channel(1).pump_on and rig.fw.channel(1).target == 0
    answers = [r for r in rig.collect() if isinstance(r, (Ok, Err))]
    assert [a.seq for a in answers] == list(range(rig.seq - 9, rig.seq + 1))  # answers keep their order
    assert answers[7] == Ok(rig.seq - 2, {"ch": "1", "target": "180"})  # superseded by the DEFLATE after it
    assert rig.fw.channel(2).target == 200 and rig.fw.channel(3).target == 100
    rig.run(3.0)
    assert rig.fw.channel(1).pressure < 10 and rig.fw.channel(1).state == "VENTED"
    assert "INFLATING" not in rig.statuses(1)[2:]


def test_set_after_deflate_in_the_same_read_is_done_in_order(rig: Rig) -> None:
    rig.ask("WATCHDOG 10000")
    rig.send("DEFLATE 1", "SET 1 100")
    assert rig.fw.channel(1).target == 100 and rig.fw.channel(1).state == "INFLATING"


# --------------------------------------------------------------------------- line faults


def test_garbage_bursts_are_dropped_and_counted_by_the_host(rig: Rig) -> None:
    rig.fw.faults.garbage_rate = 0.5
    rig.ask("STREAM 100")
    for _ in range(50):
        rig.send("PING")
        rig.run(0.02, ping=None)
    assert rig.fw.garbage_sent > 20
    assert rig.reader.drops.total == rig.fw.garbage_sent
    assert rig.reader.drops.bad_crc > 0 and rig.reader.drops.bad_bytes > 0 and rig.reader.drops.too_long > 0
    answers = [r.seq for _, r in rig.log if isinstance(r, Ok)]
    assert answers == list(range(1, rig.seq + 1))  # garbage came on top: nothing real was lost


def test_corrupted_lines_are_lost_and_counted(rig: Rig) -> None:
    rig.fw.faults.corrupt_rate = 0.3
    for _ in range(60):
        rig.send("PING")
    answers = [r.seq for _, r in rig.log if isinstance(r, Ok)]
    assert rig.fw.corrupted_sent > 5
    assert len(answers) == 60 - rig.fw.corrupted_sent
    assert rig.reader.drops.bad_crc == rig.fw.corrupted_sent


def test_silent_controller_hears_nothing_says_nothing_and_stays_safe(rig: Rig) -> None:
    rig.inflate(1, 120.0)
    rig.ask("STREAM 50")
    rig.fw.faults.silent = True
    mark = len(rig.log)
    rig.run(3.0)  # the host keeps pinging; nobody listens
    assert rig.log[mark:] == []
    assert rig.fw.channel(1).latched and rig.fw.channel(1).valve_open
    assert rig.fw.channel(1).pressure < 20
    rig.fw.faults.silent = False
    assert rig.ask("PING") == Ok(rig.seq, {})
    assert rig.events("WDT") == []  # it was not heard, but it happened:
    assert rig.ask("SET 1 100").code == "LATCHED"  # type: ignore[union-attr]


def test_slow_answers_arrive_late_in_order_but_deflate_acts_at_once(rig: Rig) -> None:
    rig.ask("WATCHDOG 10000")
    rig.inflate(1, 120.0)
    rig.fw.faults.slow_answer_s = 0.3
    assert [r for r in rig.send("PING", "DEFLATE 1") if isinstance(r, (Ok, Err))] == []
    assert rig.fw.channel(1).valve_open and rig.fw.channel(1).target == 0
    rig.run(0.25, ping=None)
    assert [r for _, r in rig.log if isinstance(r, Ok) and r.seq > rig.seq - 2] == []
    rig.run(0.1, ping=None)
    late = [r for _, r in rig.log if isinstance(r, Ok) and r.seq > rig.seq - 2]
    assert late == [Ok(rig.seq - 1, {}), Ok(rig.seq, {"ch": "1"})]


# --------------------------------------------------------------------------- blind-link faults (issue 11)


def test_no_samples_fault_answers_every_command_but_sends_no_sample(rig: Rig) -> None:
    rig.inflate(1, 120.0)
    rig.fw.faults.no_samples = True
    assert rig.ask("STREAM 50") == Ok(rig.seq, {"hz": "50"})
    mark = rig.t
    rig.run(2.0)  # the host keeps pinging and every PING is answered
    assert rig.samples(mark) == []
    assert [r for t, r in rig.log if t > mark and isinstance(r, Ok)]
    assert [r for t, r in rig.log if t > mark and isinstance(r, Status)]  # C lines go on
    assert rig.ask("SET 2 80") == Ok(rig.seq, {"ch": "2", "target": "80"})
    rig.run(2.5, ping=None)  # its own watchdog (2000 ms) still runs
    assert [e for _, e in rig.events("WDT")] == [Event("WDT", None)]
    assert rig.fw.channel(1).latched and rig.fw.channel(1).target == 0 and rig.fw.channel(2).target == 0
    rig.fw.faults.no_samples = False
    mark = rig.t
    rig.run(0.5)
    assert len(rig.samples(mark)) >= 20  # the stream was never stopped: samples come back at once


def test_sample_channels_fault_sends_that_many_pressures(rig: Rig) -> None:
    rig.inflate(1, 120.0)
    rig.ask("STREAM 50")
    for count in (3, 6, 1):
        rig.fw.faults.sample_channels = count
        mark = rig.t
        rig.run(0.3)
        got = rig.samples(mark)
        assert got and all(len(s.pressures) == count for _, s in got)
    rig.fw.faults.sample_channels = 6
    mark = rig.t
    rig.run(0.1)
    first = rig.samples(mark)[0][1].pressures
    assert first[0] > 100 and first[4:] == (0.0, 0.0)  # the real channels first, zeros past the last
    rig.fw.faults.sample_channels = None
    mark = rig.t
    rig.run(0.3)
    assert all(len(s.pressures) == 4 for _, s in rig.samples(mark))


def test_deflate_refused_fault_answers_busy_and_the_channel_stays_up(rig: Rig) -> None:
    rig.inflate(1, 120.0)
    rig.inflate(2, 100.0)
    rig.ask("STREAM 50")
    rig.fw.faults.deflate_refused = {2}
    assert rig.ask("DEFLATE 2") == Err(rig.seq, "BUSY", "cannot vent 2")
    assert rig.fw.channel(2).target == 100 and rig.fw.channel(2).state == "HOLDING"
    assert rig.ask("DEFLATE ALL") == Err(rig.seq, "BUSY", "cannot vent 2")
    assert rig.fw.channel(1).target == 0 and rig.fw.channel(1).valve_open  # the others are vented
    mark = rig.t
    rig.run(3.0)
    two = rig.fw.channel(2)
    assert two.target == 100 and two.state == "HOLDING" and abs(two.pressure - 100) < 5  # still regulating
    assert rig.fw.channel(1).pressure < 10
    assert all(abs(s.pressures[1] - 100) < 6 for _, s in rig.samples(mark))  # and streaming its pressure
    rig.run(2.5, ping=None)  # its own watchdog (2000 ms) still vents it
    assert rig.events("WDT") and two.latched and two.target == 0 and two.valve_open


def test_deflate_silent_fault_swallows_a_deflate_of_that_channel_only(rig: Rig) -> None:
    rig.inflate(1, 120.0)
    rig.inflate(3, 80.0)
    rig.fw.faults.deflate_silent = {1}
    answers = [r for r in rig.send("DEFLATE 1") if isinstance(r, (Ok, Err))]
    rig.run(0.5, ping=None)
    assert answers == [] and not [r for _, r in rig.log if isinstance(r, (Ok, Err)) and r.seq == rig.seq]
    assert rig.fw.channel(1).target == 120 and not rig.fw.channel(1).valve_open
    assert rig.ask("DEFLATE 3") == Ok(rig.seq, {"ch": "3"})  # another channel: as usual
    assert rig.ask("DEFLATE ALL") == Ok(rig.seq, {"ch": "ALL"})  # names every channel: answered and done
    assert rig.fw.channel(1).target == 0 and rig.fw.channel(1).valve_open


# --------------------------------------------------------------------------- exercise


def test_exercise_contractions_show_in_samples_and_are_counted(rig: Rig) -> None:
    rig.ask("WATCHDOG 10000")
    rig.inflate(2, 150.0)
    rig.ask("STREAM 50")
    rig.run(2.0)
    rig.fw.exercise(2, cadence_s=2.0, contraction_s=1.0, rise_pct=10.0)
    start = rig.t
    rig.run(19.9)
    assert rig.fw.true_reps(2) == 10
    readings = [s.pressures[1] for _, s in rig.samples(start)]
    baseline = 150.0
    peaks = sum(1 for a, b in zip(readings, readings[1:]) if a < baseline + 7 <= b)
    assert peaks == rig.fw.true_reps(2)
    assert max(readings) > baseline + 0.05 * baseline
    rig.fw.exercise(2, on=False)
    rig.run(4.0)
    assert rig.fw.true_reps(2) == 10
    assert rig.fw.channel(2).state == "HOLDING" and not rig.fw.channel(2).latched
    # the regulator pulled the pressure back to target
    assert statistics.fmean(s.pressures[1] for _, s in rig.samples(rig.t - 1.0)) == pytest.approx(150.0, abs=3.0)
