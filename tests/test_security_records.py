"""Issue 13, items 1-4 on the records' side: private files, a lock nobody else can hold, a bounded
queue, commands committed at once, and text escaped on its way out (report, CSV).

The "observer" here is a real second user: a forked child running as ``nobody`` that is a member
of the data directory's group, as a supervisor in group ``bfr`` was under the shipped unit.
"""

from __future__ import annotations

import csv
import fcntl
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest

from console.records import database
from console.records.report import day_audit, export_session_csv, session_audit, session_report
from console.records.schema import DB_NAME
from console.records.store import Records
from tests.test_security_support import NOBODY, NOGROUP, as_user, holding, needs_root, shared_directory

T0 = 1_800_000_000.0


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The umask a station started by hand usually has: without care, files come out 0644."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def group_dir() -> Iterator[Path]:
    """A data directory as the shipped unit made it: mode 2750, group of the supervisors (here nogroup)."""
    with shared_directory() as shared:
        d = shared / "var"
        d.mkdir()
        os.chown(d, -1, NOGROUP)
        os.chmod(d, 0o2750)
        yield d


def wrote_a_row(rec: Records) -> None:
    rec.add_patient("P-001", at=T0)
    rec.record_command("ana@uid1000", "operator", "inflate A1 80 mmHg", T0)
    rec.flush()


# ----------------------------------------------------------------------------- item 1: the files


def test_new_records_files_are_0600_in_a_0700_directory_whatever_the_umask(tmp_path: Path, umask_022: None) -> None:
    data = tmp_path / "var"
    with Records.open(data) as rec:
        wrote_a_row(rec)
        names = sorted(p.name for p in data.iterdir())
        assert {DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm", DB_NAME + ".lock"} <= set(names)
        assert {n: mode(data / n) for n in names} == dict.fromkeys(names, 0o600)
    assert mode(data) == 0o700


def test_files_an_older_version_left_readable_are_narrowed_when_opened(tmp_path: Path, umask_022: None) -> None:
    data = tmp_path / "var"
    with Records.open(data) as rec:
        wrote_a_row(rec)
    for name in (DB_NAME, DB_NAME + ".lock"):
        os.chmod(data / name, 0o644)
    with Records.open(data) as rec:
        wrote_a_row(rec)
        assert mode(data / DB_NAME) == 0o600 and mode(data / (DB_NAME + "-wal")) == 0o600
        assert mode(data / (DB_NAME + ".lock")) == 0o600


def _read_db(path: str) -> str:
    with open(path, "rb") as f:
        return f"read {len(f.read(100))} bytes"


def _flock(path: str) -> str:
    fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return "held"


@needs_root
def test_a_member_of_the_data_group_can_neither_read_the_records_nor_hold_their_lock(
    group_dir: Path, umask_022: None
) -> None:
    with Records.open(group_dir) as rec:
        wrote_a_row(rec)
        lock = group_dir / (DB_NAME + ".lock")
        assert os.stat(lock).st_gid == NOGROUP, "the files are in the supervisors' group, as under the unit"
        for name in (DB_NAME, DB_NAME + "-wal"):
            with pytest.raises(AssertionError, match="PermissionError"):
                as_user(NOBODY, NOGROUP, _read_db, str(group_dir / name))
        with holding(NOBODY, NOGROUP, lambda: _flock(str(lock))) as said:
            assert said.startswith("PermissionError"), said


@needs_root
def test_a_lock_held_from_outside_through_an_old_wide_lock_file_does_not_keep_the_station_out(
    group_dir: Path, umask_022: None
) -> None:
    lock = group_dir / (DB_NAME + ".lock")
    fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o640)  # what an older version left: group-readable
    os.close(fd)
    with holding(NOBODY, NOGROUP, lambda: _flock(str(lock))) as said:
        assert said == "held", "the observer got the lock (the attack)"
        with Records.open(group_dir) as rec:  # refused before: "already open for writing by another process"
            wrote_a_row(rec)
            assert mode(lock) == 0o600
            assert rec.patients()[0].id == "P-001"


def test_a_second_station_of_the_same_user_is_still_refused(tmp_path: Path) -> None:
    with Records.open(tmp_path / "var"):
        with pytest.raises(Exception, match="already open for writing by another process"):
            Records.open(tmp_path / "var")


def test_a_symlink_planted_as_the_lock_is_replaced_not_followed(tmp_path: Path) -> None:
    data = tmp_path / "var"
    data.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    (data / (DB_NAME + ".lock")).symlink_to(victim)
    with Records.open(data):
        assert not (data / (DB_NAME + ".lock")).is_symlink()
    assert victim.read_text() == "keep me"


# ----------------------------------------------------------------------------- item 2: a bounded queue


def test_the_writer_queue_is_bounded_urgent_rows_keep_a_reserve_and_reads_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database, "MAX_QUEUED", 50)
    monkeypatch.setattr(database, "URGENT_RESERVE", 10)
    rec = Records.open(tmp_path / "var")
    try:
        rec.add_patient("P-1", at=T0)
        sid = rec.start_session("P-1", cuffs=["A1"], plan_id="p", plan_name="P", started_at=T0)
        rec.flush()
        gate = threading.Event()
        rec._db.jobs.put(database.Call(lambda c: gate.wait(30), database.Future()))  # the writer is stuck
        time.sleep(0.05)
        for i in range(500):
            rec.session_sample(sid, "A1", T0 + i, 1.0, 2.0, 3.0, 2.0)
        for i in range(50):
            rec.record_command("obs@uid65534", "observer", f"flood {i}", T0 + i)
        queued = rec.health().queued
        assert queued <= 60, f"{queued} jobs queued: unbounded"
        h = rec.health()
        assert h.failed_writes == 500 - 50 + 50 - 10, "every dropped row is counted as lost"
        with pytest.raises(Exception, match="jobs behind"):
            rec.sessions()
        gate.set()
        deadline = time.monotonic() + 10
        while rec.health().queued and time.monotonic() < deadline:
            time.sleep(0.01)
        rec.flush()
        assert len(rec.samples(sid)) == 50 and len(rec.commands()) == 10
    finally:
        gate.set()
        rec.close()


# ----------------------------------------------------------------------------- item 3: commands are urgent


def test_a_command_row_is_committed_at_once_like_an_alarm(tmp_path: Path) -> None:
    with Records.open(tmp_path / "var", commit_interval_s=1.0) as rec:
        rec.add_patient("P-1", at=T0)
        rec.record_alarm("high", "LEAK", "x", raised_at=T0)  # commits what came before it
        time.sleep(0.1)
        rec.record_command("obs@uid65534", "observer", "EMERGENCY DEFLATE ALL", T0)
        other = sqlite3.connect(tmp_path / "var" / DB_NAME)
        try:
            deadline = time.monotonic() + 0.6  # well inside the 1 s commit interval
            seen: list[tuple[str, str]] = []
            while time.monotonic() < deadline and not seen:
                seen = other.execute("SELECT who, role FROM commands").fetchall()
                time.sleep(0.01)
            assert seen == [("obs@uid65534", "observer")]
        finally:
            other.close()


# ----------------------------------------------------------------------------- item 4: text on its way out


@pytest.fixture
def hostile_session(tmp_path: Path) -> Iterator[tuple[Records, int]]:
    rec = Records.open(tmp_path / "var")
    rec.add_patient("P-1", at=T0)
    sid = rec.start_session(
        "P-1", cuffs=["=HYPERLINK(1)"], plan_id="+cmd", plan_name="@SUM(A1)\x1b[2J", started_at=T0,
        position="seated\x1b]0;owned\x07",
    )  # fmt: skip
    rec.session_sample(sid, "=HYPERLINK(1)", T0 + 1, -3.0, 1.0, 2.0, 1.0)
    rec.record_alarm("high", "LEAK", "leak\x1b[31m on \r\nFAKE LINE", raised_at=T0 + 1)
    rec.record_command("ana\x1b[8m@uid1", "operator", "set patient \x1b[2J", T0 + 2)
    rec.end_session(
        sid, "completed", ended_at=T0 + 3, sets_done=1, reps_per_set=[1], occlusion_s=1.0, fidelity=1.0
    )  # fmt: skip
    rec.flush()
    try:
        yield rec, sid
    finally:
        rec.close()


def test_the_report_shows_control_characters_instead_of_sending_them(hostile_session: tuple[Records, int]) -> None:
    rec, sid = hostile_session
    text = session_report(rec, sid) + session_audit(rec, sid)
    assert "\x1b" not in text and "\x07" not in text and "\r" not in text
    assert "\\x1b[2J" in text and "seated\\x1b]0;owned\\x07" in text
    assert "leak\\x1b[31m on \\x0d\\x0aFAKE LINE" in text, "a message cannot start a fake line of its own"
    assert not any(line.startswith("FAKE LINE") for line in text.splitlines())


def test_csv_cells_a_spreadsheet_would_run_are_text_numbers_stay_numbers(
    hostile_session: tuple[Records, int], tmp_path: Path
) -> None:
    rec, sid = hostile_session
    out = export_session_csv(rec, sid, tmp_path / "s.csv")
    rows = list(csv.reader(out.open(newline="")))
    cells = [c for row in rows for c in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "@") or (c[:1] == "-" and not _number(c))]
    assert "'=HYPERLINK(1)" in cells and "'+cmd" not in cells  # plan id sits inside "name (id)"
    assert "'@SUM(A1)\\x1b[2J (+cmd)" in cells
    assert "-3.0" in cells, "a negative number is a number, not a formula"
    assert mode(out) == 0o600


def _number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def test_the_csv_export_never_writes_through_a_planted_link(
    hostile_session: tuple[Records, int], tmp_path: Path
) -> None:
    rec, sid = hostile_session
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    target = tmp_path / "out.csv"
    for pid in range(os.getpid() - 50, os.getpid() + 50):  # every name the old export could pick
        (tmp_path / f".out.csv.{pid}.tmp").symlink_to(victim)
    export_session_csv(rec, sid, target)
    assert victim.read_text() == "keep me"
    assert not target.is_symlink() and mode(target) == 0o600
    assert target.read_text().startswith("#session,")


def test_the_audit_trail_of_a_day_lists_who_did_what_in_which_role(tmp_path: Path) -> None:
    day = date(2027, 3, 4)
    noon = datetime(2027, 3, 4, 12).timestamp()
    with Records.open(tmp_path / "var") as rec:
        rec.record_command("nobody@uid65534", "observer", "attach", noon)
        rec.record_command("nobody@uid65534", "observer", "inflate {} (refused: observer)", noon + 1)
        rec.record_command("ana@uid1000", "operator", "inflate A1 80 mmHg", noon + 2)
        rec.record_command("ana@uid1000", "operator", "the day after", noon + 86400)
        text = day_audit(rec, day)
    assert "Audit trail of 2027-03-04 (3 rows)" in text
    lines = text.splitlines()[1:]
    assert [ln.split()[3:5] for ln in lines] == [
        ["nobody@uid65534", "observer"],
        ["nobody@uid65534", "observer"],
        ["ana@uid1000", "operator"],
    ]
    assert lines[1].endswith("inflate {} (refused: observer)")
