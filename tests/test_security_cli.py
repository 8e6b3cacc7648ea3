"""Issue 13 at the command line: ``bfr-console report --audit`` and a log file only the station reads."""

from __future__ import annotations

import os
import shutil
import stat
from datetime import datetime
from pathlib import Path

import pytest

from console import cli
from console.records.store import Records

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    cfg = tmp_path / "config.toml"
    shutil.copy(ROOT / "config.toml", cfg)  # records go to tmp_path/var
    return cfg


def test_report_lists_the_audit_trail_of_a_day_and_of_a_session(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    noon = datetime(2027, 3, 4, 12).timestamp()
    with Records.open(config.parent / "var") as rec:
        rec.record_command("nobody@uid65534", "observer", "attach", noon)
        rec.record_command("nobody@uid65534", "observer", "inflate {} (refused: observer)", noon + 1)
        rec.add_patient("P-1", at=noon)
        sid = rec.start_session("P-1", cuffs=["A1"], plan_id="p", plan_name="P", started_at=noon + 2)
        rec.record_command("ana@uid1000", "operator", "inflate A1 80 mmHg \x1b[2J", noon + 3)
        rec.end_session(sid, "completed", ended_at=noon + 4, sets_done=1, reps_per_set=[1], occlusion_s=1, fidelity=1)
        rec.record_command("ana@uid1000", "operator", "after the session", noon + 5)
    assert cli.main(["report", "--config", str(config), "--audit", "--day", "2027-03-04"]) == 0
    day = capsys.readouterr().out
    assert "Audit trail of 2027-03-04 (4 rows)" in day
    assert "nobody@uid65534        observer  inflate {} (refused: observer)" in day
    assert "\x1b" not in day and "inflate A1 80 mmHg \\x1b[2J" in day
    assert cli.main(["report", "--config", str(config), "--audit", "--session", str(sid)]) == 0
    one = capsys.readouterr().out
    assert f"Audit trail of session #{sid} (patient P-1," in one
    assert "inflate A1 80 mmHg" in one and "attach" not in one and "after the session" not in one
    assert cli.main(["report", "--config", str(config), "--audit", "--session", "99"]) == 2
    assert "no session 99" in capsys.readouterr().err


def test_a_bad_day_is_refused_with_the_format(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["report", "--config", str(config), "--audit", "--day", "04/03/2027"])
    assert "write it YYYY-MM-DD" in capsys.readouterr().err


def test_the_log_file_is_created_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        handler = cli.private_log_handler(tmp_path / "bfr-console.log")
        handler.close()
        assert stat.S_IMODE((tmp_path / "bfr-console.log").stat().st_mode) == 0o600
        os.chmod(tmp_path / "bfr-console.log", 0o644)  # as an older version left it
        cli.private_log_handler(tmp_path / "bfr-console.log").close()
        assert stat.S_IMODE((tmp_path / "bfr-console.log").stat().st_mode) == 0o600
        victim = tmp_path / "victim"
        victim.write_text("")
        (tmp_path / "link.log").symlink_to(victim)
        with pytest.raises(OSError):
            cli.private_log_handler(tmp_path / "link.log")
    finally:
        os.umask(old)
