"""Pictures in the console: a session's pressure per cuff, and a patient's course.

Drawn with textual-plotext (Plotext in a Textual widget), not by hand. On the
Linux text console (``-ansi``) the points are plain ASCII and the colours the 16
of the console. A session: each cuff's pressure against its target and the cuff's
alarm band (its ``[safety]`` tolerance; fidelity, the +-10 % figure, is in the
title), sets shaded, alarms and the emergency marked by vertical lines. A
course: LOP and prescribed pressure, reps per set, time under occlusion.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult, RenderResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual_plotext import PlotextPlot

from console.common.api import CommandRefused
from console.common.patients import PatientBook, PatientHistory, progress
from console.common.plots import CuffSeries, alarm_band, alarm_band_text, fidelity_text
from console.ui.actions import ConsoleActions
from console.ui.plain import plain
from console.ui.widgets.status import EmergencyBar

if TYPE_CHECKING:
    from console.common.plots import SessionPlot

MARK_COLOURS = {"high": "red", "medium": "orange", "low": "yellow", "emergency": "magenta"}
log = logging.getLogger(__name__)


class SafePlot(PlotextPlot):
    """A Plotext plot that can never take the console down: a plot Plotext fails to draw (a size it
    does not handle) shows a line saying so, and the emergency key and everything else carry on."""

    def render(self) -> RenderResult:
        try:
            return super().render()
        except Exception:
            log.exception("ui: a plot could not be drawn at %sx%s", self.size.width, self.size.height)
            return Text("(this plot cannot be drawn at this size)")


class PlotScreen(Screen[None]):
    """Shared frame: a title, the plots, the emergency bar; F10 (or q) goes back."""

    DEFAULT_CSS = """
    PlotScreen #plots { height: 1fr; }
    PlotScreen PlotextPlot { height: 1fr; min-height: 6; }
    """

    BINDINGS = [Binding("f10,q,escape", "close", "back", key_display="F10")]

    def __init__(self, actions: ConsoleActions, title: str) -> None:
        super().__init__()
        self.actions = actions
        self.title_text = title

    def compose(self) -> ComposeResult:
        yield Static(plain(f" {self.title_text}  (F10 back)"), classes="screen-title", id="plot-title")
        yield Vertical(id="plots")
        yield Static("", id="plot-note")
        yield EmergencyBar(id="emergency")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(EmergencyBar).show_emergency(self.actions.view.last_snapshot.emergency)

    @property
    def ascii_only(self) -> bool:
        return self.app.has_class("-ansi")

    def marker(self) -> str:
        """Braille dots where the terminal has them; ``*`` on the Linux console's font."""
        return "*" if self.ascii_only else "braille"

    async def add_plot(self) -> Any:
        plot = SafePlot()
        await self.query_one("#plots", Vertical).mount(plot)
        return plot

    def note(self, text: str) -> None:
        self.query_one("#plot-note", Static).update(plain(text))

    def action_close(self) -> None:
        self.dismiss(None)


class SessionPlotScreen(PlotScreen):
    """One plot per cuff of a session, from the station's records."""

    def __init__(self, actions: ConsoleActions, book: PatientBook, session_id: int) -> None:
        super().__init__(actions, f"Session #{session_id}: pressure per cuff")
        self.book = book
        self.session_id = session_id
        self.data: SessionPlot | None = None

    def on_mount(self) -> None:
        super().on_mount()
        self.run_worker(self._load(), exclusive=True)

    async def _load(self) -> None:
        try:
            data = await self.book.session_plot(self.session_id)
        except CommandRefused as exc:
            self.note(str(exc))
            return
        self.data = data
        for c in data.cuffs:
            plot = await self.add_plot()
            self._draw(plot.plt, data, c)
            plot.refresh()
        s = data.session
        pm = "+-" if self.ascii_only else "±"
        bands = sorted({f"{pm}{c.tolerance:g} mmHg" for c in data.cuffs if c.tolerance is not None})
        band = f"green: target and its alarm band {', '.join(bands)}" if bands else "green: target"
        self.note(
            f"{s.patient_id} {s.plan_name}: {band}; fidelity = time within {pm}{100 * data.fidelity_band:.0f} % "
            f"of target; shaded sets; red/orange alarms, magenta emergency ({len(data.marks)} marked)"
        )

    def _draw(self, plt: Any, data: SessionPlot, c: CuffSeries) -> None:
        plt.clear_figure()
        band = alarm_band(c)
        edges = [x for x in band[1] if x == x] if band is not None else []  # x == x: not NaN (a vented rest)
        top = max([*c.pressure, *c.target, *edges, 10.0]) * 1.1
        for span in data.spans:
            if span.kind == "set":
                plt.plot([span.start, span.end], [top, top], fillx=True, color="gray", marker=self.marker())
        if band is not None:
            # Dots, not lines: no edge is drawn across a rest in which no target was held.
            for edge in band:
                held = [(t, x) for t, x in zip(c.t, edge, strict=True) if x == x]
                plt.scatter([t for t, _ in held], [x for _, x in held], color="green", marker=self.marker())
        plt.plot(c.t, c.target, color="green+", marker="-" if self.ascii_only else "hd")
        plt.plot(c.t, c.pressure, color="cyan", marker=self.marker())
        for m in data.marks:
            plt.vline(m.t, MARK_COLOURS.get(m.kind, "red"))
        pm = "+-" if self.ascii_only else "±"
        fid = fidelity_text(c, data.fidelity_band, pm)
        plt.title(f"{c.cuff_id} {c.label}" + (f", {fid}" if fid else f"; {alarm_band_text(c, pm)}"))
        plt.xlim(0, max(data.duration_s, 1.0))
        plt.ylim(0, top)
        plt.xlabel("s")


class CourseScreen(PlotScreen):
    """A patient's course: LOP and prescribed pressure, reps per set, occlusion, session by session."""

    def __init__(self, actions: ConsoleActions, history: PatientHistory) -> None:
        super().__init__(actions, f"Patient {history.patient_id}: {len(history.sessions)} sessions")
        self.history = history

    def on_mount(self) -> None:
        super().on_mount()
        self.run_worker(self._draw(), exclusive=True)

    async def _draw(self) -> None:
        course = progress(self.history.patient_id, self.history.sessions)
        n = list(range(1, len(course.dates) + 1))
        m = self.marker()
        p1 = await self.add_plot()
        p1.plt.plot(n, [x if x is not None else 0.0 for x in course.lop], marker=m, color="cyan")
        p1.plt.plot(n, [x if x is not None else 0.0 for x in course.target], marker=m, color="green")
        values = [x for x in (*course.lop, *course.target) if x is not None]
        if values:
            p1.plt.ylim(min(values) - 10, max(values) + 10)
        p1.plt.title("LOP and prescribed pressure (mmHg)")
        p2 = await self.add_plot()
        longest = max((len(r) for r in course.reps_per_set), default=0)
        for i in range(longest):
            p2.plt.plot(n, [r[i] if i < len(r) else 0 for r in course.reps_per_set], marker=m)
        p2.plt.ylim(0, max((max(r, default=0) for r in course.reps_per_set), default=0) + 2)
        p2.plt.title("Reps completed per set")
        p3 = await self.add_plot()
        p3.plt.bar(
            n, [x if x is not None else 0.0 for x in course.occlusion_min], marker="#" if self.ascii_only else "sd"
        )
        p3.plt.title("Time under occlusion (min)")
        for p in (p1, p2, p3):
            p.plt.xlabel("session")
            p.refresh()
        self.note("cyan LOP, green prescribed pressure; sets in order of colour; x: sessions, oldest first")
