"""The reads of the records: one function per question, each over an open connection.

Plain SQL turned into row types (:mod:`~console.records.rows`). They run on the
records' writer thread, after every write queued before them (see
:meth:`~console.records.store.Records.sessions` and the other reads), so they
never see a half-written session.
"""

from __future__ import annotations

import json
import math
import sqlite3
from typing import Any

from console.common.facts import UNASSIGNED
from console.common.patients import LopEntry, PatientHistory, PatientSummary, SessionEntry
from console.records.rows import (
    LOP_COLUMNS,
    SESSION_COLUMNS,
    SESSION_CUFF_COLUMNS,
    AlarmRecord,
    CommandRecord,
    EmergencyRecord,
    LopRecord,
    Patient,
    SampleRecord,
    SessionCuffRecord,
    SessionRecord,
    lop_from_row,
    session_from_row,
)


def patients(c: sqlite3.Connection) -> list[Patient]:
    return [Patient(*r) for r in c.execute("SELECT id, created_at, note FROM patients ORDER BY id")]


def patient(c: sqlite3.Connection, patient_id: str) -> Patient | None:
    row = c.execute("SELECT id, created_at, note FROM patients WHERE id = ?", (patient_id,)).fetchone()
    return None if row is None else Patient(*row)


def lops(c: sqlite3.Connection, patient_id: str) -> list[LopRecord]:
    """Every LOP of a patient, newest first."""
    return [
        lop_from_row(r)
        for r in c.execute(
            f"SELECT {LOP_COLUMNS} FROM lop_measurements WHERE patient_id = ? ORDER BY at DESC, id DESC",
            (patient_id,),
        )
    ]


def latest_lop(c: sqlite3.Connection, patient_id: str, label: str, position: str) -> LopRecord | None:
    """The newest LOP for this patient, cuff site (``label`` or limb) and body position."""
    row = c.execute(
        f"SELECT {LOP_COLUMNS} FROM lop_measurements WHERE patient_id = ? AND (label = ? OR limb = ?)"
        " AND position = ? ORDER BY at DESC, id DESC LIMIT 1",
        (patient_id, label, label, position),
    ).fetchone()
    return None if row is None else lop_from_row(row)


def session(c: sqlite3.Connection, session_id: int) -> SessionRecord | None:
    row = c.execute(f"SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?", (session_id,)).fetchone()
    return None if row is None else session_from_row(row)


def sessions(c: sqlite3.Connection, patient_id: str | None) -> list[SessionRecord]:
    """Sessions, oldest first; of one patient when given."""
    if patient_id is None:
        rows = c.execute(f"SELECT {SESSION_COLUMNS} FROM sessions ORDER BY started_at, id")
    else:
        rows = c.execute(
            f"SELECT {SESSION_COLUMNS} FROM sessions WHERE patient_id = ? ORDER BY started_at, id",
            (patient_id,),
        )
    return [session_from_row(r) for r in rows]


def session_cuffs(c: sqlite3.Connection, session_id: int) -> list[SessionCuffRecord]:
    """Each cuff of a session, in the session's order of cuffs."""
    rows = c.execute(f"SELECT {SESSION_CUFF_COLUMNS} FROM session_cuffs WHERE session_id = ?", (session_id,)).fetchall()
    found = {r[0]: SessionCuffRecord(*r) for r in rows}
    row = c.execute("SELECT cuffs FROM sessions WHERE id = ?", (session_id,)).fetchone()
    order = json.loads(row[0]) if row else []
    return [found[cid] for cid in order if cid in found] + [v for k, v in found.items() if k not in order]


def latest_lop_per_cuff(c: sqlite3.Connection, since: float) -> dict[str, LopRecord]:
    """Each cuff's newest LOP at or after ``since``."""
    out: dict[str, LopRecord] = {}
    for r in c.execute(f"SELECT {LOP_COLUMNS} FROM lop_measurements WHERE at >= ? ORDER BY at, id", (since,)):
        rec = lop_from_row(r)
        out[rec.cuff_id] = rec
    return out


def samples(c: sqlite3.Connection, session_id: int, cuff: str | None) -> list[SampleRecord]:
    """A session's per-second samples in time order (then by cuff)."""
    sql = (
        "SELECT session_id, cuff_id, t, pmin, pmean, pmax, target, in_band, t_end, held_s FROM session_samples"
        " WHERE session_id = ?"
    )
    args: tuple[Any, ...] = (session_id,)
    if cuff is not None:
        sql += " AND cuff_id = ?"
        args += (cuff,)
    return [SampleRecord(*r) for r in c.execute(sql + " ORDER BY t, cuff_id", args)]


def alarms(c: sqlite3.Connection, since: float | None, until: float | None) -> list[AlarmRecord]:
    """Alarms raised in [since, until], oldest first."""
    lo, hi = _span(since, until)
    return [
        AlarmRecord(*r)
        for r in c.execute(
            "SELECT id, priority, cause, message, cuff_id, controller_id, raised_at, cleared_at, acknowledged_at,"
            " acknowledged_by FROM alarms WHERE raised_at >= ? AND raised_at <= ? ORDER BY raised_at, id",
            (lo, hi),
        )
    ]


def emergencies(c: sqlite3.Connection, since: float | None, until: float | None) -> list[EmergencyRecord]:
    lo, hi = _span(since, until)
    return [
        EmergencyRecord(r[0], r[1], r[2], tuple(json.loads(r[3])), tuple(json.loads(r[4])), r[5])
        for r in c.execute(
            "SELECT id, at, by, confirmed, pending, latency_s FROM emergencies"
            " WHERE at >= ? AND at <= ? ORDER BY at, id",
            (lo, hi),
        )
    ]


def commands(c: sqlite3.Connection, since: float | None, until: float | None) -> list[CommandRecord]:
    """The audit trail in [since, until], oldest first."""
    lo, hi = _span(since, until)
    return [
        CommandRecord(*r)
        for r in c.execute(
            "SELECT id, at, who, role, what FROM commands WHERE at >= ? AND at <= ? ORDER BY at, id", (lo, hi)
        )
    ]


def pragma(c: sqlite3.Connection, name: str) -> Any:
    """One PRAGMA's value; ``name`` must already be checked to be a bare identifier."""
    return c.execute(f"PRAGMA {name}").fetchone()[0]


def _span(since: float | None, until: float | None) -> tuple[float, float]:
    """A read's time window; an open end is unbounded."""
    return (-math.inf if since is None else since, math.inf if until is None else until)


def find_patients(c: sqlite3.Connection, text: str, limit: int) -> list[PatientSummary]:
    """Patients whose id contains ``text``, most recently seen first (``unassigned`` last)."""
    pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    # Per patient, a count and a MAX that each read only the ``sessions_by_patient`` index (the MAX one
    # entry of it): a third of the time of a join grouped over every session (3 ms, not 10, for 20,000).
    rows = c.execute(
        "SELECT id, created_at, n, last FROM (SELECT p.id, p.created_at,"
        " (SELECT COUNT(*) FROM sessions s WHERE s.patient_id = p.id) AS n,"
        " (SELECT MAX(s.started_at) FROM sessions s WHERE s.patient_id = p.id) AS last"
        " FROM patients p WHERE p.id LIKE ? ESCAPE '\\')"
        " ORDER BY id = ?, COALESCE(last, created_at) DESC, id LIMIT ?",
        (pattern, UNASSIGNED, limit),
    )
    return [PatientSummary(*r) for r in rows]


def patient_history(c: sqlite3.Connection, patient_id: str) -> PatientHistory:
    """A patient's LOPs and sessions (each with its alarm count), newest first."""
    lop_rows = c.execute(
        "SELECT id, cuff_id, limb, label, position, cuff_width_cm, lop_mmhg, source, at FROM lop_measurements"
        " WHERE patient_id = ? ORDER BY at DESC, id DESC",
        (patient_id,),
    )
    session_rows = c.execute(
        "SELECT s.id, s.started_at, s.ended_at, s.plan_id, s.plan_name, s.end_reason, s.cuffs, s.sets_planned,"
        " s.sets_done, s.sets_stopped, s.reps_per_set, s.occlusion_s, s.fidelity, s.target_mmhg, s.lop_mmhg,"
        " (SELECT COUNT(*) FROM alarms a WHERE a.raised_at >= s.started_at"
        "  AND a.raised_at <= COALESCE(s.ended_at, 1e300)"
        "  AND (a.cuff_id IS NULL OR a.cuff_id IN (SELECT value FROM json_each(s.cuffs))))"
        " FROM sessions s WHERE s.patient_id = ? ORDER BY s.started_at DESC, s.id DESC",
        (patient_id,),
    )
    sessions = tuple(
        SessionEntry(
            id=r[0],
            started_at=r[1],
            ended_at=r[2],
            plan_id=r[3],
            plan_name=r[4],
            end_reason=r[5],
            cuffs=tuple(json.loads(r[6])),
            sets_planned=r[7],
            sets_done=r[8],
            sets_stopped=r[9],
            reps_per_set=tuple(json.loads(r[10] or "[]")),
            occlusion_s=r[11],
            fidelity=r[12],
            target_mmhg=r[13],
            lop_mmhg=r[14],
            alarms=r[15],
        )
        for r in session_rows
    )
    return PatientHistory(patient_id, tuple(LopEntry(*r) for r in lop_rows), sessions)


def lop_by_id(c: sqlite3.Connection, lop_id: int) -> LopRecord | None:
    row = c.execute(f"SELECT {LOP_COLUMNS} FROM lop_measurements WHERE id = ?", (lop_id,)).fetchone()
    return None if row is None else lop_from_row(row)
