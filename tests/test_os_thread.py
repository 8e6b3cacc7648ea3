"""Safety threads ahead of the screen: the station's loop, the key reader, and what they start.

Real threads, real ``setpriority``: each thread's nice value is read back from ``/proc``. Where this process
may not raise a priority (not root, no CAP_SYS_NICE), the refusal path is what runs and is checked.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from console.common import os_thread
from console.common.os_thread import SAFETY_NICE, raise_os_priority
from console.records.writer import STOP, Writer
from console.station.station_thread import StationThread

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread priorities are Linux's")


def nice_of(tid: int) -> int:
    """The thread's nice value as the system shows it (field 19 of /proc/<pid>/task/<tid>/stat)."""
    fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[16])


def may_raise() -> bool:
    """Whether this process may lower a nice value to SAFETY_NICE (root, CAP_SYS_NICE or RLIMIT_NICE)."""

    def probe() -> bool:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), SAFETY_NICE)
        except OSError:
            return False
        return True

    return in_thread(probe)


def in_thread(fn: Callable[[], Any]) -> Any:
    """``fn()`` in a new thread (its priority dies with it); its result."""
    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join(10)
    return out[0]


@pytest.fixture(autouse=True)
def fresh_refusal_note(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os_thread, "_refused", threading.Event())


def test_a_safety_thread_runs_at_the_safety_nice_where_allowed_and_says_so_once_where_not(
    caplog: pytest.LogCaptureFixture,
) -> None:
    allowed = may_raise()

    def raise_and_read() -> tuple[bool, int]:
        ok = raise_os_priority()
        return ok, nice_of(threading.get_native_id())

    caplog.set_level(logging.INFO, logger="console.common.os_thread")
    ok, nice = in_thread(raise_and_read)
    again, _ = in_thread(raise_and_read)
    base = os.getpriority(os.PRIO_PROCESS, 0)
    if allowed:
        assert ok and again and nice == SAFETY_NICE
        assert not caplog.records
    else:
        assert not ok and not again and nice == base
        refusals = [r for r in caplog.records if "normal priority" in r.getMessage()]
        assert len(refusals) == 1 and "LimitNICE" in refusals[0].getMessage()


def test_a_refused_raise_leaves_the_thread_as_it_was_and_is_logged_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(*_: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "setpriority", refuse)
    caplog.set_level(logging.INFO, logger="console.common.os_thread")
    results = [in_thread(lambda: (raise_os_priority(), nice_of(threading.get_native_id()))) for _ in range(3)]
    base = os.getpriority(os.PRIO_PROCESS, 0)
    assert results == [(False, base)] * 3
    refusals = [r for r in caplog.records if "normal priority" in r.getMessage()]
    assert len(refusals) == 1 and "Operation not permitted" in refusals[0].getMessage()


def test_a_raise_never_lowers_a_priority_the_thread_already_has() -> None:
    if not may_raise():
        pytest.skip("this process may not raise a thread's priority (not root, no CAP_SYS_NICE)")

    def at_minus_15() -> tuple[bool, int]:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), -15)
        return raise_os_priority(), nice_of(threading.get_native_id())

    assert in_thread(at_minus_15) == (True, -15)


def test_a_thread_started_from_a_safety_thread_gives_its_priority_back() -> None:
    """The records' writer is started from the station's thread and would inherit its nice value."""
    if not may_raise():
        pytest.skip("this process may not raise a thread's priority (not root, no CAP_SYS_NICE)")

    def writer_from_a_safety_thread() -> tuple[int, int]:
        raise_os_priority()
        seen: list[int] = []
        conn = sqlite3.connect(":memory:", check_same_thread=False)
        jobs: Any = __import__("queue").SimpleQueue()
        writer = Writer(conn, jobs, 0.2)
        real_loop = writer._loop

        def loop_and_look() -> None:
            seen.append(nice_of(threading.get_native_id()))
            real_loop()

        writer._loop = loop_and_look  # type: ignore[method-assign]
        writer.start()
        jobs.put(STOP)
        writer.join(10)
        conn.close()
        return nice_of(threading.get_native_id()), seen[0]

    assert in_thread(writer_from_a_safety_thread) == (SAFETY_NICE, os_thread.PROCESS_NICE)


def test_the_station_thread_runs_at_the_safety_nice_unless_told_not_to() -> None:
    allowed = may_raise()
    base = os.getpriority(os.PRIO_PROCESS, 0)
    for wanted, expected in ((True, SAFETY_NICE if allowed else base), (False, base)):
        host = StationThread(safety_priority=wanted)
        host.start()
        try:
            assert host.call(lambda: nice_of(threading.get_native_id())) == expected
        finally:
            host.stop()


def test_the_station_thread_asks_for_the_safety_nice_for_itself_and_its_executor_gives_it_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whatever this process may do: the calls the system receives (a recorder in place of setpriority;
    a thread started after a raise reads as having inherited it, as on Linux)."""
    asked: list[tuple[int, int]] = []
    nice: dict[int, int] = {}
    inherited = [os_thread.PROCESS_NICE]

    def set_priority(_which: int, tid: int, value: int) -> None:
        asked.append((tid, value))
        nice[tid] = value
        inherited[0] = min(inherited[0], value)

    monkeypatch.setattr(os, "setpriority", set_priority)
    monkeypatch.setattr(os, "getpriority", lambda _which, tid: nice.get(tid, inherited[0]))
    for wanted in (True, False):
        asked.clear()
        inherited[0] = os_thread.PROCESS_NICE
        host = StationThread(safety_priority=wanted)
        host.start()
        try:
            tid = host.call(threading.get_native_id)
            worker = host.submit(asyncio.to_thread(threading.get_native_id)).result(10)
        finally:
            host.stop()
        if wanted:
            assert asked[0] == (tid, SAFETY_NICE)
            assert (worker, os_thread.PROCESS_NICE) in asked  # the executor's worker gave it back
        else:
            assert asked == []
