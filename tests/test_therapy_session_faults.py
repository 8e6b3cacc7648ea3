"""Sessions on real cuffs when things go wrong: emergency, alarms, lost links, hand deflates, bad cuffs.

The emulators fill and vent in real time; the session's timer moves only when the test steps it.
"""

from __future__ import annotations

import pytest

from console.common.api import CommandRefused
from tests.station_support import cuff, wait_for
from tests.therapy_support import (  # noqa: F401 (rig is a fixture)
    Rig,
    advance,
    phase,
    set_lops,
    start_and_fill,
    until,
    vented_at_emulator,
)


async def test_offline_and_latched_cuffs_are_refused(rig: Rig) -> None:
    st = rig.station
    await set_lops(rig, B1=120, B2=120, A1=150)
    await st.emulators["B"].unplug()
    await wait_for(lambda: not cuff(st, "B1").online, "B offline")
    with pytest.raises(CommandRefused, match="controller B is offline"):
        await st.start_session(["B1"], "arms-30-15", "P-001")
    fw = rig.fw("A")
    await st.inflate("A1", mmhg=100)
    await wait_for(lambda: fw.channel(1).pressure > 80, "A1 filling")
    fw.push(1, 260)  # over the controller's max + 10: OVERPRESSURE, vented and latched
    await wait_for(lambda: cuff(st, "A1").latched, "A1 latched")
    await vented_at_emulator(rig, "A", 1)
    with pytest.raises(CommandRefused, match="latched"):
        await st.start_session(["A1"], "tiny", "P-001")


async def test_emergency_mid_session_stops_vents_and_records(rig: Rig) -> None:
    await set_lops(rig, A1=150, A2=150)
    await start_and_fill(rig, ["A1"])
    await rig.station.start_session(["A2"], "tiny", "P-002")  # two sessions at once
    await until(rig, lambda: phase(rig, "A2") == "set", "A2 in its set")
    await advance(rig, 1.5)
    await rig.station.emergency_deflate()
    assert phase(rig, "A1") == "stopped" and phase(rig, "A2") == "stopped"
    await rig.therapy.step_now()
    await vented_at_emulator(rig, "A", 1)
    await vented_at_emulator(rig, "A", 2)
    await advance(rig, 5)
    assert rig.fw("A").channel(1).target == 0, "never inflates again"
    recs = rig.records.sessions()
    assert [r.end_reason for r in recs] == ["emergency", "emergency"]
    assert not rig.therapy.busy()


async def test_a_high_alarm_mid_set_pauses_and_vents(rig: Rig) -> None:
    await set_lops(rig, A1=150)
    fw = rig.fw("A")
    await start_and_fill(rig, ["A1"])
    await advance(rig, 1.0)
    fw.push(1, 260)  # overpressure: the controller vents and latches, the station raises a HIGH alarm
    await wait_for(lambda: cuff(rig.station, "A1").latched, "A1 latched")
    await rig.therapy.step_now()
    s = cuff(rig.station, "A1").session
    assert s.phase == "paused" and "high alarm" in s.message and "OVERPRESSURE" in s.message
    assert cuff(rig.station, "A1").target == 0
    await vented_at_emulator(rig, "A", 1)
    with pytest.raises(CommandRefused, match="latched"):
        await rig.station.session_command("A1", "resume")
    await rig.station.acknowledge()
    await wait_for(lambda: not cuff(rig.station, "A1").latched, "latch cleared after acknowledge")
    await rig.station.session_command("A1", "resume")
    await until(rig, lambda: phase(rig, "A1") == "set", "refilled after resume")
    assert fw.channel(1).target == 90.0
    await rig.station.session_command("A1", "stop")
    await rig.therapy.step_now()
    await vented_at_emulator(rig, "A", 1)
    (rec,) = rig.records.sessions()
    assert rec.end_reason == "stopped"


async def test_unplugged_controller_mid_set_pauses_the_session(rig: Rig) -> None:
    await set_lops(rig, A1=150)
    await start_and_fill(rig, ["A1"])
    await rig.station.emulators["A"].unplug()
    await wait_for(lambda: not cuff(rig.station, "A1").online, "A offline")
    await rig.therapy.step_now()
    s = cuff(rig.station, "A1").session
    assert s.phase == "paused" and "LINK_LOST" in s.message
    # the controller's watchdog vents the cuff without the station
    await vented_at_emulator(rig, "A", 1, timeout=15)
