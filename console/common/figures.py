"""Numbers in and out of station commands: one refusal sentence for a bad figure, one way to print one.

Shared by the command handlers and the link-report rules so that a refusal and
an alarm word a pressure the same way.
"""

from __future__ import annotations

from console.common.api import CommandRefused


def figure(x: object) -> str:
    """A pressure or figure for a sentence: whole numbers bare, others to one decimal; garbage as its repr."""
    if not isinstance(x, (int, float)) or isinstance(x, bool) or x != x or x in (float("inf"), float("-inf")):
        return repr(x)
    return f"{x:.0f}" if abs(x - round(x)) < 0.05 else f"{x:.1f}"


def number_arg(value: object, what: str) -> float:
    """A finite number from a command argument, or a refusal saying what was wrong."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CommandRefused(f"{what} must be a number, not {value!r}.")
    try:
        v = float(value)
    except OverflowError:
        raise CommandRefused(f"{what} is far out of range: {value!r}.") from None
    if v != v or v in (float("inf"), float("-inf")):
        raise CommandRefused(f"{what} must be a finite number, not {value!r}.")
    return v


def age_text(seconds: float) -> str:
    """``40 min``, ``5 h``, ``3 d``: how old a LOP is, in the unit a clinician thinks in."""
    s = max(0.0, seconds)
    if s < 3600:
        return f"{max(1, round(s / 60))} min"
    if s < 2 * 86400:
        return f"{round(s / 3600)} h"
    return f"{round(s / 86400)} d"


def counted(n: int, noun: str) -> str:
    """``1 station``, ``3 stations``: a count with its noun, as a person says it."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
