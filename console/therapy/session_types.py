"""What a session runner reads (a plan) and what it hands back (actions, a summary).

Kept apart from the runner so that the station's therapy engine and the tests
can name these records without the runner's timer logic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol


class PlanLike(Protocol):
    """What the runner reads from a plan (``console.therapy.plans.Plan``); read-only, as a frozen plan is."""

    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def pct_lop(self) -> float: ...

    @property
    def mode(self) -> str: ...

    @property
    def sets(self) -> tuple[int, ...]: ...

    @property
    def cadence_s(self) -> float: ...

    @property
    def rest_s(self) -> float: ...

    @property
    def rest_mode(self) -> str: ...

    @property
    def on_s(self) -> float | None: ...

    @property
    def off_s(self) -> float | None: ...

    @property
    def cycles(self) -> int | None: ...

    @property
    def max_occlusion_s(self) -> float: ...

    @property
    def between_exercises_s(self) -> float: ...


# --------------------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class Inflate:
    """Set the cuff's target to ``mmhg`` (inflate, or keep inflated)."""

    cuff_id: str
    mmhg: float


@dataclass(frozen=True, slots=True)
class Deflate:
    cuff_id: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Beat:
    """A metronome period begins: contract now (for the click and the flash)."""

    set_index: int
    rep: int
    """1-based number of the rep that begins."""


@dataclass(frozen=True, slots=True)
class PhaseChanged:
    phase: str
    set_index: int
    message: str = ""


@dataclass(frozen=True, slots=True)
class SessionSummary:
    """What the record keeps of a session."""

    plan_id: str
    plan_name: str
    patient_id: str
    cuffs: tuple[str, ...]
    mode: str
    outcome: str
    """``completed`` | ``stopped`` | ``emergency`` | ``occlusion_limit``."""
    started_at: float
    """Station monotonic time of the start."""
    ended_at: float
    sets_planned: int
    sets_done: int
    """Sets (or on-phases) finished, including one cut short by skip or the occlusion limit."""
    sets_stopped: int
    """Of ``sets_done``, those cut short by a stop, an emergency or the occlusion limit (not by skip)."""
    reps_by_set: tuple[int, ...]
    detected_by_set: tuple[int, ...]
    reps_done: int
    occlusion_s: float
    """Time under occlusion (cuffs commanded inflated), longest over the cuffs."""
    occlusion_by_cuff: Mapping[str, float]
    longest_episode_s: float
    fidelity: float | None
    """Share of held time within +-10 % of target, over all cuffs; None if never held."""
    fidelity_by_cuff: Mapping[str, float | None]
    alarms: tuple[tuple[float, str, str], ...]
    """(time, priority, cause) of each alarm the session was told about."""
    message: str = ""


@dataclass(frozen=True, slots=True)
class Finished:
    """The session ended (or reached ``between``): store the summary."""

    summary: SessionSummary


SessionAction = Inflate | Deflate | Beat | PhaseChanged | Finished
