"""The LOP result line on a cuff panel: the number with the bracket the cuff held and its resolution."""

from __future__ import annotations

from console.common.api import LopProgress
from console.ui.therapy_text import lop_text


def test_a_measured_lop_shows_its_bracket_and_resolution() -> None:
    done = LopProgress(
        "done",
        0.0,
        41.0,
        lop=205.1,
        confidence=0.8,
        message="pulse seen",
        bracket_low=203.2,
        bracket_high=207.0,
        resolution=3.8,
    )
    t = lop_text(done)
    assert t.line == "LOP 205 mmHg +-2 (203-207), confidence 80%"
    assert t.detail == "pulse seen"


def test_without_a_bracket_the_line_is_as_before() -> None:
    assert lop_text(LopProgress("done", 0.0, 50.0, lop=204.6, confidence=0.92)).line == "LOP 205 mmHg, confidence 92%"
