"""What the station knows about a cuff beyond its pressure: its LOP (with position, width, source)
and the patient on it. Both are checked here, at the station's edge, once for every console (a LOP
plausible for the limb, a position and a source from the fixed lists, a patient id the records
accept), so nothing a console typed reaches the records, a report or another screen unchecked;
then they are told to observers and put in the audit trail."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from console.common.api import CommandRefused
from console.common.facts import LOP_PLAUSIBLE_MMHG, LOP_SOURCES, PATIENT_ID, PATIENT_ID_RULE, POSITIONS
from console.common.figures import figure, number_arg
from console.config.schema import with_article
from console.station.controller_state import ControllerState
from console.station.cuff import CuffState
from console.station.events import AuditTrail, StationEvent, actor_var
from console.station.lop_records import attach_lop, file_lop
from console.station.snapshots import SnapshotBuilder


class CuffDetails:
    """``set_lop`` and ``set_patient`` for the station.

    Args:
        lookup: the station's cuff lookup (a refusal for an unknown cuff).
        refuse: ``refuse(what, why)`` tells observers and returns the exception to raise.
        audit: the audit trail (commands, events, the clock).
        view: marked dirty by every change.
    """

    def __init__(
        self,
        lookup: Callable[[str], tuple[CuffState, ControllerState]],
        refuse: Callable[[str, str], CommandRefused],
        audit: AuditTrail,
        view: SnapshotBuilder,
    ) -> None:
        self._lookup = lookup
        self._refuse = refuse
        self._audit = audit
        self._view = view

    async def set_lop(
        self,
        cuff_id: str,
        lop: float,
        *,
        position: str,
        cuff_width_cm: float | None,
        source: str = "doppler",
        confidence: float | None = None,
        record: Any = None,
    ) -> None:
        """Check and set a cuff's LOP, and file it; ``record``: a stored one re-used (kept, not filed again)."""
        what = f"set LOP of {cuff_id!r} to {lop!r} mmHg ({position!r}, {source!r})"
        try:
            cuff, _ = self._lookup(cuff_id)
            if position not in POSITIONS:
                raise CommandRefused(f"{cuff_id}: a body position is one of {', '.join(POSITIONS)}, not {position!r}.")
            if source not in LOP_SOURCES:
                raise CommandRefused(f"{cuff_id}: a LOP source is one of {', '.join(LOP_SOURCES)}, not {source!r}.")
            value = number_arg(lop, f"{cuff_id}: the LOP")
            lo, hi = LOP_PLAUSIBLE_MMHG[cuff.spec.limb]
            if not lo <= value <= hi:
                raise CommandRefused(
                    f"{cuff_id}: a LOP of {figure(value)} mmHg is not plausible for {with_article(cuff.spec.limb)} "
                    f"({figure(lo)}..{figure(hi)})."
                )
            if cuff_width_cm is not None and not 2.0 <= number_arg(cuff_width_cm, f"{cuff_id}: the cuff width") <= 30.0:
                raise CommandRefused(f"{cuff_id}: a cuff width of {cuff_width_cm} cm is not plausible (2..30).")
            allowed = value * cuff.spec.max_pct_lop / 100.0
            if cuff.target > allowed:
                raise CommandRefused(
                    f"{cuff_id}: its target {figure(cuff.target)} mmHg would be above {figure(cuff.spec.max_pct_lop)} % of "
                    f"a LOP of {figure(value)} ({figure(allowed)} mmHg); deflate or lower it first."
                )
        except CommandRefused as exc:
            raise self._refuse(what, str(exc)) from None
        what = f"set LOP of {cuff_id} to {figure(value)} mmHg ({position}, {source})"
        if record is not None:
            what += f" from LOP record #{record.id} of patient {record.patient_id}"
        cuff.lop = round(value, 1)
        cuff.lop_position = position
        cuff.lop_source = source
        cuff.lop_width_cm = float(cuff_width_cm) if cuff_width_cm is not None else cuff.spec.width_cm
        self._view.dirty = True
        self._audit.record_command(actor_var.get(), what)
        if record is None:
            file_lop(self._audit, cuff, source, confidence, stale_patient=self._stale_patient(cuff))
        else:
            cuff.lop_at, cuff.lop_record_id, cuff.lop_patient = record.at, record.id, record.patient_id
        self._audit.emit(StationEvent("lop", self._audit.clock.wall(), actor_var.get(), what, cuff=cuff_id))

    def _stale_patient(self, cuff: CuffState) -> bool:
        """The cuff's patient is only the one its finished session left there (nobody set them since):
        a LOP taken now is most likely the next patient's."""
        hook = self._view.sessions
        if hook is None or not cuff.patient_id:
            return False
        try:
            session, _ = hook.cuff_extras(cuff.id)
        except Exception:
            return False
        over = session is not None and session.phase in ("done", "stopped", "between")
        return over and session is not None and session.patient_id == cuff.patient_id

    async def set_patient(self, cuff_id: str, patient_id: str) -> None:
        what = f"set patient of {cuff_id} to {patient_id!r}"
        try:
            cuff, _ = self._lookup(cuff_id)
            pid = patient_id.strip() if isinstance(patient_id, str) else None
            if pid is None or (pid and not PATIENT_ID.fullmatch(pid)):
                raise CommandRefused(f"A patient id is {PATIENT_ID_RULE} (or empty to clear it), not {patient_id!r}.")
        except CommandRefused as exc:
            raise self._refuse(what, str(exc)) from None
        cuff.patient_id = pid or None
        self._view.dirty = True
        self._audit.record_command(actor_var.get(), what)
        if pid and (moved := attach_lop(self._audit, cuff, pid)):
            self._audit.record_command("station", moved)
        self._audit.emit(StationEvent("patient", self._audit.clock.wall(), actor_var.get(), what, cuff=cuff_id))
