"""The terminal read on the station's loop (console.ui.key_reader), over a real pseudo-terminal.

The loop is a real StationThread; the input thread is a real thread running ``LoopKeyReader.run``;
keys are bytes written to the pty's master, as a terminal sends them. Each test says which thread
delivered each key: the loop's while it turns, the input thread once the loop stalls, ends or fails.
"""

from __future__ import annotations

import os
import threading
import time
import tty
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from textual import events
from textual.message import Message

from console.station.station_thread import StationThread
from console.ui import key_reader
from console.ui.key_reader import LoopKeyReader

F12 = b"\x1b[24~"


@dataclass
class Seen:
    """What the driver was handed: each key, and the name of the thread it was handed on."""

    keys: list[tuple[str, str]] = field(default_factory=list)
    ready: threading.Condition = field(default_factory=threading.Condition)

    def deliver(self, message: Message) -> None:
        if isinstance(message, events.Key):
            with self.ready:
                self.keys.append((message.key, threading.current_thread().name))
                self.ready.notify_all()

    def wait(self, count: int, timeout: float = 5.0) -> list[tuple[str, str]]:
        with self.ready:
            if not self.ready.wait_for(lambda: len(self.keys) >= count, timeout):
                raise AssertionError(f"{count} keys expected within {timeout} s, got {self.keys}")
            return list(self.keys)


@dataclass
class Rig:
    master: int
    reader: LoopKeyReader
    seen: Seen
    exit_event: threading.Event
    thread: threading.Thread
    failure: list[BaseException]

    def type(self, data: bytes) -> None:
        os.write(self.master, data)


@pytest.fixture
def host() -> Iterator[StationThread]:
    host = StationThread("station-test", safety_priority=False)
    host.start()
    yield host
    if host.running:
        host.stop()


@pytest.fixture
def start(host: StationThread) -> Iterator[Callable[..., Rig]]:
    rigs: list[Rig] = []
    fds: list[int] = []

    def make(
        loop_of: StationThread | None = host, deliver: Callable[[Message], None] | None = None, **kw: float
    ) -> Rig:
        master, slave = os.openpty()
        tty.setraw(slave)
        fds.extend([master, slave])
        seen = Seen()
        reader = LoopKeyReader(slave, deliver or seen.deliver, **kw)  # type: ignore[arg-type]
        exit_event = threading.Event()
        failure: list[BaseException] = []

        def body() -> None:
            try:
                reader.run(loop_of.loop if loop_of is not None else None, exit_event)
            except BaseException as exc:  # as Textual's thread: the failure is the app's to meet
                failure.append(exc)

        thread = threading.Thread(target=body, name="input")
        thread.start()
        rig = Rig(master, reader, seen, exit_event, thread, failure)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.exit_event.set()
        rig.thread.join(5)
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def until(check: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out: {what}")
        time.sleep(0.01)


def test_keys_are_parsed_and_handed_over_on_the_loop_s_own_thread(start: Callable[..., Rig]) -> None:
    rig = start()
    until(lambda: rig.reader.on_loop, "the loop reads the terminal")
    rig.type(F12 + b"i6")
    assert rig.seen.wait(3) == [("f12", "station-test"), ("i", "station-test"), ("6", "station-test")]
    assert rig.reader.handed_back is None


def test_a_lone_escape_comes_through_once_the_parser_has_waited_for_more(start: Callable[..., Rig]) -> None:
    """Esc closes a dialog: the parser holds it in case a sequence follows; the loop's tick lets it go."""
    rig = start()
    until(lambda: rig.reader.on_loop, "the loop reads the terminal")
    rig.type(b"\x1b")
    assert rig.seen.wait(1, timeout=2.0) == [("escape", "station-test")]


def test_a_stalled_loop_hands_the_terminal_back_and_no_key_is_lost_or_read_twice(
    start: Callable[..., Rig], host: StationThread
) -> None:
    rig = start(stall_s=0.3)
    until(lambda: rig.reader.on_loop, "the loop reads the terminal")
    rig.type(b"a")
    rig.seen.wait(1)
    stalled = threading.Event()
    host.call_soon(lambda: (stalled.set(), time.sleep(3.0)))  # the station's loop, stuck for 3 s
    assert stalled.wait(5)
    rig.type(b"b" + F12)
    keys = rig.seen.wait(3, timeout=2.0)  # read by the input thread well before the loop is free
    assert keys == [("a", "station-test"), ("b", "input"), ("f12", "input")]
    assert rig.reader.handed_back is not None and "has not turned for 0.3 s" in rig.reader.handed_back
    host.call(lambda: None, timeout=5)  # the loop turns again: its reader lets go instead of reading too
    rig.type(b"c")
    assert rig.seen.wait(4)[3:] == [("c", "input")]
    time.sleep(0.2)
    assert len(rig.seen.keys) == 4, rig.seen.keys


def test_a_loop_that_has_ended_leaves_the_terminal_to_the_input_thread(
    start: Callable[..., Rig], host: StationThread
) -> None:
    host.stop()
    rig = start()
    rig.type(F12)
    assert rig.seen.wait(1) == [("f12", "input")]
    assert rig.reader.handed_back == "the station's loop has ended" and not rig.reader.on_loop


def test_no_loop_at_all_is_textual_s_own_way(start: Callable[..., Rig]) -> None:
    rig = start(loop_of=None)
    rig.type(b"q")
    assert rig.seen.wait(1) == [("q", "input")]


def test_a_driver_that_fails_on_the_loop_hands_the_terminal_back(start: Callable[..., Rig]) -> None:
    """The app's loop gone, say: the station's loop logs it and lets go; the input thread meets the next."""
    seen = Seen()
    failed: list[str] = []

    def deliver(message: Message) -> None:
        if threading.current_thread().name == "station-test" and not failed:
            failed.append("once")
            raise RuntimeError("the app's loop is closed")
        seen.deliver(message)

    rig = start(deliver=deliver)
    until(lambda: rig.reader.on_loop, "the loop reads the terminal")
    rig.type(b"xy" + F12)  # one read: the keys after the one that failed are the input thread's to deliver
    until(lambda: rig.reader.handed_back is not None, "handed back")
    assert "handing a key to the console failed" in (rig.reader.handed_back or "")
    assert seen.wait(2) == [("y", "input"), ("f12", "input")]
    rig.type(b"z")
    assert seen.wait(3)[2:] == [("z", "input")]


def test_a_reader_that_let_go_leaves_the_next_one_s_watch_in_place(
    start: Callable[..., Rig], host: StationThread
) -> None:
    """Textual restarts its driver (suspend, resume): the old reader, which let go during a stall, must not
    take the terminal off the loop from under the new one when the loop turns again."""
    first = start(stall_s=0.3)
    until(lambda: first.reader.on_loop, "the loop reads the terminal")
    stalled = threading.Event()
    host.call_soon(lambda: (stalled.set(), time.sleep(2.0)))
    assert stalled.wait(5)
    until(lambda: first.reader.handed_back is not None, "the first reader let go")
    first.exit_event.set()
    first.thread.join(5)
    seen = Seen()
    second = LoopKeyReader(first.reader.fileno, seen.deliver, stall_s=10.0)
    exit_event = threading.Event()
    thread = threading.Thread(target=second.run, args=(host.loop, exit_event), name="input-2")
    thread.start()
    try:
        until(lambda: second.on_loop, "the second reader's watch is in place", timeout=10)
        host.call(lambda: None, timeout=5)  # the first reader's leftover tick has run by now
        time.sleep(3 * key_reader.TICK_S)
        first.type(F12)
        assert seen.wait(1) == [("f12", "station-test")]
    finally:
        exit_event.set()
        thread.join(5)


def test_a_terminal_the_loop_cannot_watch_is_read_by_the_input_thread_at_once(
    host: StationThread, tmp_path: Path
) -> None:
    """stdin a file (a service started without a terminal): epoll refuses it; no traceback on the station's
    loop, no second's wait; the thread reads it as Textual would."""
    typed = tmp_path / "typed"
    typed.write_bytes(b"q")
    seen = Seen()
    with typed.open("rb") as stdin:
        reader = LoopKeyReader(stdin.fileno(), seen.deliver)
        exit_event = threading.Event()
        thread = threading.Thread(target=reader.run, args=(host.loop, exit_event), name="input")
        thread.start()
        try:
            assert seen.wait(1, timeout=0.9) == [("q", "input")]
            assert "cannot watch the terminal" in (reader.handed_back or "")
        finally:
            exit_event.set()
            thread.join(5)


def test_a_burst_larger_than_one_turn_s_read_comes_through_whole_and_in_order(start: Callable[..., Rig]) -> None:
    """The loop reads the terminal a bounded piece per turn; a paste or a burst of keys spans several."""
    rig = start()
    until(lambda: rig.reader.on_loop, "the loop reads the terminal")
    burst = bytes(ord("a") + i % 26 for i in range(3 * key_reader.LOOP_READ_BYTES + 7))
    rig.type(burst)
    keys = rig.seen.wait(len(burst))
    assert "".join(k for k, _ in keys) == burst.decode()
    assert {t for _, t in keys} == {"station-test"}


def test_a_terminal_gone_is_let_go_by_the_loop_and_the_input_thread_carries_on_as_textual_s(
    start: Callable[..., Rig], host: StationThread
) -> None:
    """The master closed (the terminal went away): the loop must not spin on a terminal that reads empty
    forever; it lets go. The input thread then waits, as Textual's would, for the console to close (its
    terminal watch ends the process: console.ui.exit_guard)."""
    rig = start()
    until(lambda: rig.reader.on_loop, "the loop reads the terminal")
    os.close(rig.master)
    until(lambda: rig.reader.handed_back is not None, "the loop let go")
    assert "reading the terminal on the station's loop failed" in (rig.reader.handed_back or "")
    assert host.call(lambda: host.loop.remove_reader(rig.reader.fileno)) is False, "still read on the loop"
    assert rig.thread.is_alive() and rig.failure == []
    rig.exit_event.set()
    rig.thread.join(5)
    assert not rig.thread.is_alive()


def test_closing_the_console_takes_the_terminal_off_the_loop(start: Callable[..., Rig], host: StationThread) -> None:
    rig = start()
    until(lambda: rig.reader.on_loop, "the loop reads the terminal")
    rig.exit_event.set()
    rig.thread.join(5)
    assert not rig.thread.is_alive() and not rig.reader.on_loop
    assert host.call(lambda: host.loop.remove_reader(rig.reader.fileno)) is False, "still read on the loop"
    rig.type(b"z")
    time.sleep(3 * key_reader.TICK_S)
    assert rig.seen.keys == [], "the station's loop still read the terminal after the console closed"
