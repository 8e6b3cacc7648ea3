"""The records' single writer thread: it owns the SQLite connection and batches commits.

Why a thread: the station calls the records from its asyncio loop, and a durable
commit is an fsync (milliseconds on an SD card). Callers only put a :class:`Write`
on a queue (microseconds); the thread batches rows into one transaction and commits
at least every ``interval_s``, and at once after an urgent row (alarm, emergency,
command, session start/end). A :class:`Call` (a read) runs after everything queued before it.
A row the database refuses is counted and lost, never retried for ever; the other
rows of its batch are replayed one by one so they are not lost with it.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from console.common.os_thread import reset_os_priority


@dataclass(frozen=True, slots=True)
class RecordsHealth:
    """For the station to raise an alarm when records stop being written."""

    queued: int
    """Rows waiting for the writer thread."""
    commits: int
    failed_writes: int
    """Rows lost: refused by the database (disk full, I/O error) or dropped by a full queue; counted here."""
    dropped_samples: int
    """Per-second samples with non-finite or negative values, dropped before writing."""
    last_error: str
    writer_alive: bool


@dataclass(slots=True)
class Write:
    sql: str
    params: tuple[Any, ...]
    urgent: bool = False
    """Commit at once (alarms, emergencies, session start/end) rather than at the next interval."""


@dataclass(slots=True)
class Call:
    """Run ``fn`` on the connection after committing everything queued before it."""

    fn: Callable[[sqlite3.Connection], Any]
    future: Future[Any]


STOP = object()
"""Put on the queue to commit what is left and end the thread."""


class Writer(threading.Thread):
    """The only thread that touches the connection once the records are open."""

    def __init__(self, conn: sqlite3.Connection, jobs: queue.SimpleQueue[Any], interval_s: float) -> None:
        super().__init__(name="records-writer", daemon=True)
        self.conn = conn
        self.jobs = jobs
        self.interval_s = interval_s
        self.batch: list[Write] = []
        self.batch_started = 0.0
        self.commits = 0
        self.failed = 0
        self.last_error = ""

    def run(self) -> None:
        reset_os_priority()  # started from the station's thread, it would inherit the safety threads' priority
        try:
            self._loop()
        except BaseException as exc:  # noqa: BLE001 - a dead writer must say why; Records._put() then refuses
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
            if job is STOP:
                self._commit()
                return
            if isinstance(job, Write):
                self._write(job)
                if job.urgent or time.monotonic() - self.batch_started >= self.interval_s:
                    self._commit()
            elif isinstance(job, Call):
                self._commit()
                if not job.future.set_running_or_notify_cancel():
                    continue
                try:
                    job.future.set_result(job.fn(self.conn))
                except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
                    job.future.set_exception(exc)

    def _write(self, job: Write) -> None:
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
