"""One cuff at a glance: state, big pressure, target, gauge, occlusion time, trace.

The panel keeps the newest :class:`CuffSnapshot` and repaints (no re-layout)
only when it changes; rendering is pure text from :mod:`console.ui.render`.
"""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from console.station.api import OFFLINE, AlarmSnapshot, CuffSnapshot, Priority
from console.ui import render
from console.ui.theme import UNICODE, Glyphs

INFLATED_STATES = frozenset({"INFLATING", "HOLDING", "VENTING"})
"""States in which the cuff holds (or is still releasing) pressure."""

STATE_STYLE = {
    "VENTED": "bold green",
    "INFLATING": "bold reverse blue",
    "HOLDING": "bold reverse blue",
    "VENTING": "bold reverse magenta",
    "FAULT": "bold reverse red",
    OFFLINE: "bold reverse",
    "CONNECTING": "bold",
}

PANEL_ROWS = 8
"""Content rows; with the border a panel is 10 rows, so two rows fit 80x24."""


def is_inflated(cuff: CuffSnapshot) -> bool:
    """True when the cuff may hold pressure: the therapist must never doubt it."""
    return cuff.state in INFLATED_STATES or cuff.target > 0


class CuffPanel(Widget):
    """A bordered panel per cuff."""

    DEFAULT_CSS = """
    CuffPanel { height: 10; }
    """

    def __init__(self, cuff: CuffSnapshot, glyphs: Glyphs = UNICODE) -> None:
        super().__init__(id=f"cuff-{cuff.id}", classes="cuff-panel")
        self.cuff = cuff
        self.cuff_id = cuff.id
        self.glyphs = glyphs
        self.selected = False
        self.cuff_alarm: AlarmSnapshot | None = None
        """The cuff's most urgent alarm still needing attention (drives colour and line 8)."""
        self._flash_on = False
        self._apply_classes()

    # -- data in -----------------------------------------------------------
    def set_cuff(self, cuff: CuffSnapshot, alarm: AlarmSnapshot | None) -> None:
        """Take a new snapshot; repaint only when something visible changed."""
        if cuff == self.cuff and alarm == self.cuff_alarm:
            return
        self.cuff = cuff
        self.cuff_alarm = alarm
        self._apply_classes()
        self.refresh()

    def set_selected(self, selected: bool) -> None:
        if selected != self.selected:
            self.selected = selected
            self._apply_classes()
            self.refresh()

    def set_flash(self, on: bool) -> None:
        """Flash phase for an unacknowledged alarm (the app steps it)."""
        if on != self._flash_on:
            self._flash_on = on
            self.set_class(on, "-flash")

    @property
    def flashing_on(self) -> bool:
        return self._flash_on

    def _apply_classes(self) -> None:
        c = self.cuff
        self.set_class(self.selected, "-selected")
        self.set_class(is_inflated(c) and c.online, "-inflated")
        self.set_class(not c.online or c.state == OFFLINE, "-offline")
        self.set_class(c.state == "FAULT", "-fault")
        level = c.alarm
        for p in Priority:
            self.set_class(level == p, f"-alarm-{p.value}")
        marker = self.glyphs.selected if self.selected else " "
        self.border_title = f"{marker} {c.id}  {c.label} ({c.limb})"
        self.border_subtitle = f"{c.controller} ch{c.channel}"

    # -- text out ----------------------------------------------------------
    def render(self) -> Text:
        width = max(20, self.content_size.width or 36)
        return Text("\n").join(self.lines(width))

    def lines(self, width: int) -> list[Text]:
        """The panel's content rows, each at most ``width`` cells."""
        c, g = self.cuff, self.glyphs
        online = c.online and c.state != OFFLINE
        pressure = c.pressure if online else None
        rows: list[Text] = []

        # Row 0: the state word, loud, plus the target.
        state = (f" {c.state:<10} ", STATE_STYLE.get(c.state, "bold"))
        if c.target > 0:
            tgt = f"target {c.target:3.0f} mmHg"
            if c.target_pct_lop is not None:
                tgt += f" {c.target_pct_lop:3.0f}%LOP"
        else:
            tgt = "target --"
        rows.append(Text.assemble(state, " " + tgt.rjust(max(0, width - 13))))

        # Rows 1-3: big pressure digits with the unit and % LOP beside.
        big = render.big_lines(render.fmt_pressure(pressure), g.font)
        side = [
            " mmHg",
            "",
            f" {c.pressure_pct_lop:3.0f}%LOP" if (online and c.pressure_pct_lop is not None) else "",
        ]
        if not online:
            side = [" mmHg", " no data", ""]
        big_style = "bold" if online else "dim"
        for r in range(3):
            rows.append(Text.assemble((big[r], big_style), side[r]))

        # Row 4: gauge with the tolerance band.
        band_label = f" ±{c.tolerance:.0f}" if g is UNICODE else f" +-{c.tolerance:.0f}"
        gwidth = max(4, width - len(band_label))
        off = (
            pressure is not None
            and c.target > 0
            and c.state == "HOLDING"
            and abs(pressure - c.target) > c.tolerance
        )
        fill = "bold red" if off else ("bold blue" if is_inflated(c) else "green")
        bar = render.gauge(pressure, c.target, c.tolerance, gwidth, g, fill_style=fill)
        bar.append(band_label)
        rows.append(bar)

        # Row 5: session / LOP / controller status.
        rows.append(Text(self._detail_line(), overflow="ellipsis", no_wrap=True))

        # Row 6: occlusion time vs its limit, then the 10 s trace.
        occ = f"occl {render.fmt_mmss(c.occlusion_s)}/{render.fmt_mmss(c.occlusion_limit_s)} "
        occ_style = ""
        if c.occlusion_s >= c.occlusion_limit_s > 0:
            occ_style = "bold red"
        elif c.occlusion_s >= c.occlusion_warn_s > 0:
            occ_style = "bold yellow"
        top = render.gauge_scale(max(c.trace) if c.trace else None, c.target, c.tolerance)
        spark = render.sparkline(c.trace if online else (), max(0, width - len(occ)), g, top)
        rows.append(Text.assemble((occ, occ_style), (spark, "blue")))

        # Row 7: the cuff's alarm, if any.
        a = self.cuff_alarm
        if a is not None:
            mark = "ACK " if a.acknowledged else ""
            rows.append(Text(f"! {a.priority.value.upper()} {mark}{a.message}", style="bold"))
        else:
            rows.append(Text(""))
        for row in rows:
            row.truncate(width)
        return rows

    def _detail_line(self) -> str:
        c = self.cuff
        if not c.online or c.state == OFFLINE:
            return f"controller {c.controller} offline"
        s = c.session
        if s is not None:
            beat = self.glyphs.bullet if s.beat else " "
            reps = f"rep {s.rep}/{s.reps_target} {beat}" if s.reps_target else ""
            left = f" {render.fmt_mmss(s.phase_remaining_s)}" if s.phase_remaining_s is not None else ""
            return f"{s.phase} set {s.set_index}/{s.set_count} {reps}{left}".strip()
        m = c.lop_measure
        if m is not None:
            if m.state == "done" and m.lop is not None:
                return f"LOP measured {m.lop:.0f} mmHg"
            if m.state == "failed":
                return f"LOP failed: {m.message}"
            return f"measuring LOP {m.pressure_step:.0f} mmHg"
        lop = f"LOP {c.lop:.0f}" if c.lop is not None else "LOP not set"
        pat = f"  patient {c.patient_id}" if c.patient_id else ""
        return f"{lop}  max {c.max_pct_lop:.0f}%{pat}"
