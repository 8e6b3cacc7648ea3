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
from console.ui.theme import UNICODE, Glyphs

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


def slow_key(c: CuffSnapshot, glyphs: Glyphs = UNICODE) -> tuple[object, ...]:
    """Everything the panel's rows 0, 5 and 7 show (and the cue beside the digits), not the fast-moving
    reading, trace and occlusion clock: a change redraws every row. A field shown there and missing here
    would stay stale on screen (tests/test_ui_freshness.py checks every row against a full rebuild).

    A session or LOP measurement enters as the text it shows (whole seconds,
    beats), not as the snapshot whose float countdown changes every frame.
    """
    s, m = c.session, c.lop_measure
    session = None
    if s is not None:
        session = (
            cue.cue(s, c.target > 0, glyphs),
            progress(s, glyphs),
            cue.note(s, c.target > 0),
            therapy_text.phase_word(s),
            therapy_text.progress_text(s, glyphs),
            s.beat,
            s.patient_id,
            s.plan_name,
            s.message,
        )
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


def jump(new: float | None, shown: float | None) -> bool:
    if new is None or shown is None:
        return new is not shown
    return abs(new - shown) >= DIGITS_JUMP_MMHG
