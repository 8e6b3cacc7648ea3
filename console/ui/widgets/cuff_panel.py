"""One cuff at a glance: state, big pressure, target, gauge, occlusion time, trace.

The panel keeps the newest :class:`CuffSnapshot` and repaints (no re-layout)
only when what it shows changes. It draws through Textual's line API: its
rows are Rich text from :mod:`console.ui.render` turned into strips once per
change, which costs a fraction of the general content path (16 panels
repaint up to 20 times a second).
"""

from __future__ import annotations

from typing import Any

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.dom import NoScreen
from textual.errors import NoWidget
from textual.geometry import Region, Size
from textual.screen import Screen
from textual.strip import Strip
from textual.widget import Widget

from console.common.api import OFFLINE, AlarmSnapshot, CuffSnapshot, Priority
from console.common.figures import age_text
from console.ui import cue, render, therapy_text
from console.ui.alarm_words import fit, for_cuff
from console.ui.plain import clean, plain
from console.ui.theme import UNICODE, Glyphs
from console.ui.widgets.panel_keys import fit_row, jump, progress, same_row, session_rows_key, slow_key

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

DIGITS_PERIOD_S = 0.5
"""Big digits follow noise at most twice a second (a jump of panel_keys.DIGITS_JUMP_MMHG shows at once; the
cue beside them, when it moves, redraws them with the reading of that moment).

A patient monitor's numerics change about once a second; at 4 a second, 16 held cuffs redrew their digits
23 times a second between them, three rows each, for readings a clinician reads as the same."""
TRACE_PERIOD_S = 1.0
"""The 10 s trace redraws at most once a second; its row's occlusion clock whenever its text changes.

A trace of 10 s moves about a cell a second at 80 to 160 columns; the clock beside it (mm:ss) is on the
same row and changes once a second while a cuff holds, so the row redraws about once a second either way.
A state change or an alarm redraws every row at once."""
GAUGE_ROW, TRACE_ROW = 4, 6
"""Rows that follow the samples: the gauge when a cell of it changes, the trace row as ``TRACE_PERIOD_S`` says."""
DETAIL_ROW = 5
"""Session progress, LOP, limits and patient; with the digit rows, what a session's second redraws."""
DIGIT_ROWS = slice(1, 4)
"""The big digits with the unit and % LOP beside them (and the patient's cue during a session)."""

PANEL_ROWS = 8
"""Content rows; with the border a panel is 10 rows, so two rows fit 80x24."""


def in_view(screen: Screen[Any], widget: Widget) -> bool:
    """Any part of ``widget`` is in view on ``screen`` (a grid scrolls when the cuffs do not fit); unplaced: True."""
    try:
        geometry = screen.find_widget(widget)
    except NoWidget:
        return True
    return geometry.region.overlaps(geometry.clip)


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
        self._lines: list[Text] | None = None
        self._strips: list[Strip] | None = None
        self._strips_key: int | None = None
        self._base = Style()
        self._strips_size = Size(0, 0)
        """The size the strips were built for (not ``_size``: that is Textual's, the region a refresh repaints)."""
        self._digits_at = -1e9
        self._digits_pressure: float | None = None
        self._digits_stale = False
        self._titles: tuple[str, str] | None = None
        """The border title and subtitle shown (plain), so an unchanged one is not assigned again."""
        self._classes_key: tuple[object, ...] | None = None
        """What the CSS classes and titles were last set from: unchanged, nothing is touched."""
        self._gauge_key: tuple[object, ...] | None = None
        """What the gauge row was last drawn from: unchanged, it is not rebuilt."""
        self._trace_at = -1e9
        self._clock_shown: tuple[int, int, bool, bool] | None = None
        """``_clock_key`` of the trace row's occlusion clock as last drawn."""
        self._band_label: tuple[float, str] = (-1.0, "")
        """The gauge's tolerance label and the tolerance it was made for."""
        self._slow_seen: tuple[object, ...] | None = None
        """``slow_key`` of the newest snapshot taken: a change redraws every row."""
        self._session_seen: tuple[object, ...] | None = None
        """``session_rows_key`` of the newest snapshot taken: a change redraws the digit rows and row 5."""
        self._digits_shown: tuple[object, ...] | None = None
        """The digits' text last drawn: when their period is over they are redrawn only if it changes."""
        self._apply_classes()

    # -- data in -----------------------------------------------------------
    def set_cuff(
        self, cuff: CuffSnapshot, alarm: AlarmSnapshot | None, now: float | None = None, visible: bool | None = None
    ) -> None:
        """Take a new snapshot; repaint only the rows whose text changed.

        The gauge follows every sample. The big digits follow a jump at once but
        sensor noise at most every ``DIGITS_PERIOD_S`` (as a patient monitor's
        numerics do: a readable number, not a flicker); the trace row as
        ``TRACE_PERIOD_S`` says. ``now`` (monotonic seconds) enables that; None
        repaints every row. ``visible``: whether the panel is in view, as the
        dashboard found it for this frame (None: the panel looks itself).
        """
        if cuff.samples == self.cuff.samples and cuff == self.cuff and alarm == self.cuff_alarm:
            return  # (a new sample always changes ``samples``: the full comparison is skipped then)
        prev_alarm = self.cuff_alarm
        self.cuff = cuff
        self.cuff_alarm = alarm
        self._apply_classes()
        slow, prev_slow = slow_key(cuff), self._slow_seen
        ticking, prev_ticking = session_rows_key(cuff), self._session_seen
        self._slow_seen, self._session_seen = slow, ticking
        if not (self._on_screen() if visible is None else visible):
            # Scrolled out of view: no rows are built; they come from the newest snapshot when it shows again.
            if self._strips is not None:
                self._invalidate()
            return
        # The width the rows were built for: a resize repaints the whole panel through render_line, which
        # rebuilds them at the new width (Textual's size lookups walk the DOM: 16 panels, 20 frames a second).
        width = self._strips_key
        if not width or self._strips is None or self._lines is None:
            self._invalidate()
            return
        # An alarm or any change slow_key holds (state, target, LOP, patient, a session's phase or note...)
        # redraws every row now: never throttled.
        if now is None or alarm != prev_alarm or slow != prev_slow:
            self._digits_at = self._trace_at = now if now is not None else -1e9
            self._digits_pressure = cuff.pressure
            self._digits_stale = False
            self._repaint_rows(self.lines(width), width)
            return
        lines = self._lines
        second = ticking != prev_ticking  # a session's second: its cue beside the digits, its progress on row 5
        if second or self._digits_due(now):
            self._digits_at, self._digits_pressure = now, cuff.pressure
            if second or self._digits_key() != self._digits_shown:
                lines = list(lines)
                lines[DIGIT_ROWS] = self._digit_rows(width)
        if second:
            lines = list(lines) if lines is self._lines else lines
            lines[DETAIL_ROW] = fit_row(self._detail_row(width), width)
        self._digits_stale = cuff.pressure != self._digits_pressure
        if self._gauge_state(width) != self._gauge_key:
            lines = list(lines) if lines is self._lines else lines
            lines[GAUGE_ROW] = self._gauge_row(width)
        if not (0 <= now - self._trace_at < TRACE_PERIOD_S) or self._clock_key() != self._clock_shown:
            lines = list(lines) if lines is self._lines else lines
            lines[TRACE_ROW] = self._trace_row(width)
            self._trace_at = now
        if lines is not self._lines:
            self._repaint_rows(lines, width)

    def catch_up(self, now: float) -> None:
        """Bring held-back digits up to date once their period is over, even if no new sample came."""
        if self._digits_stale and not (0 <= now - self._digits_at < DIGITS_PERIOD_S):
            width = self._strips_key
            if not width or self._strips is None or self._lines is None:
                return
            self._digits_at = now
            self._digits_pressure = self.cuff.pressure
            self._digits_stale = False
            if self._digits_key() != self._digits_shown:
                lines = list(self._lines)
                lines[DIGIT_ROWS] = self._digit_rows(width)
                self._repaint_rows(lines, width)

    def _digits_due(self, now: float | None) -> bool:
        """The digits' period is over, or the reading jumped."""
        return (
            now is None
            or not (0 <= now - self._digits_at < DIGITS_PERIOD_S)
            or jump(self.cuff.pressure, self._digits_pressure)
        )

    def _digits_key(self) -> tuple[object, ...]:
        """The text the big digits and the % LOP beside them would show now."""
        c = self.cuff
        online = c.online and c.state != OFFLINE
        pct = f"{c.pressure_pct_lop:3.0f}" if online and c.pressure_pct_lop is not None else None
        return (render.fmt_pressure(c.pressure if online else None), pct, online)

    def _on_screen(self) -> bool:
        """Any part of the panel is in view (the dashboard says so itself for each frame: cheaper)."""
        try:
            return in_view(self.screen, self)
        except NoScreen:
            return True

    def _repaint_rows(self, lines: list[Text], width: int) -> None:
        assert self._strips is not None and self._lines is not None
        changed = [
            y for y, (new, old) in enumerate(zip(lines, self._lines)) if new is not old and not same_row(new, old)
        ]
        for y in changed:
            self._strips[y] = self._strip(lines[y], width)
        if changed:
            # Only the rows that changed: the compositor then redraws (and the terminal receives) just those.
            self.refresh(*(Region(0, y, width, 1) for y in changed))
        self._lines = lines

    def set_selected(self, selected: bool) -> None:
        if selected != self.selected:
            self.selected = selected
            self._apply_classes()
            self._invalidate()

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
        plan = c.session.plan_name if c.session is not None else None
        key: tuple[object, ...] = (self.selected, c.state, c.online, c.target, c.alarm, c.id, c.label, c.limb)
        key += (c.controller, c.channel, plan)
        if key == self._classes_key:
            return  # every class and title below is a function of this key
        self._classes_key = key
        self.set_class(self.selected, "-selected")
        self.set_class(is_inflated(c) and c.online, "-inflated")
        self.set_class(not c.online or c.state == OFFLINE, "-offline")
        self.set_class(c.state == "FAULT", "-fault")
        level = c.alarm
        for p in Priority:
            self.set_class(level == p, f"-alarm-{p.value}")
        marker = self.glyphs.selected if self.selected else " "
        title = f"{marker} {c.id}  {c.label} ({c.limb})"
        subtitle = f"{c.controller} ch{c.channel}"
        if c.session is not None:
            subtitle = f"{c.session.plan_name} | {subtitle}"
        # Assigning a title repaints the whole panel, even when unchanged. The label, the plan name and
        # the ids come from the config: plain text, never markup ("Knee [/]" would raise).
        shown = self._titles or ("", "")
        if title != shown[0]:
            self.border_title = plain(title)
        if subtitle != shown[1]:
            self.border_subtitle = plain(subtitle)
        self._titles = (title, subtitle)

    def _invalidate(self) -> None:
        self._strips = None
        self.refresh()

    def notify_style_update(self) -> None:
        """Colours changed (class toggled, flash, theme): rebuild the strips with the new base style."""
        super().notify_style_update()
        self._strips = None

    # -- text out ----------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        if self._strips is not None and self._strips_size == self.size and 0 <= y < len(self._strips):
            return self._strips[y]
        width = self.content_size.width
        self._strips_size = self.size
        if self._strips is None or self._strips_key != width:
            self._base = self.rich_style
            self._lines = self.lines(max(1, width))
            self._digits_pressure = self.cuff.pressure
            self._strips = [self._strip(text, width) for text in self._lines]
            self._strips_key = width
        if 0 <= y < len(self._strips):
            return self._strips[y]
        return Strip.blank(width, self._base)

    def _strip(self, text: Text, width: int) -> Strip:
        segments = Segment.apply_style(text.render(self.app.console), self._base)
        return Strip(list(segments)).adjust_cell_length(width, self._base)

    def lines(self, width: int) -> list[Text]:
        """The panel's content rows, each at most ``width`` cells."""
        c = self.cuff
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

        digits = self._digit_rows(width)  # fitted already
        rows.append(self._gauge_row(width))

        # Row 5: session progress / LOP / controller status.
        rows.append(self._detail_row(width))

        rows.append(self._trace_row(width))

        # Row 7: the cuff's alarm, if any.
        a = self.cuff_alarm
        if a is not None:
            mark = "ACK " if a.acknowledged else ""
            head = f"! {a.priority.value.upper()} {mark}"
            rows.append(Text(head + fit(clean(for_cuff(a)), max(1, width - len(head))), style="bold"))
        else:
            rows.append(Text(self._note(), style="italic"))
        fitted = [fit_row(row, width) for row in rows]
        return fitted[:1] + digits + fitted[1:]

    def _digit_rows(self, width: int) -> list[Text]:
        """Rows 1-3: big pressure digits with the unit and % LOP beside (and the patient's cue)."""
        c, g = self.cuff, self.glyphs
        online = c.online and c.state != OFFLINE
        pressure = c.pressure if online else None
        self._digits_shown = self._digits_key()
        rows: list[Text] = []
        big = render.big_lines(render.fmt_pressure(pressure), g.font)
        pct = f"{c.pressure_pct_lop:3.0f}" if (online and c.pressure_pct_lop is not None) else ""
        block = cue.cue(c.session, c.target > 0, g) if online and c.session is not None else None
        if not online:
            side = [" mmHg", " no data", ""]
        elif block is not None:
            # The patient's cue takes the rest of the rows: the unit and % LOP stack in one narrow column.
            side = [" mmHg", f" {pct}%" if pct else "", "  LOP" if pct else ""]
        else:
            side = [" mmHg", "", f" {pct}%LOP" if pct else ""]
        big_style = "bold" if online else "dim"
        for r in range(3):
            row = Text.assemble((big[r], big_style), side[r])
            if block is not None:
                # At a fixed place, so it does not jump with the unit; its rows are CUE_WIDTH cells.
                row = Text.assemble(row, " " * max(1, width - cue.CUE_WIDTH - len(row)), (block.rows[r], block.style))
            rows.append(row)
        return [fit_row(row, width) for row in rows]

    def _gauge_parts(self, width: int) -> tuple[float | None, str, int, str]:
        c, g = self.cuff, self.glyphs
        pressure = c.pressure if (c.online and c.state != OFFLINE) else None
        if self._band_label[0] != c.tolerance:
            self._band_label = (c.tolerance, f" ±{c.tolerance:.0f}" if g is UNICODE else f" +-{c.tolerance:.0f}")
        band_label = self._band_label[1]
        gwidth = max(4, width - len(band_label))
        off = pressure is not None and c.target > 0 and c.state == "HOLDING" and abs(pressure - c.target) > c.tolerance
        fill = "bold red" if off else ("bold blue" if is_inflated(c) else "green")
        return pressure, band_label, gwidth, fill

    def _gauge_state(self, width: int) -> tuple[object, ...]:
        """Everything the gauge row shows, cheaply: the filled cells, the scale, the colour (not the float)."""
        c = self.cuff
        pressure, band_label, gwidth, fill = self._gauge_parts(width)
        cells = render.gauge_cells(pressure, c.target, c.tolerance, gwidth)
        return (cells, band_label, gwidth, fill, c.target, c.tolerance)

    def _gauge_row(self, width: int) -> Text:
        """Row 4: pressure against target with the tolerance band; red when off target."""
        c, g = self.cuff, self.glyphs
        pressure, band_label, gwidth, fill = self._gauge_parts(width)
        self._gauge_key = self._gauge_state(width)
        bar = render.gauge(pressure, c.target, c.tolerance, gwidth, g, fill_style=fill)
        bar.append(band_label)
        bar.truncate(width)
        return bar

    def _clock_key(self) -> tuple[int, int, bool, bool]:
        """What the trace row's occlusion clock shows: whole seconds (fmt_mmss), warning and limit reached."""
        c = self.cuff
        occ = c.occlusion_s
        return (int(occ), int(c.occlusion_limit_s), occ >= c.occlusion_limit_s > 0, occ >= c.occlusion_warn_s > 0)

    def _trace_row(self, width: int) -> Text:
        """Row 6: time under occlusion against its limit, then the last 10 s."""
        c, g = self.cuff, self.glyphs
        online = c.online and c.state != OFFLINE
        self._clock_shown = key = self._clock_key()
        occ = f"occl {render.fmt_mmss(c.occlusion_s)}/{render.fmt_mmss(c.occlusion_limit_s)} "
        occ_style = "bold red" if key[2] else ("bold yellow" if key[3] else "")
        top = render.gauge_scale(max(c.trace) if c.trace else None, c.target, c.tolerance)
        spark = render.sparkline(c.trace if online else (), max(0, width - len(occ)), g, top)
        row = Text.assemble((occ, occ_style), (spark, "blue"))
        row.truncate(width)
        return row

    def _detail_row(self, width: int) -> Text:
        """Row 5: during a session ``set 2/4  rep 9/15 *`` and the patient; else LOP, limits, patient."""
        c = self.cuff
        s = c.session
        if s is not None and c.online and c.state != OFFLINE:
            left = progress(s, self.glyphs)
            row = Text(left)
            if s.beat and s.phase == "set" and s.reps_target:
                row.stylize("bold", len(left) - 1, len(left))
            pat = f"patient {s.patient_id}"
            if len(left) + 2 + len(pat) > width:
                pat = s.patient_id
            gap = width - len(left) - len(pat)
            if gap >= 2:
                row.append(" " * gap + pat)
            return row
        return Text(self._detail_line(), overflow="ellipsis", no_wrap=True)

    def _detail_line(self) -> str:
        c = self.cuff
        if not c.online or c.state == OFFLINE:
            return f"controller {c.controller} offline"
        m = c.lop_measure
        if m is not None:
            return therapy_text.lop_text(m).line
        lop = f"LOP {c.lop:.0f}" if c.lop is not None else "LOP not set"
        if c.lop is not None and c.lop_age_s is not None:
            lop += f" {c.lop_position} {age_text(c.lop_age_s)} ago"
        pat = f"  patient {c.patient_id}" if c.patient_id else ""
        return f"{lop}  max {c.max_pct_lop:.0f}%{pat}"

    def _note(self) -> str:
        """Row 7 when no alarm: the session's message, or why a LOP measurement failed."""
        c = self.cuff
        if c.session is not None:
            return cue.note(c.session, c.target > 0)
        if c.lop_measure is not None:
            return therapy_text.lop_text(c.lop_measure).detail
        return ""
