"""Textual's strips freed when dropped, not left for the cycle collector (console.ui.strip_cycles).

Checks both halves of what the module assumes of the pinned Textual: the two
cases it answers itself are the ones where Textual answers with the strip
itself (so the answers are the same), and without it those cases do leave a
strip holding itself (so the shim is still needed, and this test says when
an upgrade makes it unnecessary).
"""

from __future__ import annotations

import gc
import uuid
from collections.abc import Iterator

import pytest
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

from console.ui import strip_cycles


def line(text: str = "A1  HOLDING  120 mmHg") -> Strip:
    return Strip([Segment(text[:4], Style(bold=True)), Segment(text[4:])])


def left_for_the_collector(use: object) -> int:
    """How many strips made by ``use(strip)`` on a dropped strip outlive it, waiting for the cycle collector.

    The strips are marked with a text of their own, so garbage other threads make meanwhile does not count.
    """
    mark = f"strip-{uuid.uuid4()}"
    gc.collect()
    gc.disable()
    try:
        strip = line(mark)
        use(strip)  # type: ignore[operator]
        del strip
        return sum(1 for o in gc.get_objects() if isinstance(o, Strip) and mark in o.text)
    finally:
        gc.enable()
        gc.collect()


@pytest.fixture
def textual_own() -> Iterator[None]:
    """Textual's methods for the length of a test, the shim put back after."""
    was = strip_cycles.installed()
    Strip.divide = strip_cycles._TEXTUAL_DIVIDE  # type: ignore[method-assign]
    Strip.crop_extend = strip_cycles._TEXTUAL_CROP_EXTEND  # type: ignore[method-assign]
    yield
    if was:
        strip_cycles.install()
    else:
        Strip.divide = strip_cycles._TEXTUAL_DIVIDE  # type: ignore[method-assign]
        Strip.crop_extend = strip_cycles._TEXTUAL_CROP_EXTEND  # type: ignore[method-assign]


USES = {
    "divide at its end": lambda s: s.divide([s.cell_length]),
    "divide past its end": lambda s: s.divide([s.cell_length, s.cell_length + 5]),
    "crop_extend to itself": lambda s: s.crop_extend(0, s.cell_length, None),
}


@pytest.mark.parametrize("use", USES.values(), ids=USES.keys())
def test_textual_alone_leaves_a_strip_holding_itself(textual_own: None, use: object) -> None:
    assert left_for_the_collector(use) > 0, "Textual no longer caches a strip in itself: the shim can go"


@pytest.mark.parametrize("use", USES.values(), ids=USES.keys())
def test_with_the_shim_a_dropped_strip_is_freed_at_once(use: object) -> None:
    strip_cycles.install()
    strip_cycles.install()  # twice: still the shim, not a shim of the shim
    assert strip_cycles.installed()
    assert left_for_the_collector(use) == 0


def test_the_shim_answers_as_textual_does(textual_own: None) -> None:
    cases = [([21], None), ([4, 21], None), ([4, 10, 30], None), ([0], None), ([], None), ([30], None)]
    crops = [(0, 21), (-2, 21), (0, 30), (3, 21), (0, 10), (5, 40), (0, 0)]
    style = Style(bgcolor="red")
    textual_divides = [line().divide(cuts) for cuts, _ in cases]
    textual_crops = [line().crop_extend(a, b, style) for a, b in crops]
    strip_cycles.install()
    for (cuts, _), want in zip(cases, textual_divides, strict=True):
        got = line().divide(cuts)
        assert [(s.text, s.cell_length) for s in got] == [(s.text, s.cell_length) for s in want], cuts
    for (a, b), want in zip(crops, textual_crops, strict=True):
        got = line().crop_extend(a, b, style)
        assert (got.text, got.cell_length, list(got)) == (want.text, want.cell_length, list(want)), (a, b)
    same = line()
    assert same.divide([same.cell_length])[0] is same and same.crop_extend(0, same.cell_length, None) is same
