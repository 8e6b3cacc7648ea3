"""Sessions on real cuffs, the awkward paths: an inflate the station refuses, a cuff deflated by hand."""

from __future__ import annotations

from tests.station_support import cuff, wait_for
from tests.therapy_support import (  # noqa: F401 (rig is a fixture)
    Rig,
    advance,
    phase,
    set_lops,
    start_and_fill,
    vented_at_emulator,
)


async def test_a_refused_refill_pauses_the_session_and_leaves_the_cuff_vented(rig: Rig) -> None:
    await set_lops(rig, A1=150)
    fw = rig.fw("A")
    await start_and_fill(rig, ["A1"], plan="tiny-release")
    await advance(rig, 4.5)
    assert phase(rig, "A1") == "rest"
    await vented_at_emulator(rig, "A", 1)
    fw.faults.broken_sensor.add(1)  # a fault while vented: SENSOR latches the channel
    await wait_for(lambda: cuff(rig.station, "A1").latched, "A1 latched")
    fw.faults.broken_sensor.discard(1)
    await rig.therapy.step_now()
    assert phase(rig, "A1") == "rest", "a high alarm while vented does not pause"
    await advance(rig, 10.5)  # the rest ends: the refill is refused (latched)
    await rig.therapy.step_now()
    s = cuff(rig.station, "A1").session
    assert s.phase == "paused" and "could not be inflated" in s.message and "latched" in s.message
    assert fw.channel(1).target == 0 and cuff(rig.station, "A1").target == 0
    await rig.station.session_command("A1", "stop")
    await rig.therapy.step_now()
    (rec,) = rig.records.sessions()
    assert rec.end_reason == "stopped" and rec.sets_done == 1


async def test_deflated_by_hand_pauses_the_session(rig: Rig) -> None:
    await set_lops(rig, A1=150)
    await start_and_fill(rig, ["A1"])
    await rig.station.deflate("A1")
    await rig.therapy.step_now()
    s = cuff(rig.station, "A1").session
    assert s.phase == "paused" and "deflated outside the session" in s.message
    await vented_at_emulator(rig, "A", 1)
    await rig.station.session_command("A1", "stop")
