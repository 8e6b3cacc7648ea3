"""The records file itself: its lock, its one connection and the writer thread that owns it.

Exactly one writer connection exists: a lock file keeps a second station off
the same directory, and inside the process a single writer thread
(:mod:`~console.records.writer`) owns the connection. Rows go in with
:meth:`Database.put` (queued, microseconds); reads and other calls with
:meth:`Database.call`, which runs on that thread after everything queued before
and blocks the caller until answered.

The queue is bounded, so a flood (or a writer stuck on a dying card) cannot take the
station's memory: past :data:`MAX_QUEUED` jobs a routine row (a per-second sample) is
dropped and counted, urgent rows (alarms, emergencies, commands, session ends) still get
:data:`URGENT_RESERVE` more places, and a read is refused. Dropped rows count as lost writes
in :meth:`Database.health`, which the station's records watch turns into an alarm.
"""

from __future__ import annotations

import logging
import os
import queue
import sqlite3
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from console.records.files import lock, private_database, private_dir
from console.records.rows import RecordsError
from console.records.schema import DB_NAME, connect
from console.records.writer import STOP, Call, RecordsHealth, Write, Writer

T = TypeVar("T")

log = logging.getLogger(__name__)

MAX_QUEUED = 20_000
"""Jobs waiting for the writer before routine rows and reads are refused (minutes of samples at 16 cuffs)."""
URGENT_RESERVE = 5_000
"""Places beyond :data:`MAX_QUEUED` kept for urgent rows only."""


class Database:
    """One open records file; :meth:`start` its writer thread once the setup reads are done, always :meth:`close`.

    Args:
        path: the database file.
        conn: its connection (used on the caller's thread only until :meth:`start`).
        lock_fd: the held lock file, or None (read-only).
        readonly: no lock, no writes.
        commit_interval_s: the writer commits at least this often.
    """

    def __init__(
        self, path: Path, conn: sqlite3.Connection, lock_fd: int | None, *, readonly: bool, commit_interval_s: float
    ) -> None:
        self.path = path
        self.readonly = readonly
        self.conn = conn
        self._lock_fd = lock_fd
        self.jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        self._writer = Writer(conn, self.jobs, commit_interval_s)
        self.overflowed = 0
        """Rows dropped because the queue was full."""

    @classmethod
    def open(cls, data_dir: Path, *, readonly: bool, commit_interval_s: float) -> Database:
        """Open (creating or migrating) ``<data_dir>/records.sqlite3``; see :meth:`Records.open`."""
        if not 0 < commit_interval_s <= 1.0:
            raise RecordsError(f"commit_interval_s must be in (0, 1] s, got {commit_interval_s!r}")
        data_dir = Path(data_dir)
        path = data_dir / DB_NAME
        lock_fd: int | None = None
        if not readonly:
            private_dir(data_dir)
            lock_fd = lock(path)
            try:
                private_database(path)
            except BaseException:
                os.close(lock_fd)
                raise
        elif not path.is_file():
            raise RecordsError(f"no records at {path}")
        try:
            conn = connect(path, readonly=readonly)
        except BaseException:
            if lock_fd is not None:
                os.close(lock_fd)
            raise
        return cls(path, conn, lock_fd, readonly=readonly, commit_interval_s=commit_interval_s)

    def start(self) -> None:
        """Hand the connection to the writer thread: from now on only it touches the connection."""
        self._writer.start()

    def abandon(self) -> None:
        """Close the connection and release the file when the setup failed (the writer never started)."""
        self.conn.close()
        self._release()

    def close(self) -> None:
        """Commit everything queued, checkpoint the WAL and release the file. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.jobs.put(STOP)
        self._writer.join()
        try:
            if not self.readonly:
                self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass  # a reader holds the WAL; the next open checkpoints it
        finally:
            self.conn.close()
            self._release()

    def _release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def health(self, dropped_samples: int) -> RecordsHealth:
        w = self._writer
        return RecordsHealth(
            queued=self.jobs.qsize(),
            commits=w.commits,
            failed_writes=w.failed + self.overflowed,
            dropped_samples=dropped_samples,
            last_error=w.last_error,
            writer_alive=w.is_alive(),
        )

    def writable(self) -> None:
        """Refuse on read-only records."""
        if self.readonly:
            raise RecordsError(f"records {self.path} are open read-only")

    def put(self, job: Write) -> None:
        """Queue a row for the writer thread; a full queue drops it (counted, never blocking the caller)."""
        self._live(why=True)
        if self.jobs.qsize() >= MAX_QUEUED + (URGENT_RESERVE if job.urgent else 0):
            self.overflowed += 1
            if self.overflowed & (self.overflowed - 1) == 0:  # the 1st, 2nd, 4th, 8th ... drop
                log.error(
                    "records: writer queue full (%d jobs); %d rows lost so far", self.jobs.qsize(), self.overflowed
                )
            return
        self.jobs.put(job)

    def call(self, fn: Callable[[sqlite3.Connection], T], timeout: float = 30.0) -> T:
        """Run ``fn`` on the writer thread after everything queued so far; its answer, or a RecordsError."""
        self._live(why=False)
        if self.jobs.qsize() >= MAX_QUEUED:
            raise RecordsError(
                f"the records writer for {self.path} is {self.jobs.qsize()} jobs behind; try again later"
            )
        fut: Future[T] = Future()
        self.jobs.put(Call(fn, fut))
        try:
            return fut.result(timeout)
        except sqlite3.Error as exc:
            raise RecordsError(f"reading {self.path} failed: {exc}") from exc
        except TimeoutError as exc:
            raise RecordsError(
                f"the records writer for {self.path} did not answer within {timeout:g} s"
                f" ({self._writer.last_error or 'busy'})"
            ) from exc

    def _live(self, *, why: bool) -> None:
        """Refuse once closed or once the writer thread has died (with its last error when ``why``)."""
        if self._closed:
            raise RecordsError(f"records {self.path} are closed")
        if not self._writer.is_alive():
            reason = f" ({self._writer.last_error})" if why else ""
            raise RecordsError(f"the records writer for {self.path} has stopped{reason}")
