"""The terminal read on the station's loop, so that F12 reaches the station with no hand-over between threads.

Textual reads the terminal in a thread of its own. The console's driver used to act on F12 there and hand
the DEFLATE ALL to the station's loop: one more thread to wake and one more wait for the interpreter's lock,
while the screen's thread draws (bench_emergency, key to the station's call: p50 1.2 ms, p99 5.9 ms of it
from that hand-over). Here the terminal is read by the station's own loop (``add_reader``), parsed with
Textual's parser, and every message is handed to the driver (``deliver``) on that loop; F12 is acted on
in the same turn that read it.

What it assumes of the loop, and what happens when that does not hold: the loop turns at least every
:data:`TICK_S` (its tick is the proof). A loop that stops turning for :data:`STALL_S` (stuck, or ended),
a terminal it cannot watch, or a read or a delivery that raises there, hands the terminal back to the
input thread for good (the log says why), which then reads it the way Textual does; the emergency then
goes to the station's loop by a hand-over, as before. The parser, the decoder and any message the loop
could not deliver go with it, under one lock: no key is lost or read twice. What it assumes of the
driver: delivering a message does not block (it posts to the app's loop; F12 writes to non-blocking
ports), so a loop stalled in the middle of a batch, whose rest the thread could overtake, is not expected.
A stalled station also delays the screen's news of F12 by up to :data:`STALL_S` (the DEFLATE ALL itself
waits for that loop either way).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import selectors
import threading
import time
from codecs import getincrementaldecoder
from collections.abc import Callable, Iterable

from textual._parser import ParseError
from textual._xterm_parser import XTermParser
from textual.message import Message

log = logging.getLogger(__name__)

TICK_S = 0.1
"""How often the loop checks the parser for a lone ESC that has waited long enough (as Textual's thread does)."""
STALL_S = 1.0
"""A loop that has not ticked for this long has stalled: the input thread takes the terminal back."""
READ_BYTES = 4096
"""The input thread's read size (Textual's)."""
LOOP_READ_BYTES = 256
"""The loop's read size: what one turn of the station's loop may spend on the terminal is bounded (a burst of
mouse reports parses at about 60 us each here, some ms per 4 KiB); the rest waits for its next turn, in order.
A key press is a few bytes."""

_owners: dict[tuple[int, int], LoopKeyReader] = {}
"""Which reader a loop's registration on a terminal belongs to, by (loop, fd): a reader that has let go must
not remove the registration of the one that came after it (Textual restarts its driver on suspend)."""
_owners_lock = threading.Lock()


class LoopKeyReader:
    """The terminal ``fileno``, read on ``loop`` while it turns, and by the calling thread once it does not.

    ``deliver`` gets every parsed message, on whichever thread read it.
    """

    def __init__(
        self,
        fileno: int,
        deliver: Callable[[Message], None],
        *,
        debug: bool = False,
        stall_s: float = STALL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fileno = fileno
        self._deliver = deliver
        self._parser = XTermParser(debug)
        self._decode = getincrementaldecoder("utf-8")().decode
        self._lock = threading.Lock()
        self._stall_s = stall_s
        self._clock = clock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tick_handle: asyncio.TimerHandle | None = None
        self.on_loop = False
        """True while the loop reads the terminal; False before, and once the thread took it back."""
        self.last_turn = clock()
        """When the loop last ticked or read (its sign of life)."""
        self.handed_back: str | None = None
        """Why the thread took the terminal back, once it did."""
        self._undelivered: list[Message] = []
        """Messages the loop parsed but could not hand over (its delivery failed): the thread's, first."""

    # -- the input thread -----------------------------------------------------------------------------------
    def run(self, loop: asyncio.AbstractEventLoop | None, exit_event: threading.Event) -> None:
        """The input thread's body: the terminal to ``loop``, then watch it until ``exit_event``; read here
        instead once ``loop`` is None, will not take it, or stalls."""
        if loop is not None and self._attach(loop):
            while not exit_event.wait(TICK_S):
                if not self.on_loop:  # the loop let go: its read failed
                    break
                if self._clock() - self.last_turn > self._stall_s:
                    self._hand_back(f"the station's loop has not turned for {self._stall_s:g} s")
                    break
            else:
                self._detach()
                self._finish()
                return
        self._read_here(exit_event)
        self._finish()

    def _attach(self, loop: asyncio.AbstractEventLoop) -> bool:
        attached = threading.Event()

        def attach() -> None:
            try:
                with self._lock:
                    if self.handed_back is not None:
                        return
                    self._loop = loop
                    loop.add_reader(self.fileno, self._on_readable)  # not pollable (a file, /dev/null): raises
                    with _owners_lock:
                        _owners[(id(loop), self.fileno)] = self
                    self._tick_handle = loop.call_later(TICK_S, self._on_tick)
                    self.on_loop = True
                    self.last_turn = self._clock()
            except Exception as exc:
                failed.append(exc)
            attached.set()

        failed: list[Exception] = []

        try:
            loop.call_soon_threadsafe(attach)
        except RuntimeError:  # the loop is closed
            self._hand_back("the station's loop has ended")
            return False
        if not attached.wait(self._stall_s):
            self._hand_back(f"the station's loop did not take the terminal within {self._stall_s:g} s")
            return False
        if failed:
            self._hand_back(f"the station's loop cannot watch the terminal: {failed[0]!r}")
            return False
        return True

    def _detach(self) -> None:
        """The console is closing: the loop stops reading (waits for it, as long as a stall at most)."""
        loop = self._loop
        done = threading.Event()

        def detach() -> None:
            with self._lock:
                self._stop_on_loop()
                self.on_loop = False
            done.set()

        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(detach)
        except RuntimeError:
            return
        if not done.wait(self._stall_s):
            with self._lock:  # whatever the loop still does with it, it reads no more
                self.on_loop = False
                self.handed_back = "the console closed while the station's loop was stalled"

    def _hand_back(self, why: str) -> None:
        with self._lock:
            if self.handed_back is None:
                self.handed_back = why
            self.on_loop = False  # the loop's next turn, if one comes, reads nothing and lets go
        log.error("keys: %s; the terminal is read by the input thread again (F12 still works)", why)

    def _read_here(self, exit_event: threading.Event) -> None:
        """Textual's own way: select with a short time-out, read, parse, deliver, until ``exit_event``. A
        read that fails raises, as in Textual's thread (the app stops on it)."""
        with self._lock:
            first, self._undelivered = self._undelivered, []
        self._hand_over(first)
        with selectors.SelectSelector() as selector:
            selector.register(self.fileno, selectors.EVENT_READ)
            while not exit_event.is_set():
                readable = selector.select(TICK_S)
                try:
                    with self._lock:
                        messages = self._read() if readable else []
                        messages += list(self._parser.tick())
                except EOFError:  # stdin is not a terminal and has ended: nothing more will come
                    exit_event.wait(TICK_S)
                    continue
                self._hand_over(messages)

    def _finish(self) -> None:
        """As Textual's thread ends: what is already typed is read and handed over, then the parser's end."""
        messages: list[Message] = []
        with self._lock, contextlib.suppress(OSError, EOFError, ParseError, ValueError):
            if select.select([self.fileno], [], [], 0)[0]:
                messages = self._read(final=True)
        self._hand_over(messages)
        with self._lock, contextlib.suppress(EOFError, ParseError):
            for _ in self._parser.feed(""):
                pass

    # -- the loop ----------------------------------------------------------------------------------------
    def _on_readable(self) -> None:
        with self._lock:
            if not self.on_loop:
                self._stop_on_loop()
                return
            self.last_turn = self._clock()
            try:
                messages = self._read(LOOP_READ_BYTES)
            except Exception as exc:  # a terminal gone (EIO), stdin ended: the thread meets it as Textual would
                self._stop_on_loop()
                self.on_loop = False
                self.handed_back = f"reading the terminal on the station's loop failed: {exc!r}"
                messages = []
        if not self.on_loop:
            log.warning("keys: %s; the input thread reads it again", self.handed_back)
            return
        self._hand_over_on_loop(messages)

    def _on_tick(self) -> None:
        with self._lock:
            if not self.on_loop:
                self._stop_on_loop()
                return
            self.last_turn = self._clock()
            messages = list(self._parser.tick())
            assert self._loop is not None
            self._tick_handle = self._loop.call_later(TICK_S, self._on_tick)
        self._hand_over_on_loop(messages)

    def _hand_over_on_loop(self, messages: list[Message]) -> None:
        """A driver that fails here (the app's loop gone) would fail the station's loop's callback: the
        input thread takes the terminal back, with the messages after the one that failed (an F12 among
        them still fires), and meets any further failure itself, as Textual's thread would."""
        for i, message in enumerate(messages):
            try:
                self._deliver(message)
            except Exception as exc:
                with self._lock:
                    self._stop_on_loop()
                    self.on_loop = False
                    self._undelivered = messages[i + 1 :] + self._undelivered
                    self.handed_back = f"handing a key to the console failed: {exc!r}"
                log.exception("keys: %s", self.handed_back)
                return

    def _stop_on_loop(self) -> None:
        """On the loop, under the lock: no more reads or ticks there (the registration is removed only if it
        is still this reader's)."""
        if self._loop is not None:
            key = (id(self._loop), self.fileno)
            with _owners_lock:
                if _owners.get(key) is self:
                    del _owners[key]
                    self._loop.remove_reader(self.fileno)
        if self._tick_handle is not None:
            self._tick_handle.cancel()
            self._tick_handle = None

    # -- either ------------------------------------------------------------------------------------------
    def _read(self, size: int = READ_BYTES, *, final: bool = False) -> list[Message]:
        """One read, parsed (under the lock); EOFError on an empty read (stdin ended), OSError as ``read``."""
        try:
            data = os.read(self.fileno, size)
        except BlockingIOError:  # woken for nothing (the other side of a hand-back read it)
            return []
        if not data:
            raise EOFError("the terminal's input has ended")
        text = self._decode(data, final)
        return list(self._parser.feed(text)) if text else []

    def _hand_over(self, messages: Iterable[Message]) -> None:
        """Outside the lock: the driver may take its time, the other side may need the lock meanwhile."""
        for message in messages:
            self._deliver(message)
