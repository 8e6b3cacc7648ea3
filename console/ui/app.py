"""The therapist's console: a Textual app over a :class:`StationHandle`.

Snapshots are the only input (pulled at ``fps`` by one timer, never one
refresh per sample); commands are the handle's async methods. The emergency
key is bound on the App with ``priority=True`` so it fires on every screen,
inside every dialog, even with a text field focused, and it calls
``handle.emergency_deflate()`` at once: no confirmation, no queue.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from textual.app import App
from textual.binding import Binding, BindingType
from textual.screen import Screen

from console.common.api import (
    CommandRefused,
    EmergencySnapshot,
    Role,
    StationHandle,
    StationSnapshot,
)
from console.ui.alerting import BellScheduler, loudest_audible
from console.ui.screens.dashboard import DashboardScreen, cuff_by_id
from console.ui.screens.dialogs import ConfirmDialog, InflateDialog, InflateRequest
from console.ui.screens.lists import AlarmListScreen, HelpScreen
from console.ui.screens.therapy import (
    CommandDialog,
    DopplerLopDialog,
    MeasureLopDialog,
    SessionDialog,
)
from console.ui.theme import resolve_theme
from console.ui.therapy_text import session_active
from console.ui.widgets.cuff_panel import is_inflated

log = logging.getLogger(__name__)

SILENCE_S = 120.0
NUDGE_MMHG = 5.0


_KEY_NAMES = {
    "enter": "Enter",
    "escape": "Esc",
    "tab": "Tab",
    "shift+tab": "Shift+Tab",
    "right": "Right",
    "left": "Left",
    "up": "Up",
    "down": "Down",
    "plus": "+",
    "minus": "-",
    "equals_sign": "=",
    "space": "Space",
    "left_square_bracket": "[",
    "right_square_bracket": "]",
}


def key_label(key: str) -> str:
    """A key as the help screen names it: ``F12``, ``Ctrl+E``, ``Enter``, ``a``, ``A``."""
    if key in _KEY_NAMES:
        return _KEY_NAMES[key]
    if key[:1] == "f" and key[1:].isdigit():
        return key.upper()
    if key.startswith("ctrl+"):
        return "Ctrl+" + key[5:].upper()
    return key


class BfrApp(App[None]):
    """Dashboard of every cuff, alarms, and the one key that deflates everything."""

    CSS_PATH = "app.tcss"
    TITLE = "BFR station"
    ENABLE_COMMAND_PALETTE = False

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f12", "emergency", "EMERGENCY DEFLATE", key_display="F12", priority=True),
        Binding("ctrl+e", "emergency", "EMERGENCY DEFLATE", key_display="Ctrl+E", priority=True, show=False),
        Binding("f1", "help", "help", key_display="F1"),
        Binding("ctrl+q", "request_quit", "quit", show=False, priority=True),
        Binding("ctrl+c", "help_quit", show=False, system=True),
    ]

    def __init__(
        self,
        handle: StationHandle,
        *,
        kiosk: bool = False,
        theme: str = "auto",
        fps: int = 20,
        bell: bool = True,
        clock: Callable[[], float] | None = None,
        term: str | None = None,
    ) -> None:
        """``clock`` drives flash and bell timing (monotonic seconds); tests inject a manual one."""
        super().__init__()
        self.handle = handle
        self.kiosk = kiosk
        self.fps = max(1, fps)
        self.bell_enabled = bell
        self.clock = clock or time.monotonic
        choice = resolve_theme(theme, term)
        self.glyphs = choice.glyphs
        self.ansi_mode = choice.ansi
        self.theme = choice.textual_theme
        self.last_snapshot: StationSnapshot = handle.snapshot()
        self.selected: str = self.last_snapshot.cuffs[0].id if self.last_snapshot.cuffs else ""
        self.frames = 0
        """Pull-loop ticks that found a new snapshot (for the benchmark)."""
        self.on_frame: Callable[[StationSnapshot], None] | None = None
        """Called after each tick that showed a new snapshot (benchmark hook)."""
        self._seq: int | None = None
        self._bells = BellScheduler()
        self._tasks: set[asyncio.Future[Any]] = set()
        self._timer: Any = None
        self._dashboard: DashboardScreen | None = None
        self._keys_mode: tuple[str, bool] | None = None

    # -- lifecycle --------------------------------------------------------------
    def get_default_screen(self) -> Screen[Any]:
        self._dashboard = DashboardScreen(self.last_snapshot)
        return self._dashboard

    @property
    def dashboard(self) -> DashboardScreen:
        assert self._dashboard is not None, "the dashboard exists once the app runs"
        return self._dashboard

    def on_mount(self) -> None:
        self.set_class(self.ansi_mode, "-ansi")
        self._timer = self.set_interval(1 / self.fps, self.refresh_now, name="pull")

    def on_unmount(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    @property
    def role(self) -> Role:
        return self.last_snapshot.role

    # -- the pull loop ------------------------------------------------------------
    def refresh_now(self) -> None:
        """Read the newest snapshot and update only what changed; also steps flash and bell."""
        dash = self._dashboard
        if dash is None or not dash.is_mounted:
            return
        snap = self.handle.snapshot()
        changed = snap.seq != self._seq
        role_changed = snap.role != self.last_snapshot.role
        self.last_snapshot = snap
        self._seq = snap.seq
        if role_changed:
            self.refresh_bindings()
        self._follow_keys_mode()
        now = self.clock()
        dash.apply(snap, changed, now)
        if changed:
            if self.screen is not dash:  # other screens carry their own emergency bar
                for bar in self.screen.query("EmergencyBar"):
                    bar.show_emergency(snap.emergency)  # type: ignore[attr-defined]
            self.frames += 1
            if self.on_frame is not None:
                self.on_frame(snap)
        if self.bell_enabled:
            for _ in range(self._bells.due(loudest_audible(snap), now)):
                self.bell()

    # -- selection -------------------------------------------------------------------
    def select(self, cuff_id: str) -> None:
        self.selected = cuff_id
        self.dashboard.show_selected(cuff_id)
        self._follow_keys_mode()

    def selected_session_active(self) -> bool:
        cuff = cuff_by_id(self.last_snapshot, self.selected)
        return cuff is not None and session_active(cuff.session)

    def _follow_keys_mode(self) -> None:
        """The footer offers the session keys while the selected cuff runs a session, the setup keys otherwise."""
        mode = (self.selected, self.selected_session_active())
        if mode != self._keys_mode:
            self._keys_mode = mode
            self.refresh_bindings()

    # -- commands ----------------------------------------------------------------
    def _spawn(self, awaitable: Awaitable[Any]) -> asyncio.Future[Any]:
        task = asyncio.ensure_future(awaitable)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _command(self, what: str, make: Callable[[], Awaitable[Any]]) -> None:
        """Run a station command in the background; a refusal becomes a notification."""

        async def run() -> None:
            try:
                await make()
            except CommandRefused as exc:
                self.notify(str(exc), title=f"{what}: refused", severity="error", timeout=8)
            except Exception as exc:  # a broken link must not take the screen down
                log.exception("%s failed", what)
                self.notify(f"{what} failed: {exc}", severity="error", timeout=8)
            self.refresh_now()

        self._spawn(run())

    def action_emergency(self) -> None:
        """DEFLATE ALL, now: called straight from the key, no confirmation, no queue."""
        try:
            started = self.handle.emergency_deflate()
        except Exception as exc:  # a handle that fails at the call itself
            log.exception("emergency deflate failed")
            self.notify(f"EMERGENCY DEFLATE FAILED: {exc}", severity="error", timeout=30)
            return

        async def report() -> None:
            try:
                result: EmergencySnapshot = await started
            except Exception as exc:  # never refused by contract; a broken handle still gets said loudly
                log.exception("emergency deflate failed")
                self.notify(f"EMERGENCY DEFLATE FAILED: {exc}", severity="error", timeout=30)
                return
            if result.pending:
                self.notify(f"Deflate sent; pending: {', '.join(result.pending)}", severity="warning", timeout=10)
            else:
                self.notify(f"All deflated: {', '.join(result.confirmed)}", timeout=10)
            self.refresh_now()

        self._spawn(report())

    def _selected_cuff(self) -> str | None:
        if not self.selected or cuff_by_id(self.last_snapshot, self.selected) is None:
            self.notify("No cuff selected.", severity="warning")
            return None
        return self.selected

    async def open_inflate_dialog(self) -> None:
        """Open the dialog and wait until it is mounted and focused, so digits typed
        right after ``i`` land in its field instead of selecting cuffs."""
        cuff = cuff_by_id(self.last_snapshot, self.selected)
        if cuff is None:
            self.notify("No cuff selected.", severity="warning")
            return

        def done(request: InflateRequest | None) -> None:
            if request is not None:
                self._command(
                    f"Inflate {request.cuff_id} to {request.describe()}",
                    lambda: self.handle.inflate(request.cuff_id, mmhg=request.mmhg, pct_lop=request.pct_lop),
                )

        await self.push_screen(InflateDialog(cuff), done)

    # -- therapy -----------------------------------------------------------------------
    async def open_therapy_dialog(self, kind: str) -> None:
        """``session`` | ``measure`` | ``doppler``: opened and focused before the next key is read."""
        cuff = cuff_by_id(self.last_snapshot, self.selected)
        if cuff is None:
            self.notify("No cuff selected.", severity="warning")
            return
        dialog: CommandDialog
        if kind == "session":
            dialog = SessionDialog(self.last_snapshot, cuff)
        elif kind == "measure":
            dialog = MeasureLopDialog(cuff)
        else:
            dialog = DopplerLopDialog(cuff)
        await self.push_screen(dialog)

    def session_command(self, command: str) -> None:
        """``pause`` | ``resume`` | ``skip`` | ``stop`` | ``rep+`` | ``rep-`` on the selected cuff's session."""
        if (cid := self._selected_cuff()) is not None:
            self._command(f"Session {command} on {cid}", lambda: self.handle.session_command(cid, command))

    def toggle_pause(self) -> None:
        cuff = cuff_by_id(self.last_snapshot, self.selected)
        paused = cuff is not None and cuff.session is not None and cuff.session.phase == "paused"
        self.session_command("resume" if paused else "pause")

    def confirm_stop_session(self) -> None:
        cuff = cuff_by_id(self.last_snapshot, self.selected)
        if cuff is None or cuff.session is None or isinstance(self.screen, ConfirmDialog):
            return
        cuffs = " + ".join(cuff.session.cuffs) or cuff.id
        question = f"Stop the session on {cuffs} ({cuff.session.plan_name})? The cuffs vent."

        def done(yes: bool | None) -> None:
            if yes:
                self.session_command("stop")

        self.push_screen(ConfirmDialog(question, yes="Stop", no="Continue"), done)

    def nudge(self, delta: float) -> None:
        if (cid := self._selected_cuff()) is not None:
            self._command(f"Target {cid} {delta:+.0f} mmHg", lambda: self.handle.nudge_target(cid, delta))

    def deflate_selected(self) -> None:
        if (cid := self._selected_cuff()) is not None:
            self._command(f"Deflate {cid}", lambda: self.handle.deflate(cid))

    def acknowledge_selected(self) -> None:
        cid = self.selected
        ids = [a.id for a in self.last_snapshot.alarms if a.cuff == cid and not a.acknowledged]
        if not ids:
            self.notify(f"No alarm on {cid} to acknowledge (A acknowledges all).")
            return
        self.acknowledge_ids(ids)

    def acknowledge_ids(self, ids: list[int]) -> None:
        async def ack() -> None:
            for alarm_id in ids:
                await self.handle.acknowledge(alarm_id)

        self._command("Acknowledge", ack)

    def acknowledge_all(self) -> None:
        self._command("Acknowledge all", lambda: self.handle.acknowledge(None))

    def silence(self) -> None:
        async def run() -> None:
            await self.handle.silence(SILENCE_S)
            self.notify(f"Alarm sound silenced for {SILENCE_S:.0f} s.")

        self._command("Silence", run)

    def open_alarm_list(self) -> None:
        self.push_screen(AlarmListScreen())

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self.key_rows()))

    def key_rows(self) -> list[tuple[str, str, str]]:
        """Every key, grouped by action, with where it works (for the help screen)."""
        from console.ui.screens.dialogs import ConfirmDialog as _C
        from console.ui.screens.dialogs import InflateDialog as _I

        rows: list[tuple[str, str, str]] = []
        sources: list[tuple[str, list[BindingType]]] = [
            ("everywhere", list(self.BINDINGS)),
            ("dashboard", list(DashboardScreen.BINDINGS)),
            ("inflate dialog", list(_I.BINDINGS) + [Binding("enter", "", "confirm the target")]),
            (
                "therapy dialogs",
                list(CommandDialog.BINDINGS)
                + [
                    Binding("tab", "", "next field"),
                    Binding("up,down", "", "choose a plan"),
                    Binding("left,right,space", "", "change a choice (position, cuffs)"),
                ],
            ),
            ("confirmation", list(_C.BINDINGS) + [Binding("tab,enter", "", "move to / press a button")]),
            ("alarm list", list(AlarmListScreen.BINDINGS)),
            ("help", list(HelpScreen.BINDINGS)),
        ]
        for where, bindings in sources:
            grouped: dict[tuple[str, str], list[str]] = {}
            for b in Binding.make_bindings(bindings):
                if b.system:
                    continue
                desc = b.tooltip or b.description or b.action
                if b.action.startswith("select("):
                    grouped.setdefault(("select", "select cuff 1..9 (in screen order)"), []).append(key_label(b.key))
                    continue
                if b.action == "emergency":
                    desc = "EMERGENCY DEFLATE ALL cuffs (no confirmation)"
                keys = grouped.setdefault((b.action, desc), [])
                label = key_label(b.key) if b.key_display is None or "," in b.key else b.key_display
                if label not in keys:
                    keys.append(label)
            for (action, desc), keys in grouped.items():
                label = f"{keys[0]}-{keys[-1]}" if action == "select" else " / ".join(keys)
                rows.append((label, desc, where))
        return rows

    def get_key_display(self, binding: Binding) -> str:
        """Key names the Linux console can draw (no ⏎ or arrows glyphs): ``Enter``, ``Esc``, ``F12``."""
        if binding.key_display:
            return binding.key_display
        return key_label(binding.key)

    # -- quitting ---------------------------------------------------------------------
    def request_quit(self) -> None:
        """Quit; asks first in kiosk mode or while any cuff may be inflated."""
        if isinstance(self.screen, ConfirmDialog):
            return
        inflated = [c.id for c in self.last_snapshot.cuffs if is_inflated(c) and c.online]
        if not self.kiosk and not inflated:
            self.exit()
            return
        question = "Quit the console?"
        if inflated:
            which = f"Cuff {inflated[0]} is" if len(inflated) == 1 else f"Cuffs {', '.join(inflated)} are"
            question = f"{which} inflated. Quit the console anyway?"

        def done(yes: bool | None) -> None:
            if yes:
                self.exit()

        self.push_screen(ConfirmDialog(question, yes="Quit", no="Stay"), done)

    def action_request_quit(self) -> None:
        self.request_quit()
