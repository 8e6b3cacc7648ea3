"""The setup screen: what answered, the cuffs to name, a test inflate, and writing the config.

Keyboard only, and it fits 80x24 on the Linux text console. It talks to ports only
through :mod:`console.setup` (the scan asks HELLO; the test inflate goes through the
driver and always deflates); the file is written by :mod:`console.setup.draft`
after the console's own validation accepted it.
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Label, Static

from console.config.loader import ConfigError
from console.setup import draft as drafting
from console.setup.scan import PortReport, find_ports, scan
from console.setup.trial import TRIAL_HOLD_S, TRIAL_MMHG, trial_inflate
from console.ui.plain import plain
from console.ui.screens.dialogs import ClosesOnEmergency
from console.ui.widgets.inputs import OrderedInput


class FieldInput(OrderedInput):
    """A dialog field that also moves on (Tab, Shift+Tab) and clears (Ctrl+U) in key order.

    Those are bindings, run only after the key bubbled through the queues, while a printable key is
    inserted at once: a fast "Tab, text" could land the text in the field it was meant to leave.
    """

    async def _on_key(self, event: events.Key) -> None:
        if event.key in ("tab", "shift+tab", "ctrl+u"):
            event.stop()
            event.prevent_default()
            if event.key == "ctrl+u":
                self.action_delete_left_all()
            elif event.key == "tab":
                self.screen.focus_next()
            else:
                self.screen.focus_previous()
            return
        await super()._on_key(event)


CANCEL: list[BindingType] = [Binding("f10", "cancel", "cancel"), Binding("escape", "cancel", "cancel", show=False)]


class CuffDialog(ModalScreen[bool]):
    """Name, limb, label, width and pair of one cuff; Enter in any field saves, F10 cancels."""

    BINDINGS = CANCEL
    AUTO_FOCUS = "#f-id"

    def __init__(self, draft: drafting.Draft, cuff_id: str) -> None:
        super().__init__(classes="dialog")
        self.draft, self.cuff_id = draft, cuff_id

    def compose(self) -> ComposeResult:
        c = next(c for c in self.draft.cuffs if c.id == self.cuff_id)
        on = self.draft.controller(c.controller)
        with Vertical(id="dialog-box", classes="wide setup-cuff"):
            yield Label(plain(f"Cuff on controller {on.id} channel {c.channel} ({on.port})"), id="dialog-title")
            for key, value in (
                ("id", c.id),
                ("limb", c.limb),
                ("label", c.label),
                ("width", "" if c.width_cm is None else f"{c.width_cm:g}"),
                ("pair", c.pair or ""),
            ):
                with Horizontal(classes="setup-field"):
                    yield Label(self.title_of(key, focused=False), id=f"l-{key}")
                    yield FieldInput(value, id=f"f-{key}")
            yield Label("", id="dialog-error")
            yield Label("Tab: next field   Enter: save   F10: cancel")

    TITLES = {
        "id": "name (one word)",
        "limb": "limb: leg or arm",
        "label": "where (left thigh)",
        "width": "cuff width, cm",
        "pair": "pair (other cuff)",
    }

    def title_of(self, key: str, *, focused: bool) -> str:
        """The field's title, marked when it has the cursor (not by colour alone: the text console)."""
        return ("> " if focused else "  ") + self.TITLES[key]

    def on_descendant_focus(self) -> None:
        for key in self.TITLES:
            focused = self.query_one(f"#f-{key}", FieldInput).has_focus
            self.query_one(f"#l-{key}", Label).update(self.title_of(key, focused=focused))

    def on_input_submitted(self, event: OrderedInput.Submitted) -> None:
        value = {k: self.query_one(f"#f-{k}", FieldInput).value for k in ("id", "limb", "label", "width", "pair")}
        try:
            drafting.edit_cuff(
                self.draft,
                self.cuff_id,
                new_id=value["id"],
                limb=value["limb"],
                label=value["label"],
                width=value["width"],
                pair=value["pair"],
            )
        except ValueError as exc:
            self.query_one("#dialog-error", Label).update(plain(str(exc)))
            return
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)


class PathDialog(ModalScreen[str | None]):
    """Where to write the config."""

    BINDINGS = CANCEL
    AUTO_FOCUS = "#f-path"

    def __init__(self, path: str) -> None:
        super().__init__(classes="dialog")
        self.path = path

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog-box", classes="wide"):
            yield Label("Write the config to", id="dialog-title")
            yield OrderedInput(self.path, id="f-path")
            yield Label("Enter: write (an existing file: its changes are shown first)   F10: cancel")

    def on_input_submitted(self, event: OrderedInput.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ReplaceDialog(ModalScreen[bool]):
    """An existing file: what replacing it changes, then y or n."""

    BINDINGS = [Binding("y", "answer(True)", "replace"), Binding("n", "answer(False)", "keep it"), *CANCEL]

    def __init__(self, path: Path, changes: str) -> None:
        super().__init__(classes="dialog")
        self.path, self.changes = path, changes

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog-box", classes="wide"):
            yield Label(plain(f"{self.path} exists. Replacing it changes:"), id="dialog-title")
            with VerticalScroll(id="setup-diff"):
                yield Static(plain(self.changes or "(nothing)"))
            yield Label(plain(f"y: replace it (the old file is kept as {drafting.backup_path(self.path).name})"))
            yield Label("n or F10: keep it   arrows/PgDn: scroll")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)

    def action_cancel(self) -> None:
        self.dismiss(False)


class SetupScreen(ClosesOnEmergency, Screen[None]):
    """The controllers that answered (and the ports that did not, and why), and their cuffs."""

    BINDINGS = [
        Binding("enter", "edit", "edit cuff"),
        Binding("e", "edit", "edit cuff", show=False),
        Binding("t", "trial", "test inflate"),
        Binding("w", "write", "write config"),
        Binding("r", "rescan", "rescan"),
        Binding("q", "quit_setup", "quit"),
        Binding("f12", "stop_trial", "stop test", priority=True, show=False),
        Binding("ctrl+e", "stop_trial", "stop test", priority=True, show=False),
    ]

    # ClosesOnEmergency: inside the running console, F12 pops this screen, and a test inflate under way
    # is cancelled with it (its deflate is sent as it ends).

    def __init__(
        self, ports: list[str], *, timeout: float, write_to: str = "station.toml", extend: Path | None = None
    ) -> None:
        """``extend``: the running console's config; what is written keeps its controllers and cuffs."""
        super().__init__()
        self.explicit_ports, self.timeout, self.write_to = ports, timeout, write_to
        self.extend_from = extend
        self.extend = drafting.read_hardware(extend) if extend is not None else {}
        self.reports: list[PortReport] = []
        self.draft = drafting.Draft()
        self.trial_running = False
        self.written: Path | None = None

    def compose(self) -> ComposeResult:
        yield Static("Looking for controllers...", id="setup-ports")
        yield DataTable(id="setup-cuffs", cursor_type="row", zebra_stripes=False)
        yield Static("", id="setup-status")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for name, width in (("cuff", 6), ("on", 6), ("limb", 4), ("label", 20), ("cm", 5), ("pair", 6)):
            table.add_column(name, width=width)
        self.run_scan()

    def say(self, text: str) -> None:
        self.query_one("#setup-status", Static).update(plain(text))

    @work(exclusive=True, group="scan")
    async def run_scan(self) -> None:
        self.say("Asking every port who it is (HELLO only; nothing inflates)...")
        ports = find_ports(self.explicit_ports)
        self.reports = await scan(ports, timeout=self.timeout)
        self.draft = drafting.draft_from(self.reports, drafting.taken_ids(self.extend))
        self.show_ports()
        self.show_cuffs()
        if self.draft.controllers:
            self.say("Enter: name a cuff.  t: inflate it to 30 mmHg for 3 s to see which one moves.  w: write.")
        else:
            self.say("No controller answered. Plug one in (or fix what is said above), then r to look again.")

    def show_ports(self) -> None:
        answered = {c.port: c.id for c in self.draft.controllers}
        ok = sum(r.usable for r in self.reports)
        lines = [f"Setup: {ok} controller(s) answered, {len(self.reports) - ok} port(s) did not"]
        if self.extend_from is not None:
            lines[0] += f"; adding to {self.extend_from.name}"
        if not self.reports:
            lines.append("  no serial port found (give them with --ports)")
        for r in self.reports:
            mark = f"{answered[r.port]:>2} " if r.port in answered else " - "
            lines.append(f"{mark}{r.describe()}")
        self.query_one("#setup-ports", Static).update(Text("\n").join(plain(line) for line in lines))

    def show_cuffs(self, keep: str | None = None) -> None:
        table = self.query_one(DataTable)
        row = table.cursor_row
        table.clear()
        for c in self.draft.cuffs:
            cells = (c.id, f"{c.controller} ch{c.channel}", c.limb, c.label, f"{c.width_cm:g}" if c.width_cm else "")
            table.add_row(*(plain(x) for x in (*cells, c.pair or "")), key=c.id)
        if self.draft.cuffs:
            ids = [c.id for c in self.draft.cuffs]
            table.move_cursor(row=ids.index(keep) if keep in ids else min(row, len(ids) - 1))
        table.focus()

    def selected(self) -> drafting.DraftCuff | None:
        table = self.query_one(DataTable)
        if not self.draft.cuffs or table.cursor_row < 0:
            return None
        return self.draft.cuffs[min(table.cursor_row, len(self.draft.cuffs) - 1)]

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_edit()

    def action_edit(self) -> None:
        cuff = self.selected()
        if cuff is None:
            return
        index = self.draft.cuffs.index(cuff)
        self.app.push_screen(
            CuffDialog(self.draft, cuff.id), lambda saved: self.show_cuffs(keep=self.draft.cuffs[index].id)
        )

    def action_trial(self) -> None:
        cuff = self.selected()
        if cuff is None or self.trial_running:
            return
        self.trial_running = True
        self.run_trial(cuff)

    @work(exclusive=True, group="trial")
    async def run_trial(self, cuff: drafting.DraftCuff) -> None:
        ctl = self.draft.controller(cuff.controller)
        self.say(f"Testing {cuff.id}: {TRIAL_MMHG:g} mmHg for {TRIAL_HOLD_S:g} s - watch which cuff fills. F12 stops.")
        try:
            result = await trial_inflate(ctl.port, ctl.serial, cuff.channel)
            self.say(f"{cuff.id}: {result.message}")
        finally:
            self.trial_running = False

    def action_stop_trial(self) -> None:
        """F12: stop a test inflate at once (its deflate is sent as it ends)."""
        if self.trial_running:
            self.workers.cancel_group(self, "trial")
            self.say("Test stopped: deflate sent.")

    def action_rescan(self) -> None:
        if not self.trial_running:
            self.run_scan()

    def action_write(self) -> None:
        if not self.draft.controllers:
            self.say("Nothing to write: no controller answered.")
            return
        self.app.push_screen(PathDialog(self.write_to), self.check_and_write)

    def check_and_write(self, where: str | None) -> None:
        if where is None:
            return
        path = Path(where).expanduser()
        kept = drafting.read_kept(self.extend_from if self.extend_from is not None else path)
        text = drafting.render(drafting.document(self.draft, kept, self.extend))
        try:
            drafting.check(text, path)
        except ConfigError as exc:
            self.say(f"Not written, the console would refuse it: {exc.problems[0]}")
            return
        if path.exists():
            self.app.push_screen(
                ReplaceDialog(path, drafting.diff(path, text)), lambda yes: self.commit(path, text, yes)
            )
        else:
            self.commit(path, text, True)

    def commit(self, path: Path, text: str, yes: bool | None) -> None:
        if not yes:
            self.say(f"Not written: {path} kept as it was.")
            return
        try:
            backup = drafting.write(path, text)
        except OSError as exc:
            self.say(f"Not written: {exc}")
            return
        self.written = path
        kept = f" (old one kept as {backup.name})" if backup else ""
        self.say(f"Wrote {path}{kept}. Start with: bin/console --config {path}   q: quit")

    def action_quit_setup(self) -> None:
        if self.trial_running:
            self.say("A test inflate is running: F12 stops it first.")
            return
        if self.extend_from is not None:  # inside the running console: back to the dashboard
            self.dismiss(None)
        else:
            self.app.exit(0)
