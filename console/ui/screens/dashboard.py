"""The main screen: a panel per cuff, the alarm banner, the emergency bar.

Holds the cuff-level keys (select, inflate, nudge, deflate, acknowledge,
silence) and opens the dialogs they ask for; the commands themselves run
through the :class:`ConsoleActions` the app hands over. The emergency key
lives on the App so it works on every screen.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Input

from console.common.api import AlarmSnapshot, CuffSnapshot, Role, StationSnapshot
from console.common.patients import PatientBook
from console.ui.actions import ConsoleActions
from console.ui.alerting import flash_on
from console.ui.screens.dialogs import InflateDialog, InflateRequest
from console.ui.screens.lists import AlarmListScreen
from console.ui.screens.therapy import CommandDialog, DopplerLopDialog, MeasureLopDialog, SessionDialog
from console.ui.widgets.cuff_panel import CuffPanel, in_view
from console.ui.widgets.footer import KeyFooter
from console.ui.widgets.status import AlarmBanner, EmergencyBar, StationHeader

SETUP_ACTIONS = frozenset({"session", "measure_lop", "enter_lop"})
"""Therapy keys offered while the selected cuff runs no session."""
SESSION_ACTIONS = frozenset({"pause", "pause_vented", "skip", "stop_session", "rep"})
"""Keys offered while the selected cuff runs a session (the footer shows one set or the other)."""
OPERATOR_ACTIONS = (
    frozenset({"inflate", "nudge", "deflate", "ack", "ack_all", "silence"}) | SETUP_ACTIONS | SESSION_ACTIONS
)
"""Actions an observer may not take (shown greyed out, never fired)."""

PANEL_MIN_WIDTH = 38

_REPS = Binding.Group("rep", compact=True)


def focus_first_field(dialog: Screen[Any]) -> None:
    """Focus the dialog's first field now, before the app reads the next key.

    ``Widget.focus()`` (and ``AUTO_FOCUS``) wait a turn of the loop; keys that arrived with the one
    that opened the dialog (``i60`` Enter in one burst, as a quick typist or a terminal sends them)
    were read before it and lost.
    """
    fields = dialog.query(Input)
    if fields:
        dialog.set_focus(fields.first())


class CuffGrid(VerticalScroll, can_focus=False):
    """Scrolls the panels; never takes focus, so arrows stay with the dashboard."""


class DashboardScreen(Screen[None]):
    BINDINGS = [
        *(Binding(str(n), f"select({n - 1})", f"cuff {n}", show=False) for n in range(1, 10)),
        Binding("right,tab", "move(1)", "next", show=False),
        Binding("left,shift+tab", "move(-1)", "previous", show=False),
        Binding("down", "move_row(1)", "row down", show=False),
        Binding("up", "move_row(-1)", "row up", show=False),
        # The footer is one line at 80 columns: short words there, the whole sentence (tooltip) in F1 help.
        Binding("f1", "app.help", "help", key_display="F1", tooltip="help: every key"),
        Binding("i", "inflate", "inflate", tooltip="inflate the selected cuff (mmHg or % LOP)"),
        Binding("plus,equals_sign", "nudge(5)", "+5", key_display="+", show=False, tooltip="target +5 mmHg"),
        Binding("minus", "nudge(-5)", "-5", key_display="-", show=False, tooltip="target -5 mmHg"),
        Binding("d", "deflate", "deflate", tooltip="deflate the selected cuff"),
        Binding("p", "session", "session", tooltip="start a session: patient, plan, one cuff or two"),
        Binding("m", "measure_lop", "LOP", tooltip="measure the LOP automatically (asks the body position)"),
        Binding("o", "enter_lop", "Doppler", tooltip="enter a LOP measured by Doppler"),
        Binding("space", "pause", "pause", key_display="Space", tooltip="pause / resume the session"),
        Binding(
            "v", "pause_vented", "vent", show=False, tooltip="pause the session with its cuffs vented (resume refills)"
        ),
        Binding("n", "skip", "skip", tooltip="skip to the next phase of the session"),
        Binding("x", "stop_session", "stop", tooltip="stop the session (asks y/n; the cuffs vent)"),
        Binding("left_square_bracket", "rep(-1)", "rep-", key_display="[", tooltip="rep count -1", group=_REPS),
        Binding("right_square_bracket", "rep(1)", "rep+", key_display="]", tooltip="rep count +1", group=_REPS),
        Binding("a", "ack", "ack", tooltip="acknowledge the selected cuff's alarms"),
        Binding("A", "ack_all", "ack all", key_display="A", show=False, tooltip="acknowledge every alarm"),
        Binding("s", "silence", "silence", tooltip="silence the alarm sound for 120 s"),
        Binding("l", "alarm_list", "alarms", show=False, tooltip="alarm list"),
        Binding("P", "patients", "patients", key_display="P", show=False, tooltip="patients: LOP history, sessions"),
        Binding("q", "request_quit", "quit", show=False, tooltip="quit (asks while a cuff is inflated)"),
    ]

    def __init__(self, snapshot: StationSnapshot, actions: ConsoleActions) -> None:
        super().__init__(id="dashboard")
        self._initial = snapshot
        self.actions = actions
        self.view = actions.view
        self.panels: dict[str, CuffPanel] = {}
        self.order: list[str] = []
        self.header = StationHeader(id="header")
        self.header.attached = actions.attached
        self.banner = AlarmBanner(id="banner")
        self.grid = CuffGrid(id="cuffs")
        self.emergency_bar = EmergencyBar(id="emergency")

    def compose(self) -> ComposeResult:
        yield self.header
        yield self.banner
        with self.grid:
            for cuff in self._initial.cuffs:
                panel = CuffPanel(cuff, self.view.glyphs)
                self.panels[cuff.id] = panel
                self.order.append(cuff.id)
                yield panel
        yield self.emergency_bar
        yield KeyFooter()

    def on_mount(self) -> None:
        self._fit_columns(self.size.width)
        self.show_selected(self.view.selected)
        self.view.refresh_now()

    def on_resize(self) -> None:
        self._fit_columns(self.size.width)
        self.call_after_refresh(self.scroll_selected_into_view)

    def _fit_columns(self, width: int) -> None:
        cols = max(1, min(4, width // PANEL_MIN_WIDTH if width else 2))
        grid = self.grid
        if grid.styles.grid_size_columns != cols:
            grid.styles.grid_size_columns = cols

    @property
    def columns(self) -> int:
        return self.grid.styles.grid_size_columns or 1

    # -- updates from the app's pull loop -------------------------------------
    def apply(self, snap: StationSnapshot, changed: bool, now: float) -> None:
        """Show a snapshot; ``changed`` is False when only the flash phase moved."""
        if changed:
            self.header.show_snapshot(snap, self.size.width)
            self.emergency_bar.show_emergency(snap.emergency)
            by_cuff = _cuff_alarms(snap)
            for cuff in snap.cuffs:
                panel = self.panels.get(cuff.id)
                if panel is not None:
                    panel.set_cuff(cuff, by_cuff.get(cuff.id), now, visible=in_view(self, panel))
        top = snap.alarms[0] if snap.alarms else None
        self.banner.show_alarms(snap, flash_on(top.priority, now, acknowledged=top.acknowledged) if top else False)
        for panel in self.panels.values():
            panel.catch_up(now)
            a = panel.cuff_alarm
            panel.set_flash(a is not None and flash_on(a.priority, now, acknowledged=a.acknowledged))

    def show_selected(self, cuff_id: str) -> None:
        for cid, panel in self.panels.items():
            panel.set_selected(cid == cuff_id)
        self.scroll_selected_into_view()

    def scroll_selected_into_view(self) -> None:
        panel = self.panels.get(self.view.selected)
        if panel is not None:
            self.grid.scroll_to_widget(panel, animate=False, immediate=True)

    # -- keys -------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in SETUP_ACTIONS and self.view.selected_session_active():
            return False  # hidden: the footer has room for one set of therapy keys
        if action in SESSION_ACTIONS and not self.view.selected_session_active():
            return False
        if action in OPERATOR_ACTIONS and self.view.role is Role.OBSERVER:
            return None
        return True

    def action_select(self, index: int) -> None:
        if 0 <= index < len(self.order):
            self.view.select(self.order[index])

    def action_move(self, step: int) -> None:
        if self.order:
            i = self.order.index(self.view.selected) if self.view.selected in self.order else 0
            self.view.select(self.order[(i + step) % len(self.order)])

    def action_move_row(self, step: int) -> None:
        if self.order:
            i = self.order.index(self.view.selected) if self.view.selected in self.order else 0
            j = grid_neighbour(i, step, self.columns, len(self.order))
            if j is not None:
                self.view.select(self.order[j])

    async def action_inflate(self) -> None:
        """Open the dialog and wait until it is mounted and focused, so digits typed
        right after ``i`` land in its field instead of selecting cuffs."""
        cuff = self.actions.selected_cuff()
        if cuff is not None:
            asked_at = self.actions.emergencies
            dialog = InflateDialog(cuff, self.actions)
            await self.app.push_screen(dialog, self._inflate)
            focus_first_field(dialog)
            self._close_if_overtaken(asked_at)

    def _inflate(self, request: InflateRequest | None) -> None:
        if request is not None:
            self.actions.inflate(request)

    def action_nudge(self, delta: int) -> None:
        self.actions.nudge(float(delta))

    def action_deflate(self) -> None:
        self.actions.deflate_selected()

    def action_ack(self) -> None:
        self.actions.acknowledge_selected()

    def action_ack_all(self) -> None:
        self.actions.acknowledge_all()

    def action_silence(self) -> None:
        self.actions.silence()

    async def action_session(self) -> None:
        await self._open_therapy_dialog("session")

    async def action_measure_lop(self) -> None:
        await self._open_therapy_dialog("measure")

    async def action_enter_lop(self) -> None:
        await self._open_therapy_dialog("doppler")

    async def _open_therapy_dialog(self, kind: str, *, patient: str | None = None) -> None:
        """``session`` | ``measure`` | ``doppler``: opened and focused before the next key is read."""
        cuff = self.actions.selected_cuff()
        if cuff is None:
            return
        snap = self.view.last_snapshot
        if patient is not None:  # from the patients screen, which just set the LOP: the newest state
            snap = self.actions.handle.snapshot()
            cuff = cuff_by_id(snap, cuff.id) or cuff
        dialog: CommandDialog
        if kind == "session":
            dialog = SessionDialog(snap, cuff, self.actions, patient)
        elif kind == "measure":
            dialog = MeasureLopDialog(cuff, self.actions)
        else:
            dialog = DopplerLopDialog(cuff, self.actions)
        asked_at = self.actions.emergencies
        await self.app.push_screen(dialog)
        focus_first_field(dialog)
        self._close_if_overtaken(asked_at)

    def _close_if_overtaken(self, asked_at: int) -> None:
        """An emergency while the dialog was opening: it must not stay open with keys typed before it."""
        if self.actions.overtaken(asked_at):
            self.actions.close_command_dialogs()

    def action_pause(self) -> None:
        self.actions.toggle_pause()

    def action_pause_vented(self) -> None:
        self.actions.session_command("pause-vent")

    def action_skip(self) -> None:
        self.actions.session_command("skip")

    def action_stop_session(self) -> None:
        self.actions.confirm_stop_session()

    def action_rep(self, delta: int) -> None:
        self.actions.session_command("rep+" if delta > 0 else "rep-")

    async def action_patients(self) -> None:
        handle = self.actions.handle
        if not isinstance(handle, PatientBook):
            self.notify("Patient records are kept at the station: open them on its own console.")
            return

        async def start(patient_id: str) -> None:
            await self._open_therapy_dialog("session", patient=patient_id)

        from console.ui.screens.patients import PatientsScreen  # loaded when first opened, not at start

        await self.app.push_screen(PatientsScreen(self.actions, handle, self.actions.selected_cuff(), start))

    def action_alarm_list(self) -> None:
        self.app.push_screen(AlarmListScreen(self.actions))

    def action_request_quit(self) -> None:
        self.actions.request_quit()


def _cuff_alarms(snap: StationSnapshot) -> dict[str, AlarmSnapshot]:
    """Per cuff, the alarm to show (its own, or its controller's).

    Alarms arrive highest priority first; within a priority an unacknowledged
    one wins, so the panel keeps flashing until every alarm on it is acknowledged.
    """
    by_ctrl: dict[str, list[str]] = {}
    for c in snap.cuffs:
        by_ctrl.setdefault(c.controller, []).append(c.id)
    out: dict[str, AlarmSnapshot] = {}
    for a in snap.alarms:
        targets = [a.cuff] if a.cuff is not None else by_ctrl.get(a.controller or "", [])
        for cid in targets:
            cur = out.get(cid)
            if cur is None or (cur.acknowledged and not a.acknowledged and a.priority == cur.priority):
                out[cid] = a
    return out


def cuff_by_id(snap: StationSnapshot, cuff_id: str) -> CuffSnapshot | None:
    for c in snap.cuffs:
        if c.id == cuff_id:
            return c
    return None


def grid_neighbour(index: int, step: int, columns: int, count: int) -> int | None:
    """The panel a row up (``step`` -1) or down (+1) from ``index`` in a row-major grid.

    The same column when the row there has it; else the nearest panel of that row (a
    short last row: Down from a column it lacks goes to its last panel). None past the edge.
    """
    columns = max(1, columns)
    row, col = divmod(index, columns)
    target = row + step
    if target < 0 or target * columns >= count:
        return None
    return min(target * columns + col, count - 1)
