"""The patients screen's questions, answered from the station's records.

Why in the station: the records are the station's (one writer, one file); a console
asks the station, never the file. Reads block on the records' writer thread, so they
run in a worker thread and never stall the sample loop. The station knows no SQL:
it calls the records' read methods.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from console.common.api import CommandRefused
from console.common.patients import PatientHistory, PatientSummary
from console.config.schema import StationConfig
from console.station.cuff import CuffState
from console.station.cuff_details import CuffDetails
from console.station.events import RecordsSink


@runtime_checkable
class PatientRecords(Protocol):
    def find_patients(self, text: str = "", limit: int = 50) -> list[PatientSummary]: ...

    def patient_history(self, patient_id: str) -> PatientHistory: ...

    def lop(self, lop_id: int) -> Any: ...

    def session_plot(self, session_id: int) -> Any: ...


class PatientDesk:
    """The :class:`~console.common.patients.PatientBook` port's answers; the station owns one and
    delegates its four methods here (composition, not a mixin: the station's state stays in one class)."""

    def __init__(
        self,
        records: Callable[[], RecordsSink | None],
        cuffs: Mapping[str, CuffState],
        details: CuffDetails,
        config: StationConfig,
    ) -> None:
        """``records`` gives the station's records now (None: it keeps none)."""
        self._records = records
        self.cuffs = cuffs
        self.details = details
        self.config = config

    def _patient_records(self) -> PatientRecords:
        rec = self._records()
        if not isinstance(rec, PatientRecords):
            raise CommandRefused("This station keeps no records of patients.")
        return rec

    async def find_patients(self, text: str, limit: int = 50) -> list[PatientSummary]:
        rec = self._patient_records()
        return await asyncio.to_thread(rec.find_patients, str(text)[:64], max(1, min(int(limit), 500)))

    async def patient_history(self, patient_id: str) -> PatientHistory:
        rec = self._patient_records()
        history = await asyncio.to_thread(rec.patient_history, str(patient_id))
        return dataclasses.replace(history, lop_max_age_days=self.config.therapy.lop_max_age_days)

    async def session_plot(self, session_id: int) -> Any:
        rec = self._patient_records()
        try:
            return await asyncio.to_thread(rec.session_plot, int(session_id))
        except Exception as exc:  # an unknown session, or records that refuse: a sentence for the screen
            raise CommandRefused(f"Session {session_id} cannot be plotted: {exc}") from None

    async def use_recorded_lop(self, cuff_id: str, lop_id: int) -> None:
        rec = self._patient_records()
        lop = await asyncio.to_thread(rec.lop, int(lop_id))
        if lop is None:
            raise CommandRefused(f"No LOP #{lop_id} in the records.")
        cuff = self.cuffs.get(cuff_id)
        if cuff is not None and cuff.spec.limb != lop.limb:
            raise CommandRefused(f"LOP #{lop_id} was measured on {lop.limb}; cuff {cuff_id} is on {cuff.spec.limb}.")
        await self.details.set_lop(
            cuff_id,
            lop.lop_mmhg,
            position=lop.position,
            cuff_width_cm=lop.cuff_width_cm,
            source=lop.source,
            record=lop,
        )
