"""Supervisor rules on pressure (off target: over, under, new targets) on their failure paths,
with emulator faults over a real pty and the real link.

Time-based rules run on a ManualClock: the test steps the clock, waits for samples stamped after
the step (they arrive in real time), then calls ``check_now()``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from console.common.api import CommandRefused, Priority
from tests.station_support import (
    alarms,
    cuff,
    fresh_samples,
    inflate_and_hold,
    manual_station,
    step,
    wait_for,
)


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
