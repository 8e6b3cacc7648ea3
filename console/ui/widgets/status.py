"""One-line bars: station header, alarm banner, emergency bar.

Each keeps the text it last showed and calls ``update(..., layout=False)``
only when that text changes, so the 20 fps pull loop costs nothing when idle.
"""

from __future__ import annotations

import time

from rich.text import Text
from textual.widgets import Static

from console.common.api import (
    AlarmSnapshot,
    EmergencySnapshot,
    Priority,
    StationSnapshot,
)
from console.ui.alarm_words import clinical, fit
from console.ui.plain import clean


class _Line(Static):
    """A Static that skips identical updates and never re-lays out.

    Its lines carry outside text (the station's name, alarm messages, controller ids): never parsed
    as markup, and every control character is replaced before it is drawn.
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__("", id=id, classes=classes, markup=False)
        self.shown: str | Text = ""

    def show(self, content: str | Text) -> None:
        if isinstance(content, Text):
            content = content.copy()
            content.plain = clean(content.plain)
        else:
            content = clean(content)
        if content != self.shown:
            self.shown = content
            self.update(content, layout=False)

    @property
    def plain(self) -> str:
        return self.shown.plain if isinstance(self.shown, Text) else self.shown


def alarm_summary(alarms: tuple[AlarmSnapshot, ...]) -> str:
    """``2 alarms (1 high)``: counts for the header."""
    if not alarms:
        return "no alarms"
    counts = {p: sum(1 for a in alarms if a.priority == p) for p in Priority}
    parts = [f"{n} {p.value}" for p, n in counts.items() if n]
    noun = "alarm" if len(alarms) == 1 else "alarms"
    return f"{len(alarms)} {noun} ({', '.join(parts)})"


class StationHeader(_Line):
    """Station name, alarm counts, clock."""

    attached = False
    """Set on a console attached to a station elsewhere: the header says remote, and the role."""

    def show_snapshot(self, snap: StationSnapshot, width: int) -> None:
        left = f" Station: {snap.name}"
        mid = alarm_summary(snap.alarms)
        if self.attached:
            left += f" (remote, {snap.role.value})"
        elif snap.role.value != "operator":
            mid += f"  [{snap.role.value}]"
        right = time.strftime("%H:%M:%S ", time.localtime(snap.time))
        if snap.notices:  # e.g. the clinic board is not updated: said where it fits, never over the alarms
            room = width - len(left) - len(mid) - len(right) - 6
            if room >= 12:
                mid = (mid + "  | " if mid else "") + fit(snap.notices[0], room)
        width = max(width, len(left) + len(mid) + len(right) + 2)
        gap = width - len(left) - len(mid) - len(right)
        text = left + " " * (gap // 2) + mid + " " * (gap - gap // 2) + right
        self.show(text)


class AlarmBanner(_Line):
    """The top alarm, in its priority's colour; flashes while unacknowledged."""

    def show_alarms(self, snap: StationSnapshot, flash_on: bool) -> None:
        alarms = snap.alarms
        for p in Priority:
            self.set_class(bool(alarms) and alarms[0].priority == p, f"-{p.value}")
        self.set_class(flash_on, "-flash")
        if not alarms:
            self.show(" No alarms")
            return
        top = alarms[0]
        state = "ACK" if top.acknowledged else "NEW"
        if not top.active:
            state += ", cleared"
        more = f"  +{len(alarms) - 1} (l)" if len(alarms) > 1 else ""
        silenced = ""
        if top.silenced_until is not None and top.silenced_until > snap.time:
            silenced = f"  silenced {int(top.silenced_until - snap.time)} s"
        head = f" {top.priority.value.upper()} [{state}] "
        tail = f"{silenced}{more}"
        # The clinician's sentence, shortened at a word (with "...") only if the screen is too narrow.
        room = max(20, (self.app.size.width or 80) - len(head) - len(tail) - 1)
        self.show(f"{head}{fit(clinical(top, snap.cuffs), room)}{tail}")


EMERGENCY_KEYS = "F12 / Ctrl+E"


class EmergencyBar(_Line):
    """Always names the emergency key; after one, shows who confirmed and who is pending."""

    def show_emergency(self, emergency: EmergencySnapshot | None) -> None:
        text = f" {EMERGENCY_KEYS}: EMERGENCY DEFLATE ALL"
        if emergency is not None:
            if emergency.pending:
                text += f"  | SENT - pending: {', '.join(emergency.pending)}"
                if emergency.confirmed:
                    text += f"; confirmed: {', '.join(emergency.confirmed)}"
            else:
                lat = f" in {emergency.latency_s * 1000:.0f} ms" if emergency.latency_s is not None else ""
                text += f"  | DONE - confirmed: {', '.join(emergency.confirmed) or 'none'}{lat}"
        self.set_class(emergency is not None and bool(emergency.pending), "-pending")
        self.show(text)
