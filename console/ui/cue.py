"""The patient's cue: what to do now, readable from the exercise mat, and the bell that marks it.

A session's panel carries a block three rows high beside the big pressure digits. In a set
of reps it is the word itself, ``LIFT`` or ``LOWER``, in the big font the digits use (ASCII
strokes on the Linux text console), coloured per phase so the flip shows across the room;
the half-periods the plan's cadence gives are on the panel's last row. A rest (or a timed
phase) shows its countdown in big digits, with the set that comes next; a pause says why
and whether its cuffs are still up. Pure functions of the snapshot: every timing comes from
the session runner, which runs on the station's injected clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from console.common.api import SessionSnapshot, StationSnapshot
from console.ui.render import big_lines, big_width
from console.ui.theme import Glyphs

CUE_WIDTH = 19
"""Cells of the cue block: what a 36-cell panel leaves beside the big digits (11) and their
unit column (5, plus a space). ``LOWER`` in the big font is exactly this wide."""
SIDE_WIDTH = 5
"""The small column beside a big countdown (``REST``, ``next``, ``2/4``)."""

LIFT_STYLE = "bold reverse green"
LOWER_STYLE = "bold reverse blue"
REST_STYLE = "bold reverse"
PAUSED_STYLE = "bold reverse yellow"


@dataclass(frozen=True, slots=True)
class Cue:
    rows: tuple[str, str, str]
    """Three rows of the block, each ``CUE_WIDTH`` cells."""
    style: str


def clock_text(seconds: float | None) -> str:
    """``0:12``: a countdown rounded up, so it shows 0:01 until the phase really ends."""
    if seconds is None:
        return ""
    whole = max(0, -int(-seconds // 1))
    return f"{whole // 60}:{whole % 60:02d}"


def seconds_text(seconds: float) -> str:
    """``1 s``, ``1.5 s``: a half-period as the plan gives it."""
    return f"{seconds:.1f}".rstrip("0").rstrip(".") + " s"


def next_text(s: SessionSnapshot) -> str:
    """During a rest, what comes next: ``next: set 2/4 in 0:12`` (``cycle`` for timed plans)."""
    what = "set" if s.reps_target else "cycle"
    nxt = min(s.set_index + 1, s.set_count)
    return f"next: {what} {nxt}/{s.set_count} in {clock_text(s.phase_remaining_s)}"


def pause_text(cuff_up: bool) -> str:
    """What a pause means for the limb: the cuffs are up and occluding, or they are vented."""
    return "cuffs up, occlusion clock running" if cuff_up else "cuffs vented; resume refills"


OPERATOR_PAUSES = ("paused by the operator", "paused vented")
"""How the session runner words a pause the therapist asked for (the panel says what it means instead)."""


def note(s: SessionSnapshot, cuff_up: bool) -> str:
    """The panel's last row in a session: the runner's message, in a pause asked for what it means,
    in a set of reps the cadence (the big word has no room for it)."""
    if s.phase == "paused" and (not s.message or s.message.startswith(OPERATOR_PAUSES)):
        return pause_text(cuff_up)  # cuffs up: the limb is still occluded, its clock runs
    if not s.message and s.phase == "set" and s.reps_target:
        return cadence_text(s)
    return s.message


def cadence_text(s: SessionSnapshot) -> str:
    """``cadence: lift 1 s, lower 1 s``: the metronome's halves as the plan gives them."""
    half = seconds_text(s.cadence_s / 2)
    return f"cadence: lift {half}, lower {half}"


def cue(s: SessionSnapshot, cuff_up: bool, glyphs: Glyphs) -> Cue:
    """The block for the session's phase; ``cuff_up``: the panel's cuff holds a target."""
    phase = s.phase
    font = glyphs.font
    if phase == "set" and s.reps_target:
        if s.beat:
            return _big("LIFT", font, (" ".join(glyphs.up * 3), "LIFT", seconds_text(s.cadence_s / 2)), LIFT_STYLE)
        return _big("LOWER", font, ("LOWER", " ".join(glyphs.down * 3), seconds_text(s.cadence_s / 2)), LOWER_STYLE)
    nxt = min(s.set_index + 1, s.set_count)
    if phase == "set":
        return _countdown(s.phase_remaining_s, font, ("ON", "set", f"{s.set_index}/{s.set_count}"), LIFT_STYLE)
    if phase == "rest":
        return _countdown(s.phase_remaining_s, font, ("REST", "next", f"{nxt}/{s.set_count}"), REST_STYLE)
    if phase == "paused":
        return _cue(("PAUSED", "cuffs UP" if cuff_up else "vented", "occl runs" if cuff_up else ""), PAUSED_STYLE)
    if phase == "inflating":
        return _cue(("", "INFLATING", ""), REST_STYLE)
    if phase == "between":
        return _countdown(s.phase_remaining_s, font, ("BREAK", "next", f"{nxt}/{s.set_count}"), REST_STYLE)
    return _cue(("", phase.upper(), ""), "bold")


def _big(word: str, font: str, small: tuple[str, str, str], style: str) -> Cue:
    """The word in the big font, centred; the small rows only if the font's word would not fit."""
    if big_width(word, font) > CUE_WIDTH:
        return _cue(small, style)
    return _cue(big_lines(word, font), style)


def _countdown(seconds: float | None, font: str, side: tuple[str, str, str], style: str) -> Cue:
    """A big ``0:12`` with a small column beside it (what phase, what comes next)."""
    clock = clock_text(seconds)
    if not clock or big_width(clock, font) + 1 + SIDE_WIDTH > CUE_WIDTH:
        return _cue((side[0], clock, f"{side[1]} {side[2]}"), style)
    big = big_lines(clock, font)
    return _cue(tuple(f"{b} {x[:SIDE_WIDTH]:<{SIDE_WIDTH}}" for b, x in zip(big, side)), style)


def _cue(rows: tuple[str, ...], style: str) -> Cue:
    a, b, c = (r[:CUE_WIDTH].center(CUE_WIDTH) for r in rows)
    return Cue((a, b, c), style)


class CueBell:
    """When the patient's cue changes enough to ring: a lift begins, or a set or a rest begins.

    Reads consecutive snapshots (a pair of cuffs shares one session and rings once).
    The bell itself is the app's and is rung only when ``[ui] cue_bell`` is true.
    """

    def __init__(self) -> None:
        self._seen: dict[str, tuple[str, int, bool]] = {}

    def due(self, snap: StationSnapshot) -> bool:
        seen: dict[str, tuple[str, int, bool]] = {}
        ring = False
        for c in snap.cuffs:
            s = c.session
            if s is None:
                continue
            key = s.cuffs[0] if s.cuffs else c.id
            if key in seen:
                continue
            now = (s.phase, s.set_index, bool(s.beat))
            seen[key] = now
            before = self._seen.get(key)
            if before is None or before == now:
                continue
            if now[0] != before[0] and now[0] in ("set", "rest"):
                ring = True
            elif now[0] == "set" and now[2] and not before[2]:
                ring = True
        self._seen = seen
        return ring
