"""A console process ends within a bounded time once told to stop, whatever its event loop is doing.

A Textual app whose terminal is gone can block its event loop for ever: the
writer thread dies, repaints fill its bounded queue and the loop waits in
``queue.put`` (a futex). asyncio's signal handlers run *on* that loop, so the
process then ignores SIGTERM and SIGHUP, and every dropped SSH session leaves
one behind. So every console process (the local console, ``attach``) gets:

- :class:`ExitBackstop`: a daemon thread that ends the process (``os._exit``)
  at the earliest deadline armed. Arming takes no lock and needs no loop, so
  a signal handler may do it.
- :class:`ConsoleGuard`: Python-level handlers for the stop signals (they run
  on the main thread even while the loop is blocked in a lock wait) and a
  watch on the terminal (the backstop thread checks it). Either one arms the
  backstop with the console's bound and asks the loop, thread-safely, to
  stop in order (deflate, close); if the loop never gets to it, the bound ends
  the process anyway.

What the backstop cannot cover: a main thread that never releases the GIL.
The controllers' own watchdogs vent the cuffs of a station that stops
talking to them, whatever happens to this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import termios
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
POLL_S = 0.2
"""How often the backstop thread looks at its deadlines (and how late past one it may end the process)."""
TERMINAL_POLL_S = 1.0
"""How often a guarded console checks that its terminal is still there."""
LAST_WORDS_S = 1.0
"""How long the log line and the log flush may take before the process ends regardless."""


def terminal_gone(fd: int) -> bool:
    """Whether a file descriptor that was a terminal no longer is one we can use.

    After a hangup (the SSH connection dropped, the terminal window closed, the pty's master
    closed) every terminal request on the descriptor fails with EIO; a closed descriptor, EBADF.
    """
    try:
        termios.tcgetattr(fd)
    except (termios.error, OSError):
        return True
    return False


class ExitBackstop:
    """Ends the process with ``os._exit`` at the earliest deadline armed; runs in its own daemon thread."""

    def __init__(self, *, poll_s: float = POLL_S, end: Callable[[int], Any] = os._exit) -> None:
        self.poll_s = poll_s
        self._end = end
        self._deadlines: list[tuple[float, str]] = []
        self._watches: list[Callable[[], None]] = []
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def start(self) -> None:
        """Start the thread (once). Call it from ordinary code, before any signal may arm the backstop."""
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="exit-backstop", daemon=True)
                self._thread.start()

    def arm(self, after_s: float, why: str) -> None:
        """End the process ``after_s`` from now unless it has ended by then; earlier deadlines stand.

        Safe in a signal handler: appending to a list takes no lock (the thread is started, or started
        here when called from ordinary code).
        """
        self._deadlines.append((time.monotonic() + after_s, why))
        if self._thread is None:
            self.start()

    @property
    def armed(self) -> bool:
        return bool(self._deadlines)

    def watch(self, check: Callable[[], None]) -> None:
        """Call ``check`` from the backstop thread at every poll (a terminal watch)."""
        self._watches.append(check)

    def unwatch(self, check: Callable[[], None]) -> None:
        with contextlib.suppress(ValueError):
            self._watches.remove(check)

    def _run(self) -> None:
        while True:
            time.sleep(self.poll_s)
            for check in list(self._watches):
                try:
                    check()
                except Exception:  # a broken watch must not stop the backstop
                    log.exception("exit backstop: a watch failed")
            now = time.monotonic()
            due = [why for deadline, why in list(self._deadlines) if deadline <= now]
            if due:
                self._finish(due[0])
                return

    def _finish(self, why: str) -> None:
        """Say why in the log, flush it (bounded: the stuck thread may hold a log lock), then end."""

        def last_words() -> None:
            log.error("still running %s; ending the process", why)
            logging.shutdown()

        speaker = threading.Thread(target=last_words, name="exit-backstop-log", daemon=True)
        speaker.start()
        speaker.join(LAST_WORDS_S)
        self._end(0)


BACKSTOP = ExitBackstop()
"""The process's one backstop: ending the process is process-wide, so is this."""


class ConsoleGuard:
    """Stop signals and a vanished terminal for one console, handled without the event loop's help.

    ``on_stop(why)`` runs on ``loop`` (once) to stop in order; whatever the loop does, the backstop
    ends the process ``bound_s`` after the first signal or after the terminal was found gone.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_stop: Callable[[str], None],
        *,
        bound_s: float,
        backstop: ExitBackstop = BACKSTOP,
        signals: tuple[signal.Signals, ...] = STOP_SIGNALS,
        terminal_fds: tuple[int, ...] = (0, 1, 2),
        terminal_poll_s: float = TERMINAL_POLL_S,
    ) -> None:
        self.loop = loop
        self.on_stop = on_stop
        self.bound_s = bound_s
        self.backstop = backstop
        self.signals = signals
        self.terminal_fds = terminal_fds
        self.terminal_poll_s = terminal_poll_s
        self.stopping = False
        self._previous: dict[signal.Signals, Any] = {}
        self._ttys: tuple[int, ...] = ()
        self._checked_at = 0.0

    def install(self) -> None:
        """Take the stop signals and start watching the terminal (main thread only: Python's signal rule)."""
        self.backstop.start()
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._on_signal)
        self._ttys = tuple(fd for fd in self.terminal_fds if _isatty(fd))
        if self._ttys:
            self.backstop.watch(self._check_terminal)

    def remove(self) -> None:
        """Give the signals back (the process is closing); an armed deadline stays armed."""
        self.backstop.unwatch(self._check_terminal)
        for sig, previous in self._previous.items():
            with contextlib.suppress(Exception):
                signal.signal(sig, previous)
        self._previous.clear()

    def stop(self, why: str) -> None:
        """Arm the bound, then ask the loop to stop in order; from a signal handler or the backstop thread."""
        self.backstop.arm(self.bound_s, f"{self.bound_s:g} s after {why}")
        if self.stopping:
            return
        self.stopping = True
        with contextlib.suppress(RuntimeError):  # the loop is closed: the process is on its way out
            self.loop.call_soon_threadsafe(self.on_stop, why)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stop(signal.Signals(signum).name)

    def _check_terminal(self) -> None:
        now = time.monotonic()
        if self.stopping or now - self._checked_at < self.terminal_poll_s:
            return
        self._checked_at = now
        if any(terminal_gone(fd) for fd in self._ttys):
            self.stop("terminal gone")


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False
