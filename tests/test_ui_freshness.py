"""What the panel may hold back to save CPU, and what it never may: alarms and state changes show on the next frame.

The trace redraws at most every ``TRACE_PERIOD_S`` and the gauge only when a
cell of it changes; an alarm, a state change or a jump must not wait for either.
Frames are stepped by hand (``refresh_now``) on an injected clock.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace

from textual.pilot import Pilot

from console.common.api import Priority, SessionSnapshot
from console.common.clock import ManualClock
from console.ui.app import BfrApp
from console.ui.demo_station import PLANS, make_session
from console.ui.render import big_lines
from console.ui.widgets.cuff_panel import (
    DETAIL_ROW,
    DIGIT_ROWS,
    DIGITS_PERIOD_S,
    GAUGE_ROW,
    PANEL_ROWS,
    TRACE_PERIOD_S,
    TRACE_ROW,
)
from tests.ui_support import FakeStation, press, screen_text


def _rows(app: BfrApp, cuff: str) -> list[str]:
    panel = app.dashboard.panels[cuff]
    assert panel._lines is not None  # noqa: SLF001 - the rows the panel last drew
    return [t.plain for t in panel._lines]  # noqa: SLF001


async def test_an_alarm_shows_on_the_next_frame_while_rows_are_held_back() -> None:
    st = FakeStation(4)
    st.set_cuff("A1", state="HOLDING", pressure=150.0, target=150.0, trace=(150.0,) * 100)
    clock = ManualClock(start=0.0)
    app = BfrApp(st, term="xterm", bell=False, clock=clock.monotonic)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        clock.advance(1.0)
        app.refresh_now()
        await pilot.pause()
        st.set_cuff("A1", pressure=150.4)  # noise inside every hold-back period
        app.refresh_now()
        await pilot.pause()
        assert "No alarms" in app.dashboard.banner.plain
        st.raise_alarm(Priority.HIGH, "OFF_TARGET", "A1", "A1 pressure off target")
        st.set_cuff("A1", pressure=150.6)  # the clock has not moved: digits and trace are still held
        app.refresh_now()  # one frame
        await pilot.pause()
        # The clinician's words for a HIGH off-target alarm (console/ui/alarm_words.py), not the code's text.
        assert "A1: pressure too high" in app.dashboard.banner.plain
        assert "pressure too high" in _rows(app, "A1")[7]
        assert app.dashboard.panels["A1"].has_class("-alarm-high")
        assert "pressure too high" in screen_text(app)


async def test_a_state_change_shows_on_the_next_frame() -> None:
    st = FakeStation(4)
    st.set_cuff("A1", state="HOLDING", pressure=150.0, target=150.0)
    clock = ManualClock(start=0.0)
    app = BfrApp(st, term="xterm", bell=False, clock=clock.monotonic)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        clock.advance(1.0)
        app.refresh_now()
        await pilot.pause()
        st.set_cuff("A1", state="VENTING", target=0.0, pressure=149.0)
        app.refresh_now()
        await pilot.pause()
        assert "VENTING" in _rows(app, "A1")[0] and "VENTING" in screen_text(app)


@contextlib.asynccontextmanager
async def _holding_a1() -> AsyncIterator[tuple[FakeStation, ManualClock, BfrApp, Pilot[None]]]:
    """A1 holds 100 mmHg, its occlusion clock at 00:10; the app's clock at 1.0 s, one frame not yet taken."""
    st = FakeStation(4)
    st.set_cuff("A1", state="HOLDING", pressure=100.0, target=100.0, trace=(100.0,) * 100, occlusion_s=10.2)
    clock = ManualClock(start=0.0)
    app = BfrApp(st, term="xterm", bell=False, clock=clock.monotonic)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        clock.advance(1.0)
        yield st, clock, app, pilot


async def test_trace_redraws_at_most_every_period_and_the_gauge_only_when_a_cell_changes() -> None:
    async with _holding_a1() as (st, clock, app, pilot):
        st.set_cuff("A1", pressure=100.1)  # a sample at t=1.0 starts the hold-back periods
        app.refresh_now()
        await pilot.pause()
        panel = app.dashboard.panels["A1"]
        trace0, gauge0 = _rows(app, "A1")[TRACE_ROW], panel._lines[GAUGE_ROW]  # noqa: SLF001
        clock.advance(TRACE_PERIOD_S / 5)
        # The trace moved, the clock's text did not (00:10): the row is held.
        st.set_cuff("A1", pressure=100.2, trace=(0.0,) * 50 + (100.0,) * 50, occlusion_s=10.9)
        app.refresh_now()
        await pilot.pause()
        assert _rows(app, "A1")[TRACE_ROW] == trace0, "within the period the trace is held"
        assert panel._lines[GAUGE_ROW] is gauge0, "the same gauge cells: the row is not rebuilt"  # noqa: SLF001
        clock.advance(TRACE_PERIOD_S / 5)
        st.set_cuff("A1", pressure=100.3, occlusion_s=11.1)  # the clock's text changes: the row follows now
        app.refresh_now()
        await pilot.pause()
        row = _rows(app, "A1")[TRACE_ROW]
        assert "00:11" in row and row != trace0, "the occlusion clock is never held back"
        assert row.split()[-1] != trace0.split()[-1], "the trace drawn with it is the newest"
        trace1 = row
        clock.advance(TRACE_PERIOD_S / 5)
        st.set_cuff("A1", pressure=100.4, trace=(100.0,) * 100, occlusion_s=11.5)
        app.refresh_now()
        await pilot.pause()
        assert _rows(app, "A1")[TRACE_ROW] == trace1, "same clock text, within the period: held"
        clock.advance(TRACE_PERIOD_S)
        st.set_cuff("A1", pressure=100.3)
        app.refresh_now()
        await pilot.pause()
        assert _rows(app, "A1")[TRACE_ROW] != trace1, "the period is over: the newest trace"
        st.set_cuff("A1", pressure=60.0)  # a jump: the gauge follows on this frame
        app.refresh_now()
        await pilot.pause()
        assert panel._lines[GAUGE_ROW].plain != gauge0.plain  # noqa: SLF001


async def test_big_digits_follow_noise_each_period_and_a_jump_at_once_without_rebuilding_other_rows() -> None:
    async with _holding_a1() as (st, clock, app, pilot):
        st.set_cuff("A1", pressure=100.1)
        app.refresh_now()
        await pilot.pause()
        panel = app.dashboard.panels["A1"]
        before = list(panel._lines or [])  # noqa: SLF001
        clock.advance(DIGITS_PERIOD_S / 5)
        st.set_cuff("A1", pressure=101.6)  # noise: held within the period
        app.refresh_now()
        await pilot.pause()
        assert _rows(app, "A1")[1:4] == [t.plain for t in before[1:4]]
        clock.advance(DIGITS_PERIOD_S)
        st.set_cuff("A1", pressure=101.7)  # the period is over: the digits read 102 now
        app.refresh_now()
        await pilot.pause()
        assert [r.rstrip() for r in _rows(app, "A1")[1:4]][0].startswith(big_lines("102", "block")[0].rstrip())
        after = panel._lines or []  # noqa: SLF001
        assert after[0] is before[0] and after[5] is before[5] and after[7] is before[7], "other rows kept"
        st.set_cuff("A1", pressure=140.0)  # a jump of 3 mmHg or more: at once, the clock has not moved
        app.refresh_now()
        await pilot.pause()
        assert _rows(app, "A1")[1].startswith(big_lines("140", "block")[0].rstrip())
        assert all(r in screen_text(app) for r in big_lines("140", "block"))


async def test_a_panel_scrolled_out_of_view_shows_its_newest_reading_when_it_comes_back() -> None:
    st = FakeStation(16)
    app = BfrApp(st, term="xterm", bell=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        cuff = app.dashboard.order[-2]  # never selected: only scrolling hides and shows it
        assert f" {cuff} " not in screen_text(app), "16 cuffs do not fit 80x24: it starts out of view"
        st.set_cuff(cuff, state="HOLDING", pressure=100.0, target=210.0)
        await press(pilot, "left")  # the selection wraps to the last cuff and the grid scrolls to it
        await pilot.pause()
        assert f" {cuff} " in screen_text(app) and all(r in screen_text(app) for r in big_lines("100", "block"))
        await press(pilot, "right")  # back to the first: out of view again
        await pilot.pause()
        assert f" {cuff} " not in screen_text(app)
        for pressure in (130.0, 170.0, 213.0):  # changes while out of view
            st.set_cuff(cuff, pressure=pressure)
            app.refresh_now()
            await pilot.pause()
        await press(pilot, "left")
        await pilot.pause()
        text = screen_text(app)
        assert f" {cuff} " in text
        assert all(row in text for row in big_lines("213", "block")), text


def test_a_vented_cuffs_noise_around_zero_does_not_flicker_the_gauge() -> None:
    from console.ui.render import gauge
    from console.ui.theme import ASCII

    empty = gauge(0.0, 0.0, 15.0, 20, ASCII).plain
    assert gauge(0.4, 0.0, 15.0, 20, ASCII).plain == empty == gauge(-0.3, 0.0, 15.0, 20, ASCII).plain
    assert gauge(2.9, 0.0, 15.0, 20, ASCII).plain == empty, "a vented cuff's noise and pulse (0-2.5 mmHg)"
    assert gauge(3.0, 0.0, 15.0, 20, ASCII).plain != empty, "a pressure of 3 mmHg or more shows a cell"


def _set(**changes: object) -> SessionSnapshot:
    """A1 in the first set of a 30-rep plan, rep 3, contracting; ``changes`` on top."""
    fields: dict[str, object] = {"phase": "set", "rep": 3, "beat": True, **changes}
    return make_session(PLANS[0], ("A1",), "P-0007", **fields)


ROW_CHANGES: list[dict[str, object]] = [
    {"lop_age_s": 2400.0},  # row 5: "... 40 min ago"
    {"lop_position": "supine"},
    {"lop": 190.0},
    {"patient_id": "P-0042"},
    {"max_pct_lop": 70.0},
    {"occlusion_s": 75.0},  # row 6's clock
    {"trace": (0.0,) * 50 + (100.0,) * 50},  # row 6's trace
    {"pressure": 101.6},  # noise: the digits catch up after their period
    {"pressure": 60.0},  # a jump
    {"target": 110.0, "target_pct_lop": 58.0},
    {"state": "VENTING", "target": 0.0},
    {"state": "HOLDING", "target": 100.0, "session": _set()},
    {"session": _set(beat=False)},  # the cue flips to LOWER; row 5's beat mark
    {"session": _set(rep=4)},  # the cue flips back to LIFT with the next rep
    {"session": _set(rep=5)},  # row 5's rep alone (a rep counted by hand or by a contraction)
    {"session": _set(phase="rest", phase_remaining_s=12.3, beat=False)},
    {"session": _set(phase="rest", phase_remaining_s=11.2, beat=False)},  # the countdown, cue and row 5
    {"session": _set(phase="rest", phase_remaining_s=11.2, beat=False, message="patient reports tingling")},
    {
        "session": _set(
            phase="rest", phase_remaining_s=11.2, beat=False, message="patient reports tingling", set_index=2
        )
    },
    {"session": _set(phase="between", phase_remaining_s=30.4, beat=False)},  # a break's countdown
    {"session": _set(phase="between", phase_remaining_s=29.4, beat=False)},
    {"session": _set(reps_target=0, phase_remaining_s=30.4, beat=False)},  # a timed plan's set
    {"session": _set(reps_target=0, phase_remaining_s=29.4, beat=False)},
    {"session": None},
]


async def test_every_row_catches_up_with_a_full_rebuild_once_its_hold_back_periods_are_over() -> None:
    """Whatever a panel holds back, after its periods (and one more sample) each row is what a full
    rebuild of the panel would draw, and the screen shows it: no field a row shows is left stale."""
    async with _holding_a1() as (st, clock, app, pilot):
        st.set_cuff("A1", lop=180.0, lop_position="seated", lop_age_s=60.0)
        app.refresh_now()
        await pilot.pause()
        panel = app.dashboard.panels["A1"]
        for change in ROW_CHANGES:
            st.set_cuff("A1", **change)
            app.refresh_now()
            await pilot.pause()
            clock.advance(max(DIGITS_PERIOD_S, TRACE_PERIOD_S) + 0.01)
            st.set_cuff("A1")  # one more sample, nothing else new
            app.refresh_now()
            await pilot.pause()
            width = panel.content_size.width
            full = [t.plain for t in panel.lines(width)]
            assert _rows(app, "A1") == full, change
            text = screen_text(app)
            assert all(row.strip() in text for row in full), change


async def test_a_session_s_second_redraws_its_cue_and_progress_at_once_and_no_other_row() -> None:
    """In a set the cue beside the digits flips every half-period and row 5 counts the reps: those rows
    are redrawn on the frame that brings the change, as a full rebuild would draw them, while the rows
    that did not change (state, gauge, trace, note) keep what they showed."""
    async with _holding_a1() as (st, clock, app, pilot):
        st.set_cuff("A1", session=_set())
        app.refresh_now()
        await pilot.pause()
        panel = app.dashboard.panels["A1"]
        rest = _set(phase="rest", phase_remaining_s=10.5, beat=False)
        for change in (_set(beat=False), _set(beat=True, rep=4), rest, replace(rest, phase_remaining_s=9.5)):
            before = list(panel._lines or [])  # noqa: SLF001
            clock.advance(0.05)  # within every hold-back period
            st.set_cuff("A1", session=change, pressure=100.1)
            app.refresh_now()
            await pilot.pause()
            after = panel._lines or []  # noqa: SLF001
            full = [t.plain for t in panel.lines(panel.content_size.width)]
            shown = [t.plain for t in after]
            assert shown == full, change
            if change is rest:
                continue  # a new phase redraws every row
            assert any(shown[row] != before[row].plain for row in range(PANEL_ROWS)[DIGIT_ROWS]), change
            assert shown[DETAIL_ROW] != before[DETAIL_ROW].plain, change
            for row in (0, GAUGE_ROW, TRACE_ROW, 7):
                assert after[row] is before[row], f"row {row} was rebuilt for a session's second: {change}"
