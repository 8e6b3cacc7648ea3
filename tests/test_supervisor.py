"""Each supervisor rule on its failure path, with emulator faults over a real pty and link.

Time-based rules run on a ManualClock: the test steps the clock, waits for samples stamped after
the step (they arrive in real time), then calls ``check_now()``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import drivers.emulator.firmware as firmware_mod
from console.station.api import CommandRefused, Priority
from console.station.clock import ManualClock
from console.station.station import Station
from tests.test_station_support import alarms, cuff, fresh_samples, inflate_and_hold, make_config, wait_for


async def manual_station(tmp_path: Path, **cfg) -> tuple[Station, ManualClock]:
    clock = ManualClock()
    st = Station(make_config(tmp_path, **cfg), clock=clock, check_interval_s=None)
    await st.start()
    return st, clock


async def step(st: Station, clock: ManualClock, seconds: float) -> None:
    clock.advance(seconds)
    await fresh_samples(st)
    st.check_now()


async def test_pressure_pushed_over_target_raises_high_after_grace_then_clears(tmp_path: Path) -> None:
    st, clock = await manual_station(tmp_path, controllers=1)
    try:
        await inflate_and_hold(st, "A1", 100)
        fw = st.emulators["A"].firmware
        fw.push(1, 45)
        await wait_for(lambda: st.cuffs["A1"].off_since is not None, "the station sees A1 off target")
        st.check_now()
        assert alarms(st, "OFF_TARGET") == [], "within the grace time: no alarm"
        await step(st, clock, 1.2)
        [alarm] = alarms(st, "OFF_TARGET")
        assert alarm.priority is Priority.HIGH and alarm.cuff == "A1" and alarm.active
        assert "over target 100" in alarm.message and "tolerance 15" in alarm.message
        assert cuff(st, "A1").alarm is Priority.HIGH
        await st.silence(600)
        assert alarms(st, "OFF_TARGET")[0].silenced_until == pytest.approx(clock.wall() + 120), "capped at 120 s"
        with pytest.raises(CommandRefused):
            await st.silence(0)
        # the controller pulls it back; the condition clears but the alarm stays until acknowledged
        await wait_for(lambda: not alarms(st, "OFF_TARGET")[0].active, "condition cleared", 15)
        assert len(alarms(st, "OFF_TARGET")) == 1
        await st.acknowledge(alarm.id)
        assert alarms(st, "OFF_TARGET") == []
        assert [a.id for a in st.alarm_log() if a.cause == "OFF_TARGET"] == [alarm.id]
    finally:
        await st.stop()

async def test_pressure_pushed_under_target_raises_medium(tmp_path: Path) -> None:
    st, clock = await manual_station(tmp_path, controllers=1)
    try:
        await inflate_and_hold(st, "A2", 110)
        st.emulators["A"].firmware.push(2, -50)
        await wait_for(lambda: st.cuffs["A2"].off_since is not None, "A2 off target")
        await step(st, clock, 1.5)
        [alarm] = alarms(st, "OFF_TARGET")
        assert alarm.priority is Priority.MEDIUM and "under target 110" in alarm.message
        # repeated reports of the same condition do not make new alarms
        for _ in range(3):
            st.check_now()
        assert len([a for a in st.alarm_log() if a.cause == "OFF_TARGET"]) == 1
    finally:
        await st.stop()

async def test_lowering_the_target_is_not_off_target_while_the_cuff_vents_down(tmp_path: Path) -> None:
    st, clock = await manual_station(tmp_path, controllers=1)
    try:
        await inflate_and_hold(st, "A1", 115)
        await st.nudge_target("A1", -75)
        assert st.emulators["A"].firmware.channel(1).target == 40
        n0 = st.cuffs["A1"].samples
        await wait_for(lambda: st.cuffs["A1"].samples >= n0 + 3, "samples after the nudge")
        assert (st.cuffs["A1"].pressure or 0) > 40 + 15, "pressure still far above the new target"
        await step(st, clock, 1.5)
        assert alarms(st, "OFF_TARGET") == [], "on its way down to a new target: not an alarm"
        await wait_for(lambda: abs((st.cuffs["A1"].pressure or 0) - 40) < 5, "A1 at its new target", 10)
        st.check_now()
        assert st.cuffs["A1"].armed
        # once there, the rule judges it again
        st.emulators["A"].firmware.push(1, 40)
        await wait_for(lambda: st.cuffs["A1"].off_since is not None, "A1 off target")
        await step(st, clock, 1.5)
        assert alarms(st, "OFF_TARGET")[0].priority is Priority.HIGH
    finally:
        await st.stop()


async def test_a_target_never_reached_is_judged_after_the_settle_time(tmp_path: Path) -> None:
    st, clock = await manual_station(tmp_path, controllers=1)
    try:
        await inflate_and_hold(st, "A2", 100)
        st.emulators["A"].firmware.faults.vent_stuck.add(2)  # the valve will not let it down
        await st.nudge_target("A2", -60)
        await fresh_samples(st)
        st.check_now()
        assert alarms(st, "OFF_TARGET") == []
        await step(st, clock, 11)  # past settle_s (10 s): judged; the grace starts now
        await step(st, clock, 1.5)
        [alarm] = alarms(st, "OFF_TARGET")
        assert alarm.priority is Priority.HIGH and "over target 40" in alarm.message
        st.emulators["A"].firmware.faults.vent_stuck.clear()
    finally:
        await st.stop()


async def test_occlusion_warns_then_deflates_the_cuff_at_the_limit(tmp_path: Path) -> None:
    st, clock = await manual_station(tmp_path, controllers=1, cuff_overrides={"A1": {"occlusion_limit_s": 300.0, "occlusion_warn_s": 240.0}})
    try:
        await inflate_and_hold(st, "A1", 90)
        await inflate_and_hold(st, "A2", 90)
        fw = st.emulators["A"].firmware
        await step(st, clock, 200)
        assert alarms(st, "OCCLUSION_WARN") == []
        assert cuff(st, "A1").occlusion_s >= 200
        await step(st, clock, 50)
        [warn] = alarms(st, "OCCLUSION_WARN")
        assert warn.cuff == "A1" and warn.priority is Priority.MEDIUM
        await step(st, clock, 60)
        [limit] = alarms(st, "OCCLUSION_LIMIT")
        assert limit.priority is Priority.HIGH and limit.cuff == "A1" and "deflating" in limit.message
        assert cuff(st, "A1").target == 0
        await wait_for(lambda: fw.channel(1).state == "VENTED", "A1 really vented on the controller", 10)
        assert fw.channel(2).target == 90, "A2 (limit 900 s) keeps going"
        await wait_for(lambda: not alarms(st, "OCCLUSION_LIMIT")[0].active, "episode over once vented")
        assert cuff(st, "A1").occlusion_s == 0
        await st.acknowledge()
        assert alarms(st, "OCCLUSION_LIMIT") == [] and alarms(st, "OCCLUSION_WARN") == []
    finally:
        await st.stop()

async def test_pump_running_flat_out_while_holding_is_a_leak(tmp_path: Path) -> None:
    st, clock = await manual_station(tmp_path, controllers=1)
    try:
        await inflate_and_hold(st, "A1", 100)
        st.emulators["A"].firmware.faults.leak[1] = 40.0
        await wait_for(lambda: st.cuffs["A1"].leak_since is not None, "a status line with the pump near 100 %", 10)
        await step(st, clock, 3)
        assert alarms(st, "LEAK") == []
        await step(st, clock, 5)
        [leak] = alarms(st, "LEAK")
        assert leak.priority is Priority.MEDIUM and leak.cuff == "A1" and "pump" in leak.message
        await st.deflate("A1")
        assert not alarms(st, "LEAK")[0].active, "deflated: the leak no longer matters"
    finally:
        await st.stop()

async def test_controller_leak_event_raises_medium(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(firmware_mod, "LEAK_S", 0.3)  # the emulated controller reports its leak sooner
    st = Station(make_config(tmp_path, controllers=1))
    await st.start()
    try:
        await inflate_and_hold(st, "A2", 100)
        st.emulators["A"].firmware.faults.leak[2] = 40.0
        await wait_for(lambda: alarms(st, "LEAK"), "LEAK alarm from the controller's event", 10)
        [leak] = alarms(st, "LEAK")
        assert leak.cuff == "A2" and leak.priority is Priority.MEDIUM and "without pause" in leak.message
    finally:
        await st.stop()

async def test_samples_stopping_is_judged_on_the_station_clock(tmp_path: Path) -> None:
    st, clock = await manual_station(tmp_path, controllers=1)
    try:
        await fresh_samples(st)
        st.check_now()
        assert alarms(st, "LINK_LOST") == []
        clock.advance(0.6)  # past link_timeout_s, and no sample stamped since
        st.check_now()
        [lost] = alarms(st, "LINK_LOST")
        assert "no samples for 0.6 s" in lost.message
        await fresh_samples(st)
        assert not alarms(st, "LINK_LOST")[0].active
    finally:
        await st.stop()
