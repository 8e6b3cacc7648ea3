"""Modal dialogs: inflate target and yes/no confirmation.

Every dialog closes without Escape (Enter on a button, or a plain key),
because Escape is unreliable over SSH and the kiosk has no mouse. A dialog
whose answer commands the station is :class:`ClosesOnEmergency`: the
emergency key closes it with whatever was typed in it, so nothing typed
before the emergency can be sent after it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Protocol

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from console.common.api import CommandRefused, CuffSnapshot
from console.common.facts import ABSOLUTE_MAX_MMHG
from console.ui.plain import notify_plain, plain
from console.ui.widgets.inputs import OrderedInput

"""Nothing typed above this is even sent; the station has its own, lower ceiling."""


class ClosesOnEmergency:
    """Marks a dialog whose answer sends a station command: the emergency deflate closes it, unanswered."""

    closes_on_emergency: bool = True


@dataclass(frozen=True, slots=True)
class InflateRequest:
    cuff_id: str
    mmhg: float | None = None
    pct_lop: float | None = None

    def describe(self) -> str:
        return f"{self.mmhg:.0f} mmHg" if self.mmhg is not None else f"{self.pct_lop:.0f} % LOP"


_TARGET = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(%|%\s*lop|lop|mmhg)?\s*$", re.IGNORECASE)


def parse_target(text: str, cuff: CuffSnapshot) -> InflateRequest:
    """``180`` or ``180 mmHg`` -> mmHg; ``80%`` or ``80 % LOP`` -> % LOP. Raises ValueError with a sentence."""
    m = _TARGET.match(text)
    if not m:
        raise ValueError("Type a number: 180 for mmHg, or 80% for % of LOP.")
    value = float(m.group(1))
    unit = (m.group(2) or "mmhg").lower().replace(" ", "")
    if value <= 0:
        raise ValueError("The target must be above 0.")
    if unit == "mmhg":
        if value > ABSOLUTE_MAX_MMHG:
            raise ValueError(f"{value:.0f} mmHg is above the {ABSOLUTE_MAX_MMHG:.0f} mmHg limit.")
        return InflateRequest(cuff.id, mmhg=value)
    if cuff.lop is None:
        raise ValueError(f"Cuff {cuff.id} has no LOP yet: give the target in mmHg or set the LOP first.")
    if value > cuff.max_pct_lop:
        raise ValueError(f"{value:.0f} % LOP is above this cuff's maximum of {cuff.max_pct_lop:.0f} %.")
    return InflateRequest(cuff.id, pct_lop=value)


class InflateSender(Protocol):
    """How the inflate dialog sends its target itself, so a refusal stays in the dialog with what was typed."""

    emergencies: int
    """Emergency deflates asked for on this console so far."""

    def inflate_command(self, request: InflateRequest, asked_at: int) -> Awaitable[None]:
        """The inflate, refused (CommandRefused) if an emergency came after ``asked_at`` (an ``emergencies``)."""
        ...

    def spawn(self, awaitable: Awaitable[Any]) -> asyncio.Future[Any]: ...


class InflateDialog(ClosesOnEmergency, ModalScreen[InflateRequest | None]):
    """Asks for a target; validates before anything is sent.

    With a ``sender`` it sends the target itself and stays open until the station answers: every
    refusal (a typo, or the station's own, such as the limit without a LOP) is shown in the
    dialog and the value stays in the field. Without one it returns the request (tests, demos).
    """

    AUTO_FOCUS = "#target"

    BINDINGS = [Binding("escape", "cancel", "cancel", show=False), Binding("f10", "cancel", "cancel")]

    def __init__(self, cuff: CuffSnapshot, sender: InflateSender | None = None) -> None:
        super().__init__(classes="dialog")
        self.cuff = cuff
        self.sender = sender
        self.pending = False
        self.opened_at = sender.emergencies if sender is not None else 0
        """What it sends was asked for when it opened: an emergency since then (which closes it, but an Enter
        read before the emergency may still reach it) means nothing is sent."""

    def compose(self) -> ComposeResult:
        c = self.cuff
        lop = f"LOP {c.lop:.0f} mmHg, max {c.max_pct_lop:.0f} % LOP" if c.lop is not None else "LOP not set: mmHg only"
        with Vertical(id="dialog-box"):
            yield Label(plain(f"Inflate {c.id} ({c.label})"), id="dialog-title")
            yield Label(lop)
            yield OrderedInput(placeholder="180  or  80%", id="target")
            yield Static("", id="error")
            with Horizontal(classes="buttons"):
                yield Button("Inflate (Enter)", id="ok", variant="primary")
                yield Button("Cancel (F10)", id="cancel")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        # The value as it was when Enter was pressed: keys typed after Enter may already be in the field.
        self._submit(event.value)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "ok":
            self._submit(self.query_one(Input).value)
        else:
            self.dismiss(None)

    def _submit(self, text: str) -> None:
        try:
            request = parse_target(text, self.cuff)
        except ValueError as exc:
            self.query_one("#error", Static).update(plain(exc))
            return
        if self.sender is None:
            self.dismiss(request)
            return
        if self.pending:
            return
        self.pending = True
        self.query_one("#error", Static).update(plain(f"Inflating {self.cuff.id} to {request.describe()}..."))
        command = self.sender.inflate_command(request, self.opened_at)

        async def run() -> None:
            try:
                await command
            except CommandRefused as exc:
                self._refused(str(exc))
                return
            except Exception as exc:  # a broken link must not take the dialog down
                self._refused(f"Inflate {self.cuff.id} failed: {exc}")
                return
            finally:
                self.pending = False
            if self.is_attached and self.is_current:
                self.dismiss(None)

        self.sender.spawn(run())

    def _refused(self, sentence: str) -> None:
        if self.is_attached and self.is_current:
            self.query_one("#error", Static).update(plain(sentence))
        else:  # closed meanwhile (the emergency): say it where the therapist is
            notify_plain(self.app, sentence, title="Inflate: refused", severity="error", timeout=8)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmDialog(ClosesOnEmergency, ModalScreen[bool]):
    """Yes/no; ``y`` confirms, ``n`` or Enter on the focused "no" button cancels.

    ``commands_station``: a yes sends a station command (stop a session), so the emergency closes
    the question; a question that commands no cuff (quit) stays open through it.
    """

    BINDINGS = [
        Binding("y", "answer(True)", "yes"),
        Binding("n,escape", "answer(False)", "no"),
    ]

    def __init__(self, question: str, yes: str = "Yes", no: str = "No", *, commands_station: bool = False) -> None:
        super().__init__(classes="dialog")
        self.closes_on_emergency = commands_station
        self.question = question
        self.yes_label, self.no_label = yes, no

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog-box"):
            yield Label(plain(self.question), id="dialog-title")  # may name cuffs and plans
            with Horizontal(classes="buttons"):
                yield Button(f"{self.yes_label} (y)", id="yes", variant="error")
                yield Button(f"{self.no_label} (n)", id="no", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
