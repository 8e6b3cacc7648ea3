"""The console's safety fixes (issue 11, items 7 and 9), through the real app on the scripted station.

Item 7: text from a config, a controller or a person is drawn as plain text, never as Rich/Textual
markup and never as terminal codes: brackets are shown as typed, ``[/]`` crashes nothing, and an
escape sequence in a label cannot clear the screen.

Item 9: the emergency key closes every dialog that could command a cuff, discarding what was typed,
and a command asked for before the emergency is never sent after it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input

from console.common.api import EmergencySnapshot, PlanSummary, Priority, Role
from console.common.clock import ManualClock
from console.remote.client import RemoteStation
from console.remote.roles import Decision
from console.remote.server import StationServer
from console.ui.app import BfrApp
from console.ui.demo_station import PLANS, make_session
from console.ui.screens.dialogs import ConfirmDialog, InflateDialog, InflateRequest
from console.ui.screens.lists import AlarmListScreen
from console.ui.screens.therapy import DopplerLopDialog, MeasureLopDialog, SessionDialog
from tests import test_remote_fakes
from tests.ui_support import Call, FakeStation, notices, press, screen_lines, screen_text, wait_for

ESC_LABEL = "Knee \x1b[2J\x1b[31m"
"""A label that, drawn raw, would clear the screen and turn it red."""


def make_app(station: FakeStation, **kw: Any) -> BfrApp:
    clock = ManualClock(start=0.0)
    return BfrApp(station, clock=clock.monotonic, bell=False, term="xterm", **kw)


def calls(station: FakeStation, name: str) -> list[Call]:
    return [c for c in station.calls if c.name == name]


def on_dashboard(app: BfrApp) -> bool:
    """No dialog or other screen over the dashboard (a function, so the type checker does not narrow)."""
    return app.screen is app.dashboard


def no_control_characters(app: BfrApp) -> None:
    """Nothing the terminal would receive for the screen carries an ESC or another control character."""
    for y, line in enumerate(screen_lines(app)):
        bad = [ch for ch in line if ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0]
        assert not bad, f"row {y} carries control characters {bad!r}: {line!r}"


# -- item 7: text from outside is plain text ------------------------------------------------------


@pytest.mark.parametrize("label", ["Knee [/]", "Knee [post-op]", "[b]bold[/b] [red]x", "Knee [/"])
async def test_a_cuff_label_with_brackets_is_shown_exactly_and_crashes_nothing(label: str) -> None:
    st = FakeStation(4)
    st.set_cuff("A1", label=label)
    app = make_app(st)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert f"A1  {label} (leg)" in screen_text(app)
        await press(pilot, "i")
        assert isinstance(app.screen, InflateDialog)
        assert f"Inflate A1 ({label})" in screen_text(app)
        await press(pilot, "f10", "o")
        assert isinstance(app.screen, DopplerLopDialog)
        assert f"Doppler LOP for A1 ({label}, leg)" in screen_text(app)
        await press(pilot, "f10", "m")
        assert isinstance(app.screen, MeasureLopDialog)
        assert f"Measure the LOP on A1 ({label}, leg)" in screen_text(app)
        await press(pilot, "f10", "p")
        assert isinstance(app.screen, SessionDialog)
        assert f"Session on A1 ({label}, leg)" in screen_text(app)
        await press(pilot, "f10")
        assert on_dashboard(app)


async def test_a_partner_cuff_label_with_brackets_is_shown_in_the_session_dialog() -> None:
    st = FakeStation(4)
    st.set_cuff("A2", label="Knee [/] [b]")
    app = make_app(st)
    async with app.run_test(size=(100, 30)) as pilot:
        await press(pilot, "p")
        assert isinstance(app.screen, SessionDialog)
        await press(pilot, "tab", "tab")  # patient -> plans -> cuffs
        await press(pilot, "right")
        assert "A2 Knee [/] [b] too" in screen_text(app)


async def test_escape_characters_in_a_label_never_reach_the_terminal() -> None:
    st = FakeStation(4)
    st.set_cuff("A1", label=ESC_LABEL)
    app = make_app(st)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        no_control_characters(app)
        assert "Knee ?[2J?[31m" in screen_text(app), "the label is kept, its control characters shown as '?'"
        await press(pilot, "i")
        no_control_characters(app)
        assert "Inflate A1 (Knee ?[2J?[31m)" in screen_text(app)


async def test_the_station_name_is_plain_text() -> None:
    st = FakeStation(4, name="Bay [/] \x1b[2J")
    app = make_app(st)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert "Station: Bay [/] ?[2J" in screen_text(app)
        no_control_characters(app)


async def test_a_plan_named_with_markup_is_listed_and_described_literally() -> None:
    st = FakeStation(4)
    odd = PlanSummary("odd", "[b]x[/b] [/]", "Holds [/] for [red]30 s\x1b[2J", "leg", 60.0)
    st.plans = (odd, *PLANS)
    app = make_app(st)
    async with app.run_test(size=(100, 30)) as pilot:
        await press(pilot, "p")
        assert isinstance(app.screen, SessionDialog)
        text = screen_text(app)
        assert "[b]x[/b] [/]  [60% LOP]" in text
        assert "Holds [/] for [red]30 s?[2J" in text
        no_control_characters(app)
        await press(pilot, "tab", "down", "up")  # move the highlight away and back: the description follows
        assert "Holds [/] for [red]30 s?[2J" in screen_text(app)
        await press(pilot, "shift+tab", *"P-1", "enter")
        await wait_for(pilot, lambda: calls(st, "start_session"), what="the session start")
        await wait_for(pilot, lambda: on_dashboard(app), what="the dialog to close")
        await wait_for(pilot, lambda: "[b]x[/b] [/] | ctl1 ch1" in screen_text(app), what="the plan on the panel")


async def test_a_refusal_naming_a_plan_with_brackets_is_shown_in_the_dialog() -> None:
    st = FakeStation(4)
    st.plans = (PlanSummary("odd", "Legs [/]", "x", "leg", 60.0), *PLANS)
    st.refuse["start_session"] = "Plan Legs [/] needs a LOP [b]first"
    app = make_app(st)
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await press(pilot, "p", *"P-1", "enter")
        await wait_for(pilot, lambda: "needs a LOP [b]first" in screen_text(app), what="the refusal in the dialog")
        assert isinstance(app.screen, SessionDialog)


async def test_an_alarm_message_with_markup_shows_on_the_banner_the_panel_and_the_alarm_list() -> None:
    st = FakeStation(4)
    # A cause the console has no words of its own for: the station's sentence is shown as it came.
    st.raise_alarm(Priority.HIGH, "VALVE_ODD", "A1", "valve [/] stuck [b]open\x1b[2J")
    app = make_app(st)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        text = screen_text(app)
        assert "HIGH [NEW] valve [/] stuck [b]open?[2J" in text  # the banner
        assert "! HIGH valve [/] stuck [b]open?[2J" in text  # the panel's alarm row
        await press(pilot, "l")
        assert isinstance(app.screen, AlarmListScreen)
        assert "valve [/] stuck [b]open?[2J" in screen_text(app)
        no_control_characters(app)
        await press(pilot, "q")
        assert on_dashboard(app)


async def test_controller_text_in_session_lop_and_emergency_rows_is_plain() -> None:
    st = FakeStation(4)
    session = make_session(PLANS[0], ("A1",), "P[1]", message="hold [/] still", phase="rest")
    st.set_cuff("A2", lop_measure=None, patient_id="Q[/]")
    st.set_cuff("A1", session=session, patient_id="P[1]")
    from console.common.api import LopProgress

    st.set_cuff("B1", lop_measure=LopProgress("failed", 80.0, 12.0, message="no pulse [/] \x1b]0;x\x07"))
    st.emergency = EmergencySnapshot(started_at=st.time, confirmed=("ctl[1]",), pending=("ctl[/]",), latency_s=None)
    st.bump()
    app = make_app(st)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        text = screen_text(app)
        assert "hold [/] still" in text
        assert "patient P[1]" in text and "patient Q[/]" in text
        assert "no pulse [/] ?]0;x" in text
        assert "pending: ctl[/]; confirmed: ctl[1]" in text
        no_control_characters(app)


async def test_a_patient_id_from_the_station_with_brackets_is_prefilled_as_is() -> None:
    st = FakeStation(4)
    st.set_cuff("A1", patient_id="P[/]7")
    app = make_app(st)
    async with app.run_test(size=(100, 30)) as pilot:
        await press(pilot, "p")
        assert isinstance(app.screen, SessionDialog)
        assert app.screen.query_one("#patient", Input).value == "P[/]7"
        assert "P[/]7" in screen_text(app)


async def test_refusals_and_failures_with_markup_are_notified_literally() -> None:
    st = FakeStation(4)
    st.set_cuff("A1", state="HOLDING", target=150.0, pressure=150.0)
    st.refuse["deflate"] = "Controller [/] said [b]no"
    app = make_app(st)
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await press(pilot, "d")
        await wait_for(pilot, lambda: notices(app), what="the refusal")
        await pilot.pause(0.1)
        assert "Controller [/] said [b]no" in screen_text(app)
        assert on_dashboard(app)


async def test_a_stop_confirmation_naming_a_plan_with_brackets() -> None:
    st = FakeStation(4)
    plan = PlanSummary("odd", "Legs [/]", "x", "leg", 60.0)
    st.set_cuff("A1", session=make_session(plan, ("A1",), "P-1", phase="set"), state="HOLDING", target=150.0)
    app = make_app(st)
    async with app.run_test(size=(100, 30)) as pilot:
        await press(pilot, "x")
        assert isinstance(app.screen, ConfirmDialog)
        assert "(Legs [/])" in screen_text(app)


# -- item 9: the emergency closes every dialog that could command a cuff ------------------------------


@pytest.mark.parametrize("key", ["f12", "ctrl+e"])
async def test_emergency_closes_the_inflate_dialog_and_what_was_typed_is_never_sent(key: str) -> None:
    st = FakeStation(4)
    app = make_app(st)
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "i", "8")
        assert isinstance(app.screen, InflateDialog)
        await press(pilot, key)
        await wait_for(pilot, lambda: calls(st, "emergency_deflate"), what="the emergency")
        assert on_dashboard(app), "the inflate dialog is gone"
        await press(pilot, "0", "enter")
        await pilot.pause(0.1)
        assert calls(st, "inflate") == [], "nothing typed before the emergency was sent after it"
        assert on_dashboard(app)
        assert "Inflate (Enter)" not in screen_text(app)


@pytest.mark.parametrize(
    ("open_key", "dialog", "typed", "then", "command"),
    [
        ("p", SessionDialog, "P-1", ["enter"], "start_session"),
        ("o", DopplerLopDialog, "18", ["0", "enter"], "set_lop"),
        ("m", MeasureLopDialog, "", ["enter"], "measure_lop"),
    ],
)
@pytest.mark.parametrize("key", ["f12", "ctrl+e"])
async def test_emergency_closes_every_therapy_dialog(
    key: str, open_key: str, dialog: type, typed: str, then: list[str], command: str
) -> None:
    st = FakeStation(4)
    app = make_app(st)
    async with app.run_test(size=(100, 30)) as pilot:
        await press(pilot, open_key, *typed)
        assert isinstance(app.screen, dialog)
        await press(pilot, key)
        await wait_for(pilot, lambda: calls(st, "emergency_deflate"), what="the emergency")
        assert on_dashboard(app), f"{dialog.__name__} is gone"
        await press(pilot, *then)
        await pilot.pause(0.1)
        assert calls(st, command) == []
        assert [c.name for c in st.calls] == ["emergency_deflate"]


async def test_emergency_closes_the_stop_session_confirmation_but_not_the_quit_question() -> None:
    st = FakeStation(4)
    st.set_cuff("A1", session=make_session(PLANS[0], ("A1",), "P-1", phase="set"), state="HOLDING", target=150.0)
    app = make_app(st, kiosk=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await press(pilot, "x")
        assert isinstance(app.screen, ConfirmDialog)
        await press(pilot, "f12")
        await wait_for(pilot, lambda: calls(st, "emergency_deflate"), what="the emergency")
        assert on_dashboard(app)
        await press(pilot, "y")
        await pilot.pause(0.1)
        assert calls(st, "session_command") == []
        await press(pilot, "q")
        assert isinstance(app.screen, ConfirmDialog)
        await press(pilot, "f12")
        await wait_for(pilot, lambda: len(calls(st, "emergency_deflate")) == 2, what="the second emergency")
        assert isinstance(app.screen, ConfirmDialog), "quitting commands no cuff: the question stays"


async def test_emergency_closes_a_command_dialog_under_the_help_screen() -> None:
    st = FakeStation(4)
    app = make_app(st)
    async with app.run_test(size=(100, 30)) as pilot:
        await press(pilot, "m")
        assert isinstance(app.screen, MeasureLopDialog)
        app.action_help()
        await pilot.pause()
        await press(pilot, "f12")
        await wait_for(pilot, lambda: calls(st, "emergency_deflate"), what="the emergency")
        assert on_dashboard(app)
        assert not any(isinstance(s, MeasureLopDialog) for s in app.screen_stack)


async def test_a_command_asked_for_before_the_emergency_is_not_sent_after_it() -> None:
    """Enter and F12 in the same turn of the loop: the inflate is not yet sent when the emergency goes out."""
    st = FakeStation(4)
    app = make_app(st)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        app.actions.inflate(InflateRequest("A1", mmhg=80.0))
        app.actions.nudge(5.0)
        app.actions.emergency()
        await wait_for(pilot, lambda: calls(st, "emergency_deflate"), what="the emergency")
        await pilot.pause(0.1)
        assert [c.name for c in st.calls] == ["emergency_deflate"]
        assert any("not sent" in n for n in notices(app))
        app.actions.inflate(InflateRequest("A1", mmhg=80.0))  # asked for after it: sent
        await wait_for(pilot, lambda: calls(st, "inflate"), what="a later inflate")


async def test_a_dialog_command_asked_for_before_the_emergency_is_not_sent_after_it() -> None:
    st = FakeStation(4)
    app = make_app(st)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await press(pilot, "o", *"180")
        dialog = app.screen
        assert isinstance(dialog, DopplerLopDialog)
        dialog.action_submit()
        app.actions.emergency()
        await wait_for(pilot, lambda: calls(st, "emergency_deflate"), what="the emergency")
        await pilot.pause(0.1)
        assert calls(st, "set_lop") == []
        assert on_dashboard(app)


async def test_an_attached_console_closes_the_inflate_dialog_on_the_emergency_too(tmp_path: Path) -> None:
    station = test_remote_fakes.FakeStation(cuffs=2)
    sock = tmp_path / "run" / "bfr.sock"
    server = StationServer(station, sock, lambda uid, gid: Decision(uid, "olga", Role.OPERATOR, "t"), fps=50)
    await server.start()
    remote = await RemoteStation.connect(sock, reconnect_delays_s=(60.0,))
    app = BfrApp(remote, bell=False, term="xterm")
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.last_snapshot.cuffs != (), what="the station's cuffs")
            await press(pilot, "i", "8")
            assert isinstance(app.screen, InflateDialog)
            await press(pilot, "f12")
            await wait_for(pilot, lambda: station.emergencies == 1, what="the emergency over the socket")
            assert on_dashboard(app)
            await press(pilot, "0", "enter")
            await pilot.pause(0.2)
            assert [name for name, _ in station.calls] == ["emergency_deflate"], "no inflate reached the station"
    finally:
        await remote.close()
        await server.stop()
