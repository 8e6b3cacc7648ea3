"""Theme and glyph choice: the Pi's Linux text console has 16 colours and few glyphs.

``auto`` picks the ANSI theme and ASCII-safe glyphs when ``TERM=linux``, so the
kiosk renders there without boxes of question marks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

ANSI_THEME = "ansi-dark"
RICH_THEME = "textual-dark"


@dataclass(frozen=True, slots=True)
class Glyphs:
    """Characters the widgets draw with; one set per terminal capability."""

    filled: str
    """Gauge: pressure up to the reading."""
    empty: str
    """Gauge: the rest of the scale."""
    band: str
    """Gauge: the edges of the tolerance band around the target."""
    target: str
    """Gauge: the target itself."""
    selected: str
    """Marker in front of the selected cuff's title (never colour alone)."""
    spark: str
    """Sparkline levels, lowest first."""
    font: str
    """Big-number font name, see :mod:`console.ui.render`."""
    bullet: str
    """Metronome beat marker (the contract half of each period)."""
    beat_off: str = " "
    """Metronome marker for the relax half, same width as ``bullet``."""
    up: str = "^"
    """The patient's cue: lift."""
    down: str = "v"
    """The patient's cue: lower."""


UNICODE = Glyphs(
    filled="█",
    empty="░",
    band="│",
    target="┃",
    selected="▶",
    spark="▁▂▃▄▅▆▇█",
    font="block",
    bullet="●",
    beat_off="○",
    up="▲",
    down="▼",
)
ASCII = Glyphs(
    filled="#", empty=".", band="|", target="!", selected=">", spark="_.-:=+*#", font="seg7", bullet="*", beat_off="."
)


@dataclass(frozen=True, slots=True)
class ThemeChoice:
    textual_theme: str
    glyphs: Glyphs
    ansi: bool


def resolve_theme(theme: str = "auto", term: str | None = None) -> ThemeChoice:
    """Map the ``--theme`` option (``auto`` | ``ansi`` | a Textual theme name) to a theme and glyphs."""
    if term is None:
        term = os.environ.get("TERM", "")
    if theme == "ansi" or (theme == "auto" and term == "linux"):
        return ThemeChoice(ANSI_THEME, ASCII, True)
    if theme == "auto":
        return ThemeChoice(RICH_THEME, UNICODE, False)
    return ThemeChoice(theme, UNICODE, False)
