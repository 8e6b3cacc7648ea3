"""Records on real SQLite files: every table round-trips, durability settings, bad files, failure paths."""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from console.common.api import Priority, Role
from console.records.rows import (
    AlarmRecord,
    CommandRecord,
    EmergencyRecord,
    LopRecord,
    Patient,
    RecordsError,
    SampleRecord,
)
from console.records.schema import DB_NAME, SCHEMA_VERSION
from console.records.store import Records
from console.records.writer import Write

T0 = 1_800_000_000.0


@pytest.fixture
def rec(tmp_path: Path) -> Iterator[Records]:
    r = Records.open(tmp_path / "data")
    yield r
    r.close()


def raw(tmp_path: Path) -> sqlite3.Connection:
    """A second, independent connection: sees only what was really committed."""
    return sqlite3.connect(tmp_path / "data" / DB_NAME)


def wait_for(cond, deadline_s: float = 10.0) -> None:
    end = time.monotonic() + deadline_s
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.01)


def start(rec: Records, pid: str = "P-001", cuffs: tuple[str, ...] = ("A1", "A2")) -> int:
    rec.add_patient(pid, at=T0)
    return rec.start_session(
        pid,
        cuffs=list(cuffs),
        plan_id="leg-30-15",
        plan_name="30-15-15-15 legs",
        started_at=T0 + 10,
        target_mmhg=163.2,
        target_pct_lop=80,
        lop_mmhg=204,
        position="seated",
    )


# --------------------------------------------------------------------------- settings


def test_file_is_wal_with_full_sync_and_schema_version(rec: Records, tmp_path: Path) -> None:
    assert rec.path == tmp_path / "data" / DB_NAME
    assert rec.pragma("journal_mode") == "wal"
    assert rec.pragma("synchronous") == 2  # FULL
    assert rec.pragma("foreign_keys") == 1
    with raw(tmp_path) as c:
        assert c.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # persistent in the file
        tables = {r[0] for r in c.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
    assert tables == {
        "patients",
        "lop_measurements",
        "sessions",
        "session_cuffs",
        "session_samples",
        "alarms",
        "emergencies",
        "commands",
    }


def test_reopen_keeps_everything_and_ids_continue(tmp_path: Path) -> None:
    with Records.open(tmp_path / "data") as r:
        sid = start(r)
        r.end_session(sid, "completed", ended_at=T0 + 20, sets_done=1, reps_per_set=[30], occlusion_s=10, fidelity=1.0)
        a = r.record_alarm("low", "X", "x", raised_at=T0)
    with Records.open(tmp_path / "data") as r:
        assert r.recovered == ()
        assert [s.id for s in r.sessions()] == [sid]
        assert r.add_patient("P-001", at=T0 + 99) is False  # known already
        sid2 = r.start_session("P-001", cuffs=["A1"], plan_id="p", plan_name="P", started_at=T0 + 30)
        a2 = r.record_alarm("low", "Y", "y", raised_at=T0 + 1)
        assert (sid2, a2) == (sid + 1, a + 1)
        assert r.patients() == [Patient("P-001", T0, "")]


# --------------------------------------------------------------------------- round trips


def test_patients_round_trip(rec: Records) -> None:
    assert rec.add_patient("P-002", at=T0 + 1, note="ACL left, week 3") is True
    assert rec.add_patient("P-001", at=T0) is True
    assert rec.add_patient("P-001", at=T0 + 5, note="changed?") is False
    assert rec.patients() == [Patient("P-001", T0, ""), Patient("P-002", T0 + 1, "ACL left, week 3")]


def test_lop_round_trip_and_latest_per_site_and_position(rec: Records) -> None:
    rec.add_patient("P-001", at=T0)
    common = dict(cuff_id="A1", limb="leg", label="left thigh", source="doppler", cuff_width_cm=11.5)
    first = rec.record_lop("P-001", position="seated", lop_mmhg=204, at=T0 + 1, confidence=0.9, **common)
    supine = rec.record_lop("P-001", position="supine", lop_mmhg=187, at=T0 + 2, **common)
    newer = rec.record_lop("P-001", position="seated", lop_mmhg=210.5, at=T0 + 3, **common)
    rec.record_lop(
        "P-001",
        cuff_id="A2",
        limb="leg",
        label="right thigh",
        position="seated",
        lop_mmhg=199,
        source="auto",
        at=T0 + 4,
        confidence=0.7,
    )
    assert rec.latest_lop("P-001", "left thigh", "seated") == LopRecord(
        newer, "P-001", "A1", "leg", "left thigh", "seated", 11.5, 210.5, "doppler", None, T0 + 3
    )
    assert rec.latest_lop("P-001", "left thigh", "supine").id == supine
    assert rec.latest_lop("P-001", "right thigh", "seated").source == "auto"
    assert rec.latest_lop("P-001", "leg", "seated").lop_mmhg == 199  # by limb: the newest of either leg
    assert rec.latest_lop("P-001", "left thigh", "standing") is None
    assert rec.latest_lop("P-404", "left thigh", "seated") is None
    assert [x.id for x in rec.lops("P-001")][-1] == first
    assert rec.lops("P-001")[-1].confidence == 0.9


def test_session_round_trip(rec: Records) -> None:
    sid = start(rec)
    (open_,) = rec.sessions()
    assert open_.is_open and open_.end_reason is None and open_.reps_per_set == ()
    for t in range(3):
        for cuff in ("A1", "A2"):
            assert rec.session_sample(sid, cuff, T0 + 10 + t, 150.0 + t, 160.5, 170.0, 163.2, 0.95)
    rec.end_session(
        sid,
        "completed",
        ended_at=T0 + 613,
        sets_done=4,
        reps_per_set=[30, 15, 15, 15],
        occlusion_s=540.5,
        fidelity=0.962,
    )
    (s,) = rec.sessions("P-001")
    assert (s.id, s.patient_id, s.cuffs, s.plan_id, s.plan_name) == (
        sid,
        "P-001",
        ("A1", "A2"),
        "leg-30-15",
        "30-15-15-15 legs",
    )
    assert (s.started_at, s.ended_at, s.end_reason, s.duration_s) == (T0 + 10, T0 + 613, "completed", 603)
    assert (s.sets_done, s.reps_per_set, s.occlusion_s, s.fidelity) == (4, (30, 15, 15, 15), 540.5, 0.962)
    assert (s.target_mmhg, s.target_pct_lop, s.lop_mmhg, s.position) == (163.2, 80, 204, "seated")
    assert rec.sessions("P-999") == []
    assert rec.session(sid) == s and rec.session(sid + 1) is None
    samples = rec.samples(sid)
    assert len(samples) == 6
    assert samples[0] == SampleRecord(sid, "A1", T0 + 10, 150.0, 160.5, 170.0, 163.2, 0.95)
    assert [x.t for x in rec.samples(sid, "A2")] == [T0 + 10, T0 + 11, T0 + 12]


def test_alarm_round_trip_and_update(rec: Records) -> None:
    a1 = rec.record_alarm(
        Priority.HIGH,
        "OFF_TARGET",
        "A1 left thigh 20 mmHg under target",
        raised_at=T0 + 5,
        cuff="A1",
        controller="rack",
    )
    a2 = rec.record_alarm("medium", "LINK_LOST", "rack stopped answering", raised_at=T0 + 9, controller="rack")
    rec.update_alarm(a1, cleared_at=T0 + 7)
    rec.update_alarm(a1, acknowledged_at=T0 + 8, acknowledged_by="alice")
    assert rec.alarms() == [
        AlarmRecord(
            a1,
            "high",
            "OFF_TARGET",
            "A1 left thigh 20 mmHg under target",
            "A1",
            "rack",
            T0 + 5,
            T0 + 7,
            T0 + 8,
            "alice",
        ),
        AlarmRecord(a2, "medium", "LINK_LOST", "rack stopped answering", None, "rack", T0 + 9, None, None, None),
    ]
    assert [a.id for a in rec.alarms(since=T0 + 6)] == [a2]
    assert [a.id for a in rec.alarms(until=T0 + 6)] == [a1]


def test_emergency_round_trip_and_confirmations(rec: Records) -> None:
    e = rec.record_emergency(at=T0 + 1, by="station", confirmed=[], pending=["rack", "bench"])
    rec.update_emergency(e, confirmed=["rack"], pending=["bench"])
    assert rec.emergencies() == [EmergencyRecord(e, T0 + 1, "station", ("rack",), ("bench",), None)]
    rec.update_emergency(e, confirmed=["rack", "bench"], pending=[], latency_s=0.012)
    assert rec.emergencies(since=T0) == [EmergencyRecord(e, T0 + 1, "station", ("rack", "bench"), (), 0.012)]
    assert rec.emergencies(since=T0 + 2) == []


def test_command_audit_round_trip(rec: Records) -> None:
    rec.record_command("alice", Role.OPERATOR, "inflate A1 80%", T0 + 1)
    rec.record_command("bob@ssh", "observer", "emergency_deflate", T0 + 2)
    got = rec.commands()
    assert [(c.who, c.role, c.what, c.at) for c in got] == [
        ("alice", "operator", "inflate A1 80%", T0 + 1),
        ("bob@ssh", "observer", "emergency_deflate", T0 + 2),
    ]
    assert rec.commands(since=T0 + 2) == [CommandRecord(got[1].id, T0 + 2, "bob@ssh", "observer", "emergency_deflate")]


# --------------------------------------------------------------------------- durability without flush()


def test_samples_are_committed_within_the_interval_without_being_asked(rec: Records, tmp_path: Path) -> None:
    sid = start(rec)
    rec.session_sample(sid, "A1", T0 + 10, 1, 2, 3, 2)
    # No flush, no further writes: the writer must commit by itself within commit_interval_s.
    with raw(tmp_path) as c:
        wait_for(lambda: c.execute("SELECT COUNT(*) FROM session_samples").fetchone()[0] == 1)


def test_alarm_is_visible_to_another_connection_without_flush(rec: Records, tmp_path: Path) -> None:
    rec.record_alarm("high", "LEAK", "A1 pump ran 7 s", raised_at=T0, cuff="A1")
    with raw(tmp_path) as c:
        wait_for(lambda: c.execute("SELECT COUNT(*) FROM alarms").fetchone()[0] == 1)


def test_close_commits_what_is_queued(tmp_path: Path) -> None:
    r = Records.open(tmp_path / "data", commit_interval_s=1.0)
    sid = start(r)
    for t in range(50):
        r.session_sample(sid, "A1", T0 + t, 1, 2, 3, 2)
    r.close()
    r.close()  # idempotent
    with raw(tmp_path) as c:
        assert c.execute("SELECT COUNT(*) FROM session_samples").fetchone()[0] == 50
    with pytest.raises(RecordsError, match="closed"):
        r.add_patient("P-9", at=T0)


# --------------------------------------------------------------------------- recovery


def test_recover_at_open_ends_crashed_session_at_its_last_sample(tmp_path: Path) -> None:
    r = Records.open(tmp_path / "data")
    sid = start(r)
    for t in range(4):
        r.session_sample(sid, "A1", T0 + 10 + t, 150, 160, 170, 160, None)  # in band
        r.session_sample(sid, "A2", T0 + 10 + t, 100, 120, 130, 160, None)  # 25 % under: out of band
    r.session_sample(sid, "A1", T0 + 14, 0, 0, 0, 0, None)  # vented: not occlusion time
    r.flush()
    r.close()  # closed without end_session(): as after a crash (the kill -9 case is in test_records_crash)
    with Records.open(tmp_path / "data") as r2:
        assert r2.recovered == (sid,)
        s = r2.session(sid)
        assert (s.end_reason, s.ended_at) == ("crash", T0 + 14)
        assert s.occlusion_s == 4.0
        assert s.fidelity == pytest.approx(0.5)
        assert r2.recover() == ()  # nothing left to recover
        # A session started by this object is never recovered while it runs.
        sid2 = r2.start_session("P-001", cuffs=["A1"], plan_id="p", plan_name="P", started_at=T0 + 100)
        assert r2.recover() == ()
        assert r2.session(sid2).is_open


def test_recover_without_samples_ends_at_start(tmp_path: Path) -> None:
    r = Records.open(tmp_path / "data")
    sid = start(r)
    r.close()
    with Records.open(tmp_path / "data") as r2:
        s = r2.session(sid)
        assert (s.end_reason, s.ended_at, s.fidelity, s.occlusion_s) == ("crash", s.started_at, None, 0.0)


# --------------------------------------------------------------------------- bad files and directories


def test_non_database_file_is_refused_naming_the_path(tmp_path: Path) -> None:
    d = tmp_path / "data"
    d.mkdir()
    (d / DB_NAME).write_bytes(b"this is not a database, just text\n" * 200)
    with pytest.raises(RecordsError, match=str(d / DB_NAME)) as err:
        Records.open(d)
    assert "not a usable database" in str(err.value)
    assert (d / DB_NAME).read_bytes().startswith(b"this is not a database")  # left untouched
    Records.open(d / "elsewhere").close()  # and the lock was released: other dirs and retries work


def test_corrupt_database_is_refused(tmp_path: Path) -> None:
    with Records.open(tmp_path / "data") as r:
        start(r)
    path = tmp_path / "data" / DB_NAME
    data = bytearray(path.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # smash the schema page
    path.write_bytes(bytes(data))
    with pytest.raises(RecordsError, match=str(path)):
        Records.open(tmp_path / "data")


def test_data_dir_that_cannot_be_created_names_it(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RecordsError, match=str(blocker / "data")):
        Records.open(blocker / "data")


def test_foreign_database_and_newer_schema_are_refused(tmp_path: Path) -> None:
    d = tmp_path / "data"
    d.mkdir()
    with sqlite3.connect(d / DB_NAME) as c:
        c.execute("CREATE TABLE other (x)")
    with pytest.raises(RecordsError, match="not station records"):
        Records.open(d)
    (d / DB_NAME).unlink()
    with sqlite3.connect(d / DB_NAME) as c:
        c.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(RecordsError, match="newer than this program"):
        Records.open(d)


def test_second_writer_is_refused_and_readonly_reader_sees_committed_rows(rec: Records, tmp_path: Path) -> None:
    with pytest.raises(RecordsError, match="already open"):
        Records.open(tmp_path / "data")
    sid = start(rec)
    rec.flush()
    with Records.open(tmp_path / "data", readonly=True) as ro:
        assert [s.id for s in ro.sessions()] == [sid]
        with pytest.raises(RecordsError, match="read-only"):
            ro.record_alarm("low", "X", "x", raised_at=T0)
    with pytest.raises(RecordsError, match="no records"):
        Records.open(tmp_path / "nothing", readonly=True)


# --------------------------------------------------------------------------- bad input


def test_bad_arguments_are_refused_and_nothing_is_written(rec: Records) -> None:
    with pytest.raises(RecordsError, match="pseudonym"):
        rec.add_patient("John Smith", at=T0)
    with pytest.raises(RecordsError, match="unknown patient"):
        rec.start_session("P-404", cuffs=["A1"], plan_id="p", plan_name="P", started_at=T0)
    rec.add_patient("P-001", at=T0)
    lop = dict(cuff_id="A1", limb="leg", label="left thigh", position="seated", lop_mmhg=200, source="doppler", at=T0)
    for bad, match in [
        ({"limb": "tail"}, "limb must be one of"),
        ({"source": "guess"}, "source must be one of"),
        ({"lop_mmhg": 2000}, "at most"),
        ({"lop_mmhg": math.nan}, "finite"),
        ({"confidence": 1.5}, "confidence"),
        ({"position": ""}, "position"),
    ]:
        with pytest.raises(RecordsError, match=match):
            rec.record_lop("P-001", **{**lop, **bad})
    with pytest.raises(RecordsError, match="cuffs"):
        rec.start_session("P-001", cuffs=[], plan_id="p", plan_name="P", started_at=T0)
    with pytest.raises(RecordsError, match="priority"):
        rec.record_alarm("urgent", "X", "x", raised_at=T0)
    with pytest.raises(RecordsError, match="not open"):
        rec.end_session(77, "completed", ended_at=T0, sets_done=0, reps_per_set=[], occlusion_s=0, fidelity=None)
    sid = rec.start_session("P-001", cuffs=["A1"], plan_id="p", plan_name="P", started_at=T0)
    with pytest.raises(RecordsError, match="reason must be one of"):
        rec.end_session(sid, "bored", ended_at=T0, sets_done=0, reps_per_set=[], occlusion_s=0, fidelity=None)
    with pytest.raises(RecordsError, match="reps_per_set"):
        rec.end_session(sid, "stopped", ended_at=T0, sets_done=1, reps_per_set=[-1], occlusion_s=0, fidelity=None)
    assert rec.session(sid).is_open  # refused calls did not end it
    assert rec.lops("P-001") == [] and rec.alarms() == []
    rec.end_session(sid, "stopped", ended_at=T0 + 1, sets_done=0, reps_per_set=[], occlusion_s=0, fidelity=None)
    with pytest.raises(RecordsError, match="not open"):
        rec.end_session(sid, "stopped", ended_at=T0 + 1, sets_done=0, reps_per_set=[], occlusion_s=0, fidelity=None)


def test_garbage_samples_are_dropped_and_counted(rec: Records) -> None:
    sid = start(rec)
    assert rec.session_sample(sid, "A1", T0 + 1, 150, 160, 170, 163)
    assert not rec.session_sample(sid, "A1", T0 + 2, math.nan, 160, 170, 163)
    assert not rec.session_sample(sid, "A1", T0 + 3, 170, 160, 150, 163)  # min > max
    assert not rec.session_sample(sid, "A1", T0 + 4, 150, 160, 170, math.inf)
    assert not rec.session_sample(sid, "A1", T0 + 5, 150, 160, 170, 163, in_band=2.0)
    assert not rec.session_sample(sid, "A1", T0 + 6, "x", 160, 170, 163)  # type: ignore[arg-type]
    assert rec.session_sample(sid, "A1", T0 + 7, 150, 160, 170, 163)
    with pytest.raises(RecordsError, match="not part of session"):
        rec.session_sample(sid, "B9", T0 + 8, 1, 2, 3, 2)
    with pytest.raises(RecordsError, match="not open"):
        rec.session_sample(sid + 1, "A1", T0 + 8, 1, 2, 3, 2)
    assert [x.t for x in rec.samples(sid)] == [T0 + 1, T0 + 7]
    h = rec.health()
    assert (h.dropped_samples, h.failed_writes, h.writer_alive) == (5, 0, True)


def test_a_write_the_database_refuses_loses_only_itself(rec: Records) -> None:
    sid = start(rec)
    rec.session_sample(sid, "A1", T0 + 1, 1, 2, 3, 2)
    rec._put(Write("INSERT INTO no_such_table VALUES (?)", (1,)))  # the failure path, from inside
    rec._put(Write("INSERT INTO alarms (id, priority, cause, message, raised_at) VALUES (1, 'bad', 'x', 'x', 0)", ()))
    rec.session_sample(sid, "A1", T0 + 2, 1, 2, 3, 2)
    rec.record_alarm("low", "X", "after the failures", raised_at=T0 + 3)
    assert [x.t for x in rec.samples(sid)] == [T0 + 1, T0 + 2]
    assert [a.message for a in rec.alarms()] == ["after the failures"]
    h = rec.health()
    assert h.failed_writes == 2 and "CHECK constraint" in h.last_error and h.writer_alive


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_writer_is_reported_and_further_writes_are_refused(tmp_path: Path) -> None:
    r = Records.open(tmp_path / "data")
    sid = start(r)
    r.session_sample(sid, "A1", T0 + 1, 1, 2, 3, 2)
    r._put(Write(None, ()))  # type: ignore[arg-type]  # not an SQL error: kills the writer thread
    wait_for(lambda: not r.health().writer_alive)
    h = r.health()
    assert "writer stopped: TypeError" in h.last_error
    with pytest.raises(RecordsError, match="writer .* has stopped"):
        r.record_alarm("high", "X", "x", raised_at=T0)
    with pytest.raises(RecordsError, match="has stopped"):
        r.sessions()
    r.close()  # still releases the file
    with Records.open(tmp_path / "data") as r2:  # the session was committed (urgent) before the failure
        assert r2.recovered == (sid,)


def test_second_aggregator_boils_100hz_down_to_rows(rec: Records) -> None:
    from console.records.rows import SecondAggregator, SecondSummary

    agg = SecondAggregator()
    out: list[SecondSummary] = []
    for i in range(300):  # 3 s at 100 Hz; in the 2nd second, 30 samples are 20 % under target
        t = T0 + i / 100
        p = 128.0 if 100 <= i < 130 else 160.0 + (i % 2)
        target = 160.0 if i >= 100 else 0.0
        if (s := agg.add(t, p, target)) is not None:
            out.append(s)
    assert agg.add(T0 + 3.5, math.nan, 160) is None and agg.dropped == 1
    last = agg.flush()
    assert last is not None and agg.flush() is None
    out.append(last)
    # The second in progress is handed out every 0.1 s (the records replace it, same key) and the
    # final one when the next second starts: never more than 0.1 s of samples held back.
    ends = [s.t_end for s in out]
    # 0.1 s and a sample, or two where epoch-size floats round 0.1 s down by a hair
    assert all(b - a <= 0.1 + 0.021 for a, b in zip(ends, ends[1:], strict=False))
    finals = {s.t: s for s in out}  # the last one handed out for a second is the whole second
    assert len(out) > 3 * len(finals)
    out = list(finals.values())
    assert [s.t for s in out] == [T0, T0 + 1, T0 + 2]
    assert out[0] == SecondSummary(T0, 160.0, 160.5, 161.0, 0.0, None, T0 + 0.99, 0.0)  # vented: no target, no band
    # Occluded from T0 + 1: that second holds all of itself (the gap to T0 + 2 split at the turn of the
    # second); the last one ends at its last sample, T0 + 2.99.
    assert out[1].held_s == pytest.approx(1.0) and out[2].held_s == pytest.approx(0.99)
    assert (out[1].pmin, out[1].pmax, out[1].target, out[1].in_band) == (128.0, 161.0, 160.0, 0.7)
    assert out[1].pmean == pytest.approx((30 * 128 + 35 * 160 + 35 * 161) / 100)
    assert out[2].in_band == 1.0
    sid = start(rec)
    for s in out:
        assert rec.session_sample(sid, "A1", *s.row(), t_end=s.t_end, held_s=s.held_s)
    assert [(x.t, x.in_band) for x in rec.samples(sid)] == [(T0, None), (T0 + 1, 0.7), (T0 + 2, 1.0)]
    assert rec.samples(sid)[2].t_end == pytest.approx(T0 + 2.99)


def test_second_aggregator_rows_stay_within_their_second_when_samples_come_in_bursts(rec: Records) -> None:
    """Samples read in bursts (a busy host): no row claims over 1 s of occlusion, so none is refused.

    Counting the gap across the turn of a second into the new one made a second hold up to 1 s plus
    a burst's gap; the records refused those final rows as garbage and kept the partial ones, losing
    about 0.2 s of occlusion a second under .ci/stress.
    """
    from console.records.rows import SecondAggregator, SecondSummary

    agg = SecondAggregator()
    finals: dict[float, SecondSummary] = {}
    t = T0 + 0.05
    bursts = [0.15, 0.02, 0.21, 0.08, 0.19, 0.11, 0.24, 0.03]  # gaps between bursts, all under MAX_GAP_S
    i = 0
    while t < T0 + 6:
        for k in range(5):  # a burst: five samples read together, 1 ms apart
            if (s := agg.add(t + k / 1000, 160.0, 160.0)) is not None:
                finals[s.t] = s
        t += bursts[i % len(bursts)]
        i += 1
    last = agg.flush()
    assert last is not None
    finals[last.t] = last
    sid = start(rec)
    for s in finals.values():
        assert s.held_s is not None and 0.0 <= s.held_s <= 1.0, s
        assert rec.session_sample(sid, "A1", *s.row(), t_end=s.t_end, held_s=s.held_s), s
    rows = rec.samples(sid)
    assert len(rows) == len(finals) == 6
    first_t, last_end = T0 + 0.05, rows[-1].t_end
    assert last_end is not None
    assert sum(r.held_s or 0.0 for r in rows) == pytest.approx(last_end - first_t)  # every gap counted once
