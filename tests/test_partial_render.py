"""A frame asks only the widgets under the dirty rows, and sends the terminal the same bytes (console.ui.partial_render).

The real console (16 cuffs, the real dashboard) is drawn with Textual's partial update and with the
shim, on the same state and the same dirty regions; what each would write to the terminal is compared
segment by segment, and the widgets each asked for lines are counted.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from rich.console import Console
from textual._compositor import Compositor
from textual.geometry import Region
from textual.widget import Widget

from console.ui import partial_render
from console.ui.widgets.cuff_panel import CuffPanel
from tests.test_ui import make_app
from tests.ui_support import FakeStation, screen_text, wait_for


@pytest.fixture
def asked() -> Iterator[list[Widget]]:
    """Every widget asked for lines while the fixture lives, in order."""
    calls: list[Widget] = []
    textual_render_lines = Widget.render_lines

    def counting(self: Widget, crop: Region) -> Any:
        calls.append(self)
        return textual_render_lines(self, crop)

    Widget.render_lines = counting  # type: ignore[method-assign]
    yield calls
    Widget.render_lines = textual_render_lines  # type: ignore[method-assign]


def wire(compositor: Compositor, dirty: list[Region], *, shim: bool) -> list[tuple[str, object, object]]:
    """What one partial update with these dirty regions writes to the terminal.

    The regions are clipped to the screen first, as Textual clips what it marks dirty.
    """
    screen = compositor.size.region
    dirty = [r for d in dirty if (r := d.intersection(screen))]
    if shim:
        partial_render.install()
    else:
        partial_render.uninstall()
    try:
        compositor._dirty_regions.clear()
        compositor._dirty_regions.update(dirty)
        update = compositor.render_partial_update()
    finally:
        partial_render.install()
    assert update is not None
    console = Console(width=compositor.size.width, height=compositor.size.height, force_terminal=True)
    return [(s.text, s.style, s.control) for s in update.__rich_console__(console, console.options)]


def panel_rows(panel: CuffPanel, *rows: int) -> list[Region]:
    """Whole content rows of one panel, in screen coordinates."""
    box = panel.content_region
    return [Region(box.x, box.y + r, box.width, 1) for r in rows]


def _dashboard() -> tuple[FakeStation, Any]:
    st = FakeStation(16)
    app, _ = make_app(st)
    return st, app


@pytest.mark.parametrize("size", [(160, 50), (80, 24)], ids=["160x50", "80x24 scrolled grid"])
async def test_scattered_dirty_rows_write_the_same_and_ask_only_their_widgets(
    size: tuple[int, int], asked: list[Widget]
) -> None:
    st, app = _dashboard()
    async with app.run_test(size=size) as pilot:
        for i, cid in enumerate(st.snapshot().cuffs):
            held = i % 3 == 0
            st.set_cuff(
                cid.id, pressure=40.0 + 7 * i, target=120.0 if held else 0.0, state="HOLDING" if held else "VENTED"
            )
        await wait_for(pilot, lambda: "HOLDING" in screen_text(app))
        shown = app.screen._compositor.visible_widgets
        panels = [p for p in app.dashboard.panels.values() if p in shown]
        assert len(panels) >= 4
        first, last = panels[0], panels[-1]
        header = app.dashboard.header.region
        dirty = panel_rows(first, 4) + panel_rows(last, 6) + [Region(header.right - 9, header.y, 9, 1)]
        compositor = app.screen._compositor

        asked.clear()
        textual = wire(compositor, dirty, shim=False)
        asked_by_textual = [w for w in asked if isinstance(w, CuffPanel)]
        asked.clear()
        shimmed = wire(compositor, dirty, shim=True)
        asked_by_shim = [w for w in asked if isinstance(w, CuffPanel)]

        assert shimmed == textual
        assert len(asked_by_textual) >= len(panels) - 1  # the box around the two rows holds (nearly) every panel
        assert set(asked_by_shim) == {first, last}


@pytest.mark.parametrize("dialog", [False, True], ids=["dashboard", "dialog over the dashboard"])
async def test_random_dirty_regions_write_the_same_as_textual(dialog: bool) -> None:
    """Regions anywhere, of any size, across widget edges and off the screen: the same bytes.

    With a dialog open the dashboard is drawn under it, dimmed, by its own compositor inside
    the dialog's frame, and must not take the dialog's dirty regions: it did, and the screen's
    bottom rows went blank, the emergency key among them (tests/test_ui_panels.py's check that
    every screen names the emergency key caught it; this comparison alone does not).
    """
    st, app = _dashboard()
    rng = random.Random(14)
    async with app.run_test(size=(80, 24)) as pilot:
        st.set_cuff("A1", pressure=151.0, target=150.0, state="HOLDING")
        await pilot.press("3")  # another cuff selected: its border is drawn in the selected style
        if dialog:
            await pilot.press("i")
            await wait_for(pilot, lambda: app.screen is not app.dashboard, what="the inflate dialog")
        await pilot.pause()
        compositor = app.screen._compositor
        for _ in range(60):
            dirty = [
                Region(rng.randrange(-5, 80), rng.randrange(-3, 24), rng.randrange(1, 40), rng.randrange(1, 8))
                for _ in range(rng.randrange(1, 6))
            ]
            assert wire(compositor, dirty, shim=True) == wire(compositor, dirty, shim=False), dirty


async def test_the_console_installs_it_and_a_failed_frame_leaves_no_regions_behind() -> None:
    """A widget that fails to draw must not leave its frame's regions to steer the next full frame."""
    partial_render.uninstall()
    st, app = _dashboard()
    assert partial_render.installed()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        broken = app.dashboard.panels["A1"]

        def fail(crop: Region) -> Any:
            raise RuntimeError("drawing failed")

        broken.render_lines = fail  # type: ignore[method-assign]
        compositor = app.screen._compositor
        compositor._dirty_regions.update(panel_rows(broken, 4))
        with pytest.raises(RuntimeError, match="drawing failed"):
            compositor.render_partial_update()
        assert partial_render._dirty_now is None
        del broken.render_lines
        full = compositor.render_update(full=True)
        assert full is not None and len(full.strips) == 24  # type: ignore[attr-defined]
