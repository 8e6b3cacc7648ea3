"""The console's last resort after a stop signal: a process stuck in its screen teardown is ended."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_a_process_stuck_after_the_deflate_is_ended() -> None:
    code = (
        "import time, console.app_runner as r\n"
        "r.EXIT_GRACE_S = 0.3\n"
        "r._exit_if_stuck('in a test')\n"
        "time.sleep(60)\n"  # stands for a teardown blocked on a dead terminal
        "print('NOT ENDED')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0
    assert "NOT ENDED" not in proc.stdout


def test_a_process_that_closes_in_time_is_not_cut_short() -> None:
    code = (
        "import time, console.app_runner as r\n"
        "r.EXIT_GRACE_S = 5.0\n"
        "r._exit_if_stuck('in a test')\n"
        "time.sleep(0.2)\n"
        "print('CLOSED NORMALLY')\n"
        "raise SystemExit(7)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 7 and "CLOSED NORMALLY" in proc.stdout
