"""Therapy keys on the real Station with its therapy engine, over in-process emulated controllers.

A tiny plan (3 then 2 reps, one a second, short held rest) keeps each test to
a few seconds; the effect is checked at the emulator's firmware (the channel's
target), and on screen (the panel's phase, set and rep).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from console.station.station import Station
from console.therapy.plans import validate_plan
from console.ui.app import BfrApp
from console.ui.screens.dialogs import ConfirmDialog
from console.ui.screens.therapy import DopplerLopDialog, SessionDialog
from tests.station_support import make_config
from tests.ui_support import big_cue, notices, press, screen_text, wait_for

therapy = pytest.importorskip("console.therapy.manager")

TINY = validate_plan(
    {
        "id": "tiny",
        "name": "Tiny 3-2",
        "description": "Two short sets for the tests.",
        "limb": "leg",
        "pct_lop": 50.0,
        "sets": [3, 2],
        "cadence_s": 1.0,
        "rest_s": 3.0,
        "rest_mode": "hold",
        "between_exercises_s": 1.0,
    },
    "tiny",
)


@pytest.fixture
async def station(tmp_path: Path) -> AsyncIterator[Station]:
    config = make_config(tmp_path)
    config = replace(config, plans={TINY.id: TINY, **config.plans})
    st = Station(config)
    st.attach_sessions(therapy.TherapyManager(st))
    await st.start()
    try:
        yield st
    finally:
        await st.stop()


def fw(station: Station, controller: str = "A"):  # type: ignore[no-untyped-def]
    return station.emulators[controller].firmware


def cuff(station: Station, cuff_id: str):  # type: ignore[no-untyped-def]
    return next(c for c in station.snapshot().cuffs if c.id == cuff_id)


async def _start_tiny(app: BfrApp, station: Station, pilot: Pilot[Any]) -> None:
    """Enter a Doppler LOP of 200 on A1 with ``o``, then start the tiny plan with ``p``."""
    await wait_for(pilot, lambda: "VENTED" in screen_text(app), 10, "cuffs shown VENTED")
    await press(pilot, "o")
    assert isinstance(app.screen, DopplerLopDialog)
    await press(pilot, *"200", "tab", "tab", *"11", "enter")
    await wait_for(pilot, lambda: cuff(station, "A1").lop == 200.0, 10, "LOP stored")
    assert not isinstance(app.screen, DopplerLopDialog)
    await press(pilot, "p")
    assert isinstance(app.screen, SessionDialog)
    assert "Tiny 3-2  [50% LOP]" in screen_text(app)
    await press(pilot, *"P-7", "enter")
    await wait_for(pilot, lambda: not isinstance(app.screen, SessionDialog), 10, "session started: " + screen_text(app))
    await wait_for(pilot, lambda: fw(station).channel(1).target == 100, 10, "A1 inflating to 50 % of 200")
    assert fw(station).channel(2).target == 0, "only the chosen cuff"


async def test_doppler_lop_then_a_session_from_the_keys_inflates_counts_reps_and_pauses(station: Station) -> None:
    app = BfrApp(station, bell=False, term="xterm")
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await _start_tiny(app, station, pilot)
        await wait_for(pilot, lambda: "set 1/2  rep 1/3" in screen_text(app), 20, "the metronome counts")
        text = screen_text(app)
        assert big_cue(text) in ("LIFT", "LOWER") and "patient P-7" in text and "Tiny 3-2" in text
        assert cuff(station, "A1").patient_id == "P-7"
        await press(pilot, "space")
        await wait_for(pilot, lambda: "PAUSED" in screen_text(app), 10, "paused")
        await press(pilot, "right_square_bracket")
        await wait_for(pilot, lambda: "rep 2/3" in screen_text(app), 10, "rep +1 by hand")
        await press(pilot, "space")
        await wait_for(pilot, lambda: "PAUSED" not in screen_text(app), 10, "resumed")
        assert fw(station).channel(1).target == 100, "an operator's pause keeps the pressure"
        assert not any("refused" in n.lower() for n in notices(app)), notices(app)


async def test_stop_from_x_y_ends_the_session_and_vents_the_cuff(station: Station) -> None:
    app = BfrApp(station, bell=False, term="xterm")
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await _start_tiny(app, station, pilot)
        await press(pilot, "x")
        assert isinstance(app.screen, ConfirmDialog)
        await press(pilot, "y")
        await wait_for(pilot, lambda: "STOPPED" in screen_text(app), 10, "stopped on screen")
        await wait_for(pilot, lambda: fw(station).channel(1).target == 0, 10, "A1 vented at the emulator")
        await wait_for(pilot, lambda: "VENTED" in app.dashboard.panels["A1"].lines(36)[0].plain, 10)


async def test_session_refused_without_a_lop_is_said_in_the_dialog(station: Station) -> None:
    app = BfrApp(station, bell=False, term="xterm")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: "VENTED" in screen_text(app), 10)
        await press(pilot, "p", *"P-7", "enter")
        await wait_for(pilot, lambda: "LOP unknown" in screen_text(app), 10, "the station's sentence in the dialog")
        assert isinstance(app.screen, SessionDialog)
        assert fw(station).channel(1).target == 0
        await press(pilot, "f10")


async def test_lop_measurement_from_m_shows_progress_and_a_deflate_ends_it(station: Station) -> None:
    app = BfrApp(station, bell=False, term="xterm")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: "VENTED" in screen_text(app), 10)
        await press(pilot, "m", "enter")
        await wait_for(pilot, lambda: "measuring LOP" in screen_text(app), 10, "progress on the panel")
        await wait_for(pilot, lambda: fw(station).channel(1).target > 0, 15, "the staircase inflates A1")
        await press(pilot, "d")
        await wait_for(pilot, lambda: fw(station).channel(1).target == 0, 10, "vented at the emulator")
        await wait_for(pilot, lambda: "LOP not measured" in screen_text(app), 10, "the panel says it ended")
