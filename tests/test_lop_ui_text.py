"""The LOP result on a cuff panel in words: the number, how fine it is, and the two pressures the cuff held."""

from __future__ import annotations

from console.common.api import LopProgress
from console.ui.therapy_text import lop_text


def test_a_measured_lop_says_where_the_pulse_was_and_was_gone() -> None:
    done = LopProgress(
        "done",
        0.0,
        41.0,
        lop=205.1,
        confidence=0.8,
        message="cosine fade of the pulse ends at 205",
        bracket_low=203.2,
        bracket_high=207.0,
        resolution=3.8,
    )
    t = lop_text(done)
    assert t.line == "LOP 205 mmHg, within 2 mmHg"
    assert t.detail == "pulse at 203, gone at 207 mmHg"
    assert "cosine" not in t.line + t.detail and "confidence" not in t.line + t.detail


def test_a_bracket_without_its_resolution_takes_its_width() -> None:
    t = lop_text(LopProgress("done", 0.0, 41.0, lop=200.0, bracket_low=196.0, bracket_high=204.0))
    assert t.line == "LOP 200 mmHg, within 4 mmHg"


def test_without_a_bracket_it_is_called_an_estimate() -> None:
    t = lop_text(LopProgress("done", 0.0, 50.0, lop=204.6, confidence=0.92))
    assert t.line == "LOP 205 mmHg (estimate)"
    assert t.detail == "an estimate, 92% sure; o: Doppler"
    assert lop_text(LopProgress("done", 0.0, 50.0, lop=204.6)).detail == "an estimate; o: Doppler"


def test_a_refusal_says_why_whatever_its_state_is_called() -> None:
    for state in ("failed", "refused", "done"):
        t = lop_text(LopProgress(state, 0.0, 30.0, message="pulse too weak for the noise"))
        assert (t.line, t.detail) == ("LOP not measured", "pulse too weak for the noise")
    assert lop_text(LopProgress("failed", 0.0, 30.0)).detail == "no reason given; o: Doppler"
