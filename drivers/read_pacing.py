"""The ports of one event loop read together, at most every ``period_s``, while no answer is awaited.

Why: a controller streaming at 100 Hz makes its port readable 100 times a second,
and each wakeup of the station's loop (epoll, the transport's callback, a read
syscall, the loop's own pass) cost about 200 µs of a core on the 2-core machine
the console is measured on, more than parsing the line itself. Two controllers
meant 200-250 wakeups a second. Held between ticks, every port of the loop is read
on one shared tick: 40 wakeups a second at the default 25 ms, whatever the number
of controllers, each reading two or more lines per port.

What it costs: a sample waits up to ``period_s`` in the port before it is read
(stamped on arrival, so the station's "age" of a reading includes it; the
controller's own time stamp, used by the LOP, does not). Answers are never held:
the link releases its port the moment it writes a command (:meth:`release`), and
holds it again only once nothing it sent is still unanswered. An emergency
DEFLATE is therefore read back as soon as the controller answers.

What it assumes of the other side: the controller, and the operating system's
buffer in between, keep ``period_s`` of the stream (a few hundred bytes at
100 Hz; a tty buffer holds 4 KiB) without dropping any. A controller whose own
alarm events must be seen sooner than ``period_s`` is not served: CUFF-LINK/1's
controller vents on its own (protocol.md section 4); the station's reaction is late
by at most ``period_s``. Where the other side keeps less, readings are lost between ticks
(a line cut in two fails its CRC and is dropped, counted), the link stays up and
answers still come at once (tests/test_read_pacing.py breaks this on purpose).

How a tick reads: a held port that offers a direct read (:func:`drivers.serial_port.direct_reader`)
is read on the tick while it stays paused; if that brought bytes and the link holds it again,
it stays paused until the next tick, so a streaming port costs one read per tick and no
event-loop registration. A port that brought nothing, or whose link now awaits an answer, reads
again through the event loop (resumed), so a quiet port is woken by its next byte, not polled.
Without a direct read, the tick resumes the port and the event loop reads it.

What it assumes of the transport: ``pause_reading``/``resume_reading`` of the
asyncio transport protocol (pyserial-asyncio-fast's serial transport has both:
remove and add the reader of the port's file descriptor); a direct read delivers
its bytes to the transport's protocol, as the event loop's read would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import weakref
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger(__name__)

READ_PACE_S = 0.025
"""Default longest hold of a streaming port: 25 ms, 40 reads a second for all ports of a loop; the station's 20 Hz
work (supervisor check, therapy driver) falls on every other tick (next_tick), sharing its wakeup."""


def next_tick(now: float, period_s: float) -> float:
    """The first multiple of ``period_s`` after ``now`` on a loop's clock: the read tick's grid, the same as
    console/common/ticks.py's (the station's 20 Hz work wakes there too; tests/test_tick_grid.py holds the two
    equal). The nudge keeps 0.06 / 0.02 = 2.999... from naming the present moment."""
    return (math.floor(now / period_s + 1e-9) + 1) * period_s


def check_pace(period_s: float) -> float:
    """``period_s`` if it is 0 (no pacing) or a pace :class:`ReadPacer` takes; else ValueError."""
    if period_s and not 0 < period_s <= 0.1:
        raise ValueError(f"read_pace_s must be 0 or in (0, 0.1], got {period_s}")
    return period_s


class Pausable(Protocol):
    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def is_closing(self) -> bool: ...


class ReadPacer:
    """Holds ports of one event loop and lets them all read on one shared tick."""

    def __init__(self, loop: asyncio.AbstractEventLoop, period_s: float) -> None:
        if not 0 < period_s <= 0.1:
            raise ValueError(f"a read pace must be in (0, 0.1] s, got {period_s!r}")
        self._loop = weakref.ref(loop)  # the registry below is keyed by the loop: no strong reference back
        self.period_s = period_s
        self._held: dict[Pausable, Callable[[], None] | None] = {}
        """Held ports and their direct reads (None: the tick resumes the port instead)."""
        self._reading: Pausable | None = None
        """The port being read directly on the tick: still paused, so holding it again pauses nothing."""
        self._tick_due = False
        """A tick is scheduled (its handle is not kept: it refers to the loop, which must be free to go)."""
        self.ticks = 0
        """Ticks that released held ports (diagnostics; the tests read it)."""

    def hold(self, port: Pausable, read: Callable[[], None] | None = None) -> None:
        """Stop reading ``port`` until the next tick (or :meth:`release`); ``read``: its direct read there."""
        if port in self._held or port.is_closing():
            return
        if port is not self._reading:
            port.pause_reading()
        self._held[port] = read
        loop = self._loop()
        if not self._tick_due and loop is not None:
            # On the loop's clock, aligned: ports held at different moments end on the same tick.
            loop.call_at(next_tick(loop.time(), self.period_s), self._release_all)
            self._tick_due = True

    def release(self, port: Pausable) -> None:
        """Read ``port`` again now (an answer is awaited on it)."""
        if port in self._held:
            del self._held[port]
            if not port.is_closing():
                port.resume_reading()

    def holds(self, port: Pausable) -> bool:
        return port in self._held

    def _release_all(self) -> None:
        self._tick_due = False
        self.ticks += 1
        held, self._held = self._held, {}
        waiting = list(held.items())
        try:
            while waiting:
                port, read = waiting[0]
                # One port that fails to read or resume must not leave the others paused with nothing to wake them.
                try:
                    if not port.is_closing() and not (read is not None and self._read_direct(port, read)):
                        port.resume_reading()
                except Exception:
                    log.exception("read pacing: a port could not read again; the link will see it as silent")
                del waiting[0]
        finally:
            # Something above Exception (a cancellation raised in a link's handling) ends this tick early:
            # the port being read and those not reached go back to the event loop rather than stay paused
            # unwatched (one the link held again before it was cut short waits for the next tick).
            for port, _ in waiting:
                with contextlib.suppress(Exception):
                    if not port.is_closing() and port not in self._held:
                        port.resume_reading()

    def _read_direct(self, port: Pausable, read: Callable[[], None]) -> bool:
        """Read a held port now; True if it is held again (it brought bytes, nothing is awaited on it)."""
        self._reading = port
        try:
            read()
        except Exception:
            log.exception("read pacing: a direct read failed; the port reads through the event loop again")
            return False
        finally:
            self._reading = None
        return port in self._held or port.is_closing()


_PACERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[float, ReadPacer]] = weakref.WeakKeyDictionary()


def pacer_for(period_s: float) -> ReadPacer:
    """The running loop's pacer for ``period_s`` (one per loop and period, so all its links share ticks)."""
    loop = asyncio.get_running_loop()
    by_period = _PACERS.setdefault(loop, {})
    pacer = by_period.get(period_s)
    if pacer is None:
        pacer = by_period[period_s] = ReadPacer(loop, period_s)
    return pacer
