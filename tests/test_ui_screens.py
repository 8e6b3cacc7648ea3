"""What the screen shows, as text: sizes, cuff counts, the ANSI theme, offline and inflated cuffs."""

from __future__ import annotations

import re

import pytest

from console.common.api import Priority
from console.ui.app import BfrApp
from console.ui.render import big_lines, fmt_pressure
from tests.ui_support import FakeStation, press, screen_lines, screen_text


def _visible_ids(app: BfrApp) -> set[str]:
    """Cuff ids whose whole panel (title to bottom border) is on screen."""
    text = screen_text(app)
    return {cid for cid in app.dashboard.panels if re.search(rf"[ >▶]{cid}  ", text)} & {
        cid
        for cid, p in app.dashboard.panels.items()
        if app.screen.region.contains_region(p.region)
        and p.region.y >= 2
        and p.region.bottom <= app.screen.region.bottom - 2
        and app.dashboard.grid.region.contains_region(p.region)
    }


def _fake(n: int) -> FakeStation:
    st = FakeStation(n)
    st.set_cuff(
        "A1",
        state="HOLDING",
        pressure=182.4,
        target=184.0,
        target_pct_lop=80.0,
        pressure_pct_lop=79.3,
        occlusion_s=192.0,
        trace=tuple(float(x % 40 + 150) for x in range(100)),
    )
    st.set_cuff("A2", state="INFLATING", pressure=90.0, target=150.0)
    if n > 4:
        st.go_offline("ctl2")
    return st


@pytest.mark.parametrize(
    ("size", "n", "theme"),
    [((80, 24), 4, "auto"), ((120, 40), 8, "auto"), ((80, 24), 4, "ansi"), ((120, 40), 8, "ansi")],
)
async def test_every_cuff_visible_with_state_words_and_emergency_bar(size: tuple[int, int], n: int, theme: str) -> None:
    st = _fake(n)
    app = BfrApp(st, theme=theme, term="xterm", bell=False)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        lines = screen_lines(app)
        text = "\n".join(lines)
        assert len(lines) == size[1] and all(len(line) == size[0] for line in lines)
        assert _visible_ids(app) == set(app.dashboard.panels), text
        assert "Station: Bay A" in lines[0]
        assert "F12 / Ctrl+E: EMERGENCY DEFLATE ALL" in lines[-2]
        for word in ("HOLDING", "INFLATING", "VENTED"):
            assert word in text
        if n > 4:
            assert text.count("OFFLINE") == 4 and "controller ctl2 offline" in text
        assert "target 184 mmHg" in text and "80%LOP" in text and "occl 03:12/10:00" in text
        font = "seg7" if theme == "ansi" else "block"
        assert all(row in text for row in big_lines("182", font))
        if theme == "ansi":
            assert app.theme == "ansi-dark"
            assert "╭" not in text and "╔" not in text and "━" not in text, "no round/double/heavy glyphs"
            assert all(ord(ch) < 0x2600 for ch in text), "only ASCII and box drawing"
        else:
            assert "╔" in text, "the selected cuff has a double border"


async def test_term_linux_picks_ansi_theme_and_ascii_glyphs() -> None:
    app = BfrApp(_fake(4), term="linux", bell=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        text = screen_text(app)
        assert app.theme == "ansi-dark" and app.has_class("-ansi")
        assert "+-" in text and "> A1" in text
        assert "█" not in text and "▁" not in text


async def test_twelve_cuffs_scroll_the_selected_one_into_view() -> None:
    st = FakeStation(12)
    app = BfrApp(st, term="xterm", bell=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert len(_visible_ids(app)) == 4
        assert "F2" not in _visible_ids(app)
        for _ in range(11):
            await press(pilot, "right")
        await pilot.pause()
        assert app.selected == "F2"
        assert "F2" in _visible_ids(app), screen_text(app)
        assert "▶ F2" in screen_text(app)
        await press(pilot, "1")
        await pilot.pause()
        assert "A1" in _visible_ids(app) and "F2" not in _visible_ids(app)
        await press(pilot, "up")  # first row: stays
        assert app.selected == "A1"
        for _ in range(5):
            await press(pilot, "down")
        await pilot.pause()
        assert app.selected == "F1" and "F1" in _visible_ids(app)


async def test_offline_cuff_shows_dashes_never_zero() -> None:
    st = FakeStation(4)
    st.go_offline("ctl1")
    app = BfrApp(st, term="xterm", bell=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        panel = app.dashboard.panels["B1"]
        rows = [t.plain for t in panel.lines(36)]
        assert rows[0].strip().startswith("OFFLINE")
        dash_rows = big_lines("---", "block")
        assert all(rows[1 + i].startswith(dash_rows[i]) for i in range(3))
        zero_rows = big_lines("  0", "block")
        assert not any(zero_rows[2] in r for r in rows[1:4])
        assert "no data" in rows[2] and "%LOP" not in "".join(rows)
        assert panel.has_class("-offline") and not panel.has_class("-inflated")


async def test_inflated_cuff_is_unmistakable() -> None:
    st = FakeStation(4)
    st.set_cuff("B1", state="HOLDING", pressure=150.0, target=150.0)
    app = BfrApp(st, term="xterm", bell=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        b1, b2 = app.dashboard.panels["B1"], app.dashboard.panels["B2"]
        assert b1.has_class("-inflated") and not b2.has_class("-inflated")
        r1, r2 = b1.lines(36), b2.lines(36)
        assert "HOLDING" in r1[0].plain and "reverse" in str(r1[0].get_style_at_offset(app.console, 2))
        assert "reverse" not in str(r1[0].get_style_at_offset(app.console, 20)), "only the state word is reversed"
        assert r1[4].plain.count("█") > 10 and "█" not in r2[4].plain
        assert b1.styles.border_top[1] != b2.styles.border_top[1], "border colour differs"


async def test_alarm_banner_and_header_count() -> None:
    st = FakeStation(4)
    st.raise_alarm(Priority.MEDIUM, "LEAK", "B2", "B2 pump ran 8 s without pause")
    st.raise_alarm(Priority.HIGH, "OCCLUSION_LIMIT", "A1", "A1 occluded 20 min: deflating")
    app = BfrApp(st, term="xterm", bell=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        lines = screen_lines(app)
        assert "2 alarms (1 high, 1 medium)" in lines[0]
        # In a clinician's words, what happened and what to do; the station's own sentence is in the alarm list.
        assert "HIGH [NEW] A1: time limit reached, deflated. Let the limb recover." in lines[1]
        assert "+1 (l)" in lines[1]
        assert "! MEDIUM leak, the pump keeps" in screen_text(app)


async def test_gauge_follows_every_sample_digits_follow_noise_at_2_hz_and_jumps_at_once() -> None:
    from console.common.clock import ManualClock
    from console.ui.widgets.cuff_panel import DIGITS_PERIOD_S

    assert DIGITS_PERIOD_S == 0.5

    st = FakeStation(4)
    st.set_cuff("A1", state="HOLDING", pressure=150.0, target=150.0)
    clock = ManualClock(start=0.0)
    app = BfrApp(st, term="xterm", bell=False, clock=clock.monotonic)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        panel = app.dashboard.panels["A1"]

        def digits() -> str:
            return panel._lines[1].plain + panel._lines[2].plain + panel._lines[3].plain  # type: ignore[index]

        def shows(p: float) -> bool:
            return all(r in digits() for r in big_lines(fmt_pressure(p), "block"))

        clock.advance(1.0)
        st.set_cuff("A1", pressure=150.0, trace=(150.0,) * 100)  # a sample at t=1.0 starts the digits' period
        app.refresh_now()
        await pilot.pause()
        assert shows(150.0)
        gauge_before = panel._lines[4].plain  # type: ignore[index]
        st.set_cuff("A1", pressure=151.2, trace=(150.0,) * 99 + (151.2,))
        app.refresh_now()
        await pilot.pause()
        assert shows(150.0), "noise within the period: digits held"
        st.set_cuff("A1", pressure=170.0)
        app.refresh_now()
        await pilot.pause()
        assert shows(170.0), "a jump shows at once"
        assert panel._lines[4].plain != gauge_before  # type: ignore[index]
        st.set_cuff("A1", pressure=171.0)
        app.refresh_now()
        await pilot.pause()
        assert shows(170.0)
        clock.advance(0.3)
        app.refresh_now()
        await pilot.pause()
        assert shows(170.0), "0.3 s after the jump: still held"
        clock.advance(0.25)
        app.refresh_now()  # no new sample: catch_up brings the held digit
        await pilot.pause()
        assert shows(171.0)
        st.go_offline("ctl1")
        app.refresh_now()
        await pilot.pause()
        assert all(r in digits() for r in big_lines("---", "block")), "offline shows at once"
