"""Text from outside the console, drawn as plain text: never as markup, never as terminal codes.

A cuff label, a station or plan name, a plan's description, an alarm or a
refusal from a controller, a patient id: none of it is the console's own
words. Given to a Textual widget as a ``str`` it is parsed as markup (``Knee
[/]`` raises during compose, ``Knee [post-op]`` loses its brackets), and an
ESC in it reaches the terminal (``\\x1b[2J`` clears the screen). Every such
text goes through :func:`plain` (a Rich ``Text``, which Textual never parses)
or :func:`clean` (for a widget built with ``markup=False``).
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import App
from textual.notifications import SeverityLevel

REPLACEMENT = "?"
"""Shown instead of a control character: ASCII, so the Linux console's font has it."""

_CONTROLS = {code: REPLACEMENT for code in (*range(0x00, 0x20), *range(0x7F, 0xA0), 0x2028, 0x2029)}
"""C0 (ESC, CR, LF, BEL, TAB...), DEL, C1 (CSI, OSC...) and the Unicode line and paragraph separators."""


def clean(value: object) -> str:
    """``value`` as one line of text a terminal draws as it is: every control character becomes ``?``.

    One character for one, so the text keeps its length and a tampered label still reads as itself.
    """
    return str(value).translate(_CONTROLS)


def plain(value: object, style: str = "") -> Text:
    """``value`` as Rich text that no widget parses as markup, with its control characters replaced."""
    return Text(clean(value), style=style, end="")


def notify_plain(
    app: App[Any],
    message: object,
    *,
    title: object = "",
    severity: SeverityLevel = "information",
    timeout: float | None = None,
) -> None:
    """``app.notify`` for a message that may hold outside text (a refusal, a name): shown as written."""
    app.notify(clean(message), title=clean(title), severity=severity, timeout=timeout, markup=False)
