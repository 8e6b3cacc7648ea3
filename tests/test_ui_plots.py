"""A plot that Plotext cannot draw never takes the console down (it shows a line instead)."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult

from console.ui.screens.plots import SafePlot


class OnePlot(App[None]):
    def compose(self) -> ComposeResult:
        yield SafePlot(id="p")


async def test_a_plot_that_fails_to_draw_shows_a_line_and_the_app_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    app = OnePlot()
    async with app.run_test(size=(40, 10)) as pilot:
        plot = app.query_one(SafePlot)
        plot.plt.plot([0, 1, 2], [1, 2, 3])
        assert "(this plot cannot" not in str(plot.render())

        def broken() -> str:
            raise IndexError("list index out of range")  # what Plotext 5.3 raises for a legend too small

        monkeypatch.setattr(plot.plt, "build", broken)
        assert str(plot.render()) == "(this plot cannot be drawn at this size)"
        plot.refresh()
        await pilot.pause()
        assert app.is_running
