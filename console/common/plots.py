"""What a picture of a session shows: each cuff's pressure and target, the phases, alarms and emergencies.

Pure types, so the records can build them and the consoles draw them without importing each other.
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
    band: float = FIDELITY_BAND
