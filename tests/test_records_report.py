"""Session CSV export and the plain-text report, read back from real records."""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from console.records.report import (
    CSV_COLUMNS,
    duration,
    export_session_csv,
    session_report,
)
from console.records.rows import RecordsError
from console.records.store import Records

T0 = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def rec(tmp_path: Path) -> Iterator[Records]:
    r = Records.open(tmp_path / "data")
    yield r
    r.close()


def finished_session(rec: Records) -> int:
    rec.add_patient("P-017", at=T0)
    sid = rec.start_session(
        "P-017",
        cuffs=["A1", "A2"],
        plan_id="leg-30-15",
        plan_name="30-15-15-15 legs",
        started_at=T0 + 10,
        target_mmhg=163.2,
        target_pct_lop=80,
        lop_mmhg=204,
        position="seated",
    )
    for t in range(3):
        rec.session_sample(sid, "A1", T0 + 10 + t, 150 + t, 160 + t, 170 + t, 163.2, 1.0)
        rec.session_sample(sid, "A2", T0 + 10 + t, 100, 120, 130, 163.2)  # no in_band: judged by its mean
    rec.record_alarm("low", "BEFORE", "raised before the session", raised_at=T0 + 5, cuff="A1")
    a = rec.record_alarm(
        "high", "OFF_TARGET", "A2 right thigh 43 mmHg under target", raised_at=T0 + 11, cuff="A2", controller="rack"
    )
    rec.update_alarm(a, cleared_at=T0 + 14, acknowledged_at=T0 + 15, acknowledged_by="alice")
    rec.record_alarm("medium", "LINK_LOST", "rack stopped answering", raised_at=T0 + 12, controller="rack")
    rec.record_alarm("high", "LEAK", "B1 pump ran 7 s", raised_at=T0 + 12, cuff="B1")  # another patient's cuff
    e = rec.record_emergency(at=T0 + 13, by="bob@ssh", confirmed=["rack"], pending=["bench"])
    rec.end_session(
        sid,
        "emergency",
        ended_at=T0 + 550,
        sets_done=4,
        reps_per_set=[30, 15, 15, 15],
        occlusion_s=540,
        fidelity=0.9625,
    )
    assert e > 0
    return sid


def test_csv_has_header_rows_then_one_row_per_second_per_cuff(rec: Records, tmp_path: Path) -> None:
    sid = finished_session(rec)
    out = export_session_csv(rec, sid, tmp_path / "s.csv")
    assert out == tmp_path / "s.csv"
    rows = list(csv.reader(out.open(newline="", encoding="utf-8")))
    blank = rows.index([])
    header = {k.lstrip("#"): v for k, v in rows[:blank]}
    assert all(k.startswith("#") for k, _ in rows[:blank])
    assert header["session"] == str(sid)
    assert header["patient"] == "P-017"
    assert header["plan"] == "30-15-15-15 legs (leg-30-15)"
    assert header["cuffs"] == "A1 A2"
    assert header["started"] == "2027-01-15 08:00:10 +0000"
    assert header["ended"] == "2027-01-15 08:09:10 +0000"
    assert header["end_reason"] == "emergency"
    assert (header["lop_mmhg"], header["position"], header["target_mmhg"], header["target_pct_lop"]) == (
        "204",
        "seated",
        "163.2",
        "80",
    )
    assert (header["sets_done"], header["reps_per_set"], header["occlusion_s"], header["fidelity"]) == (
        "4",
        "30 15 15 15",
        "540",
        "0.9625",
    )
    assert tuple(rows[blank + 1]) == CSV_COLUMNS
    data = rows[blank + 2 :]
    assert len(data) == 6
    assert data[0] == ["2027-01-15 08:00:10 +0000", f"{T0 + 10:.3f}", "A1", "150.0", "160.0", "170.0", "163.2", "1.000"]
    assert data[5][2:] == ["A2", "100.0", "120.0", "130.0", "163.2", ""]
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_csv_to_an_unwritable_place_fails_clearly_and_leaves_nothing(rec: Records, tmp_path: Path) -> None:
    sid = finished_session(rec)
    target = tmp_path / "missing-dir" / "s.csv"
    with pytest.raises(RecordsError, match="s.csv"):
        export_session_csv(rec, sid, target)
    assert not (tmp_path / "missing-dir").exists()


def test_report_reads_like_a_chart_entry(rec: Records) -> None:
    sid = finished_session(rec)
    text = session_report(rec, sid)
    lines = text.splitlines()

    def field(name: str) -> str:
        (line,) = [x for x in lines if x.startswith(name + " ")]
        return line[len(name) :].strip()

    assert lines[0] == f"BFR session report #{sid}"
    assert field("Patient") == "P-017"
    assert field("Date") == "2027-01-15 08:00:10 +0000"
    assert field("Ended") == "2027-01-15 08:09:10 +0000 (emergency), duration 09:00"
    assert field("Plan") == "30-15-15-15 legs (leg-30-15)"
    assert field("Cuffs") == "A1, A2"
    # A record from before schema 2 knows only the first cuff's LOP and target, and says so for the other.
    assert field("Cuff A1") == "A1: LOP 204 mmHg (seated), target 163.2 mmHg (80 % LOP)"
    assert field("Cuff A2") == "A2: LOP n/a (position not recorded), target not recorded"
    assert field("Sets") == "4 completed"
    assert field("Reps per set") == "30, 15, 15, 15 (total 75)"
    assert field("Under occlusion") == "09:00"
    assert "Fidelity, per cuff: the share of the time" in text
    a1 = next(x for x in lines if x.strip().startswith("A1 ") and "mean" in x)
    assert "mean  161.0" in a1 and "min  150.0" in a1 and "max  172.0" in a1
    assert "  A1     fidelity 100.0 %" in lines  # estimated from its samples: no per-cuff figure in this record
    assert "  A2     fidelity 0.0 %" in lines  # 120 mmHg is 26 % under 163.2
    assert "Alarms (2)" in lines
    assert any(
        "HIGH" in x and "OFF_TARGET" in x and "cleared 08:00:14" in x and "acknowledged 08:00:15 by alice" in x
        for x in lines
    )
    assert any("MEDIUM" in x and "LINK_LOST" in x and "rack" in x for x in lines)
    assert "BEFORE" not in text and "B1 pump" not in text  # outside the session's time or cuffs
    assert any("by bob@ssh, confirmed: rack, NOT confirmed: bench" in x for x in lines)
    assert "estimated" not in text


def test_report_of_a_crashed_session_says_figures_are_estimates(tmp_path: Path) -> None:
    r = Records.open(tmp_path / "data")
    r.add_patient("P-1", at=T0)
    sid = r.start_session("P-1", cuffs=["A1"], plan_id="p", plan_name="Passive", started_at=T0)
    for t in range(65):
        r.session_sample(sid, "A1", T0 + t, 150, 160, 170, 160)
    r.close()
    with Records.open(tmp_path / "data") as r2:
        text = session_report(r2, sid)
    assert "(crash), duration 01:04" in text
    assert "Under occlusion  01:05 (estimated from the samples after a crash)" in text
    assert "  A1     fidelity 100.0 % (estimated from the samples after a crash)" in text
    assert "Cuff A1          A1: LOP n/a (position not recorded), target not recorded" in text
    assert "Alarms (0)" in text and "  none" in text


def test_report_of_running_and_unknown_sessions(rec: Records) -> None:
    rec.add_patient("P-1", at=T0)
    sid = rec.start_session("P-1", cuffs=["A1"], plan_id="p", plan_name="P", started_at=T0)
    text = session_report(rec, sid)
    assert "still running" in text and "no samples recorded" in text
    with pytest.raises(RecordsError, match="no session 99"):
        session_report(rec, 99)


def test_duration_format() -> None:
    assert [duration(x) for x in (None, 0, 59.6, 540, 3725)] == ["n/a", "00:00", "01:00", "09:00", "1:02:05"]
