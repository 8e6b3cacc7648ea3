"""``bfr-console measure-lop`` end to end: the shipped config, a real process, real ptys, real records.

One whole measurement on the shipped emulated limb (A1, true LOP 205 mmHg): up to about 60 s of real
time, which is what the procedure takes; the file holds only this test.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_LOP_A1 = 205.0


def test_measure_lop_prints_the_lop_or_why_it_failed(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    shutil.copy(ROOT / "config.toml", cfg)  # records go to tmp_path/var, not the repository
    exe = Path(sys.executable).with_name("bfr-console")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "console.cli"]
    proc = subprocess.run(
        [*cmd, "measure-lop", "--config", str(cfg), "--cuff", "A1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    assert lines, f"no output; stderr:\n{proc.stderr[-2000:]}"
    assert len(lines) == 1, f"stdout is the answer alone: {lines}"
    # Progress went to stderr as it happened (step, pressure, elapsed), and no log line came with it.
    progress = proc.stderr.splitlines()
    assert any(re.fullmatch(r"measuring A1: step \d+ at \d+ mmHg, cuff -?\d+ mmHg, \d+:\d\d", p) for p in progress)
    assert not [p for p in progress if " INFO " in p or " WARNING " in p], "the log goes to the file, not here"
    last = lines[-1]
    ok = re.fullmatch(r"LOP (\d+)( confidence=[0-9.]+)? position=seated", last)
    failed = re.fullmatch(r"FAILED .+", last)
    assert ok or failed, f"unexpected output {last!r}"
    db = sqlite3.connect(tmp_path / "var" / "records.sqlite3")
    try:
        rows = db.execute("SELECT cuff_id, lop_mmhg, source, position FROM lop_measurements").fetchall()
        cmds = [r[0] for r in db.execute("SELECT what FROM commands")]
    finally:
        db.close()
    assert "measure LOP A1 (seated)" in cmds
    if ok:
        assert proc.returncode == 0
        lop = float(ok.group(1))
        assert abs(lop - SHIPPED_LOP_A1) <= 15.0, last
        assert len(rows) == 1 and rows[0][0] == "A1" and rows[0][2] == "auto" and rows[0][3] == "seated"
        assert abs(rows[0][1] - lop) < 1.0
    else:
        assert proc.returncode == 1 and rows == []
