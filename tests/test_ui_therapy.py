"""Therapy on screen, on the in-memory station: the session, LOP and Doppler dialogs, the session keys,
and what a cuff panel says in each phase of a session or a LOP measurement."""

from __future__ import annotations

import asyncio

import pytest

from console.common.api import CommandRefused, LopProgress, Role
from console.ui.app import BfrApp
from console.ui.demo_station import PLANS, make_session
from console.ui.screens.dialogs import ConfirmDialog
from console.ui.screens.lists import HelpScreen
from console.ui.screens.therapy import (
    DopplerLopDialog,
    MeasureLopDialog,
    SessionDialog,
    check_patient_id,
    parse_doppler,
)
from console.ui.theme import ASCII, UNICODE
from console.ui.therapy_text import lop_text, progress_text
from tests.ui_support import (
    Call,
    FakeStation,
    big_cue,
    big_text_at,
    notices,
    press,
    screen_lines,
    screen_text,
    wait_for,
)


def make_app(st: FakeStation, theme: str = "auto") -> BfrApp:
    return BfrApp(st, bell=False, term="xterm", theme=theme)


def calls(st: FakeStation, name: str) -> list[Call]:
    return [c for c in st.calls if c.name == name]


def running(st: FakeStation, cuff: str = "A1", pair: tuple[str, ...] = ("A1",), **kw: object) -> None:
    """Put a scripted session on ``pair`` (shown on every cuff of it)."""
    values: dict[str, object] = dict(phase="set", set_index=2, rep=9, reps_target=15, beat=True)
    values.update(kw)
    for cid in pair:
        st.set_cuff(
            cid,
            state="HOLDING",
            pressure=183.0,
            target=184.0,
            pressure_pct_lop=79.6,
            target_pct_lop=80.0,
            session=make_session(PLANS[0], pair, "P-0042", **values),
        )


def footer(app: BfrApp) -> str:
    return screen_lines(app)[-1]


# -- pure wording ------------------------------------------------------------------------


def test_progress_and_the_beat() -> None:
    s = make_session(PLANS[0], ("A1",), "P-1", phase="set", set_index=2, rep=9, reps_target=15, beat=True)
    assert progress_text(s, UNICODE) == "set 2/4  rep  9/15 ●"
    assert progress_text(s.__class__(**{**_fields(s), "beat": False}), UNICODE).endswith("○")
    assert progress_text(s, ASCII).endswith("*")
    rest = make_session(PLANS[0], ("A1",), "P-1", phase="rest", phase_remaining_s=22.3, rep=15, reps_target=15)
    assert not progress_text(rest, UNICODE).endswith("●") and not progress_text(rest, UNICODE).endswith("○")
    walk = make_session(PLANS[3], ("A1",), "P", phase="set", set_index=2, phase_remaining_s=61.0)
    assert progress_text(walk, UNICODE) == "cycle 2/5"


def _fields(s: object) -> dict[str, object]:
    return {k: getattr(s, k) for k in s.__slots__}  # type: ignore[attr-defined]


def test_lop_wording() -> None:
    assert lop_text(LopProgress("running", 140.0, 12.6)).line == "measuring LOP: 140 mmHg 00:12"
    done = lop_text(LopProgress("done", 0.0, 50.0, lop=204.6, confidence=0.92))
    assert (done.line, done.detail) == ("LOP 205 mmHg (estimate)", "an estimate, 92% sure; o: Doppler")
    failed = lop_text(LopProgress("failed", 180.0, 44.0, message="the limb moved"))
    assert failed.line == "LOP not measured" and failed.detail == "the limb moved"
    assert lop_text(LopProgress("done", 0.0, 50.0, lop=None)).line == "LOP not measured"


def test_doppler_and_patient_validation() -> None:
    d = parse_doppler(" 205 ", "11,5", "supine")
    assert (d.lop, d.cuff_width_cm, d.position) == (205.0, 11.5, "supine")
    assert parse_doppler("205 mmHg", "", "seated").cuff_width_cm is None
    for lop, width, words in (
        ("abc", "", "type a number"),
        ("20", "", "not plausible"),
        ("nan", "", "not plausible"),
        ("205", "99", "Cuff width"),
        ("205", "x", "Cuff width"),
    ):
        with pytest.raises(ValueError, match=words):
            parse_doppler(lop, width, "seated")
    assert check_patient_id("  P-7 ") == "P-7"
    for bad in ("", "   ", "x" * 65, "a\tb", "Jane Doe"):
        with pytest.raises(ValueError):
            check_patient_id(bad)


# -- p: the session dialog ------------------------------------------------------------------


async def test_session_dialog_prefills_patient_lists_leg_plans_and_starts_both_cuffs() -> None:
    st = FakeStation(4)
    st.set_cuff("A1", patient_id="P-0042")
    app = make_app(st)
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "p")
        assert isinstance(app.screen, SessionDialog)
        text = screen_text(app)
        assert "Legs 30-15-15-15  [80% LOP]" in text and "4 x 10 at 60 %" in text and "BFR walking" in text
        assert "Arms 30-15" not in text, "only plans that suit a leg"
        assert app.screen.query_one("#patient").value == "P-0042"  # type: ignore[attr-defined]
        assert "30 s rests held" in text, "the highlighted plan's description"
        await press(pilot, "tab", "down")  # to the plan list, second plan
        assert "slower reps" in screen_text(app) and "plan 2/3 (Up/Down)" in screen_text(app)
        await press(pilot, "tab", "right")  # the cuffs choice: A2 too
        assert "A2 right thigh too" in screen_text(app)
        await press(pilot, "enter")
        await wait_for(pilot, lambda: calls(st, "start_session"), what="start_session")
        assert calls(st, "start_session")[0].args == (["A1", "A2"], "4x10-60", "P-0042")
        await wait_for(pilot, lambda: not isinstance(app.screen, SessionDialog), what="dialog closed")
        await wait_for(pilot, lambda: screen_text(app).count("INFLATING") >= 4, what="both panels inflating")
        await wait_for(
            pilot,
            lambda: "Space pause" in footer(app) and "p session" not in footer(app),
            what="session keys in the footer",
        )


async def test_session_dialog_on_an_arm_types_the_patient_and_refusal_stays_in_the_dialog() -> None:
    st = FakeStation(4)
    st.refuse["start_session"] = "B1 has no LOP: measure it first (m)."
    app = make_app(st, theme="ansi")
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "3", "p")
        text = screen_text(app)
        assert "Arms 30-15-15-15" in text and "Legs" not in text and "4 x 10" in text
        await press(pilot, "enter")
        assert isinstance(app.screen, SessionDialog)
        assert "Type the patient's id" in screen_text(app) and not calls(st, "start_session")
        await press(pilot, *"P-7", "enter")
        await wait_for(pilot, lambda: "B1 has no LOP: measure it first (m)." in screen_text(app), what="refusal")
        assert isinstance(app.screen, SessionDialog), "a refusal keeps the dialog and what was typed"
        assert app.screen.query_one("#patient").value == "P-7"  # type: ignore[attr-defined]
        assert calls(st, "start_session")[0].args == (["B1"], "arms-30-15", "P-7")
        await press(pilot, "f10")
        assert not isinstance(app.screen, SessionDialog)
        assert st.cuffs[st.index("B1")].session is None


class SlowRefusal(FakeStation):
    """Refuses the measurement only after the test opens the gate."""

    def __init__(self) -> None:
        super().__init__(4)
        self.gate = asyncio.Event()

    async def measure_lop(self, cuff_id: str, *, position: str = "seated") -> None:
        self.calls.append(Call("measure_lop", (cuff_id,), {"position": position}))
        await self.gate.wait()
        raise CommandRefused(f"{cuff_id} is inflated: deflate it first.")


async def test_a_dialog_closed_before_the_refusal_says_it_on_the_dashboard() -> None:
    st = SlowRefusal()
    app = make_app(st)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await press(pilot, "m", "enter")
        await wait_for(pilot, lambda: calls(st, "measure_lop"), what="call sent")
        assert "Measure LOP on A1 (seated)..." in screen_text(app), "the dialog says it is waiting"
        await press(pilot, "enter")  # a second Enter while waiting sends nothing more
        await press(pilot, "f10")
        assert not isinstance(app.screen, MeasureLopDialog)
        st.gate.set()
        await wait_for(pilot, lambda: "A1 is inflated: deflate it first." in notices(app), what="said on the dashboard")
        assert len(calls(st, "measure_lop")) == 1


# -- m and o: LOP ------------------------------------------------------------------------------


async def test_measure_lop_asks_the_position_and_the_panel_follows_progress() -> None:
    st = FakeStation(4)
    app = make_app(st)
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "m")
        assert isinstance(app.screen, MeasureLopDialog)
        assert "Position: < seated >" in screen_text(app)
        await press(pilot, "right", "enter")
        await wait_for(pilot, lambda: calls(st, "measure_lop"))
        call = calls(st, "measure_lop")[0]
        assert call.args == ("A1",) and call.kwargs == {"position": "standing"}
        await wait_for(pilot, lambda: "measuring LOP:  40 mmHg 00:00" in screen_text(app), what="progress")
        st.set_cuff("A1", lop_measure=LopProgress("running", 160.0, 75.4, message="step 6"))
        await wait_for(pilot, lambda: "measuring LOP: 160 mmHg 01:15" in screen_text(app), what="next step")
        st.set_cuff("A1", lop=205.0, lop_measure=LopProgress("done", 0.0, 80.0, lop=205.0, confidence=0.9))
        await wait_for(pilot, lambda: "LOP 205 mmHg (estimate)" in screen_text(app), what="done")
        st.set_cuff("A1", lop_measure=LopProgress("failed", 180.0, 44.0, message="no pulse found at any step"))
        await wait_for(pilot, lambda: "LOP not measured" in screen_text(app), what="failed")
        assert "no pulse found at any step" in screen_text(app)


async def test_measure_lop_refusal_is_shown_in_the_dialog() -> None:
    st = FakeStation(4)
    st.refuse["measure_lop"] = "A2 is inflated: deflate it before measuring."
    app = make_app(st)
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "2", "m", "enter")
        await wait_for(pilot, lambda: "A2 is inflated: deflate it before measuring." in screen_text(app))
        assert isinstance(app.screen, MeasureLopDialog)
        assert calls(st, "measure_lop")[0].kwargs == {"position": "seated"}


async def test_a_doppler_lop_is_what_was_typed_before_enter() -> None:
    """ "190", Enter, "5" in one burst records a LOP of 190, not 1905 (nor anything typed after Enter)."""
    from textual import events

    st = FakeStation(4)
    app = make_app(st)
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "o")
        assert isinstance(app.screen, DopplerLopDialog)
        for key, char in (("1", "1"), ("9", "9"), ("0", "0"), ("enter", "\r"), ("5", "5")):
            event = events.Key(key, char)
            event.set_sender(app)
            app._driver.send_message(event)  # no waiting between keys
        await wait_for(pilot, lambda: calls(st, "set_lop"), what="set_lop call")
        assert calls(st, "set_lop")[0].args[1] == 190.0


async def test_doppler_lop_validates_then_sends_and_shows_refusals() -> None:
    st = FakeStation(4)
    app = make_app(st)
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "o")
        assert isinstance(app.screen, DopplerLopDialog)
        await press(pilot, *"20", "enter")
        assert "not plausible (50 to 350 mmHg)" in screen_text(app)
        await press(pilot, "ctrl+u", *"205", "tab", "left", "tab", *"99", "enter")
        assert "Cuff width: 99 cm is not plausible" in screen_text(app) and not calls(st, "set_lop")
        st.refuse["set_lop"] = "A1: its target 190 mmHg would be above 80 % of a LOP of 205."
        await press(pilot, "ctrl+u", *"11.5", "enter")
        await wait_for(pilot, lambda: "would be above 80 % of a LOP of 205" in screen_text(app), what="refusal")
        assert isinstance(app.screen, DopplerLopDialog)
        del st.refuse["set_lop"]
        await press(pilot, "enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, DopplerLopDialog), what="closed")
        assert [(c.args, c.kwargs) for c in calls(st, "set_lop")][-1] == (
            ("A1", 205.0),
            {"position": "supine", "cuff_width_cm": 11.5, "source": "doppler"},
        )
        await wait_for(pilot, lambda: "LOP 205" in screen_text(app))


# -- keys during a session ----------------------------------------------------------------------


async def test_session_keys_pause_resume_skip_reps_and_stop_with_confirmation() -> None:
    st = FakeStation(4)
    running(st, pair=("A1", "A2"))
    app = make_app(st)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await pilot.pause()
        await wait_for(
            pilot,
            lambda: "Space pause" in footer(app) and "x stop" in footer(app) and "[] rep" in footer(app),
            what="session keys in the footer",
        )
        await press(pilot, "space")
        await wait_for(pilot, lambda: calls(st, "session_command"))
        await wait_for(pilot, lambda: "PAUSED" in screen_text(app), what="paused shown")
        await press(pilot, "space", "n", "right_square_bracket", "right_square_bracket", "left_square_bracket")
        await wait_for(pilot, lambda: len(calls(st, "session_command")) == 6)
        assert [c.args for c in calls(st, "session_command")] == [
            ("A1", "pause"),
            ("A1", "resume"),
            ("A1", "skip"),
            ("A1", "rep+"),
            ("A1", "rep+"),
            ("A1", "rep-"),
        ]
        await press(pilot, "x")
        assert isinstance(app.screen, ConfirmDialog)
        assert "Stop the session on A1 + A2" in screen_text(app)
        await press(pilot, "n")
        assert not isinstance(app.screen, ConfirmDialog) and len(calls(st, "session_command")) == 6
        await press(pilot, "2", "x", "y")
        await wait_for(pilot, lambda: len(calls(st, "session_command")) == 7)
        assert calls(st, "session_command")[-1].args == ("A2", "stop")
        await wait_for(pilot, lambda: "STOPPED" in screen_text(app), what="stopped shown")
        # The footer redraws on its own schedule: wait for it rather than read it at once.
        await wait_for(pilot, lambda: "p session" in footer(app), what="a stopped session gives the setup keys back")
        await press(pilot, "1", "space")  # no session running: the key does nothing
        assert len(calls(st, "session_command")) == 7


async def test_session_key_refusal_is_a_notification() -> None:
    st = FakeStation(4)
    running(st)
    st.refuse["session_command"] = "A1 cannot skip while inflating."
    app = make_app(st)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await press(pilot, "n")
        await wait_for(pilot, lambda: "A1 cannot skip while inflating." in notices(app))


async def test_setup_keys_hidden_and_idle_during_a_session_session_keys_idle_without_one() -> None:
    st = FakeStation(4)
    running(st)
    app = make_app(st)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await wait_for(pilot, lambda: "p session" not in footer(app), what="setup keys hidden")
        await press(pilot, "p", "m", "o")
        assert not isinstance(app.screen, (SessionDialog, MeasureLopDialog, DopplerLopDialog))
        await press(pilot, "2")
        await wait_for(
            pilot,
            lambda: "p session" in footer(app) and "Space" not in footer(app),
            what="setup keys back, no session keys",
        )
        await press(pilot, "space", "n", "x", "right_square_bracket")
        assert not calls(st, "session_command") and not isinstance(app.screen, ConfirmDialog)


async def test_observer_gets_no_therapy_key() -> None:
    st = FakeStation(4, role=Role.OBSERVER)
    app = make_app(st)
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "p", "m", "o", "space", "n", "x")
        assert not isinstance(app.screen, (SessionDialog, MeasureLopDialog, DopplerLopDialog, ConfirmDialog))
        assert st.calls == []
        await wait_for(
            pilot,
            lambda: "p session" in footer(app) and "Space" not in footer(app),
            what="greyed setup keys, no session keys",
        )
        running(st)
        app.refresh_now()
        await wait_for(pilot, lambda: "Space pause" in footer(app), what="session keys (greyed) for an observer")
        await press(pilot, "space", "n", "x", "right_square_bracket")
        assert st.calls == [] and not isinstance(app.screen, ConfirmDialog)


# -- the panel in each phase ----------------------------------------------------------------------


@pytest.mark.parametrize(("size", "theme"), [((80, 24), "auto"), ((120, 40), "auto"), ((80, 24), "ansi")])
async def test_panel_shows_each_phase_with_pressure_as_pct_lop(size: tuple[int, int], theme: str) -> None:
    st = FakeStation(4)
    running(st, pair=("A1", "A2"))
    app = make_app(st, theme=theme)
    on, off = ("*", ".") if theme == "ansi" else ("●", "○")
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        lines = screen_lines(app)
        text = "\n".join(lines)
        assert len(lines) == size[1] and all(len(line) == size[0] for line in lines)
        assert f"set 2/4  rep  9/15 {on}" in text and "patient P-0042" in text
        assert "Legs 30-15-15-15" in text, "the plan's name on the panel"
        # The cue in big letters, beside the pressure (its unit and % LOP stacked), the target above.
        assert big_cue(lines) == "LIFT" and "80%LOP" in text and "target 184 mmHg" in text
        assert big_text_at(lines, "183") and " 80%" in text and " LOP " in text
        assert "HOLDING" in text and "F12 / Ctrl+E: EMERGENCY DEFLATE ALL" in lines[-2]

        async def shows(what: str) -> None:
            app.refresh_now()
            await wait_for(pilot, lambda: what in screen_text(app), what=repr(what))

        st.set_session("A1", beat=False, rep=10)
        await shows(f"set 2/4  rep 10/15 {off}")
        assert big_cue(screen_text(app)) == "LOWER"
        st.set_session("A1", beat=True, rep=11)
        await shows(f"rep 11/15 {on}")
        st.set_session("A1", phase="rest", beat=False, rep=15, phase_remaining_s=23.0)
        await shows("next: set 3/4 in 0:23")
        assert "REST" in screen_text(app) and big_text_at(screen_text(app), "0:23")
        st.set_session("A1", phase_remaining_s=22.2)
        await shows("next: set 3/4 in 0:23")
        st.set_session("A1", phase_remaining_s=21.9)
        await shows("next: set 3/4 in 0:22")
        st.set_session("A1", phase="paused", message="paused: HIGH alarm on A2")
        await shows("PAUSED")
        assert "paused: HIGH alarm on A2" in screen_text(app)
        assert "cuffs UP" in screen_text(app) and "occl runs" in screen_text(app), "the cuff is still up: said so"
        st.set_session("A1", message="paused by the operator")
        await shows("cuffs up, occlusion clock running")
        st.set_session("A1", phase="done", set_index=4, message="")
        await shows("DONE")
        assert "set 4/4" in screen_text(app)


async def test_beat_repaints_its_row_while_digits_keep_their_4_hz_pace() -> None:
    from console.common.clock import ManualClock

    st = FakeStation(4)
    running(st)
    clock = ManualClock(start=0.0)
    app = BfrApp(st, bell=False, term="xterm", clock=clock.monotonic)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        panel = app.dashboard.panels["A1"]
        clock.advance(1.0)
        st.set_cuff("A1", pressure=183.0)
        app.refresh_now()
        await pilot.pause()
        assert panel._digits_pressure == 183.0
        st.set_cuff("A1", pressure=184.1)
        st.set_session("A1", detected_reps=3)  # a session change that shows nowhere
        app.refresh_now()
        await pilot.pause()
        assert panel._digits_pressure == 183.0, "noise within 0.25 s: digits held despite the new session snapshot"
        st.set_session("A1", beat=False)
        app.refresh_now()
        await pilot.pause()
        assert panel._lines is not None and panel._lines[5].plain.startswith("set 2/4  rep  9/15 ○")


# -- help and the emergency key ------------------------------------------------------------------


async def test_help_lists_the_therapy_keys() -> None:
    app = make_app(FakeStation(4))
    async with app.run_test(size=(120, 40)) as pilot:
        await press(pilot, "f1")
        assert isinstance(app.screen, HelpScreen)
        table = app.screen.query_one("#keys")
        rows = [[str(x) for x in table.get_row_at(i)] for i in range(table.row_count)]  # type: ignore[attr-defined]
        keys = {k for r in rows for k in r[0].split(" / ")}
        for k in ("p", "m", "o", "Space", "n", "x", "[", "]", "F10", "Tab"):
            assert k in keys, f"{k} missing: {sorted(keys)}"
        does = " ".join(r[2] for r in rows)
        assert "pause / resume" in does and "Doppler" in does and "stop the session" in does


@pytest.mark.parametrize("key", ["f12", "ctrl+e"])
async def test_emergency_key_works_inside_every_therapy_dialog_with_a_field_focused(key: str) -> None:
    st = FakeStation(4)
    app = make_app(st)
    async with app.run_test(size=(80, 24)) as pilot:
        for open_key, dialog, field in (
            ("p", SessionDialog, "patient"),
            ("o", DopplerLopDialog, "lop"),
            ("m", MeasureLopDialog, "position"),
        ):
            await press(pilot, open_key)
            assert isinstance(app.screen, dialog) and app.focused is not None and app.focused.id == field
            if field != "position":
                await press(pilot, *"12")
            before = len(calls(st, "emergency_deflate"))
            await press(pilot, key)
            await wait_for(
                pilot,
                lambda before=before: len(calls(st, "emergency_deflate")) == before + 1,
                what=f"{key} in {dialog}",
            )
            # The emergency closes the dialog unanswered (issue 11, item 9): what was typed is never sent.
            assert len(app.screen_stack) == 1, f"the emergency key closes {dialog.__name__}"
        session = [c for c in st.calls if c.name in ("start_session", "set_lop", "measure_lop")]
        assert session == [], "dialogs closed by the emergency sent nothing"
