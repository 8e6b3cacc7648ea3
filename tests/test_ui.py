"""The console's keys and alarm display, driven through Textual's run_test on an in-memory station."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from textual.pilot import Pilot

from console.common.api import Priority, Role
from console.common.clock import ManualClock
from console.ui.app import BfrApp
from console.ui.screens.dialogs import ConfirmDialog, InflateDialog
from console.ui.screens.lists import AlarmListScreen, HelpScreen
from console.ui.widgets.cuff_panel import CuffPanel
from tests.ui_support import Call, FakeStation, notices, press, screen_text, wait_for


def make_app(station: FakeStation, **kw: object) -> tuple[BfrApp, ManualClock]:
    clock = ManualClock(start=0.0)
    app = BfrApp(station, clock=clock.monotonic, bell=kw.pop("bell", False), term="xterm", **kw)  # type: ignore[arg-type]
    return app, clock


def calls(station: FakeStation, name: str) -> list[Call]:
    return [c for c in station.calls if c.name == name]


def panel(app: BfrApp, cuff_id: str) -> CuffPanel:
    return app.dashboard.panels[cuff_id]


# -- selection ---------------------------------------------------------------------


async def test_number_keys_arrows_and_tab_select_a_cuff() -> None:
    st = FakeStation(4)
    app, _ = make_app(st)
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.selected == "A1" and panel(app, "A1").has_class("-selected")
        await press(pilot, "3")
        assert app.selected == "B1"
        assert panel(app, "B1").has_class("-selected") and not panel(app, "A1").has_class("-selected")
        assert "> B1" in panel(app, "B1").border_title.replace("▶", ">")
        await press(pilot, "right")
        assert app.selected == "B2"
        await press(pilot, "tab")
        assert app.selected == "A1"  # wraps
        await press(pilot, "shift+tab")
        assert app.selected == "B2"
        await press(pilot, "up")  # two columns at 80 wide
        assert app.selected == "A2"
        await press(pilot, "down")
        assert app.selected == "B2"
        await press(pilot, "9")  # no ninth cuff: nothing changes
        assert app.selected == "B2"


# -- commands ------------------------------------------------------------------------


async def test_inflate_dialog_validates_then_sends_pct_lop() -> None:
    st = FakeStation(4)
    app, _ = make_app(st)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await press(pilot, "i")
        assert isinstance(app.screen, InflateDialog)
        await press(pilot, *"95%", "enter")
        assert isinstance(app.screen, InflateDialog), "an invalid target keeps the dialog open"
        assert "above this cuff's maximum of 80" in screen_text(app)
        await press(pilot, "ctrl+u", *"abc", "enter")
        assert "Type a number" in screen_text(app)
        await press(pilot, "ctrl+u", *"80%", "enter")
        await wait_for(pilot, lambda: calls(st, "inflate"), what="inflate call")
        call = calls(st, "inflate")[0]
        assert call.args == ("A1",) and call.kwargs == {"mmhg": None, "pct_lop": 80.0}
        await wait_for(pilot, lambda: "INFLATING" in screen_text(app), what="INFLATING shown")
        assert panel(app, "A1").has_class("-inflated")


async def test_inflate_dialog_mmhg_and_cancel_without_escape() -> None:
    st = FakeStation(4)
    app, _ = make_app(st)
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "2", "i")
        await press(pilot, "f10")
        assert not isinstance(app.screen, InflateDialog)
        await press(pilot, "i", "tab", "tab", "enter")  # Input -> Inflate -> Cancel, Enter presses it
        assert not isinstance(app.screen, InflateDialog)
        assert not calls(st, "inflate")
        await press(pilot, "i", *"150", "enter")
        await wait_for(pilot, lambda: calls(st, "inflate"))
        assert calls(st, "inflate")[0].args == ("A2",)
        assert calls(st, "inflate")[0].kwargs == {"mmhg": 150.0, "pct_lop": None}


async def test_keys_typed_right_after_enter_do_not_change_the_target() -> None:
    """A fast typist: "15", Enter, "5" in one burst must inflate to 15 mmHg, never 155."""
    from textual import events

    st = FakeStation(4)
    app, _ = make_app(st)
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "i")
        assert isinstance(app.screen, InflateDialog)
        for key, char in (("1", "1"), ("5", "5"), ("enter", "\r"), ("5", "5")):
            event = events.Key(key, char)
            event.set_sender(app)
            app._driver.send_message(event)  # no waiting between keys
        await wait_for(pilot, lambda: calls(st, "inflate"), what="inflate call")
        assert calls(st, "inflate")[0].kwargs == {"mmhg": 15.0, "pct_lop": None}


async def test_nudge_and_deflate_keys_and_refusal_notification() -> None:
    st = FakeStation(4)
    st.set_cuff("A1", state="HOLDING", target=150.0, pressure=149.0)
    app, _ = make_app(st)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await press(pilot, "plus")
        await wait_for(pilot, lambda: len(calls(st, "nudge_target")) == 1)
        await press(pilot, "minus", "minus")
        await wait_for(pilot, lambda: len(calls(st, "nudge_target")) == 3)
        assert [c.args for c in calls(st, "nudge_target")] == [("A1", 5.0), ("A1", -5.0), ("A1", -5.0)]
        assert st.cuffs[0].target == 145.0
        await press(pilot, "d")
        await wait_for(pilot, lambda: calls(st, "deflate"))
        assert calls(st, "deflate")[0].args == ("A1",)
        st.refuse["deflate"] = "Cuff A2 is already vented."
        await press(pilot, "2", "d")
        await wait_for(pilot, lambda: "Cuff A2 is already vented." in notices(app), what="refusal shown")
        await press(pilot, "plus")  # A2 not inflated: the fake refuses the nudge
        await wait_for(pilot, lambda: any("not inflated" in n for n in notices(app)))


async def test_observer_sees_operator_keys_unavailable_but_keeps_emergency() -> None:
    st = FakeStation(4, role=Role.OBSERVER)
    app, _ = make_app(st)
    async with app.run_test(size=(80, 24)) as pilot:
        for action in ("inflate", "deflate", "nudge", "ack", "silence"):
            assert app.screen.check_action(action, ()) is None
        assert app.screen.check_action("select", (1,)) is True
        await press(pilot, "i", "d", "plus", "s", "a")
        await pilot.pause()
        assert not isinstance(app.screen, InflateDialog)
        assert st.calls == []
        await press(pilot, "f12")
        await wait_for(pilot, lambda: calls(st, "emergency_deflate"))
        assert "[observer]" in screen_text(app)


# -- emergency key everywhere --------------------------------------------------------------


async def _emergency_works(app: BfrApp, st: FakeStation, pilot: Pilot[Any], key: str) -> None:
    before = len(calls(st, "emergency_deflate"))
    await press(pilot, key)
    await wait_for(pilot, lambda: len(calls(st, "emergency_deflate")) == before + 1, what=f"{key} deflate")


@pytest.mark.parametrize("key", ["f12", "ctrl+e"])
async def test_emergency_key_on_every_screen_and_dialog(key: str) -> None:
    st = FakeStation(4)
    st.set_cuff("A1", state="HOLDING", target=150.0, pressure=150.0)
    app, _ = make_app(st)
    async with app.run_test(size=(80, 24)) as pilot:
        await _emergency_works(app, st, pilot, key)  # dashboard
        await press(pilot, "f1")
        assert isinstance(app.screen, HelpScreen)
        assert "EMERGENCY DEFLATE" in screen_text(app)
        await _emergency_works(app, st, pilot, key)
        await press(pilot, "enter")
        await press(pilot, "i", *"12")
        assert isinstance(app.screen, InflateDialog) and app.focused is not None
        assert app.focused.id == "target"
        await _emergency_works(app, st, pilot, key)
        assert len(app.screen_stack) == 1, "the emergency closes the inflate dialog (issue 11, item 9)"
        assert calls(st, "inflate") == [], "and what was typed in it is never sent"
        await press(pilot, "l")
        assert isinstance(app.screen, AlarmListScreen)
        await _emergency_works(app, st, pilot, key)
        await press(pilot, "q")
        st.set_cuff("A1", state="HOLDING", target=150.0, pressure=150.0)
        await pilot.pause()
        await press(pilot, "q")
        assert isinstance(app.screen, ConfirmDialog)
        await _emergency_works(app, st, pilot, key)
        assert isinstance(app.screen, ConfirmDialog), "the emergency key does not answer the dialog"


async def test_emergency_is_not_held_behind_a_pending_command() -> None:
    st = FakeStation(4)
    st.hold_commands = asyncio.Event()
    app, _ = make_app(st)
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "d")  # waits forever inside the station
        await wait_for(pilot, lambda: calls(st, "deflate"))
        await press(pilot, "f12")
        await wait_for(pilot, lambda: calls(st, "emergency_deflate"))
        st.hold_commands.set()


async def test_emergency_bar_shows_confirmed_and_pending_controllers() -> None:
    st = FakeStation(8)
    st.go_offline("ctl2")
    app, _ = make_app(st)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        text = screen_text(app)
        assert "F12 / Ctrl+E: EMERGENCY DEFLATE ALL" in text
        await press(pilot, "f12")
        await wait_for(pilot, lambda: "pending: ctl2" in screen_text(app), what="pending shown")
        assert "confirmed: ctl1" in screen_text(app)


# -- alarms ----------------------------------------------------------------------


async def test_alarm_appears_flashes_and_acknowledge_stops_it() -> None:
    st = FakeStation(4)
    app, clock = make_app(st, bell=True)
    bells: list[float] = []
    app.bell = lambda: bells.append(clock.monotonic())  # type: ignore[method-assign]
    async with app.run_test(size=(80, 24)) as pilot:
        st.set_cuff("A2", state="HOLDING", target=150.0, pressure=120.0)
        st.raise_alarm(Priority.HIGH, "OFF_TARGET", "A2", "A2 is 30 mmHg below target")
        app.refresh_now()
        await pilot.pause()
        banner = app.dashboard.banner
        assert "HIGH [NEW] A2: pressure too high. Check the hose; deflate if unsure." in screen_text(app)
        assert "1 alarm (1 high)" in screen_text(app)
        assert banner.has_class("-high") and panel(app, "A2").has_class("-alarm-high")
        phases = []
        for _ in range(4):
            app.refresh_now()
            phases.append((banner.has_class("-flash"), panel(app, "A2").flashing_on))
            clock.advance(0.25)
        assert phases == [(True, True), (False, False), (True, True), (False, False)]  # 2 Hz
        assert len(bells) >= 2, "a high alarm rings in bursts"
        await press(pilot, "2", "a")
        await wait_for(pilot, lambda: calls(st, "acknowledge"))
        assert calls(st, "acknowledge")[0].args == (1,)
        app.refresh_now()
        await pilot.pause()
        rung = len(bells)
        seen = set()
        for _ in range(12):
            clock.advance(0.25)
            app.refresh_now()
            seen.add((banner.has_class("-flash"), panel(app, "A2").flashing_on))
        assert seen == {(False, False)}, "acknowledged: steady colour, no flashing"
        assert panel(app, "A2").has_class("-alarm-high"), "colour stays while the condition lasts"
        assert len(bells) == rung, "acknowledged: no more bells"
        assert "HIGH [ACK]" in screen_text(app)


async def test_medium_flashes_slower_low_is_steady_and_silence_stops_the_bell() -> None:
    st = FakeStation(4)
    app, clock = make_app(st, bell=True)
    bells: list[float] = []
    app.bell = lambda: bells.append(clock.monotonic())  # type: ignore[method-assign]
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        st.raise_alarm(Priority.LOW, "LOP_OLD", "B1", "B1 LOP is older than 30 days")
        st.raise_alarm(Priority.MEDIUM, "LEAK", "A1", "A1 pump ran 8 s without pause")
        states = []
        clock.advance(1 / 0.6 / 8)  # sample mid-quarter, away from the phase edges
        for _ in range(8):
            app.refresh_now()
            states.append((panel(app, "A1").flashing_on, panel(app, "B1").flashing_on))
            clock.advance(1 / 0.6 / 4)
        assert [a for a, _ in states] == [True, True, False, False] * 2  # ~0.6 Hz
        assert {b for _, b in states} == {False} and panel(app, "B1").has_class("-alarm-low")
        assert bells, "medium alarm rings"
        await press(pilot, "s")
        await wait_for(pilot, lambda: calls(st, "silence"))
        assert calls(st, "silence")[0].args == (120.0,)
        await wait_for(pilot, lambda: any("silenced" in n for n in notices(app)))
        app.refresh_now()
        rung = len(bells)
        for _ in range(100):
            clock.advance(0.1)
            app.refresh_now()
        assert len(bells) == rung, "silenced: no bell"
        assert "silenced" in screen_text(app)
        await press(pilot, "A")
        await wait_for(pilot, lambda: calls(st, "acknowledge"))
        assert calls(st, "acknowledge")[0].args == (None,)


async def test_ack_with_nothing_on_selected_cuff_says_so() -> None:
    st = FakeStation(4)
    st.raise_alarm(Priority.HIGH, "LEAK", "A2", "A2 leak")
    app, _ = make_app(st)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await press(pilot, "a")
        await wait_for(pilot, lambda: any("No alarm on A1" in n for n in notices(app)))
        assert not calls(st, "acknowledge")


async def test_alarm_list_shows_log_and_acknowledges_highlighted() -> None:
    st = FakeStation(4)
    st.raise_alarm(Priority.MEDIUM, "LEAK", "A1", "A1 pump ran 8 s")
    st.raise_alarm(Priority.HIGH, "LINK_LOST", None, "Controller ctl1 stopped answering")
    app, _ = make_app(st)
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "l")
        assert isinstance(app.screen, AlarmListScreen)
        text = screen_text(app)
        assert "lost contact; cuffs vent" in text and "leak, the pump keeps running" in text
        assert "EMERGENCY DEFLATE" in text and "LINK_LOST" not in text
        await press(pilot, "enter")  # the technical cause, one key away
        assert "Technical cause: LINK_LOST: Controller ctl1 stopped answering" in screen_text(app)
        await press(pilot, "down", "a")  # second row: the older LEAK alarm
        await wait_for(pilot, lambda: calls(st, "acknowledge"))
        assert calls(st, "acknowledge")[0].args == (1,)
        await press(pilot, "l")
        assert not isinstance(app.screen, AlarmListScreen)


async def test_a_late_tick_of_a_closed_alarm_list_is_dropped_not_raised() -> None:
    """Textual stops a screen's timers after its children go: a tick in between must not raise."""
    st = FakeStation(4)
    st.raise_alarm(Priority.MEDIUM, "LEAK", "A1", "A1 pump ran 8 s")
    app, _ = make_app(st)
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "l")
        listing = app.screen
        assert isinstance(listing, AlarmListScreen)
        await press(pilot, "l")
        assert app.screen is not listing
        st.raise_alarm(Priority.HIGH, "LINK_LOST", None, "Controller ctl1 stopped answering")
        listing.refresh_log()  # the tick that came late
        assert len(listing.alarms) == 1  # dropped: the closed list did not re-read the log
        app.refresh_now()
        assert app.is_running
    app.refresh_now()  # after shutdown: dropped too


async def test_help_lists_every_key() -> None:
    st = FakeStation(4)
    app, _ = make_app(st)
    async with app.run_test(size=(120, 40)) as pilot:
        await press(pilot, "f1")
        assert isinstance(app.screen, HelpScreen)
        table = app.screen.query_one("#keys")
        keys = " ".join(str(table.get_row_at(i)[0]) for i in range(table.row_count))  # type: ignore[attr-defined]
        for k in (
            "F12",
            "Ctrl+E",
            "F1",
            "Ctrl+Q",
            "1-9",
            "Right",
            "Left",
            "Up",
            "Down",
            "Tab",
            "Shift+Tab",
            "i",
            "+",
            "-",
            "d",
            "a",
            "A",
            "s",
            "l",
            "q",
            "F10",
            "Enter",
            "y",
            "n",
        ):
            assert k in keys.split(" "), f"{k} missing from help: {keys}"
        await press(pilot, "f1")
        assert not isinstance(app.screen, HelpScreen)


# -- quitting ------------------------------------------------------------------------------


async def test_quit_without_kiosk_and_nothing_inflated_quits() -> None:
    st = FakeStation(4)
    app, _ = make_app(st)
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "q")
        await wait_for(pilot, lambda: not app.is_running, what="exit")


async def test_quit_asks_when_a_cuff_is_inflated_and_n_stays() -> None:
    st = FakeStation(4)
    st.set_cuff("B2", state="HOLDING", target=150.0, pressure=150.0)
    app, _ = make_app(st)
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "q")
        assert isinstance(app.screen, ConfirmDialog)
        assert "B2" in screen_text(app)
        await press(pilot, "n")
        assert not isinstance(app.screen, ConfirmDialog) and app.is_running
        await press(pilot, "q", "enter")  # Enter presses the focused "Stay"
        assert app.is_running and not isinstance(app.screen, ConfirmDialog)
        await press(pilot, "q", "y")
        await wait_for(pilot, lambda: not app.is_running, what="exit")


async def test_kiosk_never_quits_on_a_stray_key() -> None:
    st = FakeStation(4)
    app, _ = make_app(st, kiosk=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "ctrl+q")
        assert isinstance(app.screen, ConfirmDialog)
        await press(pilot, "x", "z", "escape")
        assert app.is_running
        await press(pilot, "ctrl+c", "ctrl+p", "q")
        assert app.is_running
        if isinstance(app.screen, ConfirmDialog):
            await press(pilot, "n")
        await press(pilot, "q")
        assert isinstance(app.screen, ConfirmDialog)
        await press(pilot, "y")
        await wait_for(pilot, lambda: not app.is_running, what="exit")


# -- failure paths ---------------------------------------------------------------------


class BrokenStation(FakeStation):
    """A station whose link is gone: every command raises something other than CommandRefused."""

    async def emergency_deflate(self):  # type: ignore[no-untyped-def]
        self.calls.append(Call("emergency_deflate"))
        raise ConnectionError("socket closed")

    async def deflate(self, cuff_id: str) -> None:
        raise OSError("link down")


async def test_failed_emergency_and_failed_command_are_said_loudly_and_the_app_keeps_running() -> None:
    st = BrokenStation(4)
    app, _ = make_app(st)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await press(pilot, "f12")
        await wait_for(pilot, lambda: any("EMERGENCY DEFLATE FAILED: socket closed" in n for n in notices(app)))
        await press(pilot, "d")
        await wait_for(pilot, lambda: any("Deflate A1 failed: link down" in n for n in notices(app)))
        assert app.is_running
        await press(pilot, "ctrl+e")  # the key still works after a failure
        await wait_for(pilot, lambda: len(calls(st, "emergency_deflate")) == 2)
