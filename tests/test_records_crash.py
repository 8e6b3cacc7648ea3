"""kill -9 mid-session: reopening keeps every committed second, in order, and marks the session ``crash``."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from console.records.schema import DB_NAME
from console.records.store import Records

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_800_000_000.0
CUFFS = ("A1", "A2")

CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from console.records.store import Records

    T0 = 1_800_000_000.0
    r = Records.open(Path(sys.argv[1]), commit_interval_s=0.2)
    r.add_patient("P-001", at=T0)
    sid = r.start_session("P-001", cuffs=["A1", "A2"], plan_id="p", plan_name="P", started_at=T0,
                          target_mmhg=160, target_pct_lop=80, lop_mmhg=200, position="seated")
    r.record_alarm("high", "OFF_TARGET", "A2 drifted", raised_at=T0 + 0.5, cuff="A2")
    t = 0
    while True:
        for cuff in ("A1", "A2"):
            r.session_sample(sid, cuff, T0 + t, 150.0, 160.0 + t % 7, 170.0, 160.0, 1.0)
        if t == 40:
            r.flush()  # once; after this only the writer's own interval commits make rows durable
            print(f"committed {sid} {t}", flush=True)
        t += 1
        time.sleep(0.002)
    """
)


def test_sigkill_mid_session_keeps_a_gapless_prefix_and_recovers_as_crash(tmp_path: Path) -> None:
    data = tmp_path / "data"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(data)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    killer = threading.Timer(60.0, child.kill)  # never hang the suite if the child misbehaves
    killer.start()
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.startswith("committed"), child.stderr.read() if child.stderr else ""
        _, sid_text, t_text = line.split()
        sid, last = int(sid_text), int(t_text)
        # Let the child run on until its writer has committed more rows by itself (seen from outside).
        seen = 0
        deadline = time.monotonic() + 20.0
        with sqlite3.connect(data / DB_NAME) as c:
            while seen < 2 * (last + 1) + 20 and time.monotonic() < deadline:
                seen = c.execute("SELECT COUNT(*) FROM session_samples").fetchone()[0]
                time.sleep(0.005)
        assert seen >= 2 * (last + 1) + 20
        os.kill(child.pid, signal.SIGKILL)  # mid-way: the child is writing its next seconds
        child.wait()
    finally:
        killer.cancel()
    assert child.returncode == -signal.SIGKILL

    with Records.open(data) as r:
        assert r.recovered == (sid,)
        rows = [(x.t - T0, x.cuff_id) for x in r.samples(sid)]
        # Everything committed before the kill is there (flushed, or committed by the writer's interval)...
        assert len(rows) >= seen
        # ...and what survived is exactly the first rows in the order written: no gaps, no half seconds lost
        # in the middle (rows commit in queue order, whole transactions at a time).
        written = [(float(t), cuff) for t in range(len(rows) // 2 + 1) for cuff in CUFFS]
        assert rows == written[: len(rows)]
        last_t = max(t for t, _ in rows)
        print(f"flushed up to t={last}, seen {seen} rows before the kill, {len(rows)} survived, last t={last_t}")
        s = r.session(sid)
        assert (s.end_reason, s.ended_at) == ("crash", T0 + last_t)
        assert s.occlusion_s == last_t + 1  # seconds with a target
        assert s.fidelity == 1.0
        assert [a.cause for a in r.alarms()] == ["OFF_TARGET"]
        assert r.samples(sid, "A2")[3].pmean == 163.0  # values intact, not just rows
