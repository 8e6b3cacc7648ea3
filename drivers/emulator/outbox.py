"""How the emulated controller's lines reach the wire: framed, maybe damaged, maybe late, in order.

The firmware (:mod:`.firmware`) decides what to say; an :class:`Outbox` turns it
into bytes. It applies the line faults a test switched on (garbage bursts,
corrupted lines, slow answers, silence) and holds reports back while a batch of
commands runs, so that the answers go out first (``shared/protocol.md``).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from drivers import codec
from drivers.emulator.channel import Faults


class Outbox:
    """The bytes a controller has sent and not yet handed over, and the answers still on their way."""

    def __init__(self, faults: Faults, rng: random.Random) -> None:
        """``faults`` is the firmware's own switch board, read at every line; ``rng`` draws the damage."""
        self.faults = faults
        self._rng = rng
        self._out = bytearray()
        self._delayed: deque[tuple[float, bytes]] = deque()
        self._held: list[str] | None = None
        self.garbage_sent = 0
        """Garbage bursts sent (each one a line the host should drop and count)."""
        self.corrupted_sent = 0
        """Lines sent with one character changed (each one lost to the host)."""

    def report(self, body: str) -> None:
        """Send a report (sample, status, event) now, or after the answers of the batch being run."""
        if self._held is not None:
            self._held.append(body)
        else:
            self._out += self._wire(body)

    def answer(self, body: str, now: float) -> None:
        """Queue an answer line, late if the slow-answer fault is on, always in order."""
        delay = self.faults.slow_answer_s
        lost = self.faults.lose_answers > 0
        if lost:
            self.faults.lose_answers -= 1
        line = self._wire(body, damage=lost)
        if delay > 0.0 or self._delayed:
            self._delayed.append((now + max(0.0, delay), line))
        else:
            self._out += line

    @contextmanager
    def answers_first(self) -> Iterator[None]:
        """Hold reports back while a batch of commands runs; send them after its answers."""
        self._held = []
        try:
            yield
        finally:
            held, self._held = self._held, None
            for body in held:
                self.report(body)

    def release(self, now: float) -> None:
        """Send the late answers whose time has come."""
        while self._delayed and self._delayed[0][0] <= now + 1e-12:
            self._out += self._delayed.popleft()[1]

    def drop_delayed(self) -> None:
        """Forget the late answers (a power cycle loses them)."""
        self._delayed.clear()

    def take(self) -> bytes:
        """Everything sent since the last call."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def _wire(self, body: str, *, damage: bool = False) -> bytes:
        if self.faults.silent:
            return b""
        line = codec.frame(body)
        rng = self._rng
        out = b""
        if self.faults.garbage_rate > 0.0 and rng.random() < self.faults.garbage_rate:
            out += self._garbage(line)
            self.garbage_sent += 1
        if damage or self.faults.corrupt_rate > 0.0 and rng.random() < self.faults.corrupt_rate:
            line = self._damaged(line)
        return out + line

    def _damaged(self, line: bytes) -> bytes:
        """The framed line with one character of its body changed: CRC-16 always catches it."""
        i = self._rng.randrange(len(line) - 6)  # within the body: the last 6 bytes are *CRC and LF
        bad = b"!" if line[i] != ord("!") else b"?"
        self.corrupted_sent += 1
        return line[:i] + bad + line[i + 1 :]

    def _garbage(self, line: bytes) -> bytes:
        rng = self._rng
        kind = rng.randrange(3)
        if kind == 0:  # the line with a bad CRC
            crc = int(line[-5:-1], 16) ^ (1 + rng.randrange(0xFFFF))
            return line[:-5] + b"%04X\n" % crc
        if kind == 1:  # bytes outside printable ASCII
            n = rng.randrange(1, 12)
            junk = bytes(rng.choice((0x00, 0x07, 0x1B, 0x7F, 0x80, 0xFF, 0xC3)) for _ in range(n))
            return junk + line[: rng.randrange(len(line) - 1)] + b"\n"
        n = rng.randrange(codec.MAX_LINE + 1, 400)  # over-long
        return bytes(rng.randrange(0x20, 0x7F) for _ in range(n)) + b"\n"
