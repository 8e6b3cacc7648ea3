"""Sessions on real cuffs: a real Station on in-process emulators, a ManualClock for the plan's timer.

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


async def test_a_whole_plan_runs_to_done_and_is_recorded(rig: Rig) -> None:
    await set_lops(rig, A1=150)
    fw = rig.fw("A")
    await rig.station.start_session(["A1"], "tiny", "P-001")
    a1 = cuff(rig.station, "A1")
    assert a1.session is not None and a1.session.phase == "inflating" and a1.patient_id == "P-001"
    await until(rig, lambda: phase(rig, "A1") == "set", "the first set")
    assert fw.channel(1).target == 90.0, "60 % of LOP 150"
    assert abs(fw.channel(1).pressure - 90) < 6
    reps_seen: list[tuple[int, int]] = []
    maxima: list[float] = []
    for _ in range(60):
        await advance(rig, 0.5)
        s = cuff(rig.station, "A1").session
        assert s is not None
        reps_seen.append((s.set_index, s.rep))
        maxima.append(fw.channel(1).target)
        if s.phase in ("between", "done"):
            break
    assert max(maxima) == 90.0, "never above the plan's pressure"
    assert (1, 3) in reps_seen or (1, 2) in reps_seen
    assert any(si == 2 for si, _ in reps_seen), "the second set ran"
    assert phase(rig, "A1") == "between"
    await vented_at_emulator(rig, "A", 1)
    await advance(rig, 10.5)
    assert phase(rig, "A1") == "done"
    assert not rig.therapy.busy()
    # the result stays visible until the next action on the cuff
    assert cuff(rig.station, "A1").session.phase == "done"

    (rec,) = rig.records.sessions()
    assert rec.end_reason == "completed" and rec.plan_id == "tiny" and rec.patient_id == "P-001"
    assert rec.sets_done == 2 and rec.reps_per_set == (3, 3)
    assert rec.target_mmhg == 90.0 and rec.lop_mmhg == 150.0 and rec.cuffs == ("A1",)
    assert rec.occlusion_s is not None and rec.occlusion_s >= 17.0 - 1e-6
    samples = rig.records.samples(rec.id, "A1")
    assert len(samples) >= 15, "one row per second of the session"
    assert any(s.target == 90.0 and 80 < s.pmean < 100 for s in samples)
    whats = [c.what for c in rig.records.commands()]
    assert any(w.startswith("start session tiny on A1 for patient P-001") for w in whats)
    assert any("ended: completed" in w for w in whats)


async def test_pause_resume_skip_rep_and_stop(rig: Rig) -> None:
    await set_lops(rig, A2=140)
    fw = rig.fw("A")
    with pytest.raises(CommandRefused, match="no session is running"):
        await rig.station.session_command("A2", "pause")
    await start_and_fill(rig, ["A2"])
    target = round(0.6 * 140, 1)
    await advance(rig, 2.5)
    await rig.station.session_command("A2", "pause")
    await rig.therapy.step_now()
    s = cuff(rig.station, "A2").session
    assert s.phase == "paused"
    rep_at_pause = s.rep
    await advance(rig, 5)
    assert cuff(rig.station, "A2").session.rep == rep_at_pause, "the timer is frozen"
    assert fw.channel(2).target == target, "a pause keeps the cuff as it is"
    with pytest.raises(CommandRefused, match="cannot pause"):
        await rig.station.session_command("A2", "pause")
    await rig.station.session_command("A2", "resume")
    await advance(rig, 0.5)
    assert phase(rig, "A2") == "set"
    await rig.station.session_command("A2", "rep+")
    assert cuff(rig.station, "A2").session.rep == rep_at_pause + 1
    await rig.station.session_command("A2", "rep-")
    assert cuff(rig.station, "A2").session.rep == rep_at_pause
    with pytest.raises(CommandRefused, match="Unknown session command"):
        await rig.station.session_command("A2", "faster")
    await rig.station.session_command("A2", "skip")
    await rig.therapy.step_now()
    assert phase(rig, "A2") == "rest"
    await rig.station.session_command("A2", "skip")
    await rig.therapy.step_now()
    s = cuff(rig.station, "A2").session
    assert s.phase == "set" and s.set_index == 2
    await rig.station.session_command("A2", "stop")
    await rig.therapy.step_now()
    assert phase(rig, "A2") == "stopped"
    await vented_at_emulator(rig, "A", 2)
    with pytest.raises(CommandRefused, match="no session is running"):
        await rig.station.session_command("A2", "resume")
    (rec,) = rig.records.sessions()
    assert rec.end_reason == "stopped" and rec.sets_done == 2


async def test_a_pair_inflates_both_and_stops_both(rig: Rig) -> None:
    await set_lops(rig, A1=150, A2=130)
    fw = rig.fw("A")
    await start_and_fill(rig, ["A1", "A2"], patient="P-002")
    assert fw.channel(1).target == 90.0 and fw.channel(2).target == 78.0
    s1, s2 = cuff(rig.station, "A1").session, cuff(rig.station, "A2").session
    assert s1 == s2 and s1.cuffs == ("A1", "A2")
    assert cuff(rig.station, "A2").patient_id == "P-002"
    await advance(rig, 3)
    await rig.station.session_command("A2", "stop")  # either cuff names the session
    await rig.therapy.step_now()
    await vented_at_emulator(rig, "A", 1)
    await vented_at_emulator(rig, "A", 2)
    (rec,) = rig.records.sessions()
    assert rec.cuffs == ("A1", "A2") and rec.end_reason == "stopped"
    assert {s.cuff_id for s in rig.records.samples(rec.id)} == {"A1", "A2"}


async def test_refusals_say_why(rig: Rig) -> None:
    st = rig.station
    await set_lops(rig, A1=150, B1=120)
    with pytest.raises(CommandRefused, match="No plan 'nope'"):
        await st.start_session(["A1"], "nope", "P-001")
    with pytest.raises(CommandRefused, match="patient id"):
        await st.start_session(["A1"], "tiny", "John Smith")
    with pytest.raises(CommandRefused, match="A2: LOP unknown"):
        await st.start_session(["A2"], "tiny", "P-001")
    with pytest.raises(CommandRefused, match="is for an arm; cuff A1 is on a leg"):
        await st.start_session(["A1"], "arms-30-15", "P-001")
    with pytest.raises(CommandRefused, match="a pair is two arms or two legs"):
        await st.start_session(["A1", "B1"], "tiny", "P-001")
    with pytest.raises(CommandRefused, match="one cuff or a pair"):
        await st.start_session([], "tiny", "P-001")
    with pytest.raises(CommandRefused, match="No cuff named"):
        await st.start_session(["Z9"], "tiny", "P-001")
    # B1 is an arm (max 60 %): a 60 % plan fits, a plan above it does not
    with pytest.raises(CommandRefused, match="allows at most 60 % LOP"):
        await st.start_session(["B1"], "ipc-unflagged", "P-001")
    # inflated by hand
    await st.inflate("A1", mmhg=60)
    with pytest.raises(CommandRefused, match="A1 is inflated"):
        await st.start_session(["A1"], "tiny", "P-001")
    await st.deflate("A1")
    await vented_at_emulator(rig, "A", 1)
    await wait_for(lambda: (cuff(st, "A1").pressure or 99) < 20, "A1 reading vented")
    # busy: a session runs on A1
    await st.start_session(["A1"], "tiny", "P-001")
    with pytest.raises(CommandRefused, match="A1 is in a session"):
        await st.start_session(["A1"], "tiny", "P-003")
    with pytest.raises(CommandRefused, match="A1 is in a session"):
        await st.measure_lop("A1", position="seated")
    with pytest.raises(CommandRefused, match="A1 is in a session"):
        await st.inflate("A1", mmhg=50)
    p003 = [c.what for c in rig.records.commands() if "P-003" in c.what]
    assert p003 and all(w.endswith("(refused)") for w in p003), "a refused start is on record as refused, never as done"
    await st.session_command("A1", "stop")
    await rig.therapy.step_now()
    await vented_at_emulator(rig, "A", 1)
    assert [s.patient_id for s in rig.records.sessions()] == ["P-001"]


async def test_full_occlusion_plan_goes_above_the_everyday_max_only_when_flagged(rig: Rig) -> None:
    st = rig.station
    await set_lops(rig, A1=150)
    # 100 % LOP on a leg whose everyday maximum is 90 %: refused without the flag ...
    with pytest.raises(CommandRefused, match="asks 100 % LOP; cuff A1 allows at most 90 % LOP"):
        await st.start_session(["A1"], "ipc-unflagged", "P-001")
    with pytest.raises(CommandRefused, match="at most 90 % LOP"):
        await st.inflate("A1", mmhg=150)
    # ... and the privileged path never goes past 100 % LOP or the ceiling
    with pytest.raises(CommandRefused, match="at most 100 % LOP"):
        await st.apply_target("A1", 160, purpose="full_occlusion", what="test")
    with pytest.raises(CommandRefused, match="station ceiling"):
        await st.apply_target("A1", 310, purpose="lop", what="test")
    # ... allowed with it
    await st.start_session(["A1"], "ipc-short", "P-001")
    await until(rig, lambda: phase(rig, "A1") == "set", "occluded", timeout=20)
    assert rig.fw("A").channel(1).target == 150.0
    await advance(rig, 20.5)
    assert phase(rig, "A1") == "between"
    await vented_at_emulator(rig, "A", 1)
    (rec,) = rig.records.sessions()
    assert rec.end_reason == "completed" and rec.target_pct_lop == 100.0
