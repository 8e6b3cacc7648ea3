"""Textual's screen lines freed as soon as they are dropped, not by Python's cycle collector.

A :class:`textual.strip.Strip` (one line of a widget, drawn every frame) keeps
small caches of the strips derived from it. Two of its methods can answer
with the strip itself and cache that answer: :meth:`Strip.divide` cut at its
own end, and :meth:`Strip.crop_extend` to its own extent, which the
compositor does for most lines of most frames. A strip that holds itself is a
reference cycle: it is not freed when the screen drops it, only by a full
collection. Measured in the console at 160x50 with 16 cuffs: about 25 000
such objects every 3-4 s, one collection of 60-130 ms on a 2-core machine,
holding the GIL the station's thread needs for the emergency's answers. With
this module: a full collection every ~7.5 s, 8-25 ms, ~1 300 objects freed.

:func:`install` answers those two cases before the cache is consulted, so the
strip never holds itself; every other case goes to Textual unchanged.

What it assumes of Textual (pinned in pyproject.toml, checked by
tests/test_strip_cycles.py): ``divide`` returns ``[self]`` when the only cut
is at the strip's end, and ``crop_extend`` returns ``self`` when the crop
starts at 0 and ends at the strip's end; nothing relies on getting the same
list object back from ``divide`` twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from textual.strip import Strip

_TEXTUAL_DIVIDE = Strip.divide
_TEXTUAL_CROP_EXTEND = Strip.crop_extend


def _divide(self: Strip, cuts: Iterable[int]) -> Sequence[Strip]:
    cell_length = self.cell_length
    kept = [cut for cut in cuts if cut <= cell_length]
    if kept == [cell_length]:
        return [self]  # what Textual returns, but not cached in the strip itself
    return _TEXTUAL_DIVIDE(self, kept)


def _crop_extend(self: Strip, start: int, end: int, style: object) -> Strip:
    if start <= 0 and end == self.cell_length:
        return self  # what Textual returns, but not cached in the strip itself
    return _TEXTUAL_CROP_EXTEND(self, start, end, style)  # type: ignore[arg-type]


def install() -> None:
    """Replace the two methods (idempotent; the console's app calls it when it is built)."""
    Strip.divide = _divide  # type: ignore[method-assign]
    Strip.crop_extend = _crop_extend  # type: ignore[method-assign]


def installed() -> bool:
    return Strip.divide is _divide and Strip.crop_extend is _crop_extend
