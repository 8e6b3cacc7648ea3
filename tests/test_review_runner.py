"""Safety review of the runner: a stop signal during start-up must not be followed by an inflate."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from console import app_runner
from tests.station_support import make_config


async def test_measure_lop_does_not_inflate_after_a_sigterm_during_start(tmp_path: Path, monkeypatch, capsys) -> None:
    config = make_config(tmp_path, controllers=1)
    made: list = []
    real_build = app_runner.build_station

    def build(cfg, records=None):
        station = real_build(cfg, records)
        real_start, real_measure = station.start, station.measure_lop
        measured: list[str] = []

        async def start() -> None:
            os.kill(os.getpid(), signal.SIGTERM)  # systemd stops us while the links are still coming up
            await real_start()

        async def measure(cuff_id: str, *, position: str = "seated") -> None:
            measured.append(cuff_id)
            await real_measure(cuff_id, position=position)

        station.start, station.measure_lop = start, measure  # type: ignore[method-assign]
        made.append((station, measured))
        return station

    monkeypatch.setattr(app_runner, "build_station", build)
    code = await app_runner.measure_lop(config, cuff_id="A1", position="seated")
    station, measured = made[0]
    assert code != 0
    assert measured == [], "a LOP measurement (an inflate) started after SIGTERM"
    assert station.stopped
    assert "FAILED" in capsys.readouterr().out
