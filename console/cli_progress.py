"""``measure-lop`` progress for the person at the terminal: on stderr, so stdout stays the answer.

The CLI polls the cuff from the station snapshot while the measurement runs and
hands each poll to :class:`LopProgressPrinter`, an observer that knows nothing of
how the LOP is measured: it shows the step pressure the measurement reports,
the cuff's own pressure and the time, whatever the procedure does in between.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, TextIO

from console.common.api import CuffSnapshot

POLL_S = 0.5
"""How often the CLI looks at the cuff while the measurement runs."""


class LopObserver(Protocol):
    """What the CLI tells about a measurement under way (one call per poll) and when it ends."""

    def progress(self, cuff: CuffSnapshot) -> None: ...

    def finished(self) -> None: ...


class LopProgressPrinter:
    """One line per step on a file, or one line rewritten in place on a terminal.

    ``clock`` gives monotonic seconds (tests inject one); the elapsed time is the measurement's own
    when it reports one, else the time since the first poll.
    """

    def __init__(self, out: TextIO, *, tty: bool | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.out = out
        self.tty = out.isatty() if tty is None else tty
        self.clock = clock
        self.steps: list[float] = []
        self._started: float | None = None
        self._last = ""
        self._open_line = False

    def line(self, cuff: CuffSnapshot) -> str:
        """``measuring A1: step 3 at 140 mmHg, cuff 139 mmHg, 0:12`` (or ``cuff --`` while unknown)."""
        now = self.clock()
        if self._started is None:
            self._started = now
        m = cuff.lop_measure
        step = ""
        elapsed = now - self._started
        if m is not None:
            if m.pressure_step > 0 and (not self.steps or self.steps[-1] != m.pressure_step):
                self.steps.append(m.pressure_step)
            if self.steps:
                step = f"step {len(self.steps)} at {self.steps[-1]:.0f} mmHg, "
            if m.elapsed_s > 0:
                elapsed = m.elapsed_s
        pressure = f"{cuff.pressure:.0f} mmHg" if cuff.pressure is not None else "--"
        secs = int(elapsed)
        return f"measuring {cuff.id}: {step}cuff {pressure}, {secs // 60}:{secs % 60:02d}"

    def progress(self, cuff: CuffSnapshot) -> None:
        text = self.line(cuff)
        if self.tty:
            self.out.write("\r" + text + "\x1b[K")
            self._open_line = True
        else:
            # A file or a pipe: a line whenever the step changes, not one per poll.
            key = text.split(", cuff", 1)[0]
            if key == self._last:
                return
            self._last = key
            self.out.write(text + "\n")
        self.out.flush()

    def finished(self) -> None:
        if self._open_line:
            self.out.write("\n")
            self.out.flush()
            self._open_line = False
