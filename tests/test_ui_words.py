"""Issue 18 items 4-7 in the real app (run_test/Pilot) and in the pure wording functions:
alarms in a clinician's words, dialogs that keep what was typed, acknowledging by cuff, and
prompts that say what quitting does."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest

from console.common.api import AlarmSnapshot, Priority
from console.common.clock import ManualClock
from console.ui.alarm_words import _OFF_TARGET, _SAY, clinical, fit, for_cuff, technical
from console.ui.app import BfrApp
from console.ui.demo_station import make_cuff
from console.ui.quit_words import UpTracker, closed_line, detached_line, quit_question
from console.ui.screens.dialogs import ConfirmDialog, InflateDialog
from console.ui.screens.lists import AlarmListScreen
from console.ui.screens.therapy import DopplerLopDialog, MeasureLopDialog, SessionDialog
from tests.ui_support import Call, FakeStation, press, screen_lines, screen_text, wait_for

LONG_LINK = (
    "Controller ctl1: port vanished: device reports readiness to read but returned no data (device "
    "disconnected or multiple access on port?); cuffs A1, A2, B1, B2 offline"
)


def make_app(station: FakeStation, **kw: object) -> BfrApp:
    clock = ManualClock(start=0.0)
    return BfrApp(station, clock=clock.monotonic, bell=False, term="xterm", **kw)  # type: ignore[arg-type]


def calls(station: FakeStation, name: str) -> list[Call]:
    return [c for c in station.calls if c.name == name]


def alarm(
    cause: str, priority: Priority = Priority.HIGH, *, cuff: str | None = "A1", ctrl: str | None = None
) -> AlarmSnapshot:
    return AlarmSnapshot(1, priority, cause, "technical text", cuff, ctrl, 0.0, True, False)


# -- item 4: words ---------------------------------------------------------------------------------


@pytest.mark.parametrize("cause", sorted(_SAY) + ["OFF_TARGET"])
def test_every_cause_has_a_sentence_that_fits_the_banner_at_80_columns(cause: str) -> None:
    # The priority each cause is raised with (console/station: supervisor, records_watch, targets...).
    medium = {"LEAK", "NOT_REACHED", "OCCLUSION_WARN", "RECORDS"}
    priorities = list(_OFF_TARGET) if cause == "OFF_TARGET" else [Priority.MEDIUM if cause in medium else Priority.HIGH]
    for prio in priorities:
        text = clinical(alarm(cause, prio))
        banner = f" {prio.value.upper()} [NEW] {text}  +1 (l)"
        assert len(banner) <= 80, banner
        assert "technical text" not in text and text.endswith(".")
        assert for_cuff(alarm(cause, prio)) in text


def test_a_controller_alarm_names_its_cuffs_and_an_unknown_cause_keeps_the_station_sentence() -> None:
    cuffs = [make_cuff("A1", controller="rack"), make_cuff("A2", controller="rack"), make_cuff("B1", controller="b")]
    lost = alarm("LINK_LOST", cuff=None, ctrl="rack")
    assert clinical(lost, cuffs).startswith("Cuffs A1, A2: lost contact")
    assert clinical(alarm("SOMETHING_NEW")) == "technical text"
    assert technical(lost) == "LINK_LOST: technical text"


def test_fit_cuts_at_a_word_and_says_so() -> None:
    assert fit("short enough", 20) == "short enough"
    cut = fit("pressure too high. Check the hose; deflate if unsure.", 30)
    assert cut.endswith("...") and len(cut) <= 30
    assert cut[:-3] in "pressure too high. Check the hose; deflate if unsure." and cut[-4] != " "
    assert cut == "pressure too high. Check..."


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_banner_list_and_details_in_words(size: tuple[int, int]) -> None:
    st = FakeStation(4)
    app = make_app(st)
    async with app.run_test(size=size) as pilot:
        await press(pilot, "l")
        assert isinstance(app.screen, AlarmListScreen)
        await wait_for(pilot, lambda: "No alarms." in screen_text(app), what="the empty list saying so plainly")
        await press(pilot, "l")
        st.raise_alarm(Priority.HIGH, "LINK_LOST", None, LONG_LINK, controller="ctl1")
        app.refresh_now()
        await pilot.pause()
        banner = screen_lines(app)[1]
        assert "HIGH [NEW] Cuffs A1, A2, B1, B2: lost contact; cuffs vent." in banner
        assert "readiness" not in banner and banner.rstrip().endswith(("cable.", "..."))
        await press(pilot, "l")
        await wait_for(pilot, lambda: "lost contact; cuffs vent." in screen_text(app), what="the alarm in the list")
        text = screen_text(app)
        assert "No alarms." not in text
        assert "cable." in text, "the sentence wraps in its column, never cut"
        assert "readiness" not in text
        await press(pilot, "enter")  # the technical cause, one key away
        await wait_for(pilot, lambda: "Technical cause" in screen_text(app), what="the technical cause")
        text = screen_text(app)
        assert "Technical cause: LINK_LOST: Controller ctl1: port vanished" in text
        assert "multiple access" in text, "the technical cause wraps too"
        await press(pilot, "t")
        await wait_for(pilot, lambda: "Technical cause" not in screen_text(app), what="the details closed")


@pytest.mark.parametrize(
    ("key", "dialog", "words"), [("m", MeasureLopDialog, "vents."), ("p", SessionDialog, "Doppler value.")]
)
async def test_dialog_intros_wrap_at_80_columns(key: str, dialog: type, words: str) -> None:
    st = FakeStation(4)
    st.set_cuff("A1", lop=None)
    app = make_app(st)
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, key)
        assert isinstance(app.screen, dialog)
        # The intro's last words are on screen: wrapped at the box, not cut.
        await wait_for(pilot, lambda: words in screen_text(app), what=f"{words!r} on screen")


# -- item 5: dialogs keep what was typed ------------------------------------------------------------


async def test_a_station_refusal_keeps_the_inflate_dialog_open_with_the_value() -> None:
    st = FakeStation(4)
    st.refuse["inflate"] = "A1: at most 120 mmHg without a LOP."
    app = make_app(st)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await press(pilot, "i", *"150", "enter")
        await wait_for(pilot, lambda: "at most 120 mmHg" in screen_text(app), what="the refusal in the dialog")
        assert isinstance(app.screen, InflateDialog), "the refusal stays in the dialog"
        assert app.screen.query_one("#target").value == "150"  # type: ignore[attr-defined]
        assert len(app._notifications) == 0, "no toast: the dialog says it"
        del st.refuse["inflate"]
        await press(pilot, "ctrl+u", *"110", "enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, InflateDialog), what="the dialog closing")
        assert [c.kwargs["mmhg"] for c in calls(st, "inflate")] == [150.0, 110.0]


async def test_cancelling_the_session_dialog_keeps_patient_and_plan_for_that_cuff() -> None:
    st = FakeStation(4)
    app = make_app(st)
    async with app.run_test(size=(100, 30)) as pilot:
        await press(pilot, "p", *"P-0042", "tab", "down")
        assert isinstance(app.screen, SessionDialog)
        chosen = app.screen.plan
        assert chosen is not None
        await press(pilot, "f10")  # off to fix the LOP
        assert not isinstance(app.screen, SessionDialog)
        await press(pilot, "2", "p")  # another cuff: its own, empty dialog
        assert app.screen.query_one("#patient").value == ""  # type: ignore[attr-defined]
        await press(pilot, "f10", "1", "p")
        dialog = app.screen
        assert isinstance(dialog, SessionDialog)
        assert dialog.query_one("#patient").value == "P-0042"  # type: ignore[attr-defined]
        assert dialog.plan == chosen
        await press(pilot, "enter")
        await wait_for(pilot, lambda: calls(st, "start_session"), what="the session start")
        assert calls(st, "start_session")[0].args == (["A1"], chosen.id, "P-0042")
        await wait_for(pilot, lambda: "A1" not in app.actions.session_drafts, what="the draft dropped once started")


async def test_the_doppler_dialog_takes_the_cuff_width_from_the_config() -> None:
    st = FakeStation(4)
    st.set_cuff("A1", width_cm=11.5)
    app = make_app(st)
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "o")
        assert isinstance(app.screen, DopplerLopDialog)
        assert app.screen.query_one("#width").value == "11.5"  # type: ignore[attr-defined]
        await press(pilot, *"190", "enter")
        await wait_for(pilot, lambda: calls(st, "set_lop"), what="set_lop")
        assert calls(st, "set_lop")[0].kwargs["cuff_width_cm"] == 11.5
        await press(pilot, "2", "o")  # no width in the config: empty, optional
        assert app.screen.query_one("#width").value == ""  # type: ignore[attr-defined]


# -- item 6: a cuff's controller's alarms are the cuff's -----------------------------------------------


async def test_a_on_an_offline_cuff_acknowledges_its_controllers_alarm() -> None:
    st = FakeStation(8)
    st.go_offline("ctl1")
    lost = st.raise_alarm(Priority.HIGH, "LINK_LOST", None, LONG_LINK, controller="ctl1")
    other = st.raise_alarm(Priority.HIGH, "LINK_LOST", None, "ctl2 lost", controller="ctl2")
    app = make_app(st)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await press(pilot, "2", "a")
        await wait_for(pilot, lambda: calls(st, "acknowledge"), what="the acknowledge")
        await asyncio.sleep(0)
        assert [c.args for c in calls(st, "acknowledge")] == [(lost.id,)], f"not {other.id}: another controller's"
        assert not any("No alarm" in n.message for n in app._notifications)


# -- item 7: prompts that tell the truth ------------------------------------------------------------------


def test_quit_questions_say_what_quitting_does() -> None:
    assert quit_question([], [], attached=False, kiosk=False) is None
    assert quit_question(["A1", "A2"], [], attached=False, kiosk=False) == (
        "2 cuffs (A1, A2) are inflated. Quit the console? Every cuff vents."
    )
    q = quit_question([], ["B1"], attached=False, kiosk=False)
    assert q is not None and "B1: controller offline, pressure unknown" in q and "Check B1 by hand." in q
    assert (
        quit_question([], [], attached=False, kiosk=True) == "No cuff is inflated. Quit the console? Every cuff vents."
    )
    assert quit_question(["A1"], [], attached=True, kiosk=False) is None, "an attached console leaves the cuffs"
    kiosk = quit_question(["A1"], [], attached=True, kiosk=True)
    assert kiosk is not None and "every cuff stays as it is (cuff A1 inflated)" in kiosk and "vent" not in kiosk
    assert closed_line(["A1", "A2"], []) == "BFR console closed; 2 cuffs vented (A1, A2)."
    assert closed_line([], []) == "BFR console closed; no cuff was inflated."
    assert "B1 out of contact" in closed_line([], ["B1"])
    assert (
        detached_line("Bay A", ["A1"], [])
        == "BFR remote console closed; station Bay A carries on (1 inflated cuff left as it is)."
    )


def test_a_cuff_last_seen_up_stays_up_while_its_controller_is_offline() -> None:
    st = FakeStation(4)
    tracker = UpTracker()
    st.set_cuff("A1", state="HOLDING", target=150.0, pressure=150.0)
    tracker.note(st.snapshot())
    assert tracker.up(st.snapshot()) == ["A1"] and tracker.unknown(st.snapshot()) == []
    st.go_offline("ctl1")
    st.set_cuff("A1", target=0.0)  # the station vented it blind: the snapshot no longer says it was up
    tracker.note(st.snapshot())
    assert tracker.up(st.snapshot()) == [] and tracker.unknown(st.snapshot()) == ["A1"]


async def test_q_with_a_cuff_up_on_an_offline_controller_asks() -> None:
    st = FakeStation(4)
    st.set_cuff("A2", state="HOLDING", target=150.0, pressure=150.0)
    app = make_app(st)
    async with app.run_test(size=(80, 24)) as pilot:
        app.refresh_now()
        st.go_offline("ctl1")
        st.set_cuff("A2", target=0.0)
        app.refresh_now()
        await press(pilot, "q")
        assert isinstance(app.screen, ConfirmDialog), "quitting would vent a cuff we cannot see: ask"
        text = screen_text(app)
        assert "A2: controller offline" in text and "Every cuff vents." in text
        await press(pilot, "n")
        assert not isinstance(app.screen, ConfirmDialog)


async def test_an_attached_console_says_remote_and_quits_without_the_vent_prompt() -> None:
    st = FakeStation(4)
    st.set_cuff("A1", state="HOLDING", target=150.0, pressure=150.0)
    app = make_app(st, attached=True)
    async with app.run_test(size=(80, 24)) as pilot:
        app.refresh_now()
        await pilot.pause()
        assert "Station: Bay A (remote, operator)" in screen_lines(app)[0]
        assert app.title == "BFR station Bay A (remote, operator)"
        await press(pilot, "q")
        assert not isinstance(app.screen, ConfirmDialog)
        await wait_for(pilot, lambda: app._exit, what="the console closing")  # type: ignore[attr-defined]
    assert not calls(st, "deflate") and not calls(st, "emergency_deflate"), "the cuffs are left as they are"


async def test_a_station_already_serving_is_found(tmp_path: Path) -> None:
    from console.app_runner import station_serving

    sock = tmp_path / "bfr.sock"
    assert not await station_serving(sock)
    server = await asyncio.start_unix_server(lambda r, w: w.close(), path=str(sock))
    try:
        assert await station_serving(sock)
    finally:
        server.close()
        await server.wait_closed()


def test_lop_progress_goes_line_by_step_on_a_file_and_in_place_on_a_terminal() -> None:
    from console.cli_progress import LopProgressPrinter
    from console.common.api import LopProgress

    now = [0.0]
    out = io.StringIO()
    printer = LopProgressPrinter(out, tty=False, clock=lambda: now[0])
    for step, pressure, t in [(50.0, 30.0, 0.5), (50.0, 49.0, 1.0), (65.0, 60.0, 3.2)]:
        now[0] = t
        printer.progress(make_cuff("A1", pressure=pressure, lop_measure=LopProgress("running", step, t)))
    printer.finished()
    assert out.getvalue().splitlines() == [
        "measuring A1: step 1 at 50 mmHg, cuff 30 mmHg, 0:00",
        "measuring A1: step 2 at 65 mmHg, cuff 60 mmHg, 0:03",
    ]
    tty = io.StringIO()
    printer = LopProgressPrinter(tty, tty=True, clock=lambda: now[0])
    printer.progress(make_cuff("A1", pressure=30.0, lop_measure=LopProgress("running", 50.0, 1.0)))
    printer.progress(make_cuff("A1", pressure=45.0, lop_measure=LopProgress("running", 50.0, 1.5)))
    printer.finished()
    assert tty.getvalue().count("\r") == 2 and tty.getvalue().endswith("\n")
    assert "cuff 45 mmHg" in tty.getvalue()
