"""A patient's course as the consoles see it: LOP history and sessions, and the port that answers.

Why in ``common``: the records build these (they own the SQL), the station hands
them on, and the patients screen shows them; none of them may import the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from console.common.plots import SessionPlot


@dataclass(frozen=True, slots=True)
class PatientSummary:
    """One line of the patient finder."""

    id: str
    created_at: float
    sessions: int
    last_session_at: float | None


@dataclass(frozen=True, slots=True)
class LopEntry:
    """One LOP of a patient, as measured: what it depends on, and how it was taken."""

    id: int
    cuff_id: str
    limb: str
    label: str
    position: str
    cuff_width_cm: float | None
    lop_mmhg: float
    source: str
    """``auto`` | ``doppler`` | ``manual``."""
    at: float


@dataclass(frozen=True, slots=True)
class SessionEntry:
    """One session of a patient, summed up for the list and the progress plots."""

    id: int
    started_at: float
    ended_at: float | None
    plan_id: str
    plan_name: str
    end_reason: str | None
    cuffs: tuple[str, ...]
    sets_planned: int | None
    sets_done: int | None
    sets_stopped: int | None
    reps_per_set: tuple[int, ...]
    occlusion_s: float | None
    fidelity: float | None
    target_mmhg: float | None
    lop_mmhg: float | None
    alarms: int
    """Alarms raised on its cuffs (or station-wide) while it ran."""


@dataclass(frozen=True, slots=True)
class PatientHistory:
    patient_id: str
    lops: tuple[LopEntry, ...]
    """Newest first."""
    sessions: tuple[SessionEntry, ...]
    """Newest first."""
    lop_max_age_days: float = 14.0
    """The clinic's re-measure interval (the station's config)."""


@runtime_checkable
class PatientBook(Protocol):
    """The records of patients, through the station that owns them (local consoles only)."""

    async def find_patients(self, text: str, limit: int = 50) -> list[PatientSummary]:
        """Patients whose id contains ``text`` (all when empty), most recently seen first."""
        ...

    async def patient_history(self, patient_id: str) -> PatientHistory: ...

    async def session_plot(self, session_id: int) -> SessionPlot:
        """Each cuff's pressure, target, the phases, alarms and emergencies of one session."""
        ...

    async def use_recorded_lop(self, cuff_id: str, lop_id: int) -> None:
        """Set a cuff's LOP from a stored measurement (kept with its own date, not filed again)."""
        ...


@dataclass(frozen=True, slots=True)
class LopOffer:
    """The stored LOP offered for a session, and what the therapist must be told about it."""

    lop: LopEntry
    age_s: float
    flags: tuple[str, ...]
    """Why it may not fit: too old, another body position, another cuff width or site. Empty: it fits."""


def offer_lop(
    lops: tuple[LopEntry, ...] | list[LopEntry],
    *,
    limb: str,
    label: str,
    position: str,
    width_cm: float | None,
    now: float,
    max_age_days: float,
) -> LopOffer | None:
    """The patient's newest LOP for this limb, position and cuff width; else their newest on this limb, flagged.

    ``lops`` newest first. None when the patient has no LOP on this kind of limb.
    """
    on_limb = [x for x in lops if x.limb == limb]
    if not on_limb:
        return None

    def fits(x: LopEntry) -> bool:
        return x.label == label and x.position == position and _same_width(x.cuff_width_cm, width_cm)

    best = next((x for x in on_limb if fits(x)), on_limb[0])
    age = max(0.0, now - best.at)
    flags = []
    if age > max_age_days * 86400.0:
        flags.append(f"older than the re-measure interval ({max_age_days:g} d)")
    if best.position != position:
        flags.append(f"measured {best.position}, not {position}")
    if not _same_width(best.cuff_width_cm, width_cm):
        flags.append(f"measured with a {_cm(best.cuff_width_cm)} cuff, this one is {_cm(width_cm)}")
    if best.label != label:
        flags.append(f"measured on the {best.label}, not the {label}")
    return LopOffer(best, age, tuple(flags))


def _same_width(a: float | None, b: float | None) -> bool:
    return a is None or b is None or abs(a - b) < 0.25


def _cm(w: float | None) -> str:
    return "?" if w is None else f"{w:g} cm"


@dataclass(frozen=True, slots=True)
class Progress:
    """A patient's course, session by session, oldest first: one plot each."""

    patient_id: str
    dates: tuple[float, ...]
    lop: tuple[float | None, ...]
    target: tuple[float | None, ...]
    reps_per_set: tuple[tuple[int, ...], ...]
    occlusion_min: tuple[float | None, ...]


def progress(patient_id: str, sessions: tuple[SessionEntry, ...] | list[SessionEntry]) -> Progress:
    """From the patient's sessions (any order) to the series of the progress plots."""
    ordered = sorted(sessions, key=lambda s: s.started_at)
    return Progress(
        patient_id=patient_id,
        dates=tuple(s.started_at for s in ordered),
        lop=tuple(s.lop_mmhg for s in ordered),
        target=tuple(s.target_mmhg for s in ordered),
        reps_per_set=tuple(s.reps_per_set for s in ordered),
        occlusion_min=tuple(None if s.occlusion_s is None else s.occlusion_s / 60.0 for s in ordered),
    )
