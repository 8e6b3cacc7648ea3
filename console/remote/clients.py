"""The server's view of one attached console: who it is, its socket, and its bounds.

Kept apart from the server so the per-console rules read in one place: replies past
``reply_cap`` unread cut it off (it asks and never reads), and :meth:`Console.took_nothing_for`
tells the server how long bytes have waited for it untaken (it is cut off past the stall timeout).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from console.common.api import Role
from console.remote import protocol
from console.remote.limits import TokenBucket
from console.remote.roles import Decision

log = logging.getLogger(__name__)

MERGED_PER_S = 2000.0
"""Emergency requests of one console merged a second before it is read only at that pace (while they would
still be merged: the moment one would be carried out anew it is read at once)."""


@dataclass
class ClientInfo:
    """What the server knows about one attached console (for tests, benches, the record)."""

    who: str
    role: Role
    pid: int
    frames_sent: int = 0
    frames_skipped: int = 0
    commands: int = 0


@dataclass(eq=False)
class Console:
    """One attached console: its identity, its socket, and what it may still cost."""

    info: ClientInfo
    decision: Decision
    writer: asyncio.StreamWriter
    stalled_since: float | None = None
    last_seq: int | None = None
    in_flight: set[asyncio.Task[None]] = field(default_factory=set)
    reply_cap: int = 0
    """Most bytes that may wait unsent for this client (0: no cap); past it the client is cut off."""
    overflowed: bool = False
    waiting: int = 0
    """Bytes waiting for it at the last look (stall watch)."""
    budget: TokenBucket = field(default_factory=lambda: TokenBucket(30.0, 60.0))
    """Commands a second (not the emergency)."""
    refusals: TokenBucket = field(default_factory=lambda: TokenBucket(5.0, 20.0))
    """Refusals the server answers a second; past them the console is closed, not answered line by line."""
    flooding: bool = False
    """Past its refusals: to be closed by its reader."""
    answers: dict[asyncio.Future[Any], list[int]] = field(default_factory=dict)
    """Emergency requests waiting, by the emergency they started or joined: answered in one write each."""
    closed_because: str = ""
    """Why the station closed it (garbage, a flood), for the detach row."""
    merged: TokenBucket = field(default_factory=lambda: TokenBucket(MERGED_PER_S, MERGED_PER_S))
    """Its emergency requests merged into one in progress; past them it is read at that pace while they would be."""
    unanswered: int = 0
    """Its emergency requests waiting for their answer (all of :attr:`answers`)."""
    waiting_on: asyncio.Future[Any] | None = None
    """The emergency its newest request waits for."""

    @property
    def key(self) -> str:
        return f"{self.info.who}#{self.info.pid}#{id(self)}"

    @property
    def role(self) -> str:
        return self.decision.role.value if self.decision.role is not None else "none"

    def took_nothing_for(self, now: float) -> float:
        """Seconds bytes have waited for this console without it taking any (0 when it keeps up).

        Looked at on every push, new frame or not: a console that never reads is noticed even
        while the station shows nothing new; one that reads slowly takes some bytes and stays.
        """
        waiting = self.transport.get_write_buffer_size()
        if waiting == 0 or waiting < self.waiting:
            self.stalled_since = None
        elif self.stalled_since is None:
            self.stalled_since = now
        self.waiting = waiting
        return 0.0 if self.stalled_since is None else now - self.stalled_since

    @property
    def transport(self) -> asyncio.WriteTransport:
        return self.writer.transport

    def send(self, message: dict[str, Any]) -> None:
        self.send_line(protocol.encode(message))

    def send_line(self, line: bytes) -> None:
        transport = self.transport
        if transport.is_closing():
            return
        transport.write(line)
        if self.reply_cap and transport.get_write_buffer_size() > self.reply_cap:
            # It asks and never reads: replies are not skippable like frames, so it goes.
            self.overflowed = True
            log.warning(
                "%s does not read its replies (%d bytes waiting): cut off",
                self.info.who,
                transport.get_write_buffer_size(),
            )
            transport.abort()


async def close_soon(writer: asyncio.StreamWriter, grace_s: float = 2.0) -> None:
    """Flush what is queued (the reason), but never wait on a peer that will not read."""
    transport = writer.transport
    if transport.is_closing():
        return
    transport.close()
    if transport.get_write_buffer_size():  # the kernel took everything already in most cases: no timer then
        asyncio.get_running_loop().call_later(grace_s, transport.abort)
