"""Supervisor rules on time: occlusion limit, leaks, silent links, on their failure paths.

Time-based rules run on a ManualClock: the test steps the clock, waits for samples stamped after
the step (they arrive in real time), then calls ``check_now()``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import drivers.emulator.firmware as firmware_mod
from console.common.api import Priority
from console.station.station import Station
from tests.station_support import (
    SHORT_TIMEOUTS,
    alarms,
    cuff,
    fresh_samples,
    inflate_and_hold,
    make_config,
    manual_station,
    step,
    wait_for,
)


async def test_occlusion_warns_then_deflates_the_cuff_at_the_limit(tmp_path: Path) -> None:
    st, clock = await manual_station(
        tmp_path, controllers=1, cuff_overrides={"A1": {"occlusion_limit_s": 300.0, "occlusion_warn_s": 240.0}}
    )
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
    st, clock = await manual_station(tmp_path, controllers=1, safety=SHORT_TIMEOUTS)
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
