"""What the screens may do: station commands in the background, and the confirmations that guard them.

The app builds one :class:`ConsoleActions` and hands it to every screen, so no
screen imports the app (and the app can import the screens without a cycle).
A command runs as a background task owned here: closing a screen never cancels
it halfway, a refusal becomes a notification in the station's own sentence,
and a broken link never takes the screen down. The emergency deflate is called
at once, never queued behind another command.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from textual.app import App

from console.common.api import (
    OVERTAKEN_BY_EMERGENCY,
    CommandRefused,
    CuffSnapshot,
    EmergencySnapshot,
    Role,
    StationHandle,
    StationSnapshot,
)
from console.ui.plain import notify_plain
from console.ui.quit_words import UpTracker, quit_question
from console.ui.screens.dialogs import ClosesOnEmergency, ConfirmDialog, InflateRequest
from console.ui.theme import Glyphs

log = logging.getLogger(__name__)

SILENCE_S = 120.0
NOT_SENT = OVERTAKEN_BY_EMERGENCY


class ConsoleView(Protocol):
    """The console's state as screens and actions read it; the app implements it with its pull loop."""

    @property
    def last_snapshot(self) -> StationSnapshot: ...

    @property
    def selected(self) -> str: ...

    @property
    def glyphs(self) -> Glyphs: ...

    @property
    def role(self) -> Role: ...

    def selected_cuff(self) -> CuffSnapshot | None:
        """The selected cuff in the newest snapshot, None if there is none."""
        ...

    def selected_session_active(self) -> bool: ...

    def select(self, cuff_id: str) -> None: ...

    def refresh_now(self) -> None:
        """Show the newest snapshot at once (after a command), not at the next tick."""
        ...


@dataclass(frozen=True, slots=True)
class SessionDraft:
    """What the session dialog held when it was cancelled, for the next time it opens on that cuff."""

    patient: str
    plan_id: str | None
    second: str | None


class ConsoleActions:
    """The operations behind the keys, on the selected cuff or the whole station.

    ``app`` gives the Textual services (notifications, dialogs, exit); ``view``
    the state shown. Both are the running app; they are named apart so this
    module needs only the Textual base class, never the console's app module.
    """

    def __init__(
        self, app: App[Any], view: ConsoleView, handle: StationHandle, *, kiosk: bool = False, attached: bool = False
    ) -> None:
        self.app = app
        self.attached = attached
        """A console attached to a station elsewhere: quitting it leaves every cuff as it is."""
        self.view = view
        self.handle = handle
        self.kiosk = kiosk
        self._tasks: set[asyncio.Future[Any]] = set()
        self.tracker = UpTracker()
        self.session_drafts: dict[str, SessionDraft] = {}
        """Per cuff, the session dialog's patient, plan and second cuff as last left (kept for this console)."""
        self.emergencies = 0
        """Emergency deflates asked for here; a command asked for before one is never sent after it."""

    # -- running commands -----------------------------------------------------------
    def spawn(self, awaitable: Awaitable[Any]) -> asyncio.Future[Any]:
        """Run in the background, owned here, so closing the screen that started it does not cancel it."""
        task = asyncio.ensure_future(awaitable)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def cancel_all(self) -> None:
        """Cancel what still runs (the app is closing)."""
        for task in list(self._tasks):
            task.cancel()

    def run(self, what: str, make: Callable[[], Awaitable[Any]]) -> None:
        """Run a station command in the background; a refusal becomes a notification.

        A command still unsent when the emergency key is pressed is dropped, not sent after the emergency.
        """
        asked_at = self.emergencies

        async def run() -> None:
            if self.overtaken(asked_at):
                notify_plain(self.app, f"{what}: {NOT_SENT}", severity="warning", timeout=8)
                return
            try:
                await make()
            except CommandRefused as exc:
                notify_plain(self.app, str(exc), title=f"{what}: refused", severity="error", timeout=8)
            except Exception as exc:  # a broken link must not take the screen down
                log.exception("%s failed", what)
                notify_plain(self.app, f"{what} failed: {exc}", severity="error", timeout=8)
            self.view.refresh_now()

        self.spawn(run())

    def overtaken(self, asked_at: int) -> bool:
        """Whether an emergency was asked for since ``asked_at`` (``emergencies`` when a command was asked for)."""
        return self.emergencies != asked_at

    def emergency(self, started: concurrent.futures.Future[EmergencySnapshot] | None = None) -> None:
        """DEFLATE ALL, now: called straight from the key, no confirmation, no queue.

        Then every dialog that could command a cuff closes, with what was typed in it, and commands
        asked for before this one and not yet sent are dropped. ``started``: the emergency the terminal's
        reader already handed to the station (its confirmations are reported here).
        """
        self.emergencies += 1
        try:
            confirming = asyncio.wrap_future(started) if started is not None else self.handle.emergency_deflate()
        except Exception as exc:  # a handle that fails at the call itself
            log.exception("emergency deflate failed")
            notify_plain(self.app, f"EMERGENCY DEFLATE FAILED: {exc}", severity="error", timeout=30)
            self.close_command_dialogs()
            return
        self.close_command_dialogs()

        async def report() -> None:
            try:
                result: EmergencySnapshot = await confirming
            except Exception as exc:  # never refused by contract; a broken handle still gets said loudly
                log.exception("emergency deflate failed")
                notify_plain(self.app, f"EMERGENCY DEFLATE FAILED: {exc}", severity="error", timeout=30)
                return
            if result.pending:
                notify_plain(
                    self.app, f"Deflate sent; pending: {', '.join(result.pending)}", severity="warning", timeout=10
                )
            else:
                notify_plain(self.app, f"All deflated: {', '.join(result.confirmed)}", timeout=10)
            self.view.refresh_now()

        self.spawn(report())

    def close_command_dialogs(self) -> None:
        """Close every open dialog that could command the station, and any screen above it, unanswered.

        Popped, not dismissed: their result callbacks never run, so nothing typed in them is sent.
        """
        stack = self.app.screen_stack
        first = next(
            (i for i, s in enumerate(stack) if isinstance(s, ClosesOnEmergency) and s.closes_on_emergency), None
        )
        if first is None or first == 0:
            return
        for _ in range(len(stack) - first):
            self.app.pop_screen()

    # -- the selected cuff ------------------------------------------------------------
    def selected_cuff(self) -> CuffSnapshot | None:
        """The selected cuff; None, said on screen, when there is none."""
        cuff = self.view.selected_cuff()
        if cuff is None:
            notify_plain(self.app, "No cuff selected.", severity="warning")
        return cuff

    def _selected_id(self) -> str | None:
        cuff = self.selected_cuff()
        return None if cuff is None else cuff.id

    def inflate(self, request: InflateRequest) -> None:
        """Send what the inflate dialog asked for."""
        self.run(
            f"Inflate {request.cuff_id} to {request.describe()}",
            lambda: self.handle.inflate(request.cuff_id, mmhg=request.mmhg, pct_lop=request.pct_lop),
        )

    def inflate_command(self, request: InflateRequest, asked_at: int) -> Awaitable[None]:
        """The inflate dialog's own send: refused, unsent, if the emergency key came after the dialog opened."""

        async def send() -> None:
            if self.overtaken(asked_at):
                raise CommandRefused(f"Inflate {request.cuff_id}: {NOT_SENT}")
            try:
                await self.handle.inflate(request.cuff_id, mmhg=request.mmhg, pct_lop=request.pct_lop)
            finally:
                self.view.refresh_now()

        return send()

    def nudge(self, delta: float) -> None:
        if (cid := self._selected_id()) is not None:
            self.run(f"Target {cid} {delta:+.0f} mmHg", lambda: self.handle.nudge_target(cid, delta))

    def deflate_selected(self) -> None:
        if (cid := self._selected_id()) is not None:
            self.run(f"Deflate {cid}", lambda: self.handle.deflate(cid))

    # -- sessions ------------------------------------------------------------------------
    def session_command(self, command: str) -> None:
        """``pause`` | ``resume`` | ``skip`` | ``stop`` | ``rep+`` | ``rep-`` on the selected cuff's session."""
        if (cid := self._selected_id()) is not None:
            self.run(f"Session {command} on {cid}", lambda: self.handle.session_command(cid, command))

    def toggle_pause(self) -> None:
        cuff = self.view.selected_cuff()
        paused = cuff is not None and cuff.session is not None and cuff.session.phase == "paused"
        self.session_command("resume" if paused else "pause")

    def confirm_stop_session(self) -> None:
        cuff = self.view.selected_cuff()
        if cuff is None or cuff.session is None or isinstance(self.app.screen, ConfirmDialog):
            return
        cuffs = " + ".join(cuff.session.cuffs) or cuff.id
        question = f"Stop the session on {cuffs} ({cuff.session.plan_name})? The cuffs vent."

        def done(yes: bool | None) -> None:
            if yes:
                self.session_command("stop")

        self.app.push_screen(ConfirmDialog(question, yes="Stop", no="Continue", commands_station=True), done)

    # -- alarms -----------------------------------------------------------------------------
    def acknowledge_selected(self) -> None:
        """The selected cuff's alarms, and its controller's (they are about this cuff too)."""
        cuff = self.view.selected_cuff()
        cid = self.view.selected
        ctrl = cuff.controller if cuff is not None else None
        ids = [
            a.id
            for a in self.view.last_snapshot.alarms
            if not a.acknowledged and (a.cuff == cid or (a.cuff is None and ctrl is not None and a.controller == ctrl))
        ]
        if not ids and cuff is not None and cuff.latched:
            # Acknowledged already, still latched (its CLEAR failed): acknowledging again retries the CLEAR.
            ids = [
                a.id
                for a in self.view.last_snapshot.alarms
                if a.cuff == cid or (a.cuff is None and ctrl is not None and a.controller == ctrl)
            ][:1]
        if not ids:
            notify_plain(self.app, f"No alarm on {cid} to acknowledge (A acknowledges all).")
            return
        self.acknowledge_ids(ids)

    def acknowledge_ids(self, ids: list[int]) -> None:
        async def ack() -> None:
            for alarm_id in ids:
                await self.handle.acknowledge(alarm_id)

        self.run("Acknowledge", ack)

    def acknowledge_all(self) -> None:
        self.run("Acknowledge all", lambda: self.handle.acknowledge(None))

    def silence(self) -> None:
        async def run() -> None:
            await self.handle.silence(SILENCE_S)
            notify_plain(self.app, f"Alarm sound silenced for {SILENCE_S:.0f} s.")

        self.run("Silence", run)

    # -- quitting ---------------------------------------------------------------------------
    def note_snapshot(self, snap: StationSnapshot) -> None:
        """Told every new snapshot: which cuffs were last seen inflated (for the quit prompt and the last line)."""
        self.tracker.note(snap)

    def cuffs_up(self) -> tuple[list[str], list[str]]:
        """(inflated cuffs in sight, cuffs out of sight that were inflated when last seen)."""
        snap = self.view.last_snapshot
        self.tracker.note(snap)
        return self.tracker.up(snap), self.tracker.unknown(snap)

    def request_quit(self) -> None:
        """Quit, saying what quitting does: a local console vents every cuff, an attached one leaves them."""
        if isinstance(self.app.screen, ConfirmDialog):
            return
        up, unknown = self.cuffs_up()
        question = quit_question(up, unknown, attached=self.attached, kiosk=self.kiosk)
        if question is None:
            self.app.exit()
            return

        def done(yes: bool | None) -> None:
            if yes:
                self.app.exit()

        yes = "Close" if self.attached else "Quit"
        self.app.push_screen(ConfirmDialog(question, yes=yes, no="Stay"), done)
