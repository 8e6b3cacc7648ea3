"""Every LOP the station is given goes into the records, under the patient it belongs to.

Why here, at the station's edge: a LOP reaches a cuff three ways (measured by the
therapy loop, typed in from a Doppler on any console, restored at start) and every
one must be filed the same way, with its position, cuff width and source. A LOP taken
with no patient set (or with only the one a finished session left on the cuff) is
filed under :data:`~console.common.facts.UNASSIGNED` and moved to the patient when
one is set on the cuff (a session start does that).
At start each cuff gets back its newest LOP from the records, no older than the
clinic's re-measure interval, shown with its age, so a restart forgets nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from console.common.facts import LOP_PLAUSIBLE_MMHG, UNASSIGNED
from console.common.figures import age_text
from console.station.cuff import CuffState
from console.station.events import AuditTrail

log = logging.getLogger(__name__)


@runtime_checkable
class LopSink(Protocol):
    """The writes and reads of LOPs (:class:`console.records.store.Records` has them)."""

    def add_patient(self, patient_id: str, *, at: float, note: str = "") -> bool: ...

    def record_lop(
        self,
        patient_id: str,
        *,
        cuff_id: str,
        limb: str,
        label: str,
        position: str,
        lop_mmhg: float,
        source: str,
        at: float,
        cuff_width_cm: float | None = None,
        confidence: float | None = None,
    ) -> int: ...

    def assign_lop(self, lop_id: int, patient_id: str, *, from_patient: str) -> None: ...

    def latest_lop_per_cuff(self, since: float) -> Mapping[str, Any]: ...


def _sink(audit: AuditTrail) -> LopSink | None:
    rec = audit.records
    return rec if isinstance(rec, LopSink) else None


def file_lop(
    audit: AuditTrail, cuff: CuffState, source: str, confidence: float | None, *, stale_patient: bool = False
) -> None:
    """Store the cuff's LOP as just set and remember its row.

    Under the cuff's patient; ``unassigned`` when there is none, or when it is only the one a finished
    session left on the cuff (``stale_patient``): then it goes to the next session's patient.
    """
    at = audit.clock.wall()
    cuff.lop_at = at
    cuff.lop_record_id = None
    cuff.lop_patient = (None if stale_patient else cuff.patient_id) or UNASSIGNED
    rec = _sink(audit)
    if rec is None or cuff.lop is None:
        return
    pid = cuff.lop_patient
    note = "LOPs measured with no patient set" if pid == UNASSIGNED else ""
    audit._to_records(rec.add_patient, pid, at=at, note=note)
    cuff.lop_record_id = audit._to_records(
        rec.record_lop,
        pid,
        cuff_id=cuff.id,
        limb=cuff.spec.limb,
        label=cuff.spec.label or cuff.spec.limb,
        position=cuff.lop_position,
        lop_mmhg=cuff.lop,
        source=source,
        at=at,
        cuff_width_cm=cuff.lop_width_cm,
        confidence=confidence,
    )


def attach_lop(audit: AuditTrail, cuff: CuffState, patient_id: str) -> str:
    """A patient was set on the cuff: file its unassigned LOP under them. Returns what was done, or ``""``."""
    if cuff.lop_patient != UNASSIGNED or cuff.lop_record_id is None or not patient_id:
        return ""
    rec = _sink(audit)
    if rec is None:
        return ""
    audit._to_records(rec.add_patient, patient_id, at=audit.clock.wall())
    audit._to_records(rec.assign_lop, cuff.lop_record_id, patient_id, from_patient=UNASSIGNED)
    cuff.lop_patient = patient_id
    return f"LOP record #{cuff.lop_record_id} of {cuff.id} filed under patient {patient_id}"


def restore_lops(audit: AuditTrail, cuffs: Mapping[str, CuffState], max_age_s: float) -> list[str]:
    """At start: give each cuff its newest plausible LOP of the last ``max_age_s``; says what it restored."""
    rec = _sink(audit)
    if rec is None or max_age_s <= 0:
        return []
    now = audit.clock.wall()
    found = audit._to_records(rec.latest_lop_per_cuff, now - max_age_s) or {}
    said = []
    for cid, lop in found.items():
        cuff = cuffs.get(cid)
        if cuff is None or cuff.spec.limb != lop.limb or lop.at > now + 60:
            continue
        lo, hi = LOP_PLAUSIBLE_MMHG[cuff.spec.limb]
        if not lo <= lop.lop_mmhg <= hi or cuff.target > 0:
            continue
        cuff.lop = round(float(lop.lop_mmhg), 1)
        cuff.lop_position = lop.position
        cuff.lop_source = lop.source
        cuff.lop_width_cm = lop.cuff_width_cm if lop.cuff_width_cm is not None else cuff.spec.width_cm
        cuff.lop_at = lop.at
        cuff.lop_record_id = lop.id
        cuff.lop_patient = lop.patient_id
        said.append(
            f"LOP of {cid} restored from the records: {cuff.lop:g} mmHg ({lop.position}, {lop.source}, "
            f"patient {lop.patient_id}, {age_text(now - lop.at)} old)"
        )
    return said
