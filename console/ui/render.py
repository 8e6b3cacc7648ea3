"""Pure text rendering for the dashboard: fixed-width numbers, big digits, gauge, sparkline.

Kept free of widgets so every shape is unit-tested and the widgets only place
the results. Fixed widths keep re-layouts away while numbers change.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.text import Text

from console.ui.theme import Glyphs

PRESSURE_WIDTH = 3
"""``182``, `` 12``, ``---``: always three characters. A clinician reads whole mmHg; a tenth only
flickers with sensor noise (and would redraw the big digits on every frame)."""

_BLOCK = {
    "0": ("█▀█", "█ █", "▀▀▀"),
    "1": ("▀█ ", " █ ", "▀▀▀"),
    "2": ("▀▀█", "█▀▀", "▀▀▀"),
    "3": ("▀▀█", " ▀█", "▀▀▀"),
    "4": ("█ █", "▀▀█", "  ▀"),
    "5": ("█▀▀", "▀▀█", "▀▀▀"),
    "6": ("█▀▀", "█▀█", "▀▀▀"),
    "7": ("▀▀█", "  █", "  ▀"),
    "8": ("█▀█", "█▀█", "▀▀▀"),
    "9": ("█▀█", "▀▀█", "▀▀▀"),
    "-": ("   ", "▀▀▀", "   "),
    ".": (" ", " ", "▀"),
    ":": (" ", "▀", "▀"),
    " ": ("   ", "   ", "   "),
    # The patient's cue (LIFT, LOWER): letters as narrow as they stay legible, so LOWER fits beside
    # the digits. O is round, never the digit 0 (a reader of the digits must not find one in LOWER).
    "L": ("█ ", "█ ", "▀▀"),
    "I": ("█", "█", "▀"),
    "F": ("█▀", "█▀", "▀ "),
    "T": ("▀█▀", " █ ", " ▀ "),
    "O": ("▄▀▄", "█ █", " ▀ "),
    "W": ("█   █", "█ █ █", "▀▀ ▀▀"),
    "E": ("█▀", "█▀", "▀▀"),
    "R": ("█▀█", "█▀▄", "▀ ▀"),
}
_SEG7 = {
    "0": (" _ ", "| |", "|_|"),
    "1": ("   ", "  |", "  |"),
    "2": (" _ ", " _|", "|_ "),
    "3": (" _ ", " _|", " _|"),
    "4": ("   ", "|_|", "  |"),
    "5": (" _ ", "|_ ", " _|"),
    "6": (" _ ", "|_ ", "|_|"),
    "7": (" _ ", "  |", "  |"),
    "8": (" _ ", "|_|", "|_|"),
    "9": (" _ ", "|_|", " _|"),
    "-": ("   ", " _ ", "   "),
    ".": (" ", " ", "."),
    ":": (" ", ".", "."),
    " ": ("   ", "   ", "   "),
    # ASCII letters for the Linux text console; O is round, never the digit 0.
    "L": ("  ", "| ", "|_"),
    "I": (" ", "|", "|"),
    "F": (" _", "|_", "| "),
    "T": ("___", " | ", " | "),
    "O": (" _ ", "/ \\", "\\_/"),
    "W": ("     ", "| | |", "|_|_|"),
    "E": (" _", "|_", "|_"),
    "R": (" _ ", "|_)", "| \\"),
}
FONTS = {"block": _BLOCK, "seg7": _SEG7}


def fmt_pressure(pressure: float | None) -> str:
    """Whole mmHg, three characters; dashes when unknown so an offline cuff never reads as 0."""
    if pressure is None or math.isnan(pressure):
        return "---"
    clipped = max(-99, min(999, round(pressure)))
    return f"{clipped:3d}"


def fmt_mmss(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


def big_lines(text: str, font: str = "block") -> tuple[str, str, str]:
    """Three rows of large digits (or the cue's letters); characters outside the font render as blanks."""
    glyphs = FONTS[font]
    rows: list[list[str]] = [[], [], []]
    for ch in text:
        g = glyphs.get(ch, glyphs[" "])
        for r in range(3):
            rows[r].append(g[r])
    return (" ".join(rows[0]), " ".join(rows[1]), " ".join(rows[2]))


def big_width(text: str, font: str = "block") -> int:
    return len(big_lines(text, font)[0])


def gauge_scale(pressure: float | None, target: float, tolerance: float) -> float:
    """The gauge's full-scale mmHg: room above the band, never below 100."""
    top = max(100.0, (target + tolerance) * 1.25)
    if pressure is not None:
        top = max(top, pressure * 1.05)
    return top


GAUGE_EMPTY_BELOW_MMHG = 3.0
"""Below this the gauge shows no cell: a vented cuff's sensor noise and pulse around 0 must not flicker it.

At 1 mmHg the emulator's vented cuffs (0.3 mmHg noise, a 1 mmHg pulse, reading 0-2.5 mmHg) flipped
their first cell about 20 times a second across 16 panels, each a row redrawn. 3 mmHg is under one
cell at 160 columns and far under any BFR pressure; the digits still show the reading as it is."""


def _filled(pressure: float, top: float, width: int) -> int:
    """Cells filled for a pressure; at least one from ``GAUGE_EMPTY_BELOW_MMHG`` up."""
    if pressure < GAUGE_EMPTY_BELOW_MMHG:
        return 0
    return max(1, min(width, round(pressure / top * width)))


def gauge_cells(pressure: float | None, target: float, tolerance: float, width: int) -> tuple[int, float] | None:
    """What :func:`gauge` draws for a pressure: its filled cells and its scale (None: no reading)."""
    if pressure is None:
        return None
    width = max(4, width)
    top = gauge_scale(pressure, target, tolerance)
    return (_filled(pressure, top, width), top)


def gauge(
    pressure: float | None,
    target: float,
    tolerance: float,
    width: int,
    glyphs: Glyphs,
    *,
    fill_style: str = "",
    empty_style: str = "dim",
    band_style: str = "bold",
) -> Text:
    """A bar of pressure against the target, with the tolerance band's edges marked."""
    width = max(4, width)
    if pressure is None:
        return Text("-" * width, style="dim")
    top = gauge_scale(pressure, target, tolerance)

    def cell(mmhg: float) -> int:
        return max(0, min(width - 1, round(mmhg / top * width)))

    filled = _filled(pressure, top, width)
    chars = [glyphs.filled if i < filled else glyphs.empty for i in range(width)]
    styles = [fill_style if i < filled else empty_style for i in range(width)]
    if target > 0:
        for edge in (target - tolerance, target + tolerance):
            i = cell(edge)
            chars[i], styles[i] = glyphs.band, band_style
        i = cell(target)
        chars[i], styles[i] = glyphs.target, band_style
    # One span per run of equal style: a span per cell makes every repaint slow.
    text = Text()
    run_start = 0
    for i in range(1, width + 1):
        if i == width or styles[i] != styles[run_start]:
            text.append("".join(chars[run_start:i]), styles[run_start])
            run_start = i
    return text


def sparkline(trace: Sequence[float], width: int, glyphs: Glyphs, top: float) -> str:
    """The trace squeezed into ``width`` cells (bucket means), scaled 0..top; blanks when empty."""
    if width <= 0:
        return ""
    if not trace:
        return " " * width
    levels = glyphs.spark
    n = len(trace)
    out = []
    for c in range(width):
        lo = c * n // width
        hi = max(lo + 1, (c + 1) * n // width)
        bucket = trace[lo:hi]
        if not bucket:
            out.append(" ")
            continue
        v = sum(bucket) / len(bucket)
        idx = int(max(0.0, min(1.0, v / top if top > 0 else 0.0)) * (len(levels) - 1) + 0.5)
        out.append(levels[idx])
    # Right-align a short trace so the newest point is always at the right edge.
    return "".join(out).rjust(width)
