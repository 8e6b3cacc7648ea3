"""LOP measurement on real cuffs: refusals and every way it can end early, always vented at the emulator.

Real clock (the staircase analyses the pulse against sample times); each test ends the
measurement within a few seconds. The full measurement is in test_therapy_lop_accuracy.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from console.common.api import CommandRefused
from drivers.link_errors import CommandError
from tests.station_support import cuff, wait_for
from tests.therapy_support import Rig, real_rig, vented_at_emulator


@pytest.fixture
async def rig(tmp_path: Path):
    r = await real_rig(tmp_path)
    try:
        yield r
    finally:
        await r.close()


def progress(rig: Rig, cuff_id: str):
    return cuff(rig.station, cuff_id).lop_measure


async def stepping(rig: Rig, cuff_id: str, ch: int, above: float = 30.0) -> None:
    """Wait until the staircase has the cuff inflated above ``above`` mmHg at the emulator."""
    fw = rig.fw(cuff_id[0])
    await wait_for(lambda: fw.channel(ch).pressure > above, f"{cuff_id} stepping", 15)


async def ended(rig: Rig, cuff_id: str, timeout: float = 10.0):
    await wait_for(
        lambda: (p := progress(rig, cuff_id)) is not None and p.state in ("done", "failed"), f"{cuff_id} ended", timeout
    )
    return progress(rig, cuff_id)


async def test_refusals(rig: Rig) -> None:
    st = rig.station
    with pytest.raises(CommandRefused, match="No cuff named"):
        await st.measure_lop("Z9", position="seated")
    with pytest.raises(CommandRefused, match="body position"):
        await st.measure_lop("A1", position="")
    await st.inflate("A2", mmhg=60)
    await wait_for(lambda: (cuff(st, "A2").pressure or 0) > 25, "A2 inflated")
    with pytest.raises(CommandRefused, match="A2 is inflated"):
        await st.measure_lop("A2", position="seated")
    await st.deflate("A2")
    await st.emulators["B"].unplug()
    await wait_for(lambda: not cuff(st, "B1").online, "B offline")
    with pytest.raises(CommandRefused, match="controller B is offline"):
        await st.measure_lop("B1", position="seated")
    # already measuring; a hand inflate is refused while it runs
    await st.measure_lop("A1", position="supine")
    assert progress(rig, "A1").state == "running"
    with pytest.raises(CommandRefused, match="already measuring"):
        await st.measure_lop("A1", position="supine")
    with pytest.raises(CommandRefused, match="measuring its LOP"):
        await st.inflate("A1", mmhg=80)
    with pytest.raises(CommandRefused, match="measuring its LOP"):
        await st.start_session(["A1"], "tiny", "P-001")
    refused = [e for e in st.snapshot().alarms]
    assert not any(a.cuff == "A1" for a in refused)
    await st.emergency_deflate()
    p = await ended(rig, "A1")
    assert p.state == "failed" and "emergency" in p.message
    await vented_at_emulator(rig, "A", 1)


async def test_emergency_mid_measurement_cancels_and_vents(rig: Rig) -> None:
    st = rig.station
    await st.measure_lop("A1", position="seated")
    await stepping(rig, "A1", 1)
    assert "A1" in st.supervisor.measuring
    await st.emergency_deflate()
    p = await ended(rig, "A1")
    assert p.state == "failed" and p.lop is None and "emergency deflate" in p.message
    await vented_at_emulator(rig, "A", 1)
    assert "A1" not in st.supervisor.measuring
    assert cuff(st, "A1").lop is None, "no LOP from a cancelled measurement"
    assert rig.fw("A").channel(1).target == 0
    await wait_for(lambda: not rig.therapy.busy(), "therapy idle")
    # the failure stays visible until the next action on the cuff
    assert progress(rig, "A1").state == "failed"
    cmds = [w for _, _, w in st.command_log()]
    assert "LOP A1 failed: emergency deflate" in cmds and "measure LOP A1 (seated)" in cmds


async def test_a_high_alarm_mid_measurement_cancels_and_vents(rig: Rig) -> None:
    st = rig.station
    await st.measure_lop("A2", position="seated")
    await stepping(rig, "A2", 2)
    rig.fw("A").push(2, 280)  # OVERPRESSURE: the controller vents and latches, a HIGH alarm
    p = await ended(rig, "A2")
    assert p.state == "failed" and "high alarm" in p.message
    await vented_at_emulator(rig, "A", 2)
    assert rig.fw("A").channel(1).target == 0, "the other cuff untouched"


async def test_a_hand_deflate_cancels_the_measurement(rig: Rig) -> None:
    st = rig.station
    await st.measure_lop("B2", position="seated")
    await stepping(rig, "B2", 2)
    await st.deflate("B2")
    p = await ended(rig, "B2")
    assert p.state == "failed" and "deflated" in p.message
    await vented_at_emulator(rig, "B", 2)


async def test_link_lost_mid_measurement_fails_and_the_watchdog_vents(rig: Rig) -> None:
    st = rig.station
    await st.measure_lop("B1", position="seated")
    await stepping(rig, "B1", 1)
    await st.emulators["B"].unplug()
    p = await ended(rig, "B1")
    assert p.state == "failed" and ("offline" in p.message or "LINK" in p.message or "link" in p.message)
    await vented_at_emulator(rig, "B", 1, timeout=15)


async def test_zero_busy_is_retried_once_then_the_measurement_goes_on_with_a_note(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ERR BUSY to ZERO: wait for VENTED, retry once; a second BUSY is noted and the measurement carries on."""
    st = rig.station
    link = st.controllers["A"].link
    real_zero = link.zero
    calls: list[int] = []

    async def zero(ch: int):
        calls.append(ch)
        if ch == 1 or len(calls) == 1:  # A1 always busy; A2 busy only the first time
            raise CommandError("BUSY", "only while vented and under 5 mmHg", "ZERO")
        return await real_zero(ch)

    monkeypatch.setattr(link, "zero", zero)
    await st.measure_lop("A1", position="seated")
    await wait_for(lambda: "sensor not zeroed (BUSY)" in progress(rig, "A1").message, "the note in A1's progress")
    assert calls == [1, 1], "retried exactly once"
    assert progress(rig, "A1").state == "running"
    assert any(w.startswith("LOP A1: sensor not zeroed") for _, _, w in st.command_log())
    calls.clear()
    await st.measure_lop("A2", position="seated")
    await wait_for(lambda: "step" in progress(rig, "A2").message, "A2 stepping")
    assert calls == [2, 2] and "not zeroed" not in progress(rig, "A2").message
    await st.emergency_deflate()
    await ended(rig, "A1")
    await ended(rig, "A2")
    await vented_at_emulator(rig, "A", 1)
    await vented_at_emulator(rig, "A", 2)
