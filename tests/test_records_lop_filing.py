"""Every LOP reaches the records, under the right patient, and a restart gets it back.

Real station and therapy on the emulators (manual clock), real records file.
"""

from __future__ import annotations

from pathlib import Path

from console.common.facts import UNASSIGNED
from console.records.store import Records
from tests.station_support import cuff
from tests.therapy_support import advance, manual_rig, start_and_fill, until

WALL0 = 1_800_000_000.0  # ManualClock's wall time at the start


async def test_a_doppler_lop_is_filed_then_moved_to_the_patient_when_the_session_starts(tmp_path: Path) -> None:
    rig = await manual_rig(tmp_path)
    try:
        await rig.station.set_lop("A1", 180, position="supine", cuff_width_cm=11.5, source="doppler")
        rig.records.flush()
        (lop,) = rig.records.lops(UNASSIGNED)
        assert (lop.cuff_id, lop.lop_mmhg, lop.position, lop.cuff_width_cm, lop.source) == (
            "A1",
            180,
            "supine",
            11.5,
            "doppler",
        )
        await start_and_fill(rig, ["A1"], patient="P-042")
        rig.records.flush()
        assert rig.records.lops(UNASSIGNED) == []
        (moved,) = rig.records.lops("P-042")
        assert moved.id == lop.id and moved.source == "doppler"
        sid = rig.records.sessions()[-1].id
        (row,) = rig.records.session_cuffs(sid)
        assert (row.cuff_id, row.lop_mmhg, row.lop_id, row.position, row.target_mmhg) == (
            "A1",
            180,
            lop.id,
            "supine",
            108,
        )
        assert any("filed under patient P-042" in c.what for c in rig.records.commands())
    finally:
        await rig.close()


async def test_a_lop_taken_after_a_session_is_not_filed_under_that_sessions_patient(tmp_path: Path) -> None:
    rig = await manual_rig(tmp_path)
    try:
        await rig.station.set_lop("A1", 170, position="seated", cuff_width_cm=11.5, source="manual")
        await start_and_fill(rig, ["A1"], patient="P-007")
        await rig.station.session_command("A1", "stop")
        await until(rig, lambda: cuff(rig.station, "A1").target == 0, "A1 vented")
        assert cuff(rig.station, "A1").patient_id == "P-007"  # still shown on the cuff ...
        await rig.station.set_lop("A1", 180, position="seated", cuff_width_cm=11.5, source="doppler")
        rig.records.flush()
        assert [x.lop_mmhg for x in rig.records.lops("P-007")] == [170]  # ... but the next LOP is not theirs
        assert [x.lop_mmhg for x in rig.records.lops(UNASSIGNED)] == [180]
        await rig.station.set_patient("A1", "P-008")  # the next patient: it goes to them
        await rig.station.set_patient("A1", "P-009")  # and stays there
        rig.records.flush()
        assert [x.lop_mmhg for x in rig.records.lops("P-008")] == [180] and rig.records.lops("P-009") == []
    finally:
        await rig.close()


async def test_a_restart_restores_each_cuffs_newest_lop_within_the_re_measure_interval(tmp_path: Path) -> None:
    rig = await manual_rig(tmp_path)
    try:
        await rig.station.set_lop("A1", 180, position="supine", cuff_width_cm=11.5, source="doppler")
        await rig.station.set_lop("A1", 190, position="seated", cuff_width_cm=11.5, source="doppler")
        await rig.station.set_lop("A2", 175, position="seated", cuff_width_cm=11.5, source="doppler")
        rig.records.flush()
    finally:
        await rig.close()
    with Records.open(tmp_path / "var") as rec:  # an old LOP of B1, beyond the 14 days of the default config
        rec.record_lop(
            UNASSIGNED,
            cuff_id="B1",
            limb="arm",
            label="cuff B1",
            position="seated",
            lop_mmhg=140,
            source="doppler",
            at=WALL0 - 15 * 86400,
        )
    rig = await manual_rig(tmp_path)  # a fresh station: same clock start, 3 h later by the records' clock
    try:
        rig.clock.advance(3 * 3600)
        await advance(rig, 0.5)
        a1, a2, b1 = cuff(rig.station, "A1"), cuff(rig.station, "A2"), cuff(rig.station, "B1")
        assert (a1.lop, a1.lop_position, a2.lop) == (190, "seated", 175)
        assert a1.lop_age_s is not None and 3 * 3600 - 60 <= a1.lop_age_s <= 3 * 3600 + 60  # whole minutes
        assert b1.lop is None and b1.lop_age_s is None  # too old to trust
        said = [c.what for c in rig.records.commands() if "restored" in c.what]
        assert any(s.startswith("LOP of A1 restored from the records: 190 mmHg (seated, doppler") for s in said)
        # The restored LOP is the one a session runs on, and it is attached to the patient like any other.
        await start_and_fill(rig, ["A1"], patient="P-050")
        rig.records.flush()
        assert [x.lop_mmhg for x in rig.records.lops("P-050")] == [190]
    finally:
        await rig.close()
