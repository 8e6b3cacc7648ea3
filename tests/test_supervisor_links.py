"""Supervisor rules about controllers (faults, latches, lost links, reboots) on their failure paths,
with emulator faults over a real pty and the real link.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import drivers.emulator.firmware as firmware_mod
from console.common.api import CommandRefused, Priority
from console.station.station import Station
from tests.station_support import (
    alarms,
    cuff,
    inflate_and_hold,
    make_config,
    wait_for,
)


async def test_frozen_sensor_latches_and_needs_acknowledgement_to_clear(tmp_path: Path) -> None:
    st = Station(make_config(tmp_path, controllers=1))
    await st.start()
    try:
        fw = st.emulators["A"].firmware
        fw.faults.frozen_sensor.add(1)
        await st.inflate("A1", mmhg=100)
        await wait_for(lambda: alarms(st, "SENSOR"), "SENSOR alarm", 10)
        [alarm] = alarms(st, "SENSOR")
        assert alarm.priority is Priority.HIGH and alarm.cuff == "A1" and "sensor" in alarm.message
        assert cuff(st, "A1").latched and cuff(st, "A1").target == 0
        assert fw.channel(1).latched
        with pytest.raises(CommandRefused, match="latched"):
            await st.inflate("A1", mmhg=80)
        fw.faults.frozen_sensor.clear()
        await st.acknowledge(alarm.id)
        assert not fw.channel(1).latched, "acknowledging the last latch alarm CLEARs the controller"
        assert not cuff(st, "A1").latched
        assert alarms(st, "SENSOR") == []
        await inflate_and_hold(st, "A1", 80)
    finally:
        await st.stop()


async def test_overpressure_from_outside_latches_the_cuff(tmp_path: Path) -> None:
    st = Station(make_config(tmp_path, controllers=1))
    await st.start()
    try:
        await inflate_and_hold(st, "A2", 100)
        st.emulators["A"].firmware.push(2, 250)  # someone leans on the cuff: far above max + 10
        await wait_for(lambda: alarms(st, "OVERPRESSURE"), "OVERPRESSURE alarm", 10)
        [alarm] = alarms(st, "OVERPRESSURE")
        assert alarm.priority is Priority.HIGH and alarm.cuff == "A2"
        assert cuff(st, "A2").latched and cuff(st, "A2").target == 0
        with pytest.raises(CommandRefused, match="latched"):
            await st.inflate("A2", mmhg=50)
    finally:
        await st.stop()


async def test_vent_failure_is_a_high_alarm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(firmware_mod, "VENTFAIL_S", 0.3)  # the emulated controller gives up on its valve sooner
    st = Station(make_config(tmp_path, controllers=1))
    await st.start()
    try:
        await inflate_and_hold(st, "A1", 90)
        st.emulators["A"].firmware.faults.vent_stuck.add(1)
        await st.deflate("A1")
        await wait_for(lambda: alarms(st, "VENTFAIL"), "VENTFAIL alarm", 10)
        [alarm] = alarms(st, "VENTFAIL")
        assert alarm.priority is Priority.HIGH and alarm.cuff == "A1" and "valve" in alarm.message
    finally:
        st.emulators["A"].firmware.faults.vent_stuck.clear()
        await st.stop()


async def test_watchdog_trip_latches_every_channel(tmp_path: Path) -> None:
    st = Station(make_config(tmp_path, controllers=2))
    await st.start()
    try:
        await st.inflate("A1", mmhg=90)
        await st.inflate("B1", mmhg=60)
        st.links["A"].keepalive_enabled = False  # the station goes quiet towards A
        await wait_for(lambda: alarms(st, "WDT"), "WDT alarm", 10)
        [wdt] = alarms(st, "WDT")
        assert wdt.controller == "A" and wdt.priority is Priority.HIGH and "A1, A2" in wdt.message
        assert cuff(st, "A1").latched and cuff(st, "A1").target == 0
        assert st.emulators["B"].firmware.channel(1).target == 60, "B is not affected"
        st.links["A"].keepalive_enabled = True
        await st.acknowledge(wdt.id)
        assert not st.emulators["A"].firmware.channel(1).latched
        assert alarms(st, "WDT") == []
    finally:
        await st.stop()


async def test_unplugged_controller_alarms_and_the_other_runs_on(tmp_path: Path) -> None:
    st = Station(make_config(tmp_path, controllers=2))
    await st.start()
    try:
        await st.inflate("B1", mmhg=60)
        await st.emulators["B"].unplug()
        await wait_for(lambda: alarms(st, "LINK_LOST"), "LINK_LOST", 10)
        [lost] = alarms(st, "LINK_LOST")
        assert lost.controller == "B" and lost.priority is Priority.HIGH and "B1, B2" in lost.message
        b1 = cuff(st, "B1")
        assert b1.state == "OFFLINE" and b1.pressure is None and not b1.online and b1.alarm is Priority.HIGH
        with pytest.raises(CommandRefused, match="offline"):
            await st.inflate("B2", mmhg=50)
        # controller A keeps running and can be inflated
        a_before = cuff(st, "A1").samples
        await inflate_and_hold(st, "A1", 90)
        assert cuff(st, "A1").samples > a_before and cuff(st, "A1").alarm is None
        # the cable goes back in: B's watchdog vented and latched B1 meanwhile
        await st.emulators["B"].replug()
        await wait_for(lambda: cuff(st, "B1").online, "B back online", 15)
        await wait_for(lambda: not alarms(st, "LINK_LOST")[0].active, "LINK_LOST condition cleared", 10)
        assert st.emulators["B"].firmware.channel(1).target == 0
        await wait_for(lambda: cuff(st, "B1").latched, "B1 latched (seen in its status)", 5)
        assert cuff(st, "B1").target == 0
    finally:
        await st.stop()


async def test_silent_controller_is_a_lost_link(tmp_path: Path) -> None:
    st = Station(make_config(tmp_path, controllers=2))
    await st.start()
    try:
        st.emulators["A"].firmware.faults.silent = True
        await wait_for(lambda: alarms(st, "LINK_LOST"), "LINK_LOST", 10)
        [lost] = alarms(st, "LINK_LOST")
        assert lost.controller == "A"
        await inflate_and_hold(st, "B2", 60)
        st.emulators["A"].firmware.faults.silent = False
        await wait_for(lambda: cuff(st, "A1").online and not alarms(st, "LINK_LOST")[0].active, "A back", 15)
    finally:
        await st.stop()


async def test_reboot_while_inflated_is_a_high_alarm(tmp_path: Path) -> None:
    st = Station(make_config(tmp_path, controllers=1))
    await st.start()
    try:
        await inflate_and_hold(st, "A1", 90)
        emu = st.emulators["A"]
        emu.firmware.reboot(emu.now())
        await wait_for(lambda: alarms(st, "BOOT"), "BOOT alarm", 10)
        [boot] = alarms(st, "BOOT")
        assert boot.priority is Priority.HIGH and "A1 at" in boot.message and not boot.active
        assert cuff(st, "A1").target == 0
        # the link sets the stream up again; the cuff can be used after acknowledging
        await wait_for(lambda: cuff(st, "A1").state == "VENTED", "A1 vented after the reboot", 10)
        await st.acknowledge(boot.id)
        await inflate_and_hold(st, "A1", 70)
    finally:
        await st.stop()


async def test_reboot_with_nothing_inflated_raises_nothing(tmp_path: Path) -> None:
    st = Station(make_config(tmp_path, controllers=1))
    await st.start()
    try:
        seen: list[str] = []
        st.add_observer(lambda e: seen.append(e.action) if e.kind == "controller" else None)
        emu = st.emulators["A"]
        emu.firmware.reboot(emu.now())
        await wait_for(lambda: "BOOT" in seen, "BOOT event seen")
        assert alarms(st) == []
    finally:
        await st.stop()
