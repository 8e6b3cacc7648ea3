"""The records' row types: what a read returns, and the per-second summary a write takes.

Why a module of their own: the station, the therapy loop and the reports use these
types without needing the database, its writer thread or SQLite at all.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from console.common.facts import FIDELITY_BAND

END_REASONS = ("completed", "stopped", "emergency", "alarm", "crash")
PRIORITIES = ("high", "medium", "low")
MAX_LOP_MMHG = 400.0
"""No cuff goes near this; a larger LOP is a typo, not a measurement."""


class RecordsError(Exception):
    """The records cannot be opened or a call was refused; the text names the path or the bad value."""


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class Patient:
    id: str
    created_at: float
    note: str


@dataclass(frozen=True, slots=True)
class LopRecord:
    id: int
    patient_id: str
    cuff_id: str
    limb: str
    label: str
    """Where the cuff sat, e.g. ``left thigh``."""
    position: str
    """Body position of the measurement: ``supine`` | ``seated`` | ``standing`` | ..."""
    cuff_width_cm: float | None
    lop_mmhg: float
    source: str
    """``auto`` (in-cuff pulsations) | ``doppler`` | ``manual``."""
    confidence: float | None
    at: float


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id: int
    patient_id: str
    cuffs: tuple[str, ...]
    plan_id: str
    plan_name: str
    started_at: float
    ended_at: float | None
    """None while the session runs."""
    end_reason: str | None
    """``completed`` | ``stopped`` | ``emergency`` | ``alarm`` | ``crash``; None while it runs."""
    sets_done: int | None
    reps_per_set: tuple[int, ...]
    occlusion_s: float | None
    """Time under occlusion; after a crash an estimate from the per-second samples."""
    fidelity: float | None
    """Share (0..1) of time within +-10 % of target; after a crash an estimate from the samples."""
    target_mmhg: float | None
    """The first cuff's target: each cuff's own is in :class:`SessionCuffRecord`."""
    target_pct_lop: float | None
    lop_mmhg: float | None
    """The first cuff's LOP: each cuff's own is in :class:`SessionCuffRecord`."""
    position: str | None
    sets_planned: int | None = None
    sets_stopped: int | None = None
    """Sets cut short (stopped, emergency, occlusion limit) among ``sets_done``; None before schema 2."""

    @property
    def sets_completed(self) -> int | None:
        """Sets run to their end (the plan's reps, or skipped on by the therapist)."""
        if self.sets_done is None:
            return None
        return self.sets_done - (self.sets_stopped or 0)

    @property
    def is_open(self) -> bool:
        return self.ended_at is None

    @property
    def duration_s(self) -> float | None:
        return None if self.ended_at is None else self.ended_at - self.started_at


@dataclass(frozen=True, slots=True)
class SessionCuffRecord:
    """One cuff of a session: where it sat, the LOP it was set from, its target, and how it held."""

    cuff_id: str
    label: str
    limb: str
    target_mmhg: float
    lop_mmhg: float | None = None
    lop_id: int | None = None
    """The ``lop_measurements`` row the LOP came from, when the station knew it."""
    position: str | None = None
    cuff_width_cm: float | None = None
    occlusion_s: float | None = None
    fidelity: float | None = None
    """Share (0..1) of this cuff's held time within +-10 % of its target (None while running)."""
    tolerance_mmhg: float | None = None
    """The off-target alarm band (``[safety] tolerance_mmhg``) the station held this cuff to (None before schema 3)."""


SESSION_CUFF_COLUMNS = (
    "cuff_id, label, limb, target_mmhg, lop_mmhg, lop_id, position, cuff_width_cm, occlusion_s, fidelity,"
    " tolerance_mmhg"
)


@dataclass(frozen=True, slots=True)
class SampleRecord:
    """One second of one cuff: the 100 Hz samples boiled down."""

    session_id: int
    cuff_id: str
    t: float
    pmin: float
    pmean: float
    pmax: float
    target: float
    in_band: float | None
    """Share (0..1) of that second's samples within +-10 % of target, when the station counted it."""
    t_end: float | None = None
    """Wall time of the newest sample in the second (None in rows written before schema 2)."""
    held_s: float | None = None
    """Time within the second with a target, i.e. under occlusion (None before schema 2)."""


@dataclass(frozen=True, slots=True)
class AlarmRecord:
    id: int
    priority: str
    cause: str
    message: str
    cuff_id: str | None
    controller_id: str | None
    raised_at: float
    cleared_at: float | None
    acknowledged_at: float | None
    acknowledged_by: str | None


@dataclass(frozen=True, slots=True)
class EmergencyRecord:
    id: int
    at: float
    by: str
    confirmed: tuple[str, ...]
    pending: tuple[str, ...]
    latency_s: float | None


@dataclass(frozen=True, slots=True)
class CommandRecord:
    id: int
    at: float
    who: str
    role: str
    what: str


# --------------------------------------------------------------------------- per-second summaries


@dataclass(frozen=True, slots=True)
class SecondSummary:
    """One cuff's samples within one wall-clock second; unpack into :meth:`Records.session_sample`."""

    t: float
    """The second (epoch seconds, whole)."""
    pmin: float
    pmean: float
    pmax: float
    target: float
    """The target in force at the end of the second."""
    in_band: float | None
    """Share of samples within +-10 % of their target; None when no sample had a target."""
    t_end: float | None = None
    """Wall time of the newest sample in it: where a session cut short by a crash really ended."""
    held_s: float | None = None
    """Time within the second with a target (under occlusion), from sample to sample."""

    def row(self) -> tuple[float, float, float, float, float, float | None]:
        return (self.t, self.pmin, self.pmean, self.pmax, self.target, self.in_band)


class SecondAggregator:
    """Boils one cuff's 100 Hz samples down to one :class:`SecondSummary` per second.

    Why: the records keep a row per second, not per sample, so the station's loop
    writes a row a second per cuff instead of 100. The second in progress is also
    handed out every ``partial_s`` (the records replace it by the next one, same key),
    so a kill -9 loses at most ``partial_s`` plus the records' commit interval of
    pressure, not the whole second in progress.
    """

    __slots__ = (
        "_sec",
        "_n",
        "_sum",
        "_min",
        "_max",
        "_target",
        "_held",
        "_in_band",
        "_held_s",
        "_last_t",
        "_last_target",
        "_emitted_at",
        "partial_s",
        "dropped",
    )

    MAX_GAP_S = 0.25
    """A gap between samples longer than this is not counted as time under occlusion."""

    def __init__(self, partial_s: float = 0.1) -> None:
        self._sec: float | None = None
        self._reset()
        self._last_t: float | None = None
        self._last_target = 0.0
        self._emitted_at = -math.inf
        self.partial_s = partial_s
        self.dropped = 0
        """Non-finite samples skipped."""

    def _reset(self) -> None:
        self._n = 0
        self._sum = 0.0
        self._min = math.inf
        self._max = -math.inf
        self._target = 0.0
        self._held = 0
        self._in_band = 0
        self._held_s = 0.0

    def add(self, t: float, pressure: float, target: float) -> SecondSummary | None:
        """Add a sample taken at wall time ``t``.

        Returns the previous second's final summary when ``t`` starts a new one, else the second in
        progress when ``partial_s`` has passed since the last one handed out, else None.
        """
        if not (math.isfinite(t) and math.isfinite(pressure) and math.isfinite(target)):
            self.dropped += 1
            return None
        sec = float(math.floor(t))
        out = None
        last_t = self._last_t
        held = last_t is not None and self._last_target > 0 and 0 < t - last_t <= self.MAX_GAP_S
        if self._sec is not None and sec != self._sec:
            # A gap across the turn of the second is split at it: each row holds only time within its
            # own second (at most 1 s; the records refuse more, and once lost such final rows).
            if held and last_t is not None and last_t < sec:
                self._held_s += sec - last_t
            out = self.flush()
            if held and last_t is not None:
                self._held_s += t - max(sec, last_t)
        elif held and last_t is not None:
            self._held_s += t - last_t
        self._sec = sec
        self._n += 1
        self._sum += pressure
        self._min = min(self._min, pressure)
        self._max = max(self._max, pressure)
        self._last_t = t
        self._last_target = target
        self._target = target
        if target > 0:
            self._held += 1
            if abs(pressure - target) <= FIDELITY_BAND * target:
                self._in_band += 1
        if out is None and t - self._emitted_at >= self.partial_s:
            out = self._summary()
        if out is not None:
            self._emitted_at = t
        return out

    def flush(self) -> SecondSummary | None:
        """The summary of the second in progress (at session end), or None if it has no samples."""
        out = self._summary()
        self._sec = None
        self._reset()
        return out

    def _summary(self) -> SecondSummary | None:
        if self._sec is None or self._n == 0:
            return None
        return SecondSummary(
            t=self._sec,
            pmin=self._min,
            pmean=self._sum / self._n,
            pmax=self._max,
            target=self._target,
            in_band=self._in_band / self._held if self._held else None,
            t_end=self._last_t,
            held_s=round(self._held_s, 4),
        )


# --------------------------------------------------------------------------- from SQL rows


LOP_COLUMNS = "id, patient_id, cuff_id, limb, label, position, cuff_width_cm, lop_mmhg, source, confidence, at"
"""The ``lop_measurements`` columns in :class:`LopRecord` field order."""
SESSION_COLUMNS = (
    "id, patient_id, cuffs, plan_id, plan_name, started_at, ended_at, end_reason, sets_done, reps_per_set,"
    " occlusion_s, fidelity, target_mmhg, target_pct_lop, lop_mmhg, position, sets_planned, sets_stopped"
)
"""The ``sessions`` columns in the order :func:`session_from_row` reads them."""


def lop_from_row(row: Sequence[Any]) -> LopRecord:
    return LopRecord(*row)


def session_from_row(r: Sequence[Any]) -> SessionRecord:
    """Lists are stored as JSON text; they come back as tuples."""
    return SessionRecord(
        id=r[0],
        patient_id=r[1],
        cuffs=tuple(json.loads(r[2])),
        plan_id=r[3],
        plan_name=r[4],
        started_at=r[5],
        ended_at=r[6],
        end_reason=r[7],
        sets_done=r[8],
        reps_per_set=tuple(json.loads(r[9] or "[]")),
        occlusion_s=r[10],
        fidelity=r[11],
        target_mmhg=r[12],
        target_pct_lop=r[13],
        lop_mmhg=r[14],
        position=r[15],
        sets_planned=r[16],
        sets_stopped=r[17],
    )
