"""The heap the console starts with, set aside from Python's cycle collector once it is built.

Every full collection walks every object the process holds, and holds the GIL
while it does: measured in the running console (160x50, 16 cuffs at 100 Hz),
27-52 ms every ~3 s on one 2-core machine and up to ~200 ms on a slower one,
in whichever thread happened to allocate. During that
time the station's thread cannot read a controller's answer and Textual's
input thread cannot read F12: the emergency's slowest presses were exactly
the ones that met a full collection. Most of what it walks never dies: the
modules, classes and the screen built at start-up (70 000-80 000 objects).
:func:`settle` collects once and moves all that survives into the permanent
generation (:func:`gc.freeze`), so later full collections walk only what was
made since (10 000-40 000 objects). The other half of those collections was
the screen's own garbage: :mod:`console.ui.strip_cycles`.

What it assumes: what is alive when :func:`settle` runs stays alive for the
life of the process, or is small if it does not (a frozen object that dies
later is never collected if it sits in a reference cycle: a one-time, bounded
leak); and nothing relies on the collector to run finalisers of objects made
before it.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time

log = logging.getLogger(__name__)

SETTLE_AFTER_S = 3.0
"""When the console's heap is set aside: after its first frames are drawn (the screen's widgets and styles
are built then), before a cuff can be up for long: a console starts with every cuff deflated."""


def settle() -> int:
    """Collect once, then set every object still alive aside from later collections; returns how many."""
    t0 = time.perf_counter()
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info(
        "heap: %d start-up objects set aside from the collector (%.0f ms)", frozen, (time.perf_counter() - t0) * 1e3
    )
    return frozen


def settle_later(loop: asyncio.AbstractEventLoop, after_s: float = SETTLE_AFTER_S) -> asyncio.TimerHandle:
    """:func:`settle` on ``loop`` ``after_s`` from now (the caller cancels the handle if it ends first)."""
    return loop.call_later(after_s, settle)
