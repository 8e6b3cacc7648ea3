"""Full screens over the dashboard: key help (F1) and the alarm log (l).

Both carry their own emergency bar, so the emergency key is named on screen
whatever is shown.
"""

from __future__ import annotations

import time

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Static

from console.common.api import AlarmSnapshot, Role
from console.ui.actions import ConsoleActions, ConsoleView
from console.ui.alarm_words import alarm_cuffs, for_cuff, technical
from console.ui.on_screen import on_screen
from console.ui.plain import plain
from console.ui.widgets.footer import KeyFooter
from console.ui.widgets.status import EmergencyBar


class HelpScreen(Screen[None]):
    """Every key the console answers to, built from the live bindings."""

    BINDINGS = [Binding("f1,enter,q,escape", "close", "close", priority=True)]

    def __init__(self, rows: list[tuple[str, str, str]], view: ConsoleView) -> None:
        super().__init__(id="help")
        self.rows = rows
        self.view = view

    def compose(self) -> ComposeResult:
        yield Static(" Keys (F1, Enter or q closes)", classes="screen-title")
        table: DataTable[Text] = DataTable(id="keys", cursor_type="row", zebra_stripes=True)
        # The last column gets what the screen has left and wraps, so nothing is cut at 80 columns.
        key_w = max((len(k) for k, _, _ in self.rows), default=3)
        where_w = max((len(w) for _, _, w in self.rows), default=5)
        does_w = max(20, self.app.size.width - key_w - where_w - 8)
        table.add_column("key", width=key_w)
        table.add_column("where", width=where_w)
        table.add_column("does", width=does_w)
        for key, desc, where in self.rows:
            table.add_row(plain(key), plain(where), plain(desc), height=None)  # "[" and "]" are keys here
        yield table
        yield EmergencyBar(id="emergency")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one(EmergencyBar).show_emergency(self.view.last_snapshot.emergency)

    def action_close(self) -> None:
        self.dismiss(None)


class AlarmListScreen(Screen[None]):
    """Past and present alarms from ``handle.alarm_log()``, newest first, in a clinician's words.

    The sentence wraps in its column (never cut); Enter (or ``t``) shows the highlighted alarm's
    technical cause, the station's own message, under the list.
    """

    BINDINGS = [
        Binding("l,q,escape", "close", "close"),
        Binding("a", "ack", "ack alarm"),
        Binding("A", "ack_all", "ack all", key_display="A"),
        Binding("t", "details", "details", tooltip="technical cause of the highlighted alarm (also Enter)"),
    ]

    def __init__(self, actions: ConsoleActions) -> None:
        super().__init__(id="alarms")
        self.actions = actions
        self.alarms: list[AlarmSnapshot] = []
        self._shown: list[AlarmSnapshot] | None = None
        self.details_shown = False

    def compose(self) -> ComposeResult:
        yield Static(" Alarms, newest first (a: ack, A: ack all, Enter: details, l: back)", classes="screen-title")
        yield Static(" No alarms.", id="no-alarms")
        table: DataTable[Text] = DataTable(id="alarm-table", cursor_type="row", zebra_stripes=True)
        # The sentence column gets what the screen has left and wraps, so nothing is cut at 80 columns.
        fixed = {"time": 8, "prio": 6, "cuffs": 6, "state": 10}
        what_w = max(20, self.app.size.width - sum(fixed.values()) - 2 * (len(fixed) + 1) - 2)
        for name, width in fixed.items():
            table.add_column(name, width=width, key=name)
            if name == "cuffs":
                table.add_column("what happened, what to do", width=what_w, key="what")
        yield table
        yield Static("", id="alarm-details")
        yield EmergencyBar(id="emergency")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.refresh_log()
        self.set_interval(1.0, self.refresh_log)
        self.query_one(DataTable).focus()

    def refresh_log(self) -> None:
        """Re-read the log; rebuild the table only when it changed."""
        if not on_screen(self):
            return  # closing: the table may have gone before this timer stops
        self.query_one(EmergencyBar).show_emergency(self.actions.view.last_snapshot.emergency)
        self.alarms = self.actions.handle.alarm_log()
        if self.alarms == self._shown:
            return
        self._shown = list(self.alarms)
        self.query_one("#no-alarms", Static).display = not self.alarms
        table = self.query_one(DataTable)
        row = table.cursor_row
        table.clear()
        cuffs = self.actions.view.last_snapshot.cuffs
        for a in self.alarms:
            state = ("active" if a.active else "cleared") + (" ack" if a.acknowledged else "")
            # Station and controller text: plain, never markup.
            table.add_row(
                plain(time.strftime("%H:%M:%S", time.localtime(a.raised_at))),
                plain(a.priority.value.upper()),
                plain(", ".join(alarm_cuffs(a, cuffs)) or a.controller or "-"),
                plain(for_cuff(a)),  # the cuffs column names them
                plain(state),
                key=str(a.id),
                height=None,
            )
        if self.alarms:
            table.move_cursor(row=min(row, len(self.alarms) - 1))
        self._show_details()

    def _show_details(self) -> None:
        box = self.query_one("#alarm-details", Static)
        table = self.query_one(DataTable)
        if not self.details_shown or not 0 <= table.cursor_row < len(self.alarms):
            box.update("")
            box.display = False
            return
        box.display = True
        box.update(plain(f"Technical cause: {technical(self.alarms[table.cursor_row])}"))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_details()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._show_details()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("ack", "ack_all") and self.actions.view.role is Role.OBSERVER:
            return None
        return True

    def action_details(self) -> None:
        self.details_shown = not self.details_shown
        self._show_details()

    def action_ack(self) -> None:
        table = self.query_one(DataTable)
        if 0 <= table.cursor_row < len(self.alarms):
            self.actions.acknowledge_ids([self.alarms[table.cursor_row].id])

    def action_ack_all(self) -> None:
        self.actions.acknowledge_all()

    def action_close(self) -> None:
        self.dismiss(None)
