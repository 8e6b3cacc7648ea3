"""One open port of a link: its writer, its line reader, the tasks that serve it, and its end.

A :class:`drivers.link.CuffLink` makes one :class:`Connection` per port it
opens and never reuses it: once lost, it stays lost, and the link opens a new
one. The request book (:mod:`drivers.link_requests`) writes to it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from drivers.codec import LineReader
from drivers.link_errors import LinkDown, LinkError, LinkStats
from drivers.read_pacing import ReadPacer, pacer_for
from drivers.serial_port import direct_reader

log = logging.getLogger(__name__)

READ_SIZE = 4096


@dataclass(eq=False)
class Connection:
    """One open port: its writer, its reader, its tasks, and whether it was lost."""

    writer: asyncio.StreamWriter
    lines: LineReader
    done: asyncio.Future[None]
    """Resolved when the port is lost: the session that opened it then ends."""
    reader_task: asyncio.Task[None] | None = None
    monitor_task: asyncio.Task[None] | None = None
    setup_task: asyncio.Task[None] | None = None
    lost: bool = False
    boot_seen: bool = False
    """The controller sent BOOT since the last setup began (the setup then runs again)."""
    verified: bool = False
    """A HELLO on this port named the expected serial, and no BOOT came since (SET waits for it)."""
    sample_ref: float = 0.0
    """Loop time the sample stream was (re)started: silence is counted from here or the last sample."""
    first_sample: asyncio.Future[None] | None = None
    """Set while the setup waits for the first usable sample after STREAM (READY only then)."""
    pacer: ReadPacer | None = None
    """Holds the port between reads while nothing is awaited (None: every byte read at once)."""
    read_now: Callable[[], None] | None = None
    """The transport's direct read, which the pacer's tick uses on the held port (None: it resumes it)."""

    def pace_reads(self, period_s: float) -> None:
        """Hold this port between reads on the loop's shared tick (0, or a transport that cannot pause: never)."""
        transport = self.writer.transport
        if period_s and callable(getattr(transport, "pause_reading", None)):
            self.pacer = pacer_for(period_s)
            self.read_now = direct_reader(transport)

    def send(self, data: bytes) -> None:
        """Write a command; its answer is read the moment it arrives (a held port reads again now)."""
        self.writer.write(data)
        if self.pacer is not None:
            self.pacer.release(self.writer.transport)  # type: ignore[arg-type]

    def tasks(self) -> list[asyncio.Task[None]]:
        return [t for t in (self.reader_task, self.monitor_task, self.setup_task) if t is not None]

    def close(self, name: str) -> bool:
        """Mark the port lost and abort its transport at once; False if it was lost already."""
        if self.lost:
            return False
        self.lost = True
        try:
            transport = self.writer.transport
            if not transport.is_closing():  # a second abort() of a serial transport crashes its close task
                transport.abort()
        except Exception:
            log.debug("%s: abort failed", name, exc_info=True)
        return True

    def finish(self) -> None:
        """Cancel the tasks serving this port (except the caller's own) and end its session."""
        current = asyncio.current_task()
        for task in self.tasks():
            if task is not current:
                task.cancel()
        if self.first_sample is not None and not self.first_sample.done():
            self.first_sample.set_exception(LinkDown("port lost while waiting for the first sample"))
        if not self.done.done():
            self.done.set_result(None)

    async def reap(self, name: str) -> None:
        """Cancel and await the tasks; log any that failed other than by a link error."""
        tasks = self.tasks()
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception) and not isinstance(result, LinkError):
                log.error("%s: background task failed: %r", name, result)


class Listening:
    """The bytes of one port to the link: split into line bodies and handed over, and its end reported.

    With a :class:`drivers.serial_port.PortReader` the bytes are handled in the transport's
    callback (the hot path); with any other StreamReader (an injected ``open_port``), a reader task.
    """

    def __init__(
        self,
        conn: Connection,
        *,
        name: str,
        stats: LinkStats,
        on_line: Callable[[Connection, str], None],
        lose: Callable[[Connection, str], None],
        awaiting: Callable[[], bool] = lambda: True,
    ) -> None:
        """``awaiting``: an answer is awaited on this port (it is then never held)."""
        self.conn, self.name, self.stats = conn, name, stats
        self.on_line, self.lose = on_line, lose
        self.awaiting = awaiting

    def start(self, reader: asyncio.StreamReader) -> None:
        set_sink = getattr(reader, "set_sink", None)
        if callable(set_sink):
            set_sink(self.sink_data, self.sink_closed)
        else:
            self.conn.reader_task = asyncio.create_task(self.read_loop(reader), name=f"cufflink-read:{self.name}")

    async def read_loop(self, reader: asyncio.StreamReader) -> None:
        conn = self.conn
        try:
            while True:
                data = await reader.read(READ_SIZE)
                if not data:
                    self.lose(conn, "port closed (end of file)")
                    return
                self.on_data(data)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("%s: port read failed: %r", self.name, exc)
            self.lose(conn, f"port vanished: {exc}")

    def sink_data(self, data: bytes) -> None:
        conn = self.conn
        if conn.lost:
            return
        try:
            self.on_data(data)
            pacer = conn.pacer
            if pacer is not None and not conn.lost and not self.awaiting():
                pacer.hold(conn.writer.transport, conn.read_now)  # type: ignore[arg-type]
        except Exception as exc:  # never into the transport's callback
            self.stats.errors += 1
            log.exception("%s: handling received bytes failed", self.name)
            self.lose(conn, f"internal error while reading: {exc!r}")

    def sink_closed(self, exc: BaseException | None) -> None:
        if exc is None:
            self.lose(self.conn, "port closed (end of file)")
        else:
            log.warning("%s: port read failed: %r", self.name, exc)
            self.lose(self.conn, f"port vanished: {exc}")

    def on_data(self, data: bytes) -> None:
        """Everything the port delivered: split, check, hand each line body over."""
        conn = self.conn
        for body in conn.lines.feed(data):
            self.on_line(conn, body)
