"""Therapy's writes to the station's records, which never stop therapy.

A failed write is logged and dropped: a session still vents and ends, a LOP is
still kept by the station, when the records refuse a row. Every write goes to
the station's records of the moment (none, or records that do not take these
writes: nothing is written).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from console.records.rows import SecondSummary, SessionCuffRecord
from console.therapy.station_port import RecordsPort, TherapyStation

log = logging.getLogger(__name__)

T = TypeVar("T")


class SafeRecords:
    """The records writes of LOP measurements and sessions, each one logged rather than raised."""

    def __init__(self, station: TherapyStation) -> None:
        self._station = station
        self._checked: object = None
        """The station's records object last checked against RecordsPort, and the answer (``_port``)."""
        self._port: RecordsPort | None = None

    @property
    def enabled(self) -> bool:
        """Whether the station keeps records at all."""
        return self._records() is not None

    def add_patient(self, patient_id: str, *, at: float, note: str = "") -> None:
        self._safe("add_patient", lambda r: r.add_patient(patient_id, at=at, note=note))

    def record_lop(
        self,
        patient_id: str,
        *,
        cuff_id: str,
        limb: str,
        label: str,
        position: str,
        lop_mmhg: float,
        at: float,
        cuff_width_cm: float | None,
        confidence: float | None,
    ) -> None:
        self._safe(
            "record_lop",
            lambda r: r.record_lop(
                patient_id,
                cuff_id=cuff_id,
                limb=limb,
                label=label,
                position=position,
                lop_mmhg=lop_mmhg,
                source="auto",
                at=at,
                cuff_width_cm=cuff_width_cm,
                confidence=confidence,
            ),
        )

    def start_session(
        self,
        patient_id: str,
        *,
        cuffs: Sequence[str],
        plan_id: str,
        plan_name: str,
        started_at: float,
        target_mmhg: float,
        target_pct_lop: float,
        lop_mmhg: float | None,
        position: str | None,
        per_cuff: Sequence[SessionCuffRecord] = (),
        sets_planned: int | None = None,
    ) -> int | None:
        """Open a session record: its id, or None when there are no records or they refused."""
        return self._safe(
            "start_session",
            lambda r: r.start_session(
                patient_id,
                cuffs=cuffs,
                plan_id=plan_id,
                plan_name=plan_name,
                started_at=started_at,
                target_mmhg=target_mmhg,
                target_pct_lop=target_pct_lop,
                lop_mmhg=lop_mmhg,
                position=position,
                per_cuff=per_cuff,
                sets_planned=sets_planned,
            ),
        )

    def session_sample(self, session_id: int, cuff: str, sec: SecondSummary) -> None:
        """One second of one cuff."""
        self._safe(
            "session_sample",
            lambda r: r.session_sample(session_id, cuff, *sec.row(), t_end=sec.t_end, held_s=sec.held_s),
        )

    def end_session(
        self,
        session_id: int,
        reason: str,
        *,
        ended_at: float,
        sets_done: int,
        reps_per_set: Sequence[int],
        occlusion_s: float,
        fidelity: float | None,
        sets_stopped: int | None = None,
        per_cuff: Mapping[str, tuple[float, float | None]] | None = None,
    ) -> None:
        self._safe(
            "end_session",
            lambda r: r.end_session(
                session_id,
                reason,
                ended_at=ended_at,
                sets_done=sets_done,
                reps_per_set=reps_per_set,
                occlusion_s=occlusion_s,
                fidelity=fidelity,
                sets_stopped=sets_stopped,
                per_cuff=per_cuff,
            ),
        )

    def _safe(self, method: str, write: Callable[[RecordsPort], T]) -> T | None:
        rec = self._records()
        if rec is None:
            return None
        try:
            return write(rec)
        except Exception:
            log.exception("therapy: records.%s failed", method)
            return None

    def _records(self) -> RecordsPort | None:
        """The station's records as a RecordsPort, or None; checked once per object (a Protocol's isinstance
        walks its members: about 20 µs, and sessions write 160 rows a second)."""
        rec = self._station.records
        if rec is not self._checked:
            self._checked = rec
            self._port = rec if isinstance(rec, RecordsPort) else None
        return self._port
