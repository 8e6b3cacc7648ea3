"""The reads of :class:`~console.records.store.Records`, a mixin of its own so the facade stays small.

Every read goes through the writer thread, after every write queued before it, and blocks
the caller until answered: they are for screens and reports, not for the sample path.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from console.common.patients import PatientHistory, PatientSummary
from console.records import queries
from console.records.rows import (
    AlarmRecord,
    CommandRecord,
    EmergencyRecord,
    LopRecord,
    Patient,
    RecordsError,
    SampleRecord,
    SessionCuffRecord,
    SessionRecord,
)

if TYPE_CHECKING:
    from console.common.plots import SessionPlot

T = TypeVar("T")


class RecordReads:
    """Questions asked of the records; the facade provides ``_call``."""

    def _call(self, fn: Callable[[sqlite3.Connection], T], timeout: float = 30.0) -> T:
        raise NotImplementedError

    def patients(self) -> list[Patient]:
        return self._call(queries.patients)

    def patient(self, patient_id: str) -> Patient | None:
        """One patient by id (None: not in the records)."""
        return self._call(lambda c: queries.patient(c, patient_id))

    def lops(self, patient_id: str) -> list[LopRecord]:
        """Every LOP of a patient, newest first."""
        return self._call(lambda c: queries.lops(c, patient_id))

    def latest_lop(self, patient_id: str, label: str, position: str) -> LopRecord | None:
        """The newest LOP for this patient, cuff site (``label`` or limb) and body position."""
        return self._call(lambda c: queries.latest_lop(c, patient_id, label, position))

    def session(self, session_id: int) -> SessionRecord | None:
        return self._call(lambda c: queries.session(c, session_id))

    def sessions(self, patient_id: str | None = None) -> list[SessionRecord]:
        """Sessions, oldest first; of one patient when given."""
        return self._call(lambda c: queries.sessions(c, patient_id))

    def samples(self, session_id: int, cuff: str | None = None) -> list[SampleRecord]:
        """A session's per-second samples in time order (then by cuff)."""
        return self._call(lambda c: queries.samples(c, session_id, cuff))

    def alarms(self, since: float | None = None, until: float | None = None) -> list[AlarmRecord]:
        """Alarms raised in [since, until], oldest first."""
        return self._call(lambda c: queries.alarms(c, since, until))

    def emergencies(self, since: float | None = None, until: float | None = None) -> list[EmergencyRecord]:
        return self._call(lambda c: queries.emergencies(c, since, until))

    def commands(self, since: float | None = None, until: float | None = None) -> list[CommandRecord]:
        """The audit trail in [since, until], oldest first: who did what, in which role."""
        return self._call(lambda c: queries.commands(c, since, until))

    def pragma(self, name: str) -> Any:
        """One PRAGMA's value, for tests and diagnostics (``journal_mode``, ``synchronous``, ...)."""
        if not re.fullmatch(r"[a-z_]+", name):
            raise RecordsError(f"not a pragma name: {name!r}")
        return self._call(lambda c: queries.pragma(c, name))

    def session_cuffs(self, session_id: int) -> list[SessionCuffRecord]:
        """Each cuff of a session with its own LOP, target, occlusion and fidelity (none before schema 2)."""
        return self._call(lambda c: queries.session_cuffs(c, session_id))

    def latest_lop_per_cuff(self, since: float) -> dict[str, LopRecord]:
        """Each cuff's newest LOP measured at or after ``since`` (restored into the cuffs at start)."""
        return self._call(lambda c: queries.latest_lop_per_cuff(c, since))

    def find_patients(self, text: str = "", limit: int = 50) -> list[PatientSummary]:
        """Patients whose id contains ``text``, most recently seen first (the patients screen)."""
        return self._call(lambda c: queries.find_patients(c, text, limit))

    def patient_history(self, patient_id: str) -> PatientHistory:
        """A patient's LOPs and sessions, newest first, each session with its alarm count."""
        return self._call(lambda c: queries.patient_history(c, patient_id))

    def session_plot(self, session_id: int) -> SessionPlot:
        """What the session's plots show (pressure, target, phases, alarms); see :mod:`~console.records.plotdata`."""
        from console.records.plotdata import session_plot  # it reads through these very methods

        return session_plot(self, session_id)

    def lop(self, lop_id: int) -> LopRecord | None:
        """One stored LOP by its id."""
        return self._call(lambda c: queries.lop_by_id(c, lop_id))
