"""The patients screen (``P``): find a patient, see their LOPs and sessions, start a session with a stored LOP.

Keyboard only and fits 80x24: type part of an id, Down/Tab to the list, the
history follows the highlighted patient. ``p`` offers that patient's newest LOP
for the selected cuff's site, the body position chosen here and the cuff's
width, with its age; one that is too old or from another position, cuff or site
is flagged and needs ``p`` a second time. The screen asks the station (the
:class:`~console.common.patients.PatientBook` port) and never the records.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, OptionList, Static
from textual.widgets.option_list import Option

from console.common.api import CommandRefused, CuffSnapshot
from console.common.facts import POSITIONS
from console.common.figures import age_text
from console.common.patients import LopOffer, PatientBook, PatientHistory, PatientSummary, offer_lop
from console.ui.actions import ConsoleActions
from console.ui.plain import clean, plain
from console.ui.screens.plots import CourseScreen, SessionPlotScreen
from console.ui.widgets.choice import Choice
from console.ui.widgets.status import EmergencyBar


def day(t: float) -> str:
    return datetime.fromtimestamp(t).strftime("%Y-%m-%d")


def mmss(s: float | None) -> str:
    if s is None:
        return "-"
    m, sec = divmod(max(0, round(s)), 60)
    return f"{m:02d}:{sec:02d}"


class PatientsScreen(Screen[None]):
    """Patients, their LOP history and sessions; ``p`` starts a session on the selected cuff."""

    DEFAULT_CSS = """
    PatientsScreen #patients-find { height: 3; }
    PatientsScreen #find { width: 1fr; }
    PatientsScreen #position { width: 26; margin: 1 1 1 2; }
    PatientsScreen #patients-top { height: 9; }
    PatientsScreen #found { width: 22; border: round $panel-lighten-2; }
    PatientsScreen #lops { width: 1fr; border: round $panel-lighten-2; }
    PatientsScreen #sessions { height: 1fr; border: round $panel-lighten-2; }
    PatientsScreen #offer { height: 2; }
    """

    BINDINGS = [
        Binding("f10,escape", "close", "back", key_display="F10"),
        Binding("p", "start", "session", tooltip="start a session for this patient on the selected cuff"),
        Binding("down", "down", "down", show=False, priority=True),
        Binding("g", "course", "course", tooltip="the patient's course: LOP, pressure, reps, occlusion"),
    ]

    def __init__(
        self,
        actions: ConsoleActions,
        book: PatientBook,
        cuff: CuffSnapshot | None,
        start: Callable[[str], Awaitable[None]],
    ) -> None:
        """``start(patient_id)`` opens the session dialog for the patient once this screen has closed."""
        super().__init__(id="patients")
        self.actions = actions
        self.start = start
        self.book = book
        self.cuff = cuff
        self.found: list[PatientSummary] = []
        # The first list, asked for now: the station answers while the screen is composed and mounted.
        self._first_find: asyncio.Task[list[PatientSummary]] | None = asyncio.ensure_future(book.find_patients("", 200))
        self.history: PatientHistory | None = None
        self.offer: LopOffer | None = None
        self._armed_lop: int | None = None
        """A flagged LOP's id after the first ``p``: the second ``p`` uses it anyway."""

    def compose(self) -> ComposeResult:
        where = f"session on {self.cuff.id}" if self.cuff is not None else "no cuff selected"
        yield Static(
            plain(f" Patients: id, Down to the list; p {where}; Enter on a session plots it; g course"),
            classes="screen-title",
        )
        with Horizontal(id="patients-find"):
            find = Input(placeholder="patient id (part of it)", id="find", max_length=64)
            find.border_title = "find"
            yield find
            yield Choice("Position", [(p, p) for p in POSITIONS], self._default_position(), id="position")
        with Horizontal(id="patients-top"):
            found = OptionList(id="found", markup=False)
            found.border_title = "patients"
            yield found
            lops: DataTable[Text] = DataTable(id="lops", cursor_type="row", zebra_stripes=True)
            lops.add_columns("date", "site", "position", "cuff", "how", "LOP")
            lops.border_title = "LOP history"
            yield lops
        sessions: DataTable[Text] = DataTable(id="sessions", cursor_type="row", zebra_stripes=True)
        sessions.add_columns("date", "plan", "sets", "reps", "occl", "fidel", "alarms", "end")
        sessions.border_title = "sessions"
        yield sessions
        yield Static("", id="offer")
        yield EmergencyBar(id="emergency")
        yield Footer()

    def _default_position(self) -> str:
        pos = self.cuff.lop_position if self.cuff is not None else ""
        return pos if pos in POSITIONS else "seated"

    def on_mount(self) -> None:
        if self.app.has_class("-ansi"):  # the Linux text console: ASCII borders (scoped CSS cannot see the App)
            for box in self.query("#found, #lops, #sessions"):
                box.styles.border = ("ascii", box.styles.border_top[1])
        self.query_one(EmergencyBar).show_emergency(self.actions.view.last_snapshot.emergency)
        self.query_one("#find", Input).focus()
        self._search("")

    # ------------------------------------------------------------------ finding

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._search(event.value.strip())

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        found = self.query_one("#found", OptionList)
        if self.found:
            found.highlighted = 0
            self.set_focus(found)

    def _search(self, text: str) -> None:
        self.run_worker(self._find(text), group="find", exclusive=True)

    async def _find(self, text: str) -> None:
        first, self._first_find = self._first_find, None
        try:
            found = await (first if first is not None and text == "" else self.book.find_patients(text, 200))
            # The list opens on its first patient: their history now, not after the highlight's round trip.
            history = await self.book.patient_history(found[0].id) if found and self.history is None else None
        except CommandRefused as exc:
            self._say(str(exc))
            return
        if history is not None:
            self._show(history)
        self.found = found
        box = self.query_one("#found", OptionList)
        box.clear_options()
        box.add_options([Option(clean(f"{p.id:<14}{p.sessions:>4}"), id=p.id) for p in found])
        box.border_title = f"patients ({len(found)}{'+' if len(found) >= 200 else ''})"
        if found:
            box.highlighted = 0
        else:
            self._show(None)

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        pid = event.option.id
        if pid is not None and (self.history is None or self.history.patient_id != pid):
            self.run_worker(self._load(pid), group="history", exclusive=True)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.query_one("#sessions", DataTable).focus()

    async def _load(self, patient_id: str) -> None:
        try:
            history = await self.book.patient_history(patient_id)
        except CommandRefused as exc:
            self._say(str(exc))
            return
        self._show(history)

    # ------------------------------------------------------------------ showing

    def _show(self, history: PatientHistory | None) -> None:
        self.history = history
        self._armed_lop = None
        lops = self.query_one("#lops", DataTable)
        sessions = self.query_one("#sessions", DataTable)
        lops.clear()
        sessions.clear()
        if history is None:
            lops.border_title, sessions.border_title = "LOP history", "sessions"
            self._offer()
            return
        for x in history.lops:
            width = "-" if x.cuff_width_cm is None else f"{x.cuff_width_cm:g}cm"
            lops.add_row(*(plain(v) for v in (day(x.at), x.label, x.position, width, x.source, f"{x.lop_mmhg:.0f}")))
        for s in history.sessions:
            sets = (
                "-" if s.sets_done is None else f"{s.sets_done - (s.sets_stopped or 0)}/{s.sets_planned or s.sets_done}"
            )
            reps = ",".join(str(r) for r in s.reps_per_set) or "-"
            fid = "-" if s.fidelity is None else f"{100 * s.fidelity:.0f}%"
            row = (day(s.started_at), s.plan_id, sets, reps, mmss(s.occlusion_s), fid, str(s.alarms))
            sessions.add_row(*(plain(v) for v in (*row, s.end_reason or "running")), key=str(s.id))
        lops.border_title = f"LOP history of {history.patient_id} ({len(history.lops)})"
        sessions.border_title = f"sessions of {history.patient_id} ({len(history.sessions)})"
        self._offer()

    def on_choice_changed(self, event: Choice.Changed) -> None:
        event.stop()
        self._armed_lop = None
        self._offer()

    def _offer(self) -> None:
        """The stored LOP ``p`` would use on the selected cuff, with its age and any flags."""
        c, h = self.cuff, self.history
        self.offer = None
        if c is None or h is None:
            self._say("" if h is None else "Select a cuff on the dashboard first (1-9), then P.")
            return
        position = self.query_one("#position", Choice).value
        now = self.actions.view.last_snapshot.time
        width = c.width_cm
        self.offer = offer_lop(
            h.lops,
            limb=c.limb,
            label=c.label,
            position=position,
            width_cm=width,
            now=now,
            max_age_days=h.lop_max_age_days,
        )
        if self.offer is None:
            self._say(f"{h.patient_id} has no {c.limb} LOP: measure it (m) or enter a Doppler value (o).")
            return
        x = self.offer.lop
        text = f"{c.id}: LOP {x.lop_mmhg:.0f} mmHg ({x.position}, {x.source}) {age_text(self.offer.age_s)} old"
        if self.offer.flags:
            text = "CHECK " + text + ": " + "; ".join(self.offer.flags)
        self._say(text + "  p: use it")

    def _say(self, text: str) -> None:
        self.query_one("#offer", Static).update(plain(text))

    # ------------------------------------------------------------------ acting

    def action_start(self) -> None:
        c, h, offer = self.cuff, self.history, self.offer
        if c is None or h is None:
            self._say("Choose a patient first." if c is not None else "Select a cuff on the dashboard first.")
            return
        if offer is not None and offer.flags and self._armed_lop != offer.lop.id:
            self._armed_lop = offer.lop.id
            self._say(
                f"CHECK {offer.lop.lop_mmhg:.0f} mmHg: "
                + "; ".join(offer.flags)
                + ". p again uses it; m/o re-measures."
            )
            return
        self.run_worker(self._use(c, h.patient_id, offer), group="start", exclusive=True)

    async def _use(self, c: CuffSnapshot, patient_id: str, offer: LopOffer | None) -> None:
        try:
            await self.actions.handle.set_patient(c.id, patient_id)
            if offer is not None:
                await self.book.use_recorded_lop(c.id, offer.lop.id)
        except CommandRefused as exc:
            self._say(str(exc))
            return
        self.dismiss(None)
        await self.start(patient_id)

    def action_down(self) -> None:
        """Down from the id field goes to the patients found, elsewhere it moves the cursor.

        A priority binding, so the focus has moved before the next key is read (keys that arrive
        together, over SSH or from a fast typist, would otherwise type ``p`` into the field).
        """
        focused = self.focused
        if isinstance(focused, Input):
            if self.found:
                self.set_focus(self.query_one("#found", OptionList))
        elif isinstance(focused, (OptionList, DataTable)):
            focused.action_cursor_down()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a session: its pressure plotted per cuff."""
        event.stop()
        if event.data_table.id == "sessions" and event.row_key.value is not None:
            self.app.push_screen(SessionPlotScreen(self.actions, self.book, int(event.row_key.value)))

    def action_course(self) -> None:
        if self.history is not None and self.history.sessions:
            self.app.push_screen(CourseScreen(self.actions, self.history))

    def action_close(self) -> None:
        self.dismiss(None)

    def on_unmount(self) -> None:
        if self._first_find is not None:  # closed before it was shown: nobody reads the answer
            self._first_find.cancel()
