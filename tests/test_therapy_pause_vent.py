"""Pausing a session: the cuffs stay up (and the occlusion clock runs), or, when the therapist asks,
they vent through the station's own deflate; a deflate the controller refuses leaves the station's alarm.

Real station on in-process emulators; the session's timer moves only when the test steps the clock.
"""

from __future__ import annotations

from console.common.api import Priority
from console.therapy.session import PAUSED_VENTED
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

CUFF_STILL_UP = ("DEFLATE_UNCONFIRMED", "RESIDUAL_PRESSURE")
"""The station's alarms for a deflate that did not happen (both say: open the cuff by hand)."""


async def test_pause_keeps_the_cuff_up_and_the_occlusion_clock_running(rig: Rig) -> None:
    await set_lops(rig, A1=150)
    await start_and_fill(rig, ["A1"])
    await rig.station.session_command("A1", "pause")
    assert phase(rig, "A1") == "paused"
    before = cuff(rig.station, "A1").occlusion_s
    await advance(rig, 3.0)
    c = cuff(rig.station, "A1")
    assert c.target == 90.0 and rig.fw("A").channel(1).target == 90.0, "a pause keeps the cuff up"
    assert c.occlusion_s >= before + 2.5, "and the occlusion clock runs on"


async def test_pause_vented_deflates_through_the_station_and_resume_refills(rig: Rig) -> None:
    await set_lops(rig, A1=150)
    await start_and_fill(rig, ["A1"])
    await rig.station.session_command("A1", "pause-vent")
    await rig.therapy.step_now()
    s = cuff(rig.station, "A1").session
    assert s is not None and s.phase == "paused" and s.message == PAUSED_VENTED
    await vented_at_emulator(rig, "A", 1)
    assert cuff(rig.station, "A1").target == 0
    rig.records.flush()
    whats = [c.what for c in rig.records.commands()]
    assert any("deflate" in w and "A1" in w for w in whats), ("the station's own deflate, in the audit", whats)
    await rig.station.session_command("A1", "resume")
    await until(rig, lambda: phase(rig, "A1") == "set", "refilled after resume", timeout=30)
    assert rig.fw("A").channel(1).target == 90.0


async def test_a_paused_session_with_cuffs_up_can_be_vented(rig: Rig) -> None:
    await set_lops(rig, A1=150)
    await start_and_fill(rig, ["A1"])
    await rig.station.session_command("A1", "pause")
    await rig.station.session_command("A1", "pause-vent")
    await rig.therapy.step_now()
    assert phase(rig, "A1") == "paused"
    await vented_at_emulator(rig, "A", 1)


async def test_pause_vented_whose_deflate_is_refused_leaves_a_high_alarm(rig: Rig) -> None:
    """The failure path: the controller answers BUSY to the deflate. The session is paused vented as
    far as it is concerned; the station raises its high alarm that the cuff is still up and deflates again."""
    await set_lops(rig, A1=150)
    await start_and_fill(rig, ["A1"])
    fw = rig.fw("A")
    fw.faults.deflate_refused.add(1)
    await rig.station.session_command("A1", "pause-vent")
    await rig.therapy.step_now()

    def unconfirmed() -> list[object]:
        return [a for a in rig.station.snapshot().alarms if a.cause in CUFF_STILL_UP and a.cuff == "A1" and a.active]

    for _ in range(40):  # past the deflate confirmation time (5 s in the test configs) on the station's clock
        if unconfirmed():
            break
        await advance(rig, 0.25)
    await wait_for(lambda: unconfirmed(), "the station's alarm that A1 is still up", 10)
    assert all(a.priority is Priority.HIGH for a in unconfirmed())  # type: ignore[attr-defined]
    assert fw.channel(1).target == 90.0, "the controller still holds it: the alarm says so"
    assert phase(rig, "A1") == "paused"
    fw.faults.deflate_refused.clear()
    await wait_for(lambda: fw.channel(1).target == 0, "a retried deflate obeyed", 10)
    await vented_at_emulator(rig, "A", 1)
