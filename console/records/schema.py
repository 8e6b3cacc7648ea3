"""The records file itself: connection PRAGMAs, schema version, migrations and crash recovery.

Why apart from the facade: everything here runs once, on the opening thread, before
the writer thread owns the connection; it decides whether a file is ours, makes it
durable (WAL, ``synchronous=FULL``) and brings it to :data:`SCHEMA_VERSION`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from console.common.facts import FIDELITY_BAND
from console.records.rows import RecordsError

DB_NAME = "records.sqlite3"
"""The records file inside the station's data directory."""
SCHEMA_VERSION = 3
"""Stored in ``PRAGMA user_version``; bump it and append to ``MIGRATIONS``."""

MIGRATIONS: list[str] = [
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
    # 1 -> 2: where a crashed second really ended and how much of it was under occlusion; each cuff of a
    # session with its own LOP and target; sets planned and the set cut short.
    """
    ALTER TABLE session_samples ADD COLUMN t_end REAL;
    ALTER TABLE session_samples ADD COLUMN held_s REAL;
    ALTER TABLE sessions ADD COLUMN sets_planned INTEGER;
    ALTER TABLE sessions ADD COLUMN sets_stopped INTEGER;
    CREATE TABLE session_cuffs (
        session_id    INTEGER NOT NULL REFERENCES sessions(id),
        cuff_id       TEXT NOT NULL,
        label         TEXT NOT NULL,
        limb          TEXT NOT NULL,
        lop_mmhg      REAL,
        lop_id        INTEGER,
        position      TEXT,
        cuff_width_cm REAL,
        target_mmhg   REAL NOT NULL,
        occlusion_s   REAL,
        fidelity      REAL,
        PRIMARY KEY (session_id, cuff_id)
    ) WITHOUT ROWID;
    CREATE INDEX lop_by_cuff ON lop_measurements (cuff_id, at)
    """,
    # 2 -> 3: the off-target alarm band each cuff ran with (the session's plots draw it).
    """
    ALTER TABLE session_cuffs ADD COLUMN tolerance_mmhg REAL
    """,
]


def connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    """Connect, check it is a database we understand, set durability and migrate the schema."""
    try:
        if readonly:
            conn = sqlite3.connect(
                f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
            )
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
            migrate(conn, version)
        return conn
    except sqlite3.Error as exc:
        conn.close()
        raise RecordsError(f"records {path} are not a usable database: {exc}") from exc
    except BaseException:
        conn.close()
        raise


def migrate(conn: sqlite3.Connection, version: int) -> None:
    """Run each migration from ``version`` up, each in its own transaction with its version bump."""
    if version == 0:
        # A version-0 file must be empty: never build our tables beside someone else's.
        (count,) = conn.execute("SELECT COUNT(*) FROM sqlite_schema").fetchone()
        if count:
            raise RecordsError("the file holds tables that are not station records")
    for v in range(version, SCHEMA_VERSION):
        with _transaction(conn):
            for statement in statements(MIGRATIONS[v]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {v + 1}")


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` .. ``COMMIT``, rolled back on any exception (the connection is in autocommit mode)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def statements(script: str) -> list[str]:
    """Split a migration on ';' (our scripts hold no ';' inside strings) so it can run inside BEGIN."""
    return [s.strip() for s in script.split(";") if s.strip()]


def end_crashed_sessions(conn: sqlite3.Connection, before_id: int) -> list[int]:
    """End open sessions with id < ``before_id`` at their last sample, reason ``crash``, with estimated figures.

    The end is the newest sample's own time (``t_end``), and the time under occlusion per cuff the sum of
    its rows' ``held_s``: both come from the same samples, so the occlusion never exceeds the duration.
    Rows from before schema 2 (no ``t_end``) count whole seconds, as they always did.
    """
    ids = [
        r[0]
        for r in conn.execute("SELECT id FROM sessions WHERE ended_at IS NULL AND id < ? ORDER BY id", (before_id,))
    ]
    if not ids:
        return []
    with _transaction(conn):
        for sid in ids:
            per_cuff = conn.execute(
                """
                SELECT cuff_id,
                       MAX(COALESCE(t_end, t)),
                       SUM(CASE WHEN target > 0 THEN COALESCE(held_s, 1.0) ELSE 0 END),
                       SUM(CASE WHEN target > 0 THEN COALESCE(held_s, 1.0)
                                * COALESCE(in_band, ABS(pmean - target) <= ? * target) END)
                FROM session_samples WHERE session_id = ? GROUP BY cuff_id
                """,
                (FIDELITY_BAND, sid),
            ).fetchall()
            ends = [r[1] for r in per_cuff if r[1] is not None]
            held = sum(r[2] or 0.0 for r in per_cuff)
            within = sum(r[3] or 0.0 for r in per_cuff)
            occluded = max((r[2] or 0.0 for r in per_cuff), default=0.0)
            conn.execute(
                "UPDATE sessions SET ended_at = COALESCE(?, started_at), end_reason = 'crash', occlusion_s = ?,"
                " fidelity = ? WHERE id = ?",
                (max(ends) if ends else None, float(occluded), within / held if held > 0 else None, sid),
            )
            for cuff_id, _, cuff_held, cuff_within in per_cuff:
                conn.execute(
                    "UPDATE session_cuffs SET occlusion_s = ?, fidelity = ? WHERE session_id = ? AND cuff_id = ?",
                    (cuff_held or 0.0, cuff_within / cuff_held if cuff_held else None, sid, cuff_id),
                )
    return ids
