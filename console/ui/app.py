"""The therapist's console: a Textual app over a :class:`StationHandle`.

Snapshots are the only input (pulled at ``fps`` by one timer, or handed over at
``fps`` by a station on its own thread: console/ui/snapshot_feed.py; never one
refresh per sample); commands are the handle's async methods. The emergency
key is bound on the App with ``priority=True`` so it fires on every screen,
inside every dialog, even with a text field focused, and it calls
``handle.emergency_deflate()`` at once: no confirmation, no queue.

The screens never import this module: the app builds one
:class:`~console.ui.actions.ConsoleActions` and hands it to each of them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, ClassVar

from textual import events
from textual.app import App
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Input

from console.common.api import CuffSnapshot, Role, StationHandle, StationSnapshot
from console.ui import partial_render, strip_cycles
from console.ui.actions import ConsoleActions
from console.ui.alerting import BellScheduler, loudest_audible
from console.ui.cue import CueBell
from console.ui.emergency_key import EmergencyKeyPressed, KeyEmergencyPort, emergency_key_driver
from console.ui.on_screen import on_screen
from console.ui.plug_notice import NewControllers
from console.ui.screens.dashboard import DashboardScreen, cuff_by_id
from console.ui.screens.dialogs import ConfirmDialog, InflateDialog
from console.ui.screens.lists import AlarmListScreen, HelpScreen
from console.ui.screens.therapy import CommandDialog
from console.ui.snapshot_feed import LATE_CHECK_S, PushedSnapshots, SnapshotPusher
from console.ui.theme import resolve_theme
from console.ui.therapy_text import session_active
from console.ui.widgets.status import EmergencyBar

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


EMERGENCY_FRAME_HOLD_S = 0.1
"""While a DEFLATE ALL is on its way, no new frame starts for up to this long (usually its confirmations
take a few ms): the station's thread and the controllers get the machine first. A frame drawn meanwhile
held the GIL and one of the two cores for up to 20 ms at 160x50, in the emergency's slowest runs."""


class BfrApp(App[None]):
    """Dashboard of every cuff, alarms, and the one key that deflates everything."""

    CSS_PATH = "app.tcss"
    TITLE = "BFR station"
    ENABLE_COMMAND_PALETTE = False

    BINDINGS: ClassVar[list[BindingType]] = [
        # show=False: the emergency bar names it in full on every screen; a footer would cut it at 80 columns.
        Binding("f12", "emergency", "EMERGENCY DEFLATE", key_display="F12", priority=True, show=False),
        Binding("ctrl+e", "emergency", "EMERGENCY DEFLATE", key_display="Ctrl+E", priority=True, show=False),
        Binding("f1", "help", "help", key_display="F1"),
        Binding("ctrl+q", "request_quit", "quit", show=False, priority=True),
        Binding("ctrl+c", "help_quit", show=False, system=True),
        Binding("S", "setup_new", "add controller", show=False),
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
        attached: bool = False,
        cue_bell: bool = False,
        emergency_key: KeyEmergencyPort | None = None,
    ) -> None:
        """``clock`` drives flash and bell timing (monotonic seconds); tests inject a manual one.

        ``attached``: this console watches a station elsewhere (``attach``); quitting it leaves the cuffs.
        ``emergency_key``: the station, as the terminal's reader may ask it; given, the reader (on the
        station's loop, or the input thread) fires DEFLATE ALL the moment it reads F12 or Ctrl+E (:mod:`console.ui.emergency_key`).
        """
        strip_cycles.install()  # its lines freed when dropped: no full collection stalls the station's thread
        partial_render.install()  # a frame asks only the widgets under its dirty rows
        super().__init__(driver_class=emergency_key_driver(emergency_key) if emergency_key is not None else None)
        self.emergency_key = emergency_key
        self.handle = handle
        self.kiosk = kiosk
        self.fps = max(1, fps)
        self.bell_enabled = bell
        self.cue_bell = cue_bell
        """Ring at each lift and each set or rest that begins (``[ui] cue_bell``)."""
        self._cue = CueBell()
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
        self._timer: Timer | None = None
        self._pushed: PushedSnapshots | None = None
        self._stop_push: Callable[[], None] | None = None
        self.actions = ConsoleActions(self, self, handle, kiosk=kiosk, attached=attached)
        self.attached = attached
        name = self.last_snapshot.name
        self.title = f"BFR station {name}" + (f" (remote, {self.last_snapshot.role.value})" if attached else "")
        """What the screens may do; handed to each, so no screen imports this module."""
        self._dashboard: DashboardScreen | None = None
        self._keys_mode: tuple[str, bool] | None = None
        self._emergency_hold_from: float | None = None
        self.new_controllers = NewControllers()
        """Controllers that appeared on ports no config names (plug and play: ``S`` opens the setup)."""

    # -- lifecycle --------------------------------------------------------------
    def get_default_screen(self) -> Screen[Any]:
        self._dashboard = DashboardScreen(self.last_snapshot, self.actions)
        return self._dashboard

    @property
    def dashboard(self) -> DashboardScreen:
        assert self._dashboard is not None, "the dashboard exists once the app runs"
        return self._dashboard

    def on_mount(self) -> None:
        self.set_class(self.ansi_mode, "-ansi")
        if isinstance(self.handle, SnapshotPusher):  # the station's thread hands them over: no pull timer
            self._pushed = PushedSnapshots(asyncio.get_running_loop(), self._show_pushed, 1 / self.fps)
            self._stop_push = self.handle.push_snapshots(1 / self.fps, self._pushed.deliver)
            self._timer = self.set_interval(LATE_CHECK_S, self._check_pushes, name="pushes")
        else:
            self._timer = self.set_interval(1 / self.fps, self.refresh_now, name="pull")

    def _check_pushes(self) -> None:
        """Snapshots stopped coming (the station's loop stuck: the pull shows the notice), or one was left
        waiting by a frame held back: show it now."""
        pushed = self._pushed
        if pushed is not None and (pushed.waiting() or pushed.late(time.monotonic())):
            self.refresh_now()

    def _show_pushed(self) -> None:
        """A snapshot was handed over: show it (none left, taken meanwhile: nothing to do, no pull)."""
        if self._pushed is not None and self._pushed.waiting():
            self.refresh_now()

    def on_unmount(self) -> None:
        if self._stop_push is not None:
            self._stop_push()
        self.actions.cancel_all()

    @property
    def role(self) -> Role:
        return self.last_snapshot.role

    # -- the pull loop ------------------------------------------------------------
    def refresh_now(self) -> None:
        """Read the newest snapshot and update only what changed; also steps flash and bell."""
        dash = self._dashboard
        if dash is None or not dash.is_mounted or not on_screen(self):
            return  # not up yet, or shutting down: Textual empties the screen stacks before this timer stops
        if self._holding_for_emergency():
            return
        pushed = self._pushed.take() if self._pushed is not None else None
        snap = pushed if pushed is not None else self.handle.snapshot()
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
            self.actions.note_snapshot(snap)
            if self.screen is not dash:  # other screens carry their own emergency bar
                for bar in self.screen.query(EmergencyBar):
                    bar.show_emergency(snap.emergency)
            self.frames += 1
            if self.on_frame is not None:
                self.on_frame(snap)
        rings = self._bells.due(loudest_audible(snap), now) if self.bell_enabled else 0
        for _ in range(rings):
            self.bell()
        if changed and self._cue.due(snap) and self.cue_bell and not rings:
            self.bell()  # the patient's cue; an alarm's bell that rings now takes its place

    def _holding_for_emergency(self) -> bool:
        """A DEFLATE ALL is on its way: no frame for up to EMERGENCY_FRAME_HOLD_S, then frames as ever."""
        port = self.emergency_key
        if port is None or not port.emergency_in_flight():
            self._emergency_hold_from = None
            return False
        now = self.clock()
        if self._emergency_hold_from is None:
            self._emergency_hold_from = now
            self.set_timer(EMERGENCY_FRAME_HOLD_S, self.refresh_now)  # the hold's end, not the next frame after it
        return now - self._emergency_hold_from < EMERGENCY_FRAME_HOLD_S

    async def on_key(self, event: events.Key) -> None:
        """Keys typed ahead into a dialog that opened after they were read go into its field, in order.

        Textual routes each key when it reads it: ``i60`` Enter in one burst (a quick typist, a
        terminal that sends them together) sends ``6``, ``0`` and Enter to the dashboard before ``i``
        has opened the inflate dialog, and they come back here unused. A printable key that reaches
        the app while a text field has the focus can only be one of those (the field takes every one
        it sees), so it is typed into the field here; Backspace and Enter, which a field leaves to its
        bindings, are done here too, so they keep their place among the typed keys (Textual would
        submit before the digits typed ahead of Enter were in). This runs before Textual's own key
        handling and stops it for these keys only; F12 and Ctrl+E never get here (priority bindings).
        """
        field = self.focused
        if not isinstance(field, Input):
            return
        if event.is_printable and event.character:
            field.insert_text_at_cursor(event.character)
        elif event.key == "backspace":
            field.action_delete_left()
        elif event.key == "enter":
            await field.action_submit()
        else:
            return
        event.prevent_default()
        event.stop()

    # -- selection -------------------------------------------------------------------
    def select(self, cuff_id: str) -> None:
        self.selected = cuff_id
        self.dashboard.show_selected(cuff_id)
        self._follow_keys_mode()

    def selected_cuff(self) -> CuffSnapshot | None:
        return cuff_by_id(self.last_snapshot, self.selected)

    def selected_session_active(self) -> bool:
        cuff = self.selected_cuff()
        return cuff is not None and session_active(cuff.session)

    def _follow_keys_mode(self) -> None:
        """The footer offers the session keys while the selected cuff runs a session, the setup keys otherwise."""
        mode = (self.selected, self.selected_session_active())
        if mode != self._keys_mode:
            self._keys_mode = mode
            self.refresh_bindings()

    # -- commands ----------------------------------------------------------------
    def action_emergency(self) -> None:
        """DEFLATE ALL, now: called straight from the key, no confirmation, no queue."""
        self.actions.emergency()

    def on_emergency_key_pressed(self, message: EmergencyKeyPressed) -> None:
        """The terminal's reader has already handed the DEFLATE ALL over: close the dialogs, report the confirmations.

        Commands asked for before it and still on their way are refused at the station until then; from
        here on, every one of them is dropped here (``actions.emergency``), and a dialog opened before it
        sends nothing (``opened_at``)."""
        self.actions.emergency(started=message.started)
        if self.emergency_key is not None:
            self.emergency_key.emergency_key_seen()

    def action_setup_new(self) -> None:
        self.new_controllers.open_setup(self)

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self.key_rows(), self))

    def key_rows(self) -> list[tuple[str, str, str]]:
        """Every key, grouped by action, with where it works (for the help screen)."""
        rows: list[tuple[str, str, str]] = []
        sources: list[tuple[str, list[BindingType]]] = [
            ("everywhere", list(self.BINDINGS)),
            ("dashboard", list(DashboardScreen.BINDINGS)),
            ("inflate dialog", list(InflateDialog.BINDINGS) + [Binding("enter", "", "confirm the target")]),
            (
                "therapy dialogs",
                list(CommandDialog.BINDINGS)
                + [
                    Binding("tab", "", "next field"),
                    Binding("up,down", "", "choose a plan"),
                    Binding("left,right,space", "", "change a choice (position, cuffs)"),
                ],
            ),
            ("confirmation", list(ConfirmDialog.BINDINGS) + [Binding("tab,enter", "", "move to / press a button")]),
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
    def action_request_quit(self) -> None:
        """Quit; asks first in kiosk mode or while any cuff may be inflated."""
        self.actions.request_quit()
