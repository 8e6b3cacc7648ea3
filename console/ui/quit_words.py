"""What quitting does, said before and after: the prompt's question and the line left on the terminal.

A local console vents every cuff when it quits; an attached console leaves the
station and its cuffs as they are. A cuff whose controller went out of sight
while it was inflated may still be up (its pressure is unknown): it counts as
inflated here until its controller shows it vented again.
"""

from __future__ import annotations

from console.common.api import CONNECTING, OFFLINE, StationSnapshot
from console.ui.widgets.cuff_panel import is_inflated


class UpTracker:
    """Remembers which cuffs were last seen inflated, so one whose controller is offline is not taken for vented."""

    def __init__(self) -> None:
        self.last_seen_up: set[str] = set()

    def note(self, snap: StationSnapshot) -> None:
        """Call with every new snapshot: cuffs in sight update what is known of them; the others keep it."""
        for c in snap.cuffs:
            if c.online and c.state not in (OFFLINE, CONNECTING):
                if is_inflated(c):
                    self.last_seen_up.add(c.id)
                else:
                    self.last_seen_up.discard(c.id)

    def up(self, snap: StationSnapshot) -> list[str]:
        """Cuffs in sight that are inflated."""
        return [c.id for c in snap.cuffs if c.online and c.state not in (OFFLINE, CONNECTING) and is_inflated(c)]

    def unknown(self, snap: StationSnapshot) -> list[str]:
        """Cuffs out of sight that were inflated when last seen (or still have a target): maybe still up."""
        return [
            c.id
            for c in snap.cuffs
            if (not c.online or c.state in (OFFLINE, CONNECTING)) and (c.id in self.last_seen_up or c.target > 0)
        ]


def _cuffs(ids: list[str]) -> str:
    return f"cuff {ids[0]}" if len(ids) == 1 else f"{len(ids)} cuffs ({', '.join(ids)})"


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def quit_question(up: list[str], unknown: list[str], *, attached: bool, kiosk: bool) -> str | None:
    """The quit prompt, in words that say what quitting does; None when quitting needs no question.

    A local console asks in kiosk mode or while any cuff is, or may be, up; an attached console asks
    only in kiosk mode, and never says the cuffs vent (they do not).
    """
    if attached:
        if not kiosk:
            return None
        now = f" ({_cuffs(up + unknown)} inflated)" if up or unknown else ""
        return f"Close this remote console? The station keeps running and every cuff stays as it is{now}."
    if not kiosk and not up and not unknown:
        return None
    said = []
    if up:
        said.append(f"{_upper_first(_cuffs(up))} {'is' if len(up) == 1 else 'are'} inflated.")
    if unknown:
        said.append(
            f"{_upper_first(_cuffs(unknown))}: controller offline, pressure unknown"
            f" ({'it was' if len(unknown) == 1 else 'they were'} inflated)."
        )
    if not said:
        said.append("No cuff is inflated.")
    check = f" Check {', '.join(unknown)} by hand." if unknown else ""
    return " ".join(said) + f" Quit the console? Every cuff vents.{check}"


def closed_line(up: list[str], unknown: list[str]) -> str:
    """The line the local console leaves on the terminal when it quits: what became of the cuffs."""
    if not up and not unknown:
        return "BFR console closed; no cuff was inflated."
    said = "BFR console closed"
    if up:
        said += f"; {len(up)} cuff{'s' if len(up) != 1 else ''} vented ({', '.join(up)})"
    if unknown:
        said += f"; {', '.join(unknown)} out of contact: its controller vents it by itself, check by hand"
    return said + "."


def detached_line(name: str, up: list[str], unknown: list[str]) -> str:
    """The line an attached console leaves when it closes: the station carries on, cuffs untouched."""
    n = len(up) + len(unknown)
    cuffs = (
        "no cuff inflated"
        if not n
        else f"{n} inflated cuff{'s' if n != 1 else ''} left as {'it is' if n == 1 else 'they are'}"
    )
    return f"BFR remote console closed; station {name} carries on ({cuffs})."
