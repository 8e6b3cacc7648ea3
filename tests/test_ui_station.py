"""The keys that act, on the real Station over its in-process emulated controllers.

Each test presses the key in the real Textual app and checks the effect at the
emulator's firmware (``station.emulators[...]``), not just the call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from textual import events
from textual.widgets import Input

from console.station.station import Station
from console.ui.app import BfrApp
from console.ui.screens.dialogs import InflateDialog
from console.ui.screens.lists import AlarmListScreen, HelpScreen
from tests.station_support import make_config
from tests.ui_support import notices, press, screen_lines, screen_text, wait_for


@pytest.fixture
async def station(tmp_path: Path) -> AsyncIterator[Station]:
    st = Station(make_config(tmp_path))
    await st.start()
    try:
        yield st
    finally:
        await st.stop()


def fw(station: Station, controller: str = "A"):  # type: ignore[no-untyped-def]
    return station.emulators[controller].firmware


async def test_inflate_nudge_deflate_keys_reach_the_emulator(station: Station) -> None:
    app = BfrApp(station, bell=False, term="xterm")
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await wait_for(pilot, lambda: "VENTED" in screen_text(app), 10, "cuffs shown VENTED")
        await press(pilot, "2", "i", *"100", "enter")
        await wait_for(pilot, lambda: fw(station).channel(2).target == 100, 10, "A2 target 100 at the emulator")
        assert fw(station).channel(1).target == 0
        await wait_for(pilot, lambda: "HOLDING" in screen_text(app) or "INFLATING" in screen_text(app), 10)
        await press(pilot, "plus")
        await wait_for(pilot, lambda: fw(station).channel(2).target == 105, 10, "nudged up")
        await press(pilot, "minus", "minus")
        await wait_for(pilot, lambda: fw(station).channel(2).target == 95, 10, "nudged down twice")
        await press(pilot, "d")
        await wait_for(pilot, lambda: fw(station).channel(2).target == 0, 10, "A2 deflated at the emulator")
        await wait_for(pilot, lambda: fw(station).channel(2).state == "VENTED", 10)


async def test_refused_command_from_the_station_is_a_notification(station: Station) -> None:
    app = BfrApp(station, bell=False, term="xterm")
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await wait_for(pilot, lambda: "VENTED" in screen_text(app), 10)
        await press(pilot, "i", *"119", "enter")
        await wait_for(pilot, lambda: fw(station).channel(1).target == 119, 10)
        await press(pilot, "plus")  # above max_mmhg_without_lop = 120: the station refuses
        await wait_for(pilot, lambda: any("refused" in str(n).lower() or "120" in n for n in notices(app)), 10)
        assert fw(station).channel(1).target == 119, "a refused nudge changes nothing"


@pytest.mark.parametrize("key", ["f12", "ctrl+e"])
async def test_emergency_key_deflates_every_emulated_channel_from_any_screen(station: Station, key: str) -> None:
    app = BfrApp(station, bell=False, term="xterm")
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await wait_for(pilot, lambda: "VENTED" in screen_text(app), 10)
        for where in ("inflate dialog", "help", "alarm list", "dashboard"):
            await station.inflate("A1", mmhg=80)
            await station.inflate("B2", mmhg=70)
            assert fw(station, "A").channel(1).target == 80 and fw(station, "B").channel(2).target == 70
            if where == "inflate dialog":
                await press(pilot, "i", *"9")
                assert isinstance(app.screen, InflateDialog) and app.focused is not None
            elif where == "help":
                await press(pilot, "f1")
                assert isinstance(app.screen, HelpScreen)
            elif where == "alarm list":
                await press(pilot, "l")
                assert isinstance(app.screen, AlarmListScreen)
            await press(pilot, key)
            await wait_for(
                pilot,
                lambda: all(fw(station, c).channel(ch).target == 0 for c in "AB" for ch in (1, 2)),
                10,
                f"every channel vented from the {where}",
            )
            await wait_for(
                pilot,
                lambda: (e := station.snapshot().emergency) is not None and set(e.confirmed) == {"A", "B"},
                10,
                "both controllers confirmed",
            )
            await wait_for(
                pilot,
                lambda: "DONE - confirmed: A, B" in screen_text(app),
                10,
                "confirmation on screen: " + screen_lines(app)[-2],
            )
            if where == "inflate dialog":
                # The emergency closed the dialog with the "9" in it (issue 11, item 9): "0" and Enter
                # typed after it reach the dashboard, and no cuff is inflated to 90 mmHg.
                assert not isinstance(app.screen, InflateDialog)
                await press(pilot, "0", "enter")
                await pilot.pause(0.2)
                assert all(fw(station, c).channel(ch).target == 0 for c in "AB" for ch in (1, 2))
            elif where in ("help", "alarm list"):
                await press(pilot, "q")
            assert not isinstance(app.screen, (InflateDialog, HelpScreen, AlarmListScreen))


async def test_offline_controller_shows_offline_and_no_number(station: Station) -> None:
    app = BfrApp(station, bell=False, term="xterm")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: "VENTED" in screen_text(app), 10)
        await station.emulators["B"].unplug()
        await wait_for(pilot, lambda: app.dashboard.panels["B1"].cuff.state == "OFFLINE", 10, "B1 offline")
        panel = app.dashboard.panels["B1"]
        lines = [t.plain for t in panel.lines(36)]
        assert "OFFLINE" in lines[0]
        assert "0.0" not in "".join(lines) and "no data" in lines[2]
        # The banner raises the controller's high alarm (the header's "no alarms" must not count).
        await wait_for(pilot, lambda: app.dashboard.banner.has_class("-high"), 10, "a high alarm in the banner")
        assert "no alarms" not in app.dashboard.header.plain


async def test_the_pull_loop_ticking_while_textual_shuts_down_raises_nothing(station: Station) -> None:
    """CI once failed here: the 20 fps timer ticked after Textual had emptied its screen stacks.

    Textual 8 clears the stacks inside ``App._close_all`` while app timers may still fire; the
    tick is made to happen at exactly that moment, before and after the stacks go.
    """
    app = BfrApp(station, bell=False, term="xterm")
    ticked: list[bool] = []
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await wait_for(pilot, lambda: "VENTED" in screen_text(app), 10)
        await press(pilot, "i", *"11")  # a dialog on top of the dashboard, as when a therapist quits mid-entry
        close_all = app._close_all

        async def close_all_with_ticks() -> None:
            app.refresh_now()
            ticked.append(True)
            await close_all()
            app.refresh_now()
            ticked.append(True)

        app._close_all = close_all_with_ticks  # type: ignore[method-assign]
    assert ticked == [True, True], "both ticks ran without raising"
    assert fw(station).channel(1).target == 0, "quitting the console mid-dialog inflated nothing"


async def test_keys_typed_in_one_burst_after_i_land_in_the_inflate_dialog(station: Station) -> None:
    """``i70`` Enter as a terminal sends a quick typist's keys: read together, before the dialog opens.

    Posted to the app the way Textual's driver posts what it read in one go (no pause between
    them, unlike ``pilot.press``); seen in tmux, where ``70`` and Enter used to be lost.
    """
    app = BfrApp(station, bell=False, term="xterm")
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await wait_for(pilot, lambda: "VENTED" in screen_text(app), 10)
        driver = app._driver
        assert driver is not None
        for key, char in (("i", "i"), ("7", "7"), ("0", "0"), ("enter", "\r")):
            event = events.Key(key, char)
            event.set_sender(app)
            driver.send_message(event)  # what Pilot does per key, without waiting for idle in between
        await wait_for(pilot, lambda: fw(station).channel(1).target == 70, 10, "A1 inflated to the burst's 70")
        await wait_for(pilot, lambda: not isinstance(app.screen, InflateDialog), 10, "the dialog closed on the answer")
        assert app.selected == "A1", "the digits did not select another cuff on the way"
        await press(pilot, "d")
        await wait_for(pilot, lambda: fw(station).channel(1).target == 0, 10, "A1 deflated")


async def test_backspace_and_enter_edit_and_submit_the_inflate_field(station: Station) -> None:
    """A mistyped target is corrected with Backspace (the type-ahead forwarding once swallowed it)."""
    app = BfrApp(station, bell=False, term="xterm")
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await wait_for(pilot, lambda: "VENTED" in screen_text(app), 10)
        await press(pilot, "i", *"609", "backspace", "backspace")
        assert isinstance(app.screen, InflateDialog)
        assert app.screen.query_one(Input).value == "6"
        await press(pilot, "5", "enter")
        await wait_for(pilot, lambda: fw(station).channel(1).target == 65, 10, "A1 inflated to the corrected 65")
        await press(pilot, "d")
        await wait_for(pilot, lambda: fw(station).channel(1).target == 0, 10, "A1 deflated")
