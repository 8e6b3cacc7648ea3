"""The patients' records through the station's PatientBook port, on records made by real sessions."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.common.api import CommandRefused
from console.common.patients import LopEntry, PatientBook, offer_lop
from tests.station_support import cuff
from tests.therapy_support import Rig, advance, rig, set_lops, start_and_fill, until

__all__ = ["rig"]

DAY = 86400.0


async def one_session(rig: Rig, patient: str, cuffs: list[str]) -> int:
    await start_and_fill(rig, cuffs, patient=patient)
    await advance(rig, 3)
    await rig.station.session_command(cuffs[0], "stop")
    await until(
        rig,
        lambda: all(cuff(rig.station, c).target == 0 and (cuff(rig.station, c).pressure or 99) < 15 for c in cuffs),
        f"{cuffs} vented after the stop",
    )
    rig.records.flush()
    return rig.records.sessions()[-1].id


async def test_history_of_a_patient_after_real_sessions(rig: Rig) -> None:
    st = rig.station
    assert isinstance(st, PatientBook)
    await set_lops(rig, A1=150, A2=130)
    first = await one_session(rig, "P-0042", ["A1", "A2"])
    await st.set_lop("A1", 160, position="supine", cuff_width_cm=11.5, source="doppler")
    second = await one_session(rig, "P-0042", ["A1"])
    await set_lops(rig, B1=110)
    await one_session(rig, "P-0100", ["B1"])

    found = await st.find_patients("0042")
    assert [(p.id, p.sessions) for p in found] == [("P-0042", 2)]
    # most recently seen first; the placeholder of LOPs taken with no patient set comes last
    assert [p.id for p in await st.find_patients("")] == ["P-0100", "P-0042", "unassigned"]
    assert await st.find_patients("%") == []  # a LIKE wildcard is only a character here

    h = await st.patient_history("P-0042")
    assert h.lop_max_age_days == 14.0
    assert [(x.cuff_id, x.lop_mmhg, x.position, x.source) for x in h.lops] == [
        ("A1", 160, "supine", "doppler"),
        ("A2", 130, "seated", "doppler"),
        ("A1", 150, "seated", "doppler"),
    ]
    assert [s.id for s in h.sessions] == [second, first]
    s = h.sessions[1]
    assert s.cuffs == ("A1", "A2") and s.plan_id == "tiny" and s.end_reason == "stopped"
    assert s.sets_planned == 2 and s.sets_done == 1 and s.sets_stopped == 1
    assert s.occlusion_s is not None and s.occlusion_s > 2 and s.fidelity is not None
    assert s.alarms == len([a for a in rig.records.alarms(s.started_at, s.ended_at) if a.cuff_id in (None, "A1", "A2")])


async def test_a_stored_lop_is_used_with_its_own_date_and_never_filed_twice(rig: Rig) -> None:
    st = rig.station
    await set_lops(rig, A1=150)
    await one_session(rig, "P-0042", ["A1"])
    rig.clock.advance(2 * DAY)
    await st.set_patient("A1", "P-0077")
    await st.set_lop("A1", 190, position="standing", cuff_width_cm=11.5, source="doppler")  # someone else's
    rig.records.flush()
    (mine,) = rig.records.lops("P-0042")
    await st.use_recorded_lop("A1", mine.id)
    await advance(rig, 0.5)
    a1 = cuff(st, "A1")
    assert (a1.lop, a1.lop_position) == (150, "seated")
    assert a1.lop_age_s is not None and a1.lop_age_s >= 2 * DAY
    rig.records.flush()
    assert len(rig.records.lops("P-0042")) == 1  # used, not filed again
    assert any(f"from LOP record #{mine.id} of patient P-0042" in c.what for c in rig.records.commands())
    with pytest.raises(CommandRefused, match="measured on leg; cuff B1 is on arm"):
        await st.use_recorded_lop("B1", mine.id)
    with pytest.raises(CommandRefused, match="No LOP #999"):
        await st.use_recorded_lop("A1", 999)


def lop(
    i: int, *, at: float, position: str = "seated", width: float | None = 11.5, label: str = "left thigh"
) -> LopEntry:
    return LopEntry(i, "A1", "leg", label, position, width, 150.0 + i, "doppler", at)


def test_the_offer_prefers_same_site_position_and_width_and_flags_the_rest(tmp_path: Path) -> None:
    now = 100 * DAY
    kw = {"limb": "leg", "label": "left thigh", "width_cm": 11.5, "now": now, "max_age_days": 14.0}
    lops = [lop(3, at=now - DAY, position="supine"), lop(2, at=now - 3 * DAY), lop(1, at=now - 30 * DAY)]
    o = offer_lop(lops, position="seated", **kw)
    assert o is not None and o.lop.id == 2 and o.flags == () and o.age_s == 3 * DAY
    o = offer_lop(lops, position="standing", **kw)  # none standing: the newest, flagged
    assert o is not None and o.lop.id == 3 and o.flags == ("measured supine, not standing",)
    o = offer_lop([lop(1, at=now - 30 * DAY, width=18.0, label="right thigh")], position="seated", **kw)
    assert o is not None and o.flags == (
        "older than the re-measure interval (14 d)",
        "measured with a 18 cm cuff, this one is 11.5 cm",
        "measured on the right thigh, not the left thigh",
    )
    assert offer_lop(lops, position="seated", **{**kw, "limb": "arm"}) is None
