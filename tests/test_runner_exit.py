"""The runner and stop signals: a process stuck in its screen teardown is ended, and a stop signal during
start-up is not followed by an inflate."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from console import app_runner
from tests.station_support import make_config

REPO = Path(__file__).resolve().parents[1]


def test_a_process_stuck_after_the_deflate_is_ended() -> None:
    code = (
        "import time, console.app_runner as r\n"
        "r.EXIT_GRACE_S = 0.3\n"
        "r.exit_if_stuck('in a test')\n"
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
        "r.exit_if_stuck('in a test')\n"
        "time.sleep(0.2)\n"
        "print('CLOSED NORMALLY')\n"
        "raise SystemExit(7)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 7 and "CLOSED NORMALLY" in proc.stdout


async def test_measure_lop_does_not_inflate_after_a_sigterm_during_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = make_config(tmp_path, controllers=1)
    made: list[tuple[Any, list[str]]] = []
    real_build = app_runner.build_station

    def build(cfg: Any, records: Any = None) -> Any:
        station = real_build(cfg, records)
        real_start, real_measure = station.start, station.measure_lop
        measured: list[str] = []

        async def start() -> None:
            os.kill(os.getpid(), signal.SIGTERM)  # systemd stops us while the links are still coming up
            await real_start()

        async def measure(cuff_id: str, *, position: str = "seated") -> None:
            measured.append(cuff_id)
            await real_measure(cuff_id, position=position)

        station.start, station.measure_lop = start, measure
        made.append((station, measured))
        return station

    monkeypatch.setattr(app_runner, "build_station", build)
    code = await app_runner.measure_lop(config, cuff_id="A1", position="seated")
    station, measured = made[0]
    assert code != 0
    assert measured == [], "a LOP measurement (an inflate) started after SIGTERM"
    assert station.stopped
    assert "FAILED" in capsys.readouterr().out
