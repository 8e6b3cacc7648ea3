"""One open port of a link: its writer, its line reader, the tasks that serve it, and its end.

A :class:`drivers.link.CuffLink` makes one :class:`Connection` per port it
opens and never reuses it: once lost, it stays lost, and the link opens a new
one. The request book (:mod:`drivers.link_requests`) writes to it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from drivers.codec import LineReader
from drivers.link_errors import LinkError

log = logging.getLogger(__name__)


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
