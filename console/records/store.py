"""The station's durable records: patients, LOP, sessions, alarms, emergencies, audit.

One SQLite file, ``<data_dir>/records.sqlite3``, in WAL mode with
``synchronous=FULL`` so that a commit survives kill -9 and a power cut (up to
what the SD card really syncs). Exactly one writer connection exists: a lock
file keeps a second station off the same directory, and inside the process a
single writer thread owns the connection (:mod:`~console.records.database`).

Write methods only validate their arguments and put a row on the writer
thread's queue (microseconds); the thread commits at least every
``commit_interval_s`` (0.2 s by default), and at once after an alarm, an
emergency, a command or a session start/end. The therapy loop hands the second in
progress over every 0.1 s (:class:`~console.records.rows.SecondAggregator`), so a
kill -9 loses about 0.3 s of a session's pressure, and under half a second on a busy
machine (0.25 s and 0.2 s lost 0.54 s once under .ci/stress). Ids that callers need back
(sessions, LOP, alarms, emergencies) are allocated here, in-process, so a write
never waits for the database to learn its id.

Reads (``sessions()``, ``alarms()``, ...) go through the same thread, after
every write queued before them, and block the caller until answered: they are
for screens and reports, not for the sample path.

Times are epoch seconds passed in by the caller; this module never reads the
wall clock for a record (only the writer reads ``time.monotonic`` to pace commits).

:class:`Records` is the API: it checks each write and shapes its row here, and
asks the other parts, one job each: :mod:`~console.records.database` (the file,
its lock and the writer thread), :mod:`~console.records.queries` (the reads),
:mod:`~console.records.schema` (PRAGMAs, migrations, crash recovery),
:mod:`~console.records.writer` (the thread itself), :mod:`~console.records.rows`
(row types and the per-second aggregator), :mod:`~console.records.checks`
(argument checks).
"""

from __future__ import annotations

import itertools
import json
import math
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

from console.common.facts import LIMBS, LOP_SOURCES, PATIENT_ID
from console.records.checks import finite, need, one_of, session_cuff_row, text
from console.records.database import Database
from console.records.reads import RecordReads
from console.records.rows import (
    END_REASONS,
    MAX_LOP_MMHG,
    PRIORITIES,
    RecordsError,
    SessionCuffRecord,
)
from console.records.schema import end_crashed_sessions
from console.records.writer import RecordsHealth, Write

T = TypeVar("T")


class Records(RecordReads):
    """The station's records; open with :meth:`open`, always :meth:`close`; the reads are in :class:`RecordReads`."""

    def __init__(self, db: Database) -> None:
        self.path = db.path
        self.readonly = db.readonly
        self._db = db
        conn = db.conn
        self._dropped_samples = 0
        self._patients: set[str] = {r[0] for r in conn.execute("SELECT id FROM patients")}
        self._open_sessions: dict[int, frozenset[str]] = {}
        self._ids: dict[str, itertools.count[int]] = {}
        for table in _INSERT_COLUMNS:
            (top,) = conn.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()
            self._ids[table] = itertools.count(top + 1)
        (self._first_session_id,) = conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM sessions").fetchone()
        self.recovered: tuple[int, ...] = ()
        """Sessions a crash had left open, ended by :meth:`recover` when these records were opened."""
        if not self.readonly:
            self.recovered = tuple(end_crashed_sessions(conn, self._first_session_id))
        db.start()

    # ---------------------------------------------------------------- open / close

    @classmethod
    def open(cls, data_dir: Path, *, readonly: bool = False, commit_interval_s: float = 0.2) -> Records:
        """Open (creating or migrating) ``<data_dir>/records.sqlite3`` and end sessions a crash left open.

        ``readonly`` opens for reports while a station may be writing: no lock, no recovery, no writes.
        Raises :class:`RecordsError` naming the path when the directory cannot be made, the file is
        not a database, it is newer than this program, or another process holds it for writing.
        """
        db = Database.open(data_dir, readonly=readonly, commit_interval_s=commit_interval_s)
        try:
            return cls(db)
        except sqlite3.Error as exc:
            db.abandon()
            raise RecordsError(f"cannot read the records {db.path}: {exc}") from exc

    def close(self) -> None:
        """Commit everything queued, checkpoint the WAL and release the file. Idempotent."""
        self._db.close()

    def __enter__(self) -> Records:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def flush(self, timeout: float = 30.0) -> None:
        """Block until everything queued so far is committed (tests, reports, shutdown)."""
        self._call(lambda conn: None, timeout)

    def health(self) -> RecordsHealth:
        return self._db.health(self._dropped_samples)

    # ---------------------------------------------------------------- writes

    def add_patient(self, patient_id: str, *, at: float, note: str = "") -> bool:
        """Register a pseudonymous patient id; True if new, False if already known (nothing changes)."""
        pid = self._patient_id(patient_id)
        at_ = need("at", at)
        text("note", note, empty=True)
        if pid in self._patients:
            return False
        self._patients.add(pid)
        self._put(Write("INSERT OR IGNORE INTO patients (id, created_at, note) VALUES (?, ?, ?)", (pid, at_, note)))
        return True

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
    ) -> int:
        """Store a LOP with everything it depends on (limb, position, cuff width); returns its id."""
        pid = self._known_patient(patient_id)
        row = (
            pid,
            text("cuff_id", cuff_id),
            one_of("limb", limb, LIMBS),
            text("label", label),
            text("position", position),
            finite("cuff_width_cm", cuff_width_cm, optional=True, low=1.0, high=60.0),
            need("lop_mmhg", lop_mmhg, low=1.0, high=MAX_LOP_MMHG),
            one_of("source", source, LOP_SOURCES),
            finite("confidence", confidence, optional=True, low=0.0, high=1.0),
            need("at", at),
        )
        return self._insert("lop_measurements", self._next_id("lop_measurements"), row)

    def assign_lop(self, lop_id: int, patient_id: str, *, from_patient: str) -> None:
        """File a LOP kept under ``from_patient`` (the ``unassigned`` placeholder) under the patient it was
        measured on, once the station learns who that is. A LOP already filed under someone else stays."""
        pid = self._known_patient(patient_id)
        self._writable()
        self._put(
            Write(
                "UPDATE lop_measurements SET patient_id = ? WHERE id = ? AND patient_id = ?",
                (pid, int(lop_id), text("from_patient", from_patient)),
                urgent=True,
            )
        )

    def start_session(
        self,
        patient_id: str,
        *,
        cuffs: Sequence[str],
        plan_id: str,
        plan_name: str,
        started_at: float,
        target_mmhg: float | None = None,
        target_pct_lop: float | None = None,
        lop_mmhg: float | None = None,
        position: str | None = None,
        per_cuff: Sequence[SessionCuffRecord] = (),
        sets_planned: int | None = None,
    ) -> int:
        """Open a session record; returns its id for :meth:`session_sample` and :meth:`end_session`.

        ``per_cuff``: each cuff's own LOP and target (a pair's two legs rarely share one LOP).
        """
        pid = self._known_patient(patient_id)
        if isinstance(cuffs, str) or not cuffs:
            raise RecordsError(f"cuffs must be a non-empty list of cuff ids, got {cuffs!r}")
        cuff_ids = tuple(text("cuff id", c) for c in cuffs)
        row = (
            pid,
            json.dumps(list(cuff_ids)),
            text("plan_id", plan_id),
            text("plan_name", plan_name),
            need("started_at", started_at),
            finite("target_mmhg", target_mmhg, optional=True, low=0.0, high=MAX_LOP_MMHG),
            finite("target_pct_lop", target_pct_lop, optional=True, low=0.0, high=150.0),
            finite("lop_mmhg", lop_mmhg, optional=True, low=1.0, high=MAX_LOP_MMHG),
            None if position is None else text("position", position),
        )
        cuff_rows = [session_cuff_row(x, cuff_ids) for x in per_cuff]
        if sets_planned is not None and (not isinstance(sets_planned, int) or sets_planned < 0):
            raise RecordsError(f"sets_planned must be a whole number >= 0, got {sets_planned!r}")
        sid = self._next_id("sessions")
        self._open_sessions[sid] = frozenset(cuff_ids)
        self._insert("sessions", sid, row)
        if sets_planned is not None:
            self._put(Write("UPDATE sessions SET sets_planned = ? WHERE id = ?", (sets_planned, sid)))
        for cuff_row in cuff_rows:
            self._put(
                Write(
                    "INSERT INTO session_cuffs (session_id, cuff_id, label, limb, target_mmhg, lop_mmhg, lop_id,"
                    " position, cuff_width_cm, tolerance_mmhg) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (sid, *cuff_row),
                    urgent=True,
                )
            )
        return sid

    def session_sample(
        self,
        session_id: int,
        cuff: str,
        t: float,
        pmin: float,
        pmean: float,
        pmax: float,
        target: float,
        in_band: float | None = None,
        *,
        t_end: float | None = None,
        held_s: float | None = None,
    ) -> bool:
        """Queue one second of one cuff (cheap: call it once a second per cuff from the loop).

        Returns False, and counts it in :meth:`health`, for garbage (non-finite or negative
        values, min > max); raises :class:`RecordsError` for a session that is not open here
        or a cuff it does not drive.
        """
        cuffs = self._open_sessions.get(session_id)
        if cuffs is None:
            raise RecordsError(f"session {session_id!r} is not open in these records")
        if cuff not in cuffs:
            raise RecordsError(f"cuff {cuff!r} is not part of session {session_id}")
        values = (t, pmin, pmean, pmax, target)
        try:
            ok = all(math.isfinite(v) for v in values) and min(pmin, pmean, pmax, target) >= -50.0
            ok = ok and pmin <= pmean <= pmax and (in_band is None or 0.0 <= in_band <= 1.0)
            ok = ok and (t_end is None or (math.isfinite(t_end) and t <= t_end < t + 1.0))
            ok = ok and (held_s is None or 0.0 <= held_s <= 1.0)
        except TypeError:
            ok = False
        if not ok:
            self._dropped_samples += 1
            return False
        self._put(
            Write(
                "INSERT OR REPLACE INTO session_samples"
                " (session_id, cuff_id, t, pmin, pmean, pmax, target, in_band, t_end, held_s)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    session_id,
                    cuff,
                    float(t),
                    float(pmin),
                    float(pmean),
                    float(pmax),
                    float(target),
                    None if in_band is None else float(in_band),
                    None if t_end is None else float(t_end),
                    None if held_s is None else float(held_s),
                ),
            )
        )
        return True

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
        """Close a session with its summary; ``fidelity`` is the share (0..1) of time within +-10 % of target.

        ``sets_stopped``: how many of ``sets_done`` were cut short; ``per_cuff``: cuff id ->
        (occlusion_s, fidelity) of each cuff.
        """
        if session_id not in self._open_sessions:
            raise RecordsError(f"session {session_id!r} is not open in these records")
        why = one_of("reason", reason, END_REASONS)
        if not isinstance(sets_done, int) or sets_done < 0:
            raise RecordsError(f"sets_done must be a whole number >= 0, got {sets_done!r}")
        if isinstance(reps_per_set, str) or not all(isinstance(r, int) and r >= 0 for r in reps_per_set):
            raise RecordsError(f"reps_per_set must be whole numbers >= 0, got {reps_per_set!r}")
        row = (
            need("ended_at", ended_at),
            why,
            sets_done,
            json.dumps(list(reps_per_set)),
            need("occlusion_s", occlusion_s, low=0.0),
            finite("fidelity", fidelity, optional=True, low=0.0, high=1.0),
        )
        if sets_stopped is not None and (not isinstance(sets_stopped, int) or not 0 <= sets_stopped <= sets_done):
            raise RecordsError(f"sets_stopped must be a whole number 0..sets_done, got {sets_stopped!r}")
        cuff_rows = [
            (
                need("occlusion_s", occ, low=0.0),
                finite("fidelity", fid, optional=True, low=0.0, high=1.0),
                session_id,
                c,
            )
            for c, (occ, fid) in (per_cuff or {}).items()
            if c in self._open_sessions[session_id]
        ]
        del self._open_sessions[session_id]
        for cuff_row in cuff_rows:
            self._put(
                Write(
                    "UPDATE session_cuffs SET occlusion_s = ?, fidelity = ? WHERE session_id = ? AND cuff_id = ?",
                    cuff_row,
                )
            )
        if sets_stopped is not None:
            self._put(Write("UPDATE sessions SET sets_stopped = ? WHERE id = ?", (sets_stopped, session_id)))
        self._put(
            Write(
                "UPDATE sessions SET ended_at = ?, end_reason = ?, sets_done = ?, reps_per_set = ?, occlusion_s = ?,"
                " fidelity = ? WHERE id = ?",
                (*row, session_id),
                urgent=True,
            )
        )

    def record_alarm(
        self,
        priority: str,
        cause: str,
        message: str,
        *,
        raised_at: float,
        cuff: str | None = None,
        controller: str | None = None,
    ) -> int:
        """Store a raised alarm (committed at once); returns the id for :meth:`update_alarm`."""
        row = (
            one_of("priority", priority, PRIORITIES),
            text("cause", cause),
            text("message", message),
            cuff,
            controller,
            need("raised_at", raised_at),
        )
        return self._insert("alarms", self._next_id("alarms"), row)

    def update_alarm(
        self,
        alarm_id: int,
        *,
        cleared_at: float | None = None,
        acknowledged_at: float | None = None,
        acknowledged_by: str | None = None,
    ) -> None:
        """Note that an alarm's condition cleared and/or that someone acknowledged it; None leaves a field as is."""
        if acknowledged_by is not None and acknowledged_at is None:
            raise RecordsError("acknowledged_by needs acknowledged_at")
        cleared = finite("cleared_at", cleared_at, optional=True)
        acked = finite("acknowledged_at", acknowledged_at, optional=True)
        self._writable()
        self._put(
            Write(
                "UPDATE alarms SET cleared_at = COALESCE(?, cleared_at), acknowledged_at = COALESCE(?, acknowledged_at),"
                " acknowledged_by = COALESCE(?, acknowledged_by) WHERE id = ?",
                (cleared, acked, acknowledged_by, int(alarm_id)),
                urgent=True,
            )
        )

    def record_emergency(
        self,
        *,
        at: float,
        by: str,
        confirmed: Sequence[str] = (),
        pending: Sequence[str] = (),
        latency_s: float | None = None,
    ) -> int:
        """Store an emergency deflate (committed at once); returns the id for :meth:`update_emergency`."""
        row = (
            need("at", at),
            text("by", by),
            json.dumps(list(confirmed)),
            json.dumps(list(pending)),
            finite("latency_s", latency_s, optional=True, low=0.0),
        )
        return self._insert("emergencies", self._next_id("emergencies"), row)

    def update_emergency(
        self, emergency_id: int, *, confirmed: Sequence[str], pending: Sequence[str], latency_s: float | None = None
    ) -> None:
        """Record more confirmations as controllers answer ``DEFLATE ALL``."""
        latency = finite("latency_s", latency_s, optional=True, low=0.0)
        self._writable()
        self._put(
            Write(
                "UPDATE emergencies SET confirmed = ?, pending = ?, latency_s = COALESCE(?, latency_s) WHERE id = ?",
                (json.dumps(list(confirmed)), json.dumps(list(pending)), latency, int(emergency_id)),
                urgent=True,
            )
        )

    def record_command(self, who: str, role: str, what: str, at: float) -> None:
        """Audit one command from any console (local or remote), e.g. ``inflate A1 80%``.

        Committed at once, like an alarm: the audit trail of who did what must survive the crash
        that may follow it.
        """
        role_text = role.value if isinstance(role, Enum) else role
        row = (need("at", at), text("who", who), text("role", role_text), text("what", what))
        self._writable()
        self._put(Write("INSERT INTO commands (at, who, role, what) VALUES (?, ?, ?, ?)", row, urgent=True))

    # ---------------------------------------------------------------- recovery

    def recover(self) -> tuple[int, ...]:
        """End sessions a crashed run left open: ended_at = their last sample, reason ``crash``.

        Runs by itself at :meth:`open`; sessions started through this object are never touched.
        Returns the ids it ended (none on a second call).
        """
        self._writable()
        return tuple(self._call(lambda conn: end_crashed_sessions(conn, self._first_session_id)))

    # ---------------------------------------------------------------- internals

    def _next_id(self, table: str) -> int:
        """Refuse on read-only records, else allocate the table's next id (in-process, so no write waits for it)."""
        self._writable()
        return next(self._ids[table])

    def _insert(self, table: str, row_id: int, row: tuple[Any, ...]) -> int:
        """Queue ``row`` under ``row_id`` into one of the id-allocated tables, committed at once; returns the id."""
        columns = _INSERT_COLUMNS[table]
        marks = ", ".join("?" * (len(row) + 1))
        self._put(Write(f"INSERT INTO {table} (id, {columns}) VALUES ({marks})", (row_id, *row), urgent=True))
        return row_id

    def _put(self, job: Write) -> None:
        self._db.put(job)

    def _call(self, fn: Callable[[sqlite3.Connection], T], timeout: float = 30.0) -> T:
        return self._db.call(fn, timeout)

    def _writable(self) -> None:
        self._db.writable()

    def _patient_id(self, patient_id: object) -> str:
        if not isinstance(patient_id, str) or not PATIENT_ID.fullmatch(patient_id):
            raise RecordsError(
                f"patient id must be a pseudonym of 1-64 letters, digits, '.', '_' or '-', got {patient_id!r}"
            )
        return patient_id

    def _known_patient(self, patient_id: object) -> str:
        pid = self._patient_id(patient_id)
        if pid not in self._patients:
            raise RecordsError(f"unknown patient {pid!r}: add_patient() first")
        return pid


_INSERT_COLUMNS = {
    "lop_measurements": "patient_id, cuff_id, limb, label, position, cuff_width_cm, lop_mmhg, source, confidence, at",
    "sessions": "patient_id, cuffs, plan_id, plan_name, started_at, target_mmhg, target_pct_lop, lop_mmhg, position",
    "alarms": "priority, cause, message, cuff_id, controller_id, raised_at",
    "emergencies": "at, by, confirmed, pending, latency_s",
}
"""The tables whose ids :class:`Records` allocates, and the columns an insert fills after ``id``, in row order."""
