"""What a picture of a session shows: each cuff's pressure and target, the phases, alarms and emergencies.

Pure types, so the records can build them and the consoles draw them without importing each other.
Two bands that are easy to mix up, so both drawings word them from here: the band drawn around the
target is the cuff's **alarm band** (``[safety] tolerance_mmhg``, what the station alarmed on during
that session), while **fidelity** is the share of held time within +-10 % of target, the figure
Swain 2025 compared devices with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from console.common.facts import FIDELITY_BAND


@dataclass(frozen=True, slots=True)
class CuffSeries:
    cuff_id: str
    label: str
    t: tuple[float, ...]
    """Seconds from the session's start (the middle of each recorded second)."""
    pressure: tuple[float, ...]
    target: tuple[float, ...]
    fidelity: float | None
    tolerance: float | None = None
    """The off-target alarm band in mmHg the station held this cuff to; None when not recorded."""


@dataclass(frozen=True, slots=True)
class Span:
    start: float
    end: float
    kind: str
    """``set`` | ``rest``."""
    number: int


@dataclass(frozen=True, slots=True)
class Mark:
    t: float
    kind: str
    """``high`` | ``medium`` | ``low`` (an alarm) | ``emergency``."""
    text: str


@dataclass(frozen=True, slots=True)
class SessionPlot:
    session: Any
    """The :class:`~console.records.rows.SessionRecord` plotted."""
    cuffs: tuple[CuffSeries, ...]
    spans: tuple[Span, ...]
    marks: tuple[Mark, ...]
    duration_s: float
    fidelity_band: float = FIDELITY_BAND
    """Fidelity counts the time within this share of target (0.10: +-10 %)."""


def alarm_band(c: CuffSeries) -> tuple[list[float], list[float]] | None:
    """The alarm band's lower and upper edge at each point (NaN where no target is held: a rest
    vented, the deflate); None when the session's records do not say what the band was."""
    if c.tolerance is None:
        return None
    nan = float("nan")
    lo = [x - c.tolerance if x > 0 else nan for x in c.target]
    hi = [x + c.tolerance if x > 0 else nan for x in c.target]
    return lo, hi


def alarm_band_text(c: CuffSeries, pm: str = "±") -> str:
    """``alarm band: target ±15 mmHg`` (or that the records do not say)."""
    if c.tolerance is None:
        return "alarm band not recorded (a session from before this version)"
    return f"alarm band: target {pm}{c.tolerance:g} mmHg"


def fidelity_text(c: CuffSeries, band: float = FIDELITY_BAND, pm: str = "±") -> str:
    """``fidelity 92 % (time within ±10 % of target)``, the Swain 2025 figure; empty when unknown."""
    if c.fidelity is None:
        return ""
    return f"fidelity {100 * c.fidelity:.0f} % (time within {pm}{100 * band:.0f} % of target)"
