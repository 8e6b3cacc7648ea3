"""The emulated controller holds a plateau still enough to read the pulse on it.

A sealed cuff at rest needs no corrections: once settled, the regulator must
not pump or vent on the arterial pulse (which it did with a 0.25 s low-pass
and a 1 mmHg deadband, putting 1-3 mmHg steps into every LOP plateau).
"""

from __future__ import annotations

import pytest

from drivers import codec
from drivers.emulator.firmware import ControllerFirmware


def _hold(target: float, *, lop: float, pulse: float, hr: float, seed: int) -> tuple[int, float, float]:
    """(steps with pump or valve active, lowest and highest 1 s mean) over 8 s once filled and settled (fill 0 -> 250 takes about 5 s)."""
    fw = ControllerFirmware(channels=1, lops=[lop], heart_rate=hr, pulse_amplitude=pulse, sensor_noise=0.5, seed=seed)
    t = 0.0
    fw.receive(codec.encode_command(1, "WATCHDOG", 10000), t)
    fw.receive(codec.encode_command(2, "SET", 1, codec.format_pressure(target)), t)
    ch = fw.channel(1)
    active = 0
    readings: list[float] = []
    seq = 3
    while t < 15.0:
        t += 0.01
        if round(t * 100) % 100 == 0:
            fw.receive(codec.encode_command(seq, "PING"), t)
            seq += 1
        fw.advance(t)
        if t >= 7.0:
            active += ch.pump_on or ch.valve_open
            readings.append(ch.reading)
    means = [sum(readings[i : i + 100]) / 100 for i in range(0, len(readings) - 99, 50)]
    return active, min(means), max(means)


@pytest.mark.parametrize(
    "target,lop,pulse,hr,seed",
    [
        (60.0, 100.0, 4.0, 50.0, 1),
        (120.0, 200.0, 4.0, 70.0, 2),
        (180.0, 300.0, 4.0, 110.0, 3),
        (250.0, 260.0, 3.0, 60.0, 4),
    ],
)
def test_no_corrections_at_rest_once_settled(target: float, lop: float, pulse: float, hr: float, seed: int) -> None:
    active, lo, hi = _hold(target, lop=lop, pulse=pulse, hr=hr, seed=seed)
    assert active == 0
    assert target - 3.0 <= lo <= hi <= target + 3.0


def test_a_leak_is_still_made_up() -> None:
    fw = ControllerFirmware(channels=1, lops=[200.0], seed=5)
    fw.receive(codec.encode_command(1, "WATCHDOG", 10000), 0.0)
    fw.receive(codec.encode_command(2, "SET", 1, "150"), 0.0)
    fw.advance(5.0)
    fw.faults.leak[1] = 3.0
    pumped = 0
    t = 5.0
    while t < 15.0:
        t += 0.01
        if round(t * 100) % 100 == 0:
            fw.receive(codec.encode_command(3, "PING"), t)
        fw.advance(t)
        pumped += fw.channel(1).pump_on
    assert pumped > 0
    assert abs(fw.channel(1).reading - 150.0) < 8.0
