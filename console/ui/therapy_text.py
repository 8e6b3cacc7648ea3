"""Words for a cuff panel while a session or a LOP measurement runs.

Pure functions of the snapshot, so every phase's wording is unit-tested and
the panel only places the strings. Each result changes at most once a second
(countdowns are shown in whole seconds) or once a metronome beat, which lets
the panel repaint its slow rows only when what they say changes.
"""

from __future__ import annotations

from dataclasses import dataclass

from console.common.api import LopProgress, SessionSnapshot
from console.ui.render import fmt_mmss
from console.ui.theme import Glyphs

ACTIVE_PHASES = frozenset({"inflating", "set", "rest", "paused", "between"})
"""Phases in which the session still drives the cuff (``done`` and ``stopped`` are over)."""


def session_active(s: SessionSnapshot | None) -> bool:
    return s is not None and s.phase in ACTIVE_PHASES


def beat_mark(s: SessionSnapshot, glyphs: Glyphs) -> str:
    """The metronome: one glyph on the contract half, another on the relax half; blank when no set runs."""
    if s.phase != "set" or not s.reps_target:
        return " "
    return glyphs.bullet if s.beat else glyphs.beat_off


def progress_text(s: SessionSnapshot, glyphs: Glyphs) -> str:
    """``set 2/4  rep  9/15 ●`` (reps plans) or ``cycle 2/5`` (timed plans)."""
    if not s.reps_target:
        return f"cycle {s.set_index}/{s.set_count}"
    width = len(str(s.reps_target))
    return f"set {s.set_index}/{s.set_count}  rep {s.rep:>{width}}/{s.reps_target} {beat_mark(s, glyphs)}"


@dataclass(frozen=True, slots=True)
class LopText:
    line: str
    """One line for the panel's status row."""
    detail: str = ""
    """A longer reason (a failure), for the row under it when free."""


def lop_text(m: LopProgress) -> LopText:
    """Progress (step pressure, elapsed), then the LOP in words, or why there is none.

    A measured LOP lies between two pressures the cuff held: the pulse still
    there at the lower, gone at the upper. The panel says so in those words;
    a result without that bracket is called an estimate, and a measurement
    that ends without a number says why (its refusal reason). Tolerant of what
    the result carries: every field but the state and the LOP may be missing.
    """
    if m.state == "running":
        return LopText(f"measuring LOP: {m.pressure_step:3.0f} mmHg {fmt_mmss(m.elapsed_s)}", m.message)
    if m.state == "done" and m.lop is not None:
        if m.bracket_low is not None and m.bracket_high is not None:
            half = 0.5 * (m.resolution if m.resolution is not None else m.bracket_high - m.bracket_low)
            return LopText(
                f"LOP {m.lop:.0f} mmHg, within {max(half, 0.5):.0f} mmHg",
                f"pulse at {m.bracket_low:.0f}, gone at {m.bracket_high:.0f} mmHg",
            )
        sure = f", {m.confidence * 100:.0f}% sure" if m.confidence is not None else ""
        return LopText(f"LOP {m.lop:.0f} mmHg (estimate)", f"an estimate{sure}; o: Doppler")
    return LopText("LOP not measured", m.message or "no reason given; o: Doppler")
