"""The report of a real two-cuff session (emulator, manual clock): every cuff, honest sets, one fidelity."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from console.records.report import export_session_csv, session_list, session_report
from console.report_runner import run_report
from tests.therapy_support import Rig, advance, phase, rig, set_lops, start_and_fill, until

__all__ = ["rig"]


async def stopped_in_second_set(rig: Rig) -> int:
    """A pair with different LOPs; set 1 done, set 2 stopped after its first rep."""
    await set_lops(rig, A1=150, A2=130)
    await start_and_fill(rig, ["A1", "A2"], patient="P-002")
    await until(rig, lambda: (advance_sync(rig), phase(rig, "A1") == "rest")[1], "set 1 done")
    await rig.station.session_command("A1", "skip")  # end the rest
    await until(rig, lambda: phase(rig, "A1") == "set", "set 2 begun")
    await advance(rig, 2.5)  # one beat of the 2 s metronome
    await rig.station.session_command("A1", "stop")
    await rig.therapy.step_now()
    rig.records.flush()
    return rig.records.sessions()[-1].id


def advance_sync(rig: Rig) -> None:
    assert rig.clock is not None
    rig.clock.advance(0.25)


async def test_a_pair_report_shows_each_cuff_and_a_stopped_set_as_stopped(rig: Rig, tmp_path: Path) -> None:
    sid = await stopped_in_second_set(rig)
    s = rig.records.session(sid)
    assert s.sets_planned == 2 and s.sets_done == 2 and s.sets_stopped == 1 and s.sets_completed == 1
    last_reps = s.reps_per_set[-1]
    assert 0 < last_reps < 3
    text = session_report(rig.records, sid)
    lines = text.splitlines()
    assert "Cuff A1          cuff A1: LOP 150 mmHg (seated, cuff 11.5 cm), target 90 mmHg (60 % LOP)" in lines
    assert "Cuff A2          cuff A2: LOP 130 mmHg (seated, cuff 11.5 cm), target 78 mmHg (60 % LOP)" in lines
    rep_word = "rep" if last_reps == 1 else "reps"
    assert f"Sets             1 of 2 completed, 1 stopped before its end (after {last_reps} {rep_word})" in lines
    assert "Fidelity, per cuff: the share of the time the cuff was held at its target (sets and held rests)" in lines
    assert "in band" not in text  # one definition, not two figures
    cuffs = rig.records.session_cuffs(sid)
    assert [c.cuff_id for c in cuffs] == ["A1", "A2"]
    for c in cuffs:
        assert c.fidelity is not None and c.occlusion_s is not None and c.occlusion_s > 5
        assert f"  {c.cuff_id}     fidelity {100 * c.fidelity:.1f} %, under occlusion" in text

    out = export_session_csv(rig.records, sid, tmp_path / "s.csv")
    head = {row[0]: row[1] for row in csv.reader(out.open()) if row and row[0].startswith("#")}
    assert (head["#cuff_A1_lop_mmhg"], head["#cuff_A2_lop_mmhg"]) == ("150", "130")
    assert (head["#cuff_A2_target_mmhg"], head["#sets_stopped"], head["#sets_planned"]) == ("78", "1", "2")

    listing = session_list(rig.records.sessions()).splitlines()
    assert listing[0].split() == ["#", "started", "patient", "plan", "ended", "sets", "fidelity"]
    assert listing[1].split()[0] == str(sid) and "stopped" in listing[1] and " 1/2 " in listing[1]


async def test_report_csv_without_a_session_fails_clearly(
    rig: Rig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await stopped_in_second_set(rig)
    code = run_report(rig.station.config, session=None, csv=str(tmp_path / "all.csv"))
    err = capsys.readouterr().err
    assert code != 0 and "--session" in err
    assert not (tmp_path / "all.csv").exists()
    assert run_report(rig.station.config, session=None, csv=None) == 0
    assert capsys.readouterr().out.splitlines()[0].split()[:3] == ["#", "started", "patient"]
