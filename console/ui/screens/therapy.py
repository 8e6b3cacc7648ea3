"""Therapy dialogs: start a session (p), measure the LOP (m), enter a Doppler LOP (o).

Each dialog checks what it can (a patient id, a number in range) and then
sends the command itself, staying open until the station answers: a refusal
is shown in the dialog, in the station's own sentence, and nothing typed is
lost. Keyboard only: Enter confirms from any field, Tab moves, F10 (or
Escape, where it works) cancels. The emergency key works here as everywhere
(it is an App binding with priority).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from console.common.api import (
    CommandRefused,
    CuffSnapshot,
    PlanSummary,
    StationSnapshot,
)
from console.common.facts import PATIENT_ID, POSITIONS
from console.ui.actions import NOT_SENT, ConsoleActions, SessionDraft
from console.ui.plain import clean, notify_plain, plain
from console.ui.screens.dialogs import ClosesOnEmergency
from console.ui.widgets.choice import Choice
from console.ui.widgets.inputs import OrderedInput

log = logging.getLogger(__name__)

DEFAULT_POSITION = "seated"
LOP_RANGE = (50.0, 350.0)
"""A typed LOP outside this is a typo (the station checks the same range)."""
WIDTH_RANGE = (2.0, 30.0)
"""Cuff widths in cm that exist."""
"""A pseudonymous id as the records take it (the station checks the same)."""


def plans_for(snap: StationSnapshot, cuff: CuffSnapshot) -> list[PlanSummary]:
    """Plans that suit the cuff's limb (plans without a limb suit both)."""
    return [p for p in snap.plans if p.limb in (None, cuff.limb)]


def partner_choices(snap: StationSnapshot, cuff: CuffSnapshot) -> list[CuffSnapshot]:
    """Cuffs that may run the same session: the declared pair if the snapshot names one, else the same limb."""
    pair = cuff.pair
    same = [c for c in snap.cuffs if c.id != cuff.id and c.limb == cuff.limb]
    if pair:
        same.sort(key=lambda c: c.id != pair)
    return same


def check_patient_id(text: str) -> str:
    """The id as the station will store it; ValueError with a sentence when unusable."""
    pid = text.strip()
    if not pid:
        raise ValueError("Type the patient's id (a pseudonym is enough).")
    if not PATIENT_ID.fullmatch(pid):
        raise ValueError("A patient id is 1 to 64 letters, digits, '.', '_' or '-' (no spaces).")
    return pid


def parse_number(text: str, what: str, lo: float, hi: float, unit: str) -> float:
    """A number typed by hand, within ``lo..hi``; ValueError naming the field otherwise."""
    raw = text.strip().lower().removesuffix(unit.lower()).strip().replace(",", ".")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{what}: type a number of {unit}, e.g. {lo + (hi - lo) / 4:.0f}.") from None
    if not math.isfinite(value) or not lo <= value <= hi:
        raise ValueError(f"{what}: {raw} {unit} is not plausible ({lo:g} to {hi:g} {unit}).")
    return value


@dataclass(frozen=True, slots=True)
class DopplerLop:
    lop: float
    position: str
    cuff_width_cm: float | None


def parse_doppler(lop_text: str, width_text: str, position: str) -> DopplerLop:
    lop = parse_number(lop_text, "LOP", *LOP_RANGE, "mmHg")
    width = parse_number(width_text, "Cuff width", *WIDTH_RANGE, "cm") if width_text.strip() else None
    if position not in POSITIONS:
        raise ValueError(f"Position: one of {', '.join(POSITIONS)}.")
    return DopplerLop(lop, position, width)


class CommandDialog(ClosesOnEmergency, ModalScreen[bool]):
    """A dialog that sends one station command and shows a refusal in place; the emergency closes it."""

    BINDINGS = [
        Binding("enter", "submit", "confirm", show=False),
        Binding("f10", "cancel", "cancel", key_display="F10"),
        Binding("escape", "cancel", "cancel", show=False),
    ]

    def __init__(self, cuff: CuffSnapshot, actions: ConsoleActions) -> None:
        super().__init__(classes="dialog")
        self.cuff = cuff
        self.actions = actions
        self.pending = False
        self._at_enter: dict[str, str] = {}
        self.opened_at = actions.emergencies
        """Its command was asked for when it opened: after an emergency since then, nothing is sent."""

    def say(self, text: str) -> None:
        self.query_one("#error", Static).update(plain(text))  # refusals name plans, cuffs, patients

    def buttons(self, ok: str) -> ComposeResult:
        with Horizontal(classes="buttons"):
            yield Button(f"{ok} (Enter)", id="ok", variant="primary")
            yield Button("Cancel (F10)", id="cancel")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        # Keep the value as it was when Enter was pressed: keys typed after Enter may already be in the field.
        self._at_enter = {event.input.id or "": event.value}
        try:
            self.action_submit()
        finally:
            self._at_enter = {}

    def value_of(self, input_id: str) -> str:
        """A field's value as submitted: the Enter-time value for the field Enter was pressed in."""
        if input_id in self._at_enter:
            return self._at_enter[input_id]
        return self.query_one(f"#{input_id}", Input).value

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "ok":
            self.action_submit()
        else:
            self.action_cancel()

    def action_cancel(self) -> None:
        self.dismiss(False)

    def action_submit(self) -> None:
        """Each dialog checks its fields and sends its command here (Enter, or the OK button)."""
        raise NotImplementedError(f"{type(self).__name__} must define action_submit")

    def send(self, what: str, make: Callable[[], Awaitable[Any]]) -> None:
        """Run the command in the app's background (closing the dialog never cancels it halfway)."""
        if self.pending:
            return
        self.pending = True
        self.say(f"{what}...")
        asked_at = self.opened_at

        async def run() -> None:
            try:
                if self.actions.overtaken(asked_at):  # an emergency since the dialog opened (an Enter read before it)
                    self._failed(what, f"{what}: {NOT_SENT}")
                    return
                await make()
            except CommandRefused as exc:
                self._failed(what, str(exc))
                return
            except Exception as exc:  # a broken link must not take the dialog down
                log.exception("%s failed", what)
                self._failed(what, f"{what} failed: {exc}")
                return
            finally:
                self.pending = False
                self.actions.view.refresh_now()
            if self.is_current:
                self.dismiss(True)

        self.actions.spawn(run())

    def _failed(self, what: str, sentence: str) -> None:
        if self.is_attached and self.is_current:
            self.say(sentence)
        else:  # the dialog was closed meanwhile: say it on the dashboard
            notify_plain(self.app, sentence, title=f"{what}: refused", severity="error", timeout=8)


def _cuff_title(c: CuffSnapshot) -> str:
    return f"{c.id} ({c.label}, {c.limb})"


def _lop_info(c: CuffSnapshot) -> str:
    if c.lop is None:
        return "LOP not set: m measures it, o enters a Doppler value."
    return f"LOP {c.lop:.0f} mmHg, max {c.max_pct_lop:.0f} % LOP"


class SessionDialog(CommandDialog):
    """Patient, plan (suited to the limb), optionally a second cuff; Enter starts."""

    AUTO_FOCUS = "#patient"

    def __init__(
        self, snap: StationSnapshot, cuff: CuffSnapshot, actions: ConsoleActions, patient: str | None = None
    ) -> None:
        super().__init__(cuff, actions)
        self.patient = patient if patient is not None else (cuff.patient_id or "")
        self.from_patients = patient is not None
        """Opened from the patients screen: its patient wins over a draft left on the cuff."""
        self.plans = plans_for(snap, cuff)
        self.partners = partner_choices(snap, cuff)

    def compose(self) -> ComposeResult:
        c = self.cuff
        with Vertical(id="dialog-box", classes="wide"):
            yield Label(plain(f"Session on {_cuff_title(c)}"), id="dialog-title")
            yield Label(_lop_info(c))
            draft = self.actions.session_drafts.get(c.id)
            typed = draft.patient if draft is not None and not self.from_patients else self.patient
            patient = OrderedInput(
                clean(typed), placeholder="pseudonymous id, e.g. P-0042", id="patient", max_length=64
            )
            patient.border_title = "patient"
            yield patient
            plans = OptionList(
                *(Option(clean(f"{p.name}  [{p.pct_lop:.0f}% LOP]"), id=p.id) for p in self.plans),
                id="plans",
                markup=False,
            )
            plans.border_title = self._plans_title(0)
            yield plans
            yield Static("", id="plan-description")
            if self.partners:
                options = [("", "this cuff only")] + [(p.id, f"{p.id} {p.label} too") for p in self.partners]
                second = draft.second if draft is not None and draft.second is not None else (c.pair or "")
                yield Choice("Cuffs", options, second, id="second")
            yield Static(plain("" if self.plans else f"No plan suits a {c.limb} cuff."), id="error")
            yield from self.buttons("Start")

    def on_mount(self) -> None:
        plans = self.query_one(OptionList)
        if self.plans:
            current = self.cuff.session.plan_id if self.cuff.session is not None else None
            draft = self.actions.session_drafts.get(self.cuff.id)
            if draft is not None and draft.plan_id is not None:
                current = draft.plan_id
            ids = [p.id for p in self.plans]
            plans.highlighted = ids.index(current) if current in ids else 0
        self._describe()
        self.query_one("#patient", Input).focus()

    def _plans_title(self, index: int | None) -> str:
        """``plan 2/6 (Up/Down)``: which one is chosen even where the highlight colour is faint."""
        n = len(self.plans)
        return f"plan {(index or 0) + 1}/{n} (Up/Down)" if n else "plan"

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        self.query_one(OptionList).border_title = self._plans_title(event.option_index)
        self._describe()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.action_submit()

    @property
    def plan(self) -> PlanSummary | None:
        i = self.query_one(OptionList).highlighted
        return self.plans[i] if i is not None and 0 <= i < len(self.plans) else None

    @property
    def cuff_ids(self) -> list[str]:
        ids = [self.cuff.id]
        for second in self.query("#second").results(Choice):
            if second.value:
                ids.append(second.value)
        return ids

    def action_cancel(self) -> None:
        """Cancelled (to fix a LOP, say): what was chosen waits for the next ``p`` on this cuff."""
        self.keep_draft()
        super().action_cancel()

    def keep_draft(self) -> None:
        plan = self.plan
        second = [c.value for c in self.query("#second").results(Choice)]
        self.actions.session_drafts[self.cuff.id] = SessionDraft(
            self.query_one("#patient", Input).value,
            plan.id if plan is not None else None,
            second[0] if second else None,
        )

    def _describe(self) -> None:
        p = self.plan
        text = "" if p is None else f"{p.description}"
        self.query_one("#plan-description", Static).update(plain(text))

    def action_submit(self) -> None:
        plan = self.plan
        if plan is None:
            self.say(f"No plan suits a {self.cuff.limb} cuff." if not self.plans else "Choose a plan (Up/Down).")
            return
        try:
            patient = check_patient_id(self.value_of("patient"))
        except ValueError as exc:
            self.say(str(exc))
            self.query_one("#patient", Input).focus()
            return
        ids = self.cuff_ids
        self.keep_draft()  # kept if the station refuses and the dialog is then cancelled; dropped once started

        async def start() -> None:
            await self.actions.handle.start_session(ids, plan.id, patient)
            self.actions.session_drafts.pop(self.cuff.id, None)

        self.send(f"Start {plan.name} on {' + '.join(ids)}", start)


def _position_choice(value: str = DEFAULT_POSITION) -> Choice:
    return Choice("Position", [(p, p) for p in POSITIONS], value, id="position")


class MeasureLopDialog(CommandDialog):
    """Body position, then the station steps the cuff up and watches the pulse fade."""

    AUTO_FOCUS = "#position"

    def compose(self) -> ComposeResult:
        c = self.cuff
        with Vertical(id="dialog-box"):
            yield Label(plain(f"Measure the LOP on {_cuff_title(c)}"), id="dialog-title")
            yield Label("The cuff inflates step by step until the pulse fades, then vents.")
            yield Label("The patient keeps the limb still and relaxed.")
            yield _position_choice()
            yield Static("", id="error")
            yield from self.buttons("Measure")

    def on_mount(self) -> None:
        self.query_one(Choice).focus()

    def action_submit(self) -> None:
        cid, position = self.cuff.id, self.query_one(Choice).value
        self.send(f"Measure LOP on {cid} ({position})", lambda: self.actions.handle.measure_lop(cid, position=position))


class DopplerLopDialog(CommandDialog):
    """A LOP measured by Doppler: mmHg, body position, cuff width (optional)."""

    AUTO_FOCUS = "#lop"

    def compose(self) -> ComposeResult:
        c = self.cuff
        with Vertical(id="dialog-box"):
            yield Label(plain(f"Doppler LOP for {_cuff_title(c)}"), id="dialog-title")
            now = f"now {c.lop:.0f} mmHg" if c.lop is not None else "not set yet"
            yield Label(f"LOP {now}. Enter saves, Tab moves.")
            lop = OrderedInput(placeholder=f"{LOP_RANGE[0]:.0f} to {LOP_RANGE[1]:.0f}", id="lop")
            lop.border_title = "LOP mmHg"
            yield lop
            yield _position_choice()
            # The config's width for this cuff, when it gives one: a LOP is only valid for the width it was taken with.
            known = f"{c.width_cm:g}" if c.width_cm is not None else ""
            width = OrderedInput(known, placeholder="optional, e.g. 11.5", id="width")
            width.border_title = "cuff width cm"
            yield width
            yield Static("", id="error")
            yield from self.buttons("Save")

    def on_mount(self) -> None:
        self.query_one("#lop", Input).focus()

    def action_submit(self) -> None:
        try:
            entry = parse_doppler(self.value_of("lop"), self.value_of("width"), self.query_one(Choice).value)
        except ValueError as exc:
            self.say(str(exc))
            return
        cid = self.cuff.id
        self.send(
            f"Set LOP of {cid} to {entry.lop:g} mmHg",
            lambda: self.actions.handle.set_lop(
                cid, entry.lop, position=entry.position, cuff_width_cm=entry.cuff_width_cm, source="doppler"
            ),
        )
