"""Safety review of the station: nothing inflates by itself, and what the controller does is judged.

Real Station, real links, in-process emulators on real ptys.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from console.common.api import Priority
from console.station.station import Station
from tests.station_support import (
    alarms,
    cuff,
    inflate_and_hold,
    make_config,
    wait_for,
)


async def test_replug_after_a_controller_power_cycle_never_reinflates(tmp_path: Path) -> None:
    st = Station(make_config(tmp_path, controllers=1))
    await st.start()
    try:
        await inflate_and_hold(st, "A1", 80)
        emu = st.emulators["A"]
        await emu.unplug()
        await wait_for(lambda: alarms(st, "LINK_LOST"), "LINK_LOST alarm")
        await emu.replug(reboot=True)
        await wait_for(lambda: cuff(st, "A1").online, "A back online", 15)
        link = st.links["A"]
        seen = link.stats.samples
        await wait_for(lambda: link.stats.samples > seen + 150, "1.5 s of samples after the replug", 15)
        assert emu.firmware.channel(1).target == 0
        assert cuff(st, "A1").target == 0
        assert (cuff(st, "A1").pressure or 0) < 20
    finally:
        await st.stop()


async def test_a_target_the_station_never_allowed_is_alarmed_and_deflated(tmp_path: Path) -> None:
    st = Station(make_config(tmp_path, controllers=1))
    await st.start()
    try:
        await wait_for(lambda: cuff(st, "A1").online, "A online")
        # Another host, a stale SET, or a firmware fault: the controller regulates where nobody here asked.
        await st.links["A"].set_target(1, 250)
        await wait_for(
            lambda: (
                st.emulators["A"].firmware.channel(1).target == 0
                and any(
                    a.cuff == "A1" and a.cause == "UNSANCTIONED_TARGET" and a.priority == Priority.HIGH
                    for a in alarms(st)
                )
            ),
            "the unallowed target to be alarmed and deflated",
            5,
        )
        # Once vented the condition is gone: acknowledging retires it.
        await wait_for(lambda: cuff(st, "A1").state == "VENTED", "A1 vented", 10)
        await st.acknowledge()
        await wait_for(lambda: not any(a.cause == "UNSANCTIONED_TARGET" for a in alarms(st)), "the alarm retired", 5)
    finally:
        await st.stop()


async def test_the_stations_own_targets_are_never_taken_for_someone_elses(tmp_path: Path) -> None:
    st = Station(make_config(tmp_path, controllers=1))
    await st.start()
    try:
        await wait_for(lambda: cuff(st, "A1").online and cuff(st, "A2").online, "A online")
        await st.inflate("A1", mmhg=100)
        await st.inflate("A2", mmhg=80)
        await st.nudge_target("A1", -10)  # lowering: status lines with the old target may still arrive
        await st.inflate("A2", mmhg=110)  # raising
        fw = st.emulators["A"].firmware
        await wait_for(
            lambda: fw.channel(1).state == "HOLDING" and fw.channel(2).state == "HOLDING", "both holding", 15
        )
        await asyncio.sleep(1.5)  # the controller repeats its status lines once a second
        await st.emergency_deflate()
        await wait_for(lambda: fw.channel(1).state == "VENTED" and fw.channel(2).state == "VENTED", "both vented", 10)
        await asyncio.sleep(1.2)
        assert not any(a.cause == "UNSANCTIONED_TARGET" for a in st.alarm_log())
    finally:
        await st.stop()
