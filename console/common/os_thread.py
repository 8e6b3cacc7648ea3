"""What the operating system knows of a thread of the console: its name, and how soon it runs.

The console's safety paths (the station's loop, and the terminal's input
thread that reads F12) share two cores with the screen, the terminal, and on
a bench the emulated controllers. A thread woken by a controller's answer or a
key waits for a core like any other; on a busy machine that wait was the
slowest part of an emergency (bench_emergency, key to the station's call: p99
13.2 ms at nice 0, 6.1 ms at nice -10, one run each on the same machine). The
priority is the system's, not the interpreter's: a safety thread still waits
for the GIL a frame holds, at most the station's short switch interval. Given a higher priority (a lower nice value) they run
first. Linux allows that to root, to a process with CAP_SYS_NICE, or up to a
service's ``LimitNICE=`` (docs/systemd); anywhere else the threads run at the
process's own priority, and the console says so once in its log.

What it assumes of the system: Linux, where a thread's id is a target of
``setpriority(PRIO_PROCESS, tid, nice)`` (Python 3.11 names its threads for
itself only: ``prctl(PR_SET_NAME)`` for the system's view).
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import ctypes.util
import logging
import os
import sys
import threading

log = logging.getLogger(__name__)

SAFETY_NICE = -10
"""The nice value of the threads that carry an emergency: the station's loop and the key reader. The screen
stays at the process's own (0), so a frame being drawn gives way to a controller's answer or to F12."""

PROCESS_NICE = os.getpriority(os.PRIO_PROCESS, 0) if sys.platform.startswith("linux") else 0
"""The process's own nice value when the console started (a service may start it at another than 0)."""

_refused = threading.Event()
"""Set once a raise was refused, so the log says it once, not once per thread."""


def name_os_thread(name: bytes) -> bool:
    """Name the calling thread for the system (Linux ``prctl(PR_SET_NAME)``, at most 15 bytes); False where
    that is not possible. Python 3.11 names its threads for itself only."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        return int(libc.prctl(15, ctypes.c_char_p(name[:15]), 0, 0, 0)) == 0  # 15: PR_SET_NAME
    except (OSError, AttributeError):
        return False


def executor_at_process_priority() -> concurrent.futures.ThreadPoolExecutor:
    """A loop's default executor whose workers give up the safety priority of the thread that starts them
    (``asyncio.to_thread`` from the station's loop: record searches, name lookups)."""
    return concurrent.futures.ThreadPoolExecutor(initializer=reset_os_priority)


def raise_os_priority(nice: int = SAFETY_NICE) -> bool:
    """Run the calling thread at ``nice`` if that is a higher priority than its own; True if it now runs so.

    Never lowers a priority the thread already has (a service started at a lower nice keeps it). Refused
    (no CAP_SYS_NICE, no ``LimitNICE=``): the thread carries on at its priority; the log says so once.
    """
    if not sys.platform.startswith("linux"):
        return False
    tid = threading.get_native_id()
    try:
        if os.getpriority(os.PRIO_PROCESS, tid) <= nice:
            return True
        os.setpriority(os.PRIO_PROCESS, tid, nice)
    except OSError as exc:
        if not _refused.is_set():
            _refused.set()
            log.info(
                "safety threads run at the normal priority (nice %d refused: %s); an emergency may wait for "
                "a busy machine. To allow it: run as a service with LimitNICE=%d (docs/systemd).",
                nice,
                exc.strerror or exc,
                nice,
            )
        return False
    return True


def reset_os_priority(nice: int | None = None) -> None:
    """Give up a priority the calling thread inherited (a thread started from a safety thread inherits its
    nice value; the records' writer, an executor's workers have no emergency to carry): back to the
    process's own (:data:`PROCESS_NICE`) unless ``nice`` is given. Lowering a priority is always allowed."""
    if not sys.platform.startswith("linux"):
        return
    if nice is None:
        nice = PROCESS_NICE
    tid = threading.get_native_id()
    try:
        if os.getpriority(os.PRIO_PROCESS, tid) < nice:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
    except OSError:
        log.debug("could not put thread %d back to nice %d", tid, nice)
