"""What a cuff panel's rows are made safe by and compared by: pure functions of a snapshot.

The panel (:mod:`console.ui.widgets.cuff_panel`) redraws a row only when what it
shows changes; these say what "changes" means for the slow rows, the digits and a
built row, without building the row.
"""

from __future__ import annotations

from rich.text import Text

from console.common.api import CuffSnapshot, SessionSnapshot
from console.ui import cue, therapy_text
from console.ui.plain import clean
from console.ui.theme import Glyphs

DIGITS_JUMP_MMHG = 3.0
"""A change this large in the reading repaints the digits immediately."""


def fit_row(row: Text, width: int) -> Text:
    """A row made safe and short: labels, ids, patient ids and the controller's messages are in these rows.

    No control character reaches the terminal (one '?' each, so the styled spans keep their places).
    """
    row.plain = clean(row.plain)
    row.truncate(width)
    return row


def progress(s: SessionSnapshot, glyphs: Glyphs) -> str:
    """Row 5 of a session: set and rep (also in a pause: reps are corrected there); in a rest what comes next."""
    if s.phase == "rest":
        return cue.next_text(s)
    return therapy_text.progress_text(s, glyphs)


def same_row(x: Text, y: Text) -> bool:
    """Equal text and styling (Rich Text has no __eq__)."""
    return x.plain == y.plain and x.spans == y.spans and x.style == y.style


def slow_key(c: CuffSnapshot) -> tuple[object, ...]:
    """Everything the panel's rows 0, 5 and 7 show but a session's cue and progress, not the fast-moving
    reading, trace and occlusion clock: a change redraws every row. A field shown there and missing here
    (or in :func:`session_rows_key`) would stay stale on screen (tests/test_ui_freshness.py checks every
    row against a full rebuild).

    A session enters by what changes rarely (its phase, patient, plan, the note on row 7); what moves
    every second in a set or a rest (the cue, set and rep, the beat, a countdown) is in
    :func:`session_rows_key`, which redraws only the rows that show it.
    """
    s, m = c.session, c.lop_measure
    session = None
    if s is not None:
        session = (s.phase, cue.note(s, c.target > 0), s.patient_id, s.plan_name, s.message)
    lop = therapy_text.lop_text(m) if m is not None else None
    return (
        c.state,
        c.online,
        c.target,
        c.target_pct_lop,
        c.lop,
        c.max_pct_lop,
        c.tolerance,
        c.latched,
        c.alarm,
        session,
        lop,
        c.patient_id,
        c.label,
        c.occlusion_limit_s,
        c.lop_position,  # row 5 says where and how long ago the LOP was taken (whole minutes)
        c.lop_age_s,
        c.controller,
    )


def session_rows_key(c: CuffSnapshot) -> tuple[object, ...] | None:
    """What the session's cue (beside the digits, rows 1-3) and progress (row 5) are made of; None without one.

    Every session field :func:`console.ui.cue.cue` and :func:`progress` read (the patient on row 5 is in
    :func:`slow_key`), countdowns as the whole seconds they show: a change redraws those four rows only
    (in a set of reps, at every half of the metronome's period).
    """
    s = c.session
    if s is None:
        return None
    clock = cue.clock_text(s.phase_remaining_s)
    return (s.phase, s.beat, s.rep, s.set_index, s.set_count, s.reps_target, s.cadence_s, clock, c.target > 0)


def jump(new: float | None, shown: float | None) -> bool:
    if new is None or shown is None:
        return new is not shown
    return abs(new - shown) >= DIGITS_JUMP_MMHG
