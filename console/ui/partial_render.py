"""A frame redraws the rows that changed, not every widget inside their bounding box.

Textual 8.2.8's partial update (``Compositor.render_partial_update``) crops to
the box around *all* dirty regions and asks every widget overlapping that box
for all its lines; only then does it keep the dirty lines. On the dashboard
the dirty rows are scattered (a gauge row in the top-left panel, a trace row
in the bottom-right one, the header's clock), so the box is the whole screen
and all 16 panels render all their rows on every frame. Measured in the
console at 160x50 with 16 vented cuffs: 16 frames/s, each rendering about 157
panel rows for about 2 that changed; the compositor was the largest cost of
the screen thread.

:func:`install` makes the partial update ask each widget only for the rows
that one of the dirty regions covers, across the widget's full visible width
(so the compositor's cuts, which fall on widget edges, still line up). A
widget no dirty region touches is not asked at all. What reaches the terminal
is unchanged: Textual still writes only the dirty spans, and every cell of a
span lies in a widget that is asked for that row (tests/test_partial_render.py
compares whole screens, frame by frame, with Textual's own answer).

What it assumes of Textual (pinned in pyproject.toml): ``render_partial_update``
reads ``_dirty_regions`` and calls ``_get_renders(crop)`` once, on the thread
that draws; ``_render_chops`` only uses the lines that are in the dirty spans,
taking each renderer's lines from ``intersection(region, clip)``.
"""

from __future__ import annotations

from collections.abc import Iterable

from textual._compositor import Compositor
from textual.geometry import Region
from textual.strip import Strip

_TEXTUAL_GET_RENDERS = Compositor._get_renders
_TEXTUAL_PARTIAL_UPDATE = Compositor.render_partial_update

_dirty_now: tuple[Compositor, list[Region]] | None = None
"""The compositor drawing a partial update, and its dirty regions (None: any other render).

Tied to the compositor: while a dialog's frame is drawn, the screen under it is drawn too
(dimmed, through its own compositor), and that one must not take the dialog's regions."""


def _render_partial_update(self: Compositor) -> object:
    global _dirty_now
    outer = _dirty_now
    _dirty_now = (self, list(self._dirty_regions))
    try:
        return _TEXTUAL_PARTIAL_UPDATE(self)
    finally:
        _dirty_now = outer


def _get_renders(self: Compositor, crop: Region | None = None) -> Iterable[tuple[Region, Region, list[Strip]]]:
    drawing = _dirty_now
    if drawing is None or drawing[0] is not self or crop is None:
        yield from _TEXTUAL_GET_RENDERS(self, crop)
        return
    # Edges as plain ints: about 25 widgets against 10-30 regions a frame, and Region's methods cost
    # a microsecond or two each here.
    dirty = [(x, y, x + w, y + h) for x, y, w, h in drawing[1] if w > 0 and h > 0]
    _rich_traceback_guard = True  # noqa: F841  (as Textual's own: a widget's render error, not this frame)
    for widget, (region, clip) in self.visible_widgets.items():
        shown = region.intersection(clip)
        if not shown:
            continue
        sx, sy, sw, sh = shown
        sx2, sy2 = sx + sw, sy + sh
        top, bottom = sy2, sy
        for dx, dy, dx2, dy2 in dirty:
            if dx < sx2 and sx < dx2 and dy < sy2 and sy < dy2:  # overlaps: rows max(dy, sy)..min(dy2, sy2)
                top = min(top, dy if dy > sy else sy)
                bottom = max(bottom, dy2 if dy2 < sy2 else sy2)
        if top >= bottom:
            continue
        part = Region(sx, top, sw, bottom - top)
        yield region, part, widget.render_lines(Region(sx - region.x, top - region.y, sw, bottom - top))


def install() -> None:
    """Replace the two methods (idempotent; the console's app calls it when it is built)."""
    Compositor.render_partial_update = _render_partial_update  # type: ignore[assignment,method-assign]
    Compositor._get_renders = _get_renders  # type: ignore[method-assign]


def uninstall() -> None:
    """Textual's own methods again (the tests compare the two)."""
    Compositor.render_partial_update = _TEXTUAL_PARTIAL_UPDATE  # type: ignore[method-assign]
    Compositor._get_renders = _TEXTUAL_GET_RENDERS  # type: ignore[method-assign]


def installed() -> bool:
    return Compositor._get_renders is _get_renders
