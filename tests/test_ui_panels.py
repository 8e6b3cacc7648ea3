"""Panels that show exactly their state: no stale borders or words, the patient's cue, grid moves.

Driven through Textual's run_test on the in-memory station; the same screens are read in a real
terminal by tests/test_e2e_panels.py.
"""

from __future__ import annotations

import ast
import inspect
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from textual.widget import Widget

import console.ui.widgets as widgets_pkg
from console.common.clock import ManualClock
from console.ui import cue
from console.ui.app import BfrApp
from console.ui.screens.dashboard import grid_neighbour
from console.ui.screens.dialogs import ConfirmDialog, InflateDialog
from console.ui.screens.lists import AlarmListScreen, HelpScreen
from console.ui.screens.therapy import DopplerLopDialog, MeasureLopDialog, SessionDialog
from console.ui.theme import ASCII, UNICODE
from console.ui.widgets.footer import KeyFooter
from tests.ui_support import FakeStation, big_cue, big_text_at, press, screen_lines, screen_text, wait_for

WIDGETS = Path(widgets_pkg.__file__).parent


def _assigned_names(cls: type) -> set[str]:
    """``self.X = ...`` / ``self.X: T = ...`` names assigned anywhere in the class's own source."""
    tree = ast.parse(inspect.getsource(cls).lstrip())
    names: set[str] = set()
    for node in ast.walk(tree):
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        for t in targets:
            if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self":
                names.add(t.attr)
    return names


def _textual_base(cls: type) -> type:
    return next(b for b in cls.__mro__ if b.__module__.startswith("textual."))


def test_no_widget_of_ours_overwrites_textual_state() -> None:
    """The stale half-border (issue 18.1): CuffPanel kept its strips' size in ``self._size``, which is
    Textual's own outer size. A full refresh then repainted only a content-sized corner of the panel
    and the right and bottom border kept the old style until a resize. No widget may reuse a name its
    Textual base keeps state in (a property with a setter is the base's API and allowed)."""
    import importlib
    import pkgutil

    bare = vars(Widget())
    found: list[str] = []
    checked = 0
    for info in pkgutil.iter_modules([str(WIDGETS)]):
        module = importlib.import_module(f"console.ui.widgets.{info.name}")
        for cls in vars(module).values():
            if not (isinstance(cls, type) and issubclass(cls, Widget) and cls.__module__ == module.__name__):
                continue
            checked += 1
            base = _textual_base(cls)
            for name in _assigned_names(cls):
                attr = inspect.getattr_static(base, name, None)
                api = isinstance(attr, property) and attr.fset is not None or hasattr(attr, "__set__")
                if (name in bare or attr is not None) and not api:
                    found.append(f"{cls.__name__}.{name} (Textual's {base.__name__} keeps {name})")
    assert checked >= 3
    assert not found, found


# -- the footer and the emergency key at 80 columns (issue 18.2) ------------------------------------

EMERGENCY_LINE = "F12 / Ctrl+E: EMERGENCY DEFLATE ALL"


def make_app(station: FakeStation, **kw: Any) -> BfrApp:
    return BfrApp(station, clock=ManualClock(start=0.0).monotonic, bell=False, term=kw.pop("term", "xterm"), **kw)


async def footer_whole(app: BfrApp, pilot: Any) -> None:
    """The footer row shows F1 first (where F1 is help) and only whole keys: every key's description in full."""
    footer = app.screen.query_one(KeyFooter)
    await wait_for(pilot, lambda: screen_lines(app)[-1].strip(), what="the footer drawn")
    line = screen_lines(app)[-1]
    if any(b.action in ("help", "app.help") for _, b, _, _ in app.screen.active_bindings.values()):
        assert line.startswith("F1 help"), line
    assert footer.shown_actions, "the footer shows keys"
    words = line.split()
    for _, binding, _, _ in app.screen.active_bindings.values():
        if binding.show and binding.action in footer.shown_actions:
            desc = binding.group.description if binding.group is not None else binding.description
            assert desc in line, (desc, line)
    hidden = [
        b.description
        for _, b, _, _ in app.screen.active_bindings.values()
        if b.show and b.action not in footer.shown_actions and b.group is None
    ]
    for desc in hidden:
        assert desc not in words, f"{desc!r} is counted as left out but shows: {line!r}"


@pytest.mark.parametrize("theme", ["auto", "ansi"])
async def test_every_screen_names_the_emergency_key_in_full_and_the_footer_keeps_whole_keys(theme: str) -> None:
    st = FakeStation(4)
    app = make_app(st, kiosk=True, theme=theme, term="linux" if theme == "ansi" else "xterm")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()

        def emergency_named() -> None:
            assert any(EMERGENCY_LINE in line for line in screen_lines(app)), screen_text(app)

        emergency_named()
        await footer_whole(app, pilot)
        # The narrowest footer a console gets: the session keys (more of them) at 80 columns.
        st.set_cuff("A1", lop=230.0)
        await st.start_session(["A1"], "legs-30-15", "P-1")
        st.set_session("A1", phase="set", beat=True)
        app.refresh_now()
        await wait_for(pilot, lambda: "pause" in screen_lines(app)[-1], what="the session keys in the footer")
        emergency_named()
        await footer_whole(app, pilot)
        assert "s silence" in screen_lines(app)[-1], "ack and silence still fit during a session"
        # Every screen and dialog over the dashboard.
        for key, screen_type in (
            ("f1", HelpScreen),
            ("l", AlarmListScreen),
        ):
            await press(pilot, key)
            await wait_for(pilot, lambda t=screen_type: isinstance(app.screen, t), what=screen_type.__name__)  # type: ignore[misc]
            emergency_named()
            await footer_whole(app, pilot)
            await press(pilot, "q")
            await wait_for(pilot, lambda: app.screen is app.dashboard, what="back to the dashboard")
        await press(pilot, "3")
        for key, dialog_type in (
            ("i", InflateDialog),
            ("p", SessionDialog),
            ("m", MeasureLopDialog),
            ("o", DopplerLopDialog),
            ("q", ConfirmDialog),
        ):
            await press(pilot, key)
            await wait_for(pilot, lambda t=dialog_type: isinstance(app.screen, t), what=dialog_type.__name__)  # type: ignore[misc]
            emergency_named()
            await press(pilot, "f10" if dialog_type is not ConfirmDialog else "n")
            await wait_for(pilot, lambda: app.screen is app.dashboard, what="dialog closed")


async def test_footer_fits_what_fits_and_f1_help_lists_the_rest() -> None:
    st = FakeStation(4)
    app = make_app(st)
    async with app.run_test(size=(40, 24)) as pilot:
        await pilot.pause()
        footer = app.screen.query_one(KeyFooter)
        line = screen_lines(app)[-1]
        assert line.startswith("F1 help") and len(line.rstrip()) <= 40
        assert "silence" not in footer.shown_actions, "a 40-column footer cannot hold every key"
        await footer_whole(app, pilot)
        await press(pilot, "f1")
        assert isinstance(app.screen, HelpScreen)
        assert any("silence the alarm sound" in desc for _, desc, _ in app.screen.rows), "the rest is in F1's help"


# -- grid navigation (issue 18.9) -------------------------------------------------------------------


def test_grid_neighbour_goes_to_the_nearest_cuff_of_a_short_row() -> None:
    # 2 columns, 3 cuffs:  0 1 / 2
    assert grid_neighbour(1, 1, 2, 3) == 2, "Down from the column the last row lacks: its nearest cuff"
    assert grid_neighbour(0, 1, 2, 3) == 2
    assert grid_neighbour(2, -1, 2, 3) == 0
    assert grid_neighbour(2, 1, 2, 3) is None, "nothing below the last row"
    assert grid_neighbour(0, -1, 2, 3) is None
    # 3 columns, 5 cuffs:  0 1 2 / 3 4
    assert grid_neighbour(2, 1, 3, 5) == 4
    assert grid_neighbour(1, 1, 3, 5) == 4
    assert grid_neighbour(4, -1, 3, 5) == 1


async def test_down_from_a_column_with_no_cuff_below_goes_to_the_nearest() -> None:
    st = FakeStation(3)
    app = make_app(st)
    async with app.run_test(size=(80, 30)) as pilot:
        await press(pilot, "2")
        assert app.selected == "A2"
        await press(pilot, "down")
        assert app.selected == "B1", "the nearest cuff of the row below"
        await press(pilot, "down")
        assert app.selected == "B1", "no row below: stays"
        await press(pilot, "up")
        assert app.selected == "A1"
    st = FakeStation(5)
    app = make_app(st)
    async with app.run_test(size=(120, 40)) as pilot:  # three columns: A1 A2 B1 / B2 C1
        await press(pilot, "3", "down")
        assert app.selected == "C1"
        await press(pilot, "up")
        assert app.selected == "A2"


# -- the patient's cue and pause vented (issue 18.3) ------------------------------------------------


async def test_cue_bell_rings_at_each_lift_and_each_rest_only_when_the_config_allows() -> None:
    for allowed in (True, False):
        st = FakeStation(4)
        st.set_cuff("A1", lop=230.0)
        await st.start_session(["A1"], "legs-30-15", "P-1")
        st.set_session("A1", phase="set", beat=False)
        app = make_app(st, cue_bell=allowed)
        rings: list[int] = []
        app.bell = partial(rings.append, 1)  # type: ignore[method-assign]
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            app.refresh_now()
            assert rings == []
            for changes, rang in (
                ({"beat": True}, 1),  # a lift begins
                ({"rep": 1}, 0),  # same half of the beat: nothing
                ({"beat": False}, 0),  # lower: no bell
                ({"beat": True, "rep": 2}, 1),
                ({"phase": "rest", "beat": False, "phase_remaining_s": 30.0}, 1),  # a rest begins
                ({"phase_remaining_s": 29.0}, 0),
            ):
                before = len(rings)
                st.set_session("A1", **changes)
                st.bump()
                app.refresh_now()
                assert len(rings) - before == (rang if allowed else 0), (changes, allowed)


async def test_v_pauses_vented_and_the_panel_says_what_the_pause_means() -> None:
    st = FakeStation(4)
    st.set_cuff("A1", lop=230.0)
    await st.start_session(["A1"], "legs-30-15", "P-1")
    st.set_cuff("A1", state="HOLDING")
    st.set_session("A1", phase="set", beat=True)
    app = make_app(st)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await press(pilot, "space")
        await wait_for(pilot, lambda: st.calls and st.calls[-1].args == ("A1", "pause"), what="pause sent")
        app.refresh_now()
        await wait_for(pilot, lambda: "cuffs up, occlusion clock running" in screen_text(app), what="pause, cuffs up")
        assert "cuffs UP" in screen_text(app)
        st.set_session("A1", phase="set")
        await press(pilot, "v")
        await wait_for(pilot, lambda: st.calls[-1].args == ("A1", "pause-vent"), what="pause vented sent")
        app.refresh_now()
        await wait_for(pilot, lambda: "cuffs vented; resume refills" in screen_text(app), what="vented pause shown")
        assert "occlusion clock running" not in screen_text(app)
        await press(pilot, "f1")
        assert isinstance(app.screen, HelpScreen)
        assert ("v", "pause the session with its cuffs vented (resume refills)", "dashboard") in app.screen.rows


def test_cue_words_for_each_phase() -> None:
    from console.ui.demo_station import PLANS, make_session
    from console.ui.render import big_lines

    s = make_session(PLANS[0], ("A1",), "P", phase="set", beat=True, cadence_s=3.0, reps_target=15)
    for glyphs in (UNICODE, ASCII):
        lift, low = cue.cue(s, True, glyphs), cue.cue(replace(s, beat=False), True, glyphs)
        # The word in the big font the digits use (three rows), centred in the block.
        assert big_cue(list(lift.rows)) == "LIFT" and big_cue(list(low.rows)) == "LOWER", (lift, low)
        assert list(low.rows) == list(big_lines("LOWER", glyphs.font)), "LOWER fills the block exactly"
        assert low.style != lift.style
        assert all(len(r) == cue.CUE_WIDTH for r in (*lift.rows, *low.rows))
    assert ASCII.font == "seg7" and all(ch.isascii() for ch in "".join(cue.cue(s, True, ASCII).rows))
    assert cue.note(s, True) == "cadence: lift 1.5 s, lower 1.5 s", "the half-periods on the last row"
    assert cue.note(replace(s, message="medium alarm on A1: leak"), True) == "medium alarm on A1: leak"
    rest = replace(s, phase="rest", set_index=1, set_count=4, phase_remaining_s=11.2)
    assert cue.next_text(rest) == "next: set 2/4 in 0:12", "rounded up: 0:00 only when the rest is over"
    timed = replace(rest, reps_target=0)
    assert cue.next_text(timed) == "next: cycle 2/4 in 0:12"
    for glyphs in (UNICODE, ASCII):
        # The rest's countdown in big digits, with what it is and what comes next beside it.
        rows = list(cue.cue(rest, True, glyphs).rows)
        assert big_text_at(rows, "0:12") and [r.split()[-1] for r in rows] == ["REST", "next", "2/4"], rows
    assert [r.strip() for r in cue.cue(replace(s, phase="paused"), True, ASCII).rows] == [
        "PAUSED",
        "cuffs UP",
        "occl runs",
    ]
    assert [r.strip() for r in cue.cue(replace(s, phase="paused"), False, ASCII).rows][:2] == ["PAUSED", "vented"]
    assert all(len(r) == cue.CUE_WIDTH for r in cue.cue(rest, True, ASCII).rows)
    long_rest = replace(rest, phase_remaining_s=600.0)  # 10:00 is too wide for big digits: small words
    assert [r.strip() for r in cue.cue(long_rest, True, UNICODE).rows] == ["REST", "10:00", "next 2/4"]


def test_cue_bell_config_is_off_by_default_and_checked(tmp_path: Path) -> None:
    from console.config.loader import ConfigError, load_config
    from tests.test_config import MINIMAL

    path = tmp_path / "config.toml"
    path.write_text(MINIMAL, encoding="utf-8")
    assert load_config(path).ui.cue_bell is False, "safe default: the bell is also the alarms' sound"
    path.write_text(MINIMAL + "\n[ui]\ncue_bell = true\n", encoding="utf-8")
    assert load_config(path).ui.cue_bell is True
    path.write_text(MINIMAL + '\n[ui]\ncue_bell = "yes"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert any("ui.cue_bell" in p and "true or false" in p for p in info.value.problems), info.value.problems
    shipped = load_config(Path(__file__).resolve().parents[1] / "config.toml")
    assert shipped.ui.cue_bell is False


def test_the_attached_kiosk_takes_cue_bell_from_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The kiosk attaches to the station: the config's cue_bell must reach it (the patient watches that screen)."""
    from console import app_runner, cli
    from tests.test_config import MINIMAL

    seen: dict[str, object] = {}

    def fake_attached(**kw: object) -> int:
        seen.update(kw)
        return 0

    monkeypatch.setattr(app_runner, "run_attached", fake_attached)
    path = tmp_path / "config.toml"
    for value in (True, False):
        path.write_text(MINIMAL + f"\n[ui]\ncue_bell = {'true' if value else 'false'}\n", encoding="utf-8")
        assert cli.main(["attach", "--config", str(path), "--kiosk", "--theme", "ansi"]) == 0
        assert seen["cue_bell"] is value and seen["kiosk"] is True
