"""The station's durable records: patients, LOP, sessions, alarms, emergencies, audit.

One SQLite file, ``<data_dir>/records.sqlite3``, in WAL mode with
``synchronous=FULL`` so that a commit survives kill -9 and a power cut (up to
what the SD card really syncs). Exactly one writer connection exists: a lock
file keeps a second station off the same directory, and inside the process a
single writer thread owns the connection.

Why a thread: the station calls these methods from its asyncio loop, and a
durable commit is an fsync (milliseconds on an SD card). Write methods only
validate their arguments and put a row on a queue (microseconds); the writer
thread batches rows into one transaction and commits at least every
``commit_interval_s`` (0.5 s by default), and at once after an alarm, an
emergency or a session start/end. So a kill -9 loses at most the last
``commit_interval_s`` of per-second samples. Ids that callers need back
(sessions, LOP, alarms, emergencies) are allocated here, in-process, so a write
never waits for the database to learn its id.

Reads (``sessions()``, ``alarms()``, ...) go through the same thread, after
every write queued before them, and block the caller until answered: they are
for screens and reports, not for the sample path.

Times are epoch seconds passed in by the caller; this module never reads the
wall clock for a record (only ``time.monotonic`` to pace its own commits).
"""

from __future__ import annotations

import fcntl
import itertools
import json
import math
import os
import queue
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

DB_NAME = "records.sqlite3"
"""The records file inside the station's data directory."""
LOCK_SUFFIX = ".lock"
SCHEMA_VERSION = 1
"""Stored in ``PRAGMA user_version``; bump it and append to ``_MIGRATIONS``."""

LIMBS = ("arm", "leg")
LOP_SOURCES = ("auto", "doppler", "manual")
END_REASONS = ("completed", "stopped", "emergency", "alarm", "crash")
PRIORITIES = ("high", "medium", "low")
MAX_LOP_MMHG = 400.0
"""No cuff goes near this; a larger LOP is a typo, not a measurement."""
FIDELITY_BAND = 0.10
"""Pressure fidelity counts time within +-10 % of target (Swain 2025)."""

_PATIENT_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
"""Pseudonymous ids only: no spaces, so a full name does not fit by accident."""

_MIGRATIONS: list[str] = [
    # 0 -> 1: the first schema.
    """
    CREATE TABLE patients (
        id          TEXT PRIMARY KEY,
        created_at  REAL NOT NULL,
        note        TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE lop_measurements (
        id            INTEGER PRIMARY KEY,
        patient_id    TEXT NOT NULL REFERENCES patients(id),
        cuff_id       TEXT NOT NULL,
        limb          TEXT NOT NULL CHECK (limb IN ('arm', 'leg')),
        label         TEXT NOT NULL,
        position      TEXT NOT NULL,
        cuff_width_cm REAL,
        lop_mmhg      REAL NOT NULL CHECK (lop_mmhg > 0),
        source        TEXT NOT NULL CHECK (source IN ('auto', 'doppler', 'manual')),
        confidence    REAL,
        at            REAL NOT NULL
    );
    CREATE INDEX lop_by_patient ON lop_measurements (patient_id, label, position, at);
    CREATE TABLE sessions (
        id             INTEGER PRIMARY KEY,
        patient_id     TEXT NOT NULL REFERENCES patients(id),
        cuffs          TEXT NOT NULL,
        plan_id        TEXT NOT NULL,
        plan_name      TEXT NOT NULL,
        started_at     REAL NOT NULL,
        ended_at       REAL,
        end_reason     TEXT CHECK (end_reason IN ('completed', 'stopped', 'emergency', 'alarm', 'crash')),
        sets_done      INTEGER,
        reps_per_set   TEXT,
        occlusion_s    REAL,
        fidelity       REAL,
        target_mmhg    REAL,
        target_pct_lop REAL,
        lop_mmhg       REAL,
        position       TEXT
    );
    CREATE INDEX sessions_by_patient ON sessions (patient_id, started_at);
    CREATE TABLE session_samples (
        session_id INTEGER NOT NULL REFERENCES sessions(id),
        cuff_id    TEXT NOT NULL,
        t          REAL NOT NULL,
        pmin       REAL NOT NULL,
        pmean      REAL NOT NULL,
        pmax       REAL NOT NULL,
        target     REAL NOT NULL,
        in_band    REAL,
        PRIMARY KEY (session_id, cuff_id, t)
    ) WITHOUT ROWID;
    CREATE TABLE alarms (
        id              INTEGER PRIMARY KEY,
        priority        TEXT NOT NULL CHECK (priority IN ('high', 'medium', 'low')),
        cause           TEXT NOT NULL,
        message         TEXT NOT NULL,
        cuff_id         TEXT,
        controller_id   TEXT,
        raised_at       REAL NOT NULL,
        cleared_at      REAL,
        acknowledged_at REAL,
        acknowledged_by TEXT
    );
    CREATE INDEX alarms_by_time ON alarms (raised_at);
    CREATE TABLE emergencies (
        id        INTEGER PRIMARY KEY,
        at        REAL NOT NULL,
        by        TEXT NOT NULL,
        confirmed TEXT NOT NULL,
        pending   TEXT NOT NULL,
        latency_s REAL
    );
    CREATE TABLE commands (
        id   INTEGER PRIMARY KEY,
        at   REAL NOT NULL,
        who  TEXT NOT NULL,
        role TEXT NOT NULL,
        what TEXT NOT NULL
    );
    CREATE INDEX commands_by_time ON commands (at);
    """,
]


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
    target_pct_lop: float | None
    lop_mmhg: float | None
    position: str | None

    @property
    def is_open(self) -> bool:
        return self.ended_at is None

    @property
    def duration_s(self) -> float | None:
        return None if self.ended_at is None else self.ended_at - self.started_at


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


@dataclass(frozen=True, slots=True)
class RecordsHealth:
    """For the station to raise an alarm when records stop being written."""

    queued: int
    """Rows waiting for the writer thread."""
    commits: int
    failed_writes: int
    """Rows the database refused (disk full, I/O error); they are lost, and counted here."""
    dropped_samples: int
    """Per-second samples with non-finite or negative values, dropped before writing."""
    last_error: str
    writer_alive: bool


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

    def row(self) -> tuple[float, float, float, float, float, float | None]:
        return (self.t, self.pmin, self.pmean, self.pmax, self.target, self.in_band)


class SecondAggregator:
    """Boils one cuff's 100 Hz samples down to one :class:`SecondSummary` per second.

    Why: the records keep a row per second, not per sample, so the station's loop
    writes 16 rows a second for 16 cuffs instead of 1,600.
    """

    __slots__ = ("_sec", "_n", "_sum", "_min", "_max", "_target", "_held", "_in_band", "dropped")

    def __init__(self) -> None:
        self._sec: float | None = None
        self._reset()
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

    def add(self, t: float, pressure: float, target: float) -> SecondSummary | None:
        """Add a sample taken at wall time ``t``; returns the previous second's summary when ``t`` starts a new one."""
        if not (math.isfinite(t) and math.isfinite(pressure) and math.isfinite(target)):
            self.dropped += 1
            return None
        sec = float(math.floor(t))
        out = None
        if self._sec is not None and sec != self._sec:
            out = self.flush()
        self._sec = sec
        self._n += 1
        self._sum += pressure
        self._min = min(self._min, pressure)
        self._max = max(self._max, pressure)
        self._target = target
        if target > 0:
            self._held += 1
            if abs(pressure - target) <= FIDELITY_BAND * target:
                self._in_band += 1
        return out

    def flush(self) -> SecondSummary | None:
        """The summary of the second in progress (at session end), or None if it has no samples."""
        if self._sec is None or self._n == 0:
            return None
        out = SecondSummary(
            t=self._sec,
            pmin=self._min,
            pmean=self._sum / self._n,
            pmax=self._max,
            target=self._target,
            in_band=self._in_band / self._held if self._held else None,
        )
        self._sec = None
        self._reset()
        return out


# --------------------------------------------------------------------------- writer


@dataclass(slots=True)
class _Write:
    sql: str
    params: tuple[Any, ...]
    urgent: bool = False
    """Commit at once (alarms, emergencies, session start/end) rather than at the next interval."""


@dataclass(slots=True)
class _Call:
    """Run ``fn`` on the connection after committing everything queued before it."""

    fn: Callable[[sqlite3.Connection], Any]
    future: Future[Any]


_STOP = object()


class _Writer(threading.Thread):
    """The only thread that touches the connection once the records are open."""

    def __init__(self, conn: sqlite3.Connection, jobs: queue.SimpleQueue[Any], interval_s: float) -> None:
        super().__init__(name="records-writer", daemon=True)
        self.conn = conn
        self.jobs = jobs
        self.interval_s = interval_s
        self.batch: list[_Write] = []
        self.batch_started = 0.0
        self.commits = 0
        self.failed = 0
        self.last_error = ""

    def run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # noqa: BLE001 - a dead writer must say why; _put() then refuses
            self.last_error = f"writer stopped: {type(exc).__name__}: {exc}"
            raise

    def _loop(self) -> None:
        while True:
            timeout = None
            if self.batch:
                timeout = max(0.0, self.batch_started + self.interval_s - time.monotonic())
            try:
                job = self.jobs.get(timeout=timeout)
            except queue.Empty:
                self._commit()
                continue
            if job is _STOP:
                self._commit()
                return
            if isinstance(job, _Write):
                self._write(job)
                if job.urgent or time.monotonic() - self.batch_started >= self.interval_s:
                    self._commit()
            elif isinstance(job, _Call):
                self._commit()
                if not job.future.set_running_or_notify_cancel():
                    continue
                try:
                    job.future.set_result(job.fn(self.conn))
                except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
                    job.future.set_exception(exc)

    def _write(self, job: _Write) -> None:
        if not self.batch:
            self.batch_started = time.monotonic()
        try:
            if not self.conn.in_transaction:
                self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute(job.sql, job.params)
            self.batch.append(job)
        except sqlite3.Error as exc:
            self._failed(1, exc)
            if not self.conn.in_transaction and self.batch:
                # The error rolled the whole transaction back: replay the rest alone.
                self._replay()

    def _commit(self) -> None:
        if not self.batch:
            return
        try:
            self.conn.commit()
            self.commits += 1
            self.batch.clear()
        except sqlite3.Error as exc:
            self.last_error = f"commit failed: {exc}"
            self._rollback()
            self._replay()

    def _replay(self) -> None:
        """Write each row of a failed batch in its own transaction; count the ones that still fail."""
        rows, self.batch = self.batch, []
        for job in rows:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                self.conn.execute(job.sql, job.params)
                self.conn.commit()
                self.commits += 1
            except sqlite3.Error as exc:
                self._failed(1, exc)
                self._rollback()

    def _rollback(self) -> None:
        try:
            if self.conn.in_transaction:
                self.conn.rollback()
        except sqlite3.Error:
            pass

    def _failed(self, n: int, exc: BaseException) -> None:
        self.failed += n
        self.last_error = f"{type(exc).__name__}: {exc}"


# --------------------------------------------------------------------------- the records


def _finite(name: str, value: float | None, *, optional: bool = False, low: float | None = None,
            high: float | None = None) -> float | None:
    if value is None:
        if optional:
            return None
        raise RecordsError(f"{name} is required")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise RecordsError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise RecordsError(f"{name} must be finite, got {value!r}")
    if low is not None and v < low:
        raise RecordsError(f"{name} must be at least {low:g}, got {v:g}")
    if high is not None and v > high:
        raise RecordsError(f"{name} must be at most {high:g}, got {v:g}")
    return v


def _need(name: str, value: float | None, **kw: Any) -> float:
    v = _finite(name, value, **kw)
    assert v is not None
    return v


def _text(name: str, value: object, *, empty: bool = False) -> str:
    if not isinstance(value, str) or (not empty and not value.strip()):
        raise RecordsError(f"{name} must be a non-empty string, got {value!r}")
    return value


def _one_of(name: str, value: object, allowed: Sequence[str]) -> str:
    # Accept str-valued enums (api.Priority, api.Role) as their value.
    text = getattr(value, "value", value)
    if text not in allowed:
        raise RecordsError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return str(text)


class Records:
    """The station's records; open with :meth:`open`, always :meth:`close`."""

    def __init__(self, path: Path, conn: sqlite3.Connection, lock_fd: int | None, *, readonly: bool,
                 commit_interval_s: float) -> None:
        self.path = path
        self.readonly = readonly
        self._conn = conn
        self._lock_fd = lock_fd
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        self._dropped_samples = 0
        self._patients: set[str] = {r[0] for r in conn.execute("SELECT id FROM patients")}
        self._open_sessions: dict[int, frozenset[str]] = {}
        self._ids: dict[str, itertools.count[int]] = {}
        for table in ("lop_measurements", "sessions", "alarms", "emergencies"):
            (top,) = conn.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()
            self._ids[table] = itertools.count(top + 1)
        (self._first_session_id,) = conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM sessions").fetchone()
        self.recovered: tuple[int, ...] = ()
        """Sessions a crash had left open, ended by :meth:`recover` when these records were opened."""
        if not readonly:
            self.recovered = tuple(_recover(conn, self._first_session_id))
        self._writer = _Writer(conn, self._jobs, commit_interval_s)
        self._writer.start()

    # ---------------------------------------------------------------- open / close

    @classmethod
    def open(cls, data_dir: Path, *, readonly: bool = False, commit_interval_s: float = 0.5) -> Records:
        """Open (creating or migrating) ``<data_dir>/records.sqlite3`` and end sessions a crash left open.

        ``readonly`` opens for reports while a station may be writing: no lock, no recovery, no writes.
        Raises :class:`RecordsError` naming the path when the directory cannot be made, the file is
        not a database, it is newer than this program, or another process holds it for writing.
        """
        if not 0 < commit_interval_s <= 1.0:
            raise RecordsError(f"commit_interval_s must be in (0, 1] s, got {commit_interval_s!r}")
        data_dir = Path(data_dir)
        path = data_dir / DB_NAME
        lock_fd: int | None = None
        if not readonly:
            try:
                data_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise RecordsError(f"cannot create the records directory {data_dir}: {exc.strerror or exc}") from exc
            lock_fd = _lock(path)
        elif not path.is_file():
            raise RecordsError(f"no records at {path}")
        try:
            conn = _connect(path, readonly=readonly)
        except BaseException:
            if lock_fd is not None:
                os.close(lock_fd)
            raise
        try:
            return cls(path, conn, lock_fd, readonly=readonly, commit_interval_s=commit_interval_s)
        except sqlite3.Error as exc:
            conn.close()
            if lock_fd is not None:
                os.close(lock_fd)
            raise RecordsError(f"cannot read the records {path}: {exc}") from exc

    def close(self) -> None:
        """Commit everything queued, checkpoint the WAL and release the file. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._jobs.put(_STOP)
        self._writer.join()
        try:
            if not self.readonly:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass  # a reader holds the WAL; the next open checkpoints it
        finally:
            self._conn.close()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def __enter__(self) -> Records:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def flush(self, timeout: float = 30.0) -> None:
        """Block until everything queued so far is committed (tests, reports, shutdown)."""
        self._call(lambda conn: None, timeout)

    def health(self) -> RecordsHealth:
        w = self._writer
        return RecordsHealth(
            queued=self._jobs.qsize(),
            commits=w.commits,
            failed_writes=w.failed,
            dropped_samples=self._dropped_samples,
            last_error=w.last_error,
            writer_alive=w.is_alive(),
        )

    # ---------------------------------------------------------------- writes

    def add_patient(self, patient_id: str, *, at: float, note: str = "") -> bool:
        """Register a pseudonymous patient id; True if new, False if already known (nothing changes)."""
        pid = self._patient_id(patient_id)
        at_ = _need("at", at)
        _text("note", note, empty=True)
        if pid in self._patients:
            return False
        self._patients.add(pid)
        self._put(_Write("INSERT OR IGNORE INTO patients (id, created_at, note) VALUES (?, ?, ?)", (pid, at_, note)))
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
            _text("cuff_id", cuff_id),
            _one_of("limb", limb, LIMBS),
            _text("label", label),
            _text("position", position),
            _finite("cuff_width_cm", cuff_width_cm, optional=True, low=1.0, high=60.0),
            _need("lop_mmhg", lop_mmhg, low=1.0, high=MAX_LOP_MMHG),
            _one_of("source", source, LOP_SOURCES),
            _finite("confidence", confidence, optional=True, low=0.0, high=1.0),
            _need("at", at),
        )
        self._writable()
        lop_id = next(self._ids["lop_measurements"])
        self._put(_Write(
            "INSERT INTO lop_measurements (id, patient_id, cuff_id, limb, label, position, cuff_width_cm,"
            " lop_mmhg, source, confidence, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (lop_id, *row),
            urgent=True,
        ))
        return lop_id

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
    ) -> int:
        """Open a session record; returns its id for :meth:`session_sample` and :meth:`end_session`."""
        pid = self._known_patient(patient_id)
        if isinstance(cuffs, str) or not cuffs:
            raise RecordsError(f"cuffs must be a non-empty list of cuff ids, got {cuffs!r}")
        cuff_ids = tuple(_text("cuff id", c) for c in cuffs)
        row = (
            pid,
            json.dumps(list(cuff_ids)),
            _text("plan_id", plan_id),
            _text("plan_name", plan_name),
            _need("started_at", started_at),
            _finite("target_mmhg", target_mmhg, optional=True, low=0.0, high=MAX_LOP_MMHG),
            _finite("target_pct_lop", target_pct_lop, optional=True, low=0.0, high=150.0),
            _finite("lop_mmhg", lop_mmhg, optional=True, low=1.0, high=MAX_LOP_MMHG),
            None if position is None else _text("position", position),
        )
        self._writable()
        sid = next(self._ids["sessions"])
        self._open_sessions[sid] = frozenset(cuff_ids)
        self._put(_Write(
            "INSERT INTO sessions (id, patient_id, cuffs, plan_id, plan_name, started_at, target_mmhg,"
            " target_pct_lop, lop_mmhg, position) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (sid, *row),
            urgent=True,
        ))
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
        except TypeError:
            ok = False
        if not ok:
            self._dropped_samples += 1
            return False
        self._put(_Write(
            "INSERT OR REPLACE INTO session_samples (session_id, cuff_id, t, pmin, pmean, pmax, target, in_band)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (session_id, cuff, float(t), float(pmin), float(pmean), float(pmax), float(target),
             None if in_band is None else float(in_band)),
        ))
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
    ) -> None:
        """Close a session with its summary; ``fidelity`` is the share (0..1) of time within +-10 % of target."""
        if session_id not in self._open_sessions:
            raise RecordsError(f"session {session_id!r} is not open in these records")
        why = _one_of("reason", reason, END_REASONS)
        if not isinstance(sets_done, int) or sets_done < 0:
            raise RecordsError(f"sets_done must be a whole number >= 0, got {sets_done!r}")
        if isinstance(reps_per_set, str) or not all(isinstance(r, int) and r >= 0 for r in reps_per_set):
            raise RecordsError(f"reps_per_set must be whole numbers >= 0, got {reps_per_set!r}")
        row = (
            _need("ended_at", ended_at),
            why,
            sets_done,
            json.dumps(list(reps_per_set)),
            _need("occlusion_s", occlusion_s, low=0.0),
            _finite("fidelity", fidelity, optional=True, low=0.0, high=1.0),
        )
        del self._open_sessions[session_id]
        self._put(_Write(
            "UPDATE sessions SET ended_at = ?, end_reason = ?, sets_done = ?, reps_per_set = ?, occlusion_s = ?,"
            " fidelity = ? WHERE id = ?",
            (*row, session_id),
            urgent=True,
        ))

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
            _one_of("priority", priority, PRIORITIES),
            _text("cause", cause),
            _text("message", message),
            cuff,
            controller,
            _need("raised_at", raised_at),
        )
        self._writable()
        alarm_id = next(self._ids["alarms"])
        self._put(_Write(
            "INSERT INTO alarms (id, priority, cause, message, cuff_id, controller_id, raised_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (alarm_id, *row),
            urgent=True,
        ))
        return alarm_id

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
        cleared = _finite("cleared_at", cleared_at, optional=True)
        acked = _finite("acknowledged_at", acknowledged_at, optional=True)
        self._writable()
        self._put(_Write(
            "UPDATE alarms SET cleared_at = COALESCE(?, cleared_at), acknowledged_at = COALESCE(?, acknowledged_at),"
            " acknowledged_by = COALESCE(?, acknowledged_by) WHERE id = ?",
            (cleared, acked, acknowledged_by, int(alarm_id)),
            urgent=True,
        ))

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
            _need("at", at),
            _text("by", by),
            json.dumps(list(confirmed)),
            json.dumps(list(pending)),
            _finite("latency_s", latency_s, optional=True, low=0.0),
        )
        self._writable()
        emergency_id = next(self._ids["emergencies"])
        self._put(_Write(
            "INSERT INTO emergencies (id, at, by, confirmed, pending, latency_s) VALUES (?, ?, ?, ?, ?, ?)",
            (emergency_id, *row),
            urgent=True,
        ))
        return emergency_id

    def update_emergency(
        self, emergency_id: int, *, confirmed: Sequence[str], pending: Sequence[str], latency_s: float | None = None
    ) -> None:
        """Record more confirmations as controllers answer ``DEFLATE ALL``."""
        latency = _finite("latency_s", latency_s, optional=True, low=0.0)
        self._writable()
        self._put(_Write(
            "UPDATE emergencies SET confirmed = ?, pending = ?, latency_s = COALESCE(?, latency_s) WHERE id = ?",
            (json.dumps(list(confirmed)), json.dumps(list(pending)), latency, int(emergency_id)),
            urgent=True,
        ))

    def record_command(self, who: str, role: str, what: str, at: float) -> None:
        """Audit one command from any console (local or remote), e.g. ``inflate A1 80%``."""
        row = (_need("at", at), _text("who", who), _text("role", getattr(role, "value", role)), _text("what", what))
        self._writable()
        self._put(_Write("INSERT INTO commands (at, who, role, what) VALUES (?, ?, ?, ?)", row))

    # ---------------------------------------------------------------- recovery

    def recover(self) -> tuple[int, ...]:
        """End sessions a crashed run left open: ended_at = their last sample, reason ``crash``.

        Runs by itself at :meth:`open`; sessions started through this object are never touched.
        Returns the ids it ended (none on a second call).
        """
        self._writable()
        return tuple(self._call(lambda conn: _recover(conn, self._first_session_id)))

    # ---------------------------------------------------------------- reads

    def patients(self) -> list[Patient]:
        return self._call(lambda c: [Patient(*r) for r in c.execute("SELECT id, created_at, note FROM patients ORDER BY id")])

    def lops(self, patient_id: str) -> list[LopRecord]:
        """Every LOP of a patient, newest first."""
        return self._call(lambda c: [_lop(r) for r in c.execute(
            f"SELECT {_LOP_COLS} FROM lop_measurements WHERE patient_id = ? ORDER BY at DESC, id DESC", (patient_id,))])

    def latest_lop(self, patient_id: str, label: str, position: str) -> LopRecord | None:
        """The newest LOP for this patient, cuff site (``label`` or limb) and body position."""
        def q(c: sqlite3.Connection) -> LopRecord | None:
            row = c.execute(
                f"SELECT {_LOP_COLS} FROM lop_measurements WHERE patient_id = ? AND (label = ? OR limb = ?)"
                " AND position = ? ORDER BY at DESC, id DESC LIMIT 1",
                (patient_id, label, label, position),
            ).fetchone()
            return None if row is None else _lop(row)
        return self._call(q)

    def session(self, session_id: int) -> SessionRecord | None:
        def q(c: sqlite3.Connection) -> SessionRecord | None:
            row = c.execute(f"SELECT {_SESSION_COLS} FROM sessions WHERE id = ?", (session_id,)).fetchone()
            return None if row is None else _session(row)
        return self._call(q)

    def sessions(self, patient_id: str | None = None) -> list[SessionRecord]:
        """Sessions, oldest first; of one patient when given."""
        def q(c: sqlite3.Connection) -> list[SessionRecord]:
            if patient_id is None:
                rows = c.execute(f"SELECT {_SESSION_COLS} FROM sessions ORDER BY started_at, id")
            else:
                rows = c.execute(
                    f"SELECT {_SESSION_COLS} FROM sessions WHERE patient_id = ? ORDER BY started_at, id", (patient_id,))
            return [_session(r) for r in rows]
        return self._call(q)

    def samples(self, session_id: int, cuff: str | None = None) -> list[SampleRecord]:
        """A session's per-second samples in time order (then by cuff)."""
        def q(c: sqlite3.Connection) -> list[SampleRecord]:
            sql = ("SELECT session_id, cuff_id, t, pmin, pmean, pmax, target, in_band FROM session_samples"
                   " WHERE session_id = ?")
            args: tuple[Any, ...] = (session_id,)
            if cuff is not None:
                sql += " AND cuff_id = ?"
                args += (cuff,)
            return [SampleRecord(*r) for r in c.execute(sql + " ORDER BY t, cuff_id", args)]
        return self._call(q)

    def alarms(self, since: float | None = None, until: float | None = None) -> list[AlarmRecord]:
        """Alarms raised in [since, until], oldest first."""
        lo = -math.inf if since is None else since
        hi = math.inf if until is None else until
        return self._call(lambda c: [AlarmRecord(*r) for r in c.execute(
            "SELECT id, priority, cause, message, cuff_id, controller_id, raised_at, cleared_at, acknowledged_at,"
            " acknowledged_by FROM alarms WHERE raised_at >= ? AND raised_at <= ? ORDER BY raised_at, id", (lo, hi))])

    def emergencies(self, since: float | None = None, until: float | None = None) -> list[EmergencyRecord]:
        lo = -math.inf if since is None else since
        hi = math.inf if until is None else until
        return self._call(lambda c: [
            EmergencyRecord(r[0], r[1], r[2], tuple(json.loads(r[3])), tuple(json.loads(r[4])), r[5])
            for r in c.execute("SELECT id, at, by, confirmed, pending, latency_s FROM emergencies"
                               " WHERE at >= ? AND at <= ? ORDER BY at, id", (lo, hi))])

    def commands(self, since: float | None = None) -> list[CommandRecord]:
        lo = -math.inf if since is None else since
        return self._call(lambda c: [CommandRecord(*r) for r in c.execute(
            "SELECT id, at, who, role, what FROM commands WHERE at >= ? ORDER BY at, id", (lo,))])

    def pragma(self, name: str) -> Any:
        """One PRAGMA's value, for tests and diagnostics (``journal_mode``, ``synchronous``, ...)."""
        if not re.fullmatch(r"[a-z_]+", name):
            raise RecordsError(f"not a pragma name: {name!r}")
        return self._call(lambda c: c.execute(f"PRAGMA {name}").fetchone()[0])

    # ---------------------------------------------------------------- internals

    def _put(self, job: _Write) -> None:
        if self._closed:
            raise RecordsError(f"records {self.path} are closed")
        if not self._writer.is_alive():
            raise RecordsError(f"the records writer for {self.path} has stopped ({self._writer.last_error})")
        self._jobs.put(job)

    def _call(self, fn: Callable[[sqlite3.Connection], T], timeout: float = 30.0) -> T:
        if self._closed:
            raise RecordsError(f"records {self.path} are closed")
        if not self._writer.is_alive():
            raise RecordsError(f"the records writer for {self.path} has stopped")
        fut: Future[T] = Future()
        self._jobs.put(_Call(fn, fut))
        try:
            return fut.result(timeout)
        except sqlite3.Error as exc:
            raise RecordsError(f"reading {self.path} failed: {exc}") from exc
        except TimeoutError as exc:
            raise RecordsError(
                f"the records writer for {self.path} did not answer within {timeout:g} s"
                f" ({self._writer.last_error or 'busy'})") from exc

    def _writable(self) -> None:
        if self.readonly:
            raise RecordsError(f"records {self.path} are open read-only")

    def _patient_id(self, patient_id: object) -> str:
        if not isinstance(patient_id, str) or not _PATIENT_ID.fullmatch(patient_id):
            raise RecordsError(
                f"patient id must be a pseudonym of 1-64 letters, digits, '.', '_' or '-', got {patient_id!r}")
        return patient_id

    def _known_patient(self, patient_id: object) -> str:
        pid = self._patient_id(patient_id)
        if pid not in self._patients:
            raise RecordsError(f"unknown patient {pid!r}: add_patient() first")
        return pid


_LOP_COLS = "id, patient_id, cuff_id, limb, label, position, cuff_width_cm, lop_mmhg, source, confidence, at"
_SESSION_COLS = ("id, patient_id, cuffs, plan_id, plan_name, started_at, ended_at, end_reason, sets_done, reps_per_set,"
                 " occlusion_s, fidelity, target_mmhg, target_pct_lop, lop_mmhg, position")


def _lop(row: Sequence[Any]) -> LopRecord:
    return LopRecord(*row)


def _session(r: Sequence[Any]) -> SessionRecord:
    return SessionRecord(
        id=r[0], patient_id=r[1], cuffs=tuple(json.loads(r[2])), plan_id=r[3], plan_name=r[4], started_at=r[5],
        ended_at=r[6], end_reason=r[7], sets_done=r[8], reps_per_set=tuple(json.loads(r[9] or "[]")),
        occlusion_s=r[10], fidelity=r[11], target_mmhg=r[12], target_pct_lop=r[13], lop_mmhg=r[14], position=r[15],
    )


def _lock(path: Path) -> int:
    """Hold an exclusive lock beside the database: one writing process per file."""
    lock_path = path.with_name(path.name + LOCK_SUFFIX)
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o660)
    except OSError as exc:
        raise RecordsError(f"cannot create the lock {lock_path}: {exc.strerror or exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        raise RecordsError(f"records {path} are already open for writing by another process") from exc
    return fd


def _connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    """Connect, check it is a database we understand, set durability and migrate the schema."""
    try:
        if readonly:
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None,
                                   check_same_thread=False)
        else:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise RecordsError(f"cannot open the records {path}: {exc}") from exc
    try:
        conn.execute("PRAGMA busy_timeout = 5000")
        version = conn.execute("PRAGMA user_version").fetchone()[0]  # reads the header: fails on a non-database
        if version > SCHEMA_VERSION:
            raise RecordsError(f"records {path} have schema {version}, newer than this program ({SCHEMA_VERSION})")
        if not readonly:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise RecordsError(f"records {path}: WAL journal mode refused (got {mode!r})")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        if readonly:
            if version != SCHEMA_VERSION:
                raise RecordsError(f"records {path} have schema {version}; open them once for writing to migrate")
        else:
            _migrate(conn, version)
        return conn
    except sqlite3.Error as exc:
        conn.close()
        raise RecordsError(f"records {path} are not a usable database: {exc}") from exc
    except BaseException:
        conn.close()
        raise


def _migrate(conn: sqlite3.Connection, version: int) -> None:
    """Run each migration from ``version`` up, each in its own transaction with its version bump."""
    if version == 0:
        # A version-0 file must be empty: never build our tables beside someone else's.
        (count,) = conn.execute("SELECT COUNT(*) FROM sqlite_schema").fetchone()
        if count:
            raise RecordsError("the file holds tables that are not station records")
    for v in range(version, SCHEMA_VERSION):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(_MIGRATIONS[v]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {v + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def _statements(script: str) -> list[str]:
    """Split a migration on ';' (our scripts hold no ';' inside strings) so it can run inside BEGIN."""
    return [s.strip() for s in script.split(";") if s.strip()]


def _recover(conn: sqlite3.Connection, before_id: int) -> list[int]:
    """End open sessions with id < ``before_id`` at their last sample, reason ``crash``, with estimated figures."""
    ids = [r[0] for r in conn.execute(
        "SELECT id FROM sessions WHERE ended_at IS NULL AND id < ? ORDER BY id", (before_id,))]
    if not ids:
        return []
    conn.execute("BEGIN IMMEDIATE")
    try:
        for sid in ids:
            last_t, occluded, fidelity = conn.execute(
                """
                SELECT MAX(t),
                       COUNT(DISTINCT CASE WHEN target > 0 THEN t END),
                       AVG(CASE WHEN target > 0 THEN COALESCE(in_band, ABS(pmean - target) <= ? * target) END)
                FROM session_samples WHERE session_id = ?
                """,
                (FIDELITY_BAND, sid),
            ).fetchone()
            conn.execute(
                "UPDATE sessions SET ended_at = COALESCE(?, started_at), end_reason = 'crash', occlusion_s = ?,"
                " fidelity = ? WHERE id = ?",
                (last_t, float(occluded), fidelity, sid),
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return ids
