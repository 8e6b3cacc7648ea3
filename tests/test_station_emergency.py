"""Emergency deflate: every controller at once, confirmations, and retries of the silent ones."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from console.common.api import CommandRefused, Priority
from console.station.events import StationEvent
from console.station.station import Station
from tests.station_support import alarms, cuff, make_config, wait_for


async def test_emergency_deflate_confirms_every_controller(tmp_path: Path) -> None:
    st = Station(make_config(tmp_path, controllers=3))
    await st.start()
    try:
        events: list[StationEvent] = []
        st.add_observer(events.append)
        await st.inflate("A1", mmhg=100)
        await st.inflate("B2", mmhg=70)
        await st.inflate("C1", mmhg=70)
        with st.acting_as("nurse@bay"):
            snap = await st.emergency_deflate()
        assert snap.confirmed == ("A", "B", "C") and snap.pending == ()
        assert snap.latency_s is not None and snap.latency_s >= 0 and snap.by == "nurse@bay"
        assert st.snapshot().emergency == snap
        assert all(c.target == 0 for c in st.snapshot().cuffs)
        for emu in st.emulators.values():
            for ch in (1, 2):
                assert emu.firmware.channel(ch).target == 0
                assert emu.firmware.channel(ch).state in ("VENTING", "VENTED")
        assert any(e.kind == "emergency" and e.emergency == snap for e in events)
        assert any(e.kind == "command" and e.text == "EMERGENCY DEFLATE ALL" and e.who == "nurse@bay" for e in events)
        assert alarms(st) == []
        again = await st.emergency_deflate()  # idempotent
        assert again.confirmed == ("A", "B", "C")
    finally:
        await st.stop()


async def test_silent_controller_raises_high_alarm_and_confirms_when_back(tmp_path: Path) -> None:
    st = Station(make_config(tmp_path, controllers=2))
    await st.start()
    try:
        await st.inflate("A1", mmhg=80)
        await st.inflate("B1", mmhg=60)
        fw_b = st.emulators["B"].firmware
        fw_b.faults.silent = True
        snap = await st.emergency_deflate()
        assert snap.confirmed == ("A",) and snap.pending == ("B",) and snap.latency_s is None
        [alarm] = alarms(st, "DEFLATE_UNCONFIRMED")
        assert alarm.priority is Priority.HIGH and alarm.controller == "B" and "B1, B2" in alarm.message
        assert st.emulators["A"].firmware.channel(1).target == 0
        assert fw_b.channel(1).target == 60, "the silent controller never heard it"
        assert st.emergency.retrying == ("B",)
        with pytest.raises(CommandRefused, match="not confirmed the emergency deflate"):
            await st.inflate("B2", mmhg=50)
        fw_b.faults.silent = False
        await wait_for(lambda: st.snapshot().emergency.pending == (), "B confirms on a retry", 15)
        final = st.snapshot().emergency
        assert final.confirmed == ("A", "B") and final.latency_s is not None
        assert fw_b.channel(1).target == 0
        assert not alarms(st, "DEFLATE_UNCONFIRMED")[0].active
        assert st.emergency.retrying == ()
    finally:
        await st.stop()


async def test_unplugged_controller_is_retried_until_replugged(tmp_path: Path) -> None:
    st = Station(make_config(tmp_path, controllers=2))
    await st.start()
    try:
        await st.emulators["B"].unplug()
        await wait_for(lambda: not st.controllers["B"].online, "B offline")
        snap = await st.emergency_deflate()
        assert snap.confirmed == ("A",) and snap.pending == ("B",)
        assert alarms(st, "DEFLATE_UNCONFIRMED")[0].controller == "B"
        await st.emulators["B"].replug()
        await wait_for(lambda: st.snapshot().emergency.pending == (), "B confirms after the replug", 15)
    finally:
        await st.stop()


async def test_an_inflate_in_flight_loses_to_the_emergency(tmp_path: Path) -> None:
    st = Station(make_config(tmp_path, controllers=1))
    await st.start()
    try:
        fw = st.emulators["A"].firmware
        inflate = asyncio.create_task(st.inflate("A1", mmhg=100))
        await asyncio.sleep(0)  # the SET is on the wire, its OK not back yet
        await st.emergency_deflate()
        with pytest.raises(CommandRefused, match="stays deflated"):
            await inflate
        assert cuff(st, "A1").target == 0
        await wait_for(lambda: fw.channel(1).target == 0 and fw.channel(1).state in ("VENTING", "VENTED"), "A1 vented")
        await asyncio.sleep(0.2)
        assert fw.channel(1).target == 0, "nothing re-inflated it"
    finally:
        await st.stop()


async def test_a_deflate_in_flight_wins_over_an_inflate(tmp_path: Path) -> None:
    st = Station(make_config(tmp_path, controllers=1))
    await st.start()
    try:
        fw = st.emulators["A"].firmware
        inflate = asyncio.create_task(st.inflate("A2", mmhg=90))
        await asyncio.sleep(0)
        await st.deflate("A2")
        with pytest.raises(CommandRefused):
            await inflate
        await wait_for(lambda: fw.channel(2).target == 0, "A2 target 0 on the controller")
        assert cuff(st, "A2").target == 0
    finally:
        await st.stop()


async def test_emergency_deflate_writes_in_the_call_itself_before_anything_is_awaited(tmp_path: Path) -> None:
    """The console calls it from the key's handler: the DEFLATE ALL lines must be on every port when the
    call returns, not when a task created for it first runs (after a frame the loop was about to draw)."""
    st = Station(make_config(tmp_path, controllers=2))
    await st.start()
    try:
        await st.inflate("A1", mmhg=100)
        await st.inflate("B1", mmhg=70)
        written: list[str] = []
        for cid, link in st.links.items():
            real = link.deflate_all_now

            def spy(cid: str = cid, real: Any = real) -> Any:
                fut = real()  # the line is on the transport when this returns (drivers.link)
                written.append(cid)
                return fut

            link.deflate_all_now = spy  # type: ignore[method-assign]
        pending = st.emergency_deflate()  # no await yet
        assert sorted(written) == ["A", "B"], "DEFLATE ALL written to every controller in the call"
        assert all(c.target == 0 for c in st.snapshot().cuffs), "and every target is 0 already"
        snap = await pending
        assert snap.confirmed == ("A", "B") and snap.pending == ()
    finally:
        await st.stop()
