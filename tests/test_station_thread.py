"""The console's station on a thread of its own, and F12 handed to it from the terminal's input thread.

The real Station and its in-process emulators run on a StationThread; the test's own loop plays
the console's (and is blocked on purpose, as a frame being drawn blocks it). The emergency key goes
in the way the console's driver hands it over (``on_input_thread`` in a thread of its own, then
``post_message`` to the app, which is what Textual's ``Driver.process_message`` does with it).
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
import tty
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from textual import events
from textual.message import Message

from console.common.api import OVERTAKEN_BY_EMERGENCY, CommandRefused
from console.station import threaded_handle
from console.station.station import Station
from console.station.station_thread import OS_THREAD_NAME, SWITCH_INTERVAL_S, StationThread, StationThreadStopped
from console.station.threaded_handle import ThreadedStation
from console.ui.app import BfrApp
from console.ui.emergency_key import EMERGENCY_KEYS, EmergencyKeyPressed, on_input_thread
from console.ui.key_reader import LoopKeyReader
from console.ui.snapshot_feed import PushedSnapshots
from tests.station_support import make_config
from tests.ui_support import notices, press, screen_text, wait_for

# -- the thread itself ------------------------------------------------------------------------------


def test_call_runs_on_the_station_thread_and_hands_back_results_and_errors() -> None:
    host = StationThread()
    before = sys.getswitchinterval()
    host.start()
    try:
        assert sys.getswitchinterval() == pytest.approx(min(before, SWITCH_INTERVAL_S))
        assert host.call(lambda: threading.current_thread().name) == "station"
        if sys.platform.startswith("linux"):  # the system sees it by name too (top -H, bench_ui's split)
            tid = host.call(threading.get_native_id)
            assert Path(f"/proc/self/task/{tid}/comm").read_text().strip() == OS_THREAD_NAME.decode()
        with pytest.raises(SystemExit):  # what open_records raises for a broken records directory
            host.call(lambda: sys.exit(2))
        with pytest.raises(ValueError, match="boom"):
            host.call(lambda: int("boom"))

        def own_timeout() -> None:
            raise TimeoutError("the fn's own")

        with pytest.raises(TimeoutError, match="the fn's own"):
            host.call(own_timeout, timeout=1.0)
        host.call_soon(time.sleep, 0.4)  # the station's loop busy
        with pytest.raises(TimeoutError, match="did not answer within 0.05"):
            host.call(lambda: 1, timeout=0.05)
        assert host.call(lambda: 2, timeout=2.0) == 2
    finally:
        host.stop()
    assert sys.getswitchinterval() == pytest.approx(before)
    assert not host.running
    with pytest.raises(StationThreadStopped):
        host.call_soon(print)

    async def nothing() -> None:
        return None

    with pytest.raises(StationThreadStopped):
        host.submit(nothing())


def test_stop_cancels_what_still_runs_on_the_station_loop() -> None:
    host = StationThread()
    host.start()
    cancelled = threading.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    host.submit(forever())
    time.sleep(0.05)
    host.stop()
    assert cancelled.is_set() and not host.running


# -- the handle over a real station -----------------------------------------------------------------


@pytest.fixture
async def threaded(tmp_path: Path) -> AsyncIterator[ThreadedStation]:
    host = StationThread()
    host.start()
    station = host.call(lambda: Station(make_config(tmp_path)))
    await host.run(station.start())
    try:
        yield ThreadedStation(station, host)
    finally:
        await host.run(station.stop())
        host.stop()


def firmware_target(handle: ThreadedStation, cuff: str) -> float:
    """The emulator's own target for a cuff, read on the station's thread (where the emulator runs)."""
    return handle.host.call(
        lambda: handle.station.emulators[cuff[0]].firmware.channel(int(cuff[1:])).target, timeout=5.0
    )


async def until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out: {what}")
        await asyncio.sleep(0.02)


async def test_commands_and_reads_pass_through_and_refusals_come_back(threaded: ThreadedStation) -> None:
    await until(lambda: all(c.online for c in threaded.snapshot().cuffs), "every cuff online")
    await threaded.inflate("A1", mmhg=80)
    await until(lambda: firmware_target(threaded, "A1") == 80, "A1 inflated at the emulator")
    with pytest.raises(CommandRefused, match="Z9"):
        await threaded.inflate("Z9", mmhg=80)
    await threaded.nudge_target("A1", 5)
    await until(lambda: firmware_target(threaded, "A1") == 85, "A1 nudged at the emulator")
    await threaded.deflate("A1")
    await until(lambda: firmware_target(threaded, "A1") == 0, "A1 deflated")
    assert threaded.alarm_log() == threaded.host.call(threaded.station.alarm_log)
    assert threaded.snapshot().name == threaded.station.snapshot().name


async def test_a_late_station_is_said_on_screen_not_shown_as_live(threaded: ThreadedStation) -> None:
    live = threaded.snapshot()
    assert threaded_handle.STATION_LATE not in live.notices
    threaded.host.call_soon(time.sleep, 2 * threaded_handle.READ_WAIT_S)  # the station's loop stuck
    late = threaded.snapshot()
    assert threaded_handle.STATION_LATE in late.notices and late.cuffs == live.cuffs
    assert threaded.late_reads == 1
    await asyncio.sleep(2 * threaded_handle.READ_WAIT_S)
    assert threaded_handle.STATION_LATE not in threaded.snapshot().notices


async def test_the_console_says_when_its_station_is_late(threaded: ThreadedStation) -> None:
    app = BfrApp(threaded, bell=False, term="xterm", emergency_key=threaded)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await wait_for(pilot, lambda: "VENTED" in screen_text(app), 10, "cuffs shown")
        assert "NOT ANSWERING" not in screen_text(app)
        threaded.host.call_soon(time.sleep, 1.5)
        await wait_for(pilot, lambda: "NOT ANSWERING" in screen_text(app), 5, "the late station said on screen")
        await wait_for(pilot, lambda: "NOT ANSWERING" not in screen_text(app), 10, "gone once it answers")


async def test_f12_from_another_thread_deflates_while_the_console_loop_is_busy(threaded: ThreadedStation) -> None:
    """The console's loop holds the GIL drawing (here: a busy loop); the emergency, fired from another
    thread, is written and confirmed by every controller before that loop is free again."""
    await until(lambda: all(c.online for c in threaded.snapshot().cuffs), "every cuff online")
    await threaded.inflate("A1", mmhg=80)
    await threaded.inflate("B2", mmhg=60)
    await until(lambda: firmware_target(threaded, "B2") == 60, "B2 inflated")
    fired: list[Any] = []
    key = threading.Thread(target=lambda: fired.append(threaded.fire_emergency_from_key()))
    busy_until = time.monotonic() + 3.0
    key.start()
    confirmed_while_busy = False
    while time.monotonic() < busy_until:  # no await: this loop draws a "frame" of up to 3 s
        if fired and fired[0].done():
            confirmed_while_busy = True
            break
    key.join()
    assert confirmed_while_busy, "the emergency waited for the console's loop"
    snap = fired[0].result()
    assert snap.confirmed == ("A", "B") and snap.pending == () and snap.latency_s is not None
    assert firmware_target(threaded, "A1") == 0 and firmware_target(threaded, "B2") == 0
    threaded.emergency_key_seen()


async def test_f12_read_on_the_station_s_loop_deflates_in_the_same_turn(threaded: ThreadedStation) -> None:
    """The terminal is read on the station's loop (console.ui.key_reader): the DEFLATE ALL is written in the
    call that read the key, not in a later turn of the loop (the hand-over it saves)."""
    await until(lambda: all(c.online for c in threaded.snapshot().cuffs), "every cuff online")
    await threaded.inflate("A1", mmhg=80)
    epoch = threaded.host.call(lambda: threaded.station.targets.epoch)

    def as_the_reader() -> tuple[bool, int]:  # on the station's thread, as the key reader runs
        started = threaded.fire_emergency_from_key()
        return started.done(), threaded.station.targets.epoch

    done, epoch_after = threaded.host.call(as_the_reader)
    assert epoch_after == epoch + 1, "every cuff's target went to 0 within the call that read the key"
    assert not done, "the confirmations come later, not within the call"
    await until(lambda: firmware_target(threaded, "A1") == 0, "A1 vented by the controller")
    threaded.emergency_key_seen()


async def test_f12_typed_into_a_terminal_read_on_the_station_s_loop_is_confirmed(
    threaded: ThreadedStation,
) -> None:
    """A real pty, read on the station's loop, each message through the console's hook as its driver does."""
    await until(lambda: all(c.online for c in threaded.snapshot().cuffs), "every cuff online")
    await threaded.inflate("B2", mmhg=60)
    await until(lambda: firmware_target(threaded, "B2") == 60, "B2 inflated")
    master, slave = os.openpty()
    tty.setraw(slave)
    handed: list[tuple[Message, str]] = []
    reader = LoopKeyReader(
        slave, lambda m: handed.append((on_input_thread(m, threaded), threading.current_thread().name))
    )
    exit_event = threading.Event()
    thread = threading.Thread(target=reader.run, args=(threaded.key_loop(), exit_event), name="input")
    thread.start()
    try:
        await until(lambda: reader.on_loop, "the station's loop reads the terminal")
        os.write(master, b"\x1b[24~")
        await until(lambda: bool(handed), "F12 handed to the console")
        message, on_thread = handed[0]
        assert isinstance(message, EmergencyKeyPressed) and message.started is not None
        assert on_thread == "station", "F12 was not acted on by the station's own loop"
        snap = await asyncio.wrap_future(message.started)
        assert snap.confirmed == ("A", "B") and snap.pending == ()
        assert firmware_target(threaded, "B2") == 0
    finally:
        exit_event.set()
        await asyncio.to_thread(thread.join, 5)
        os.close(master)
        os.close(slave)
        threaded.emergency_key_seen()


async def test_pressure_commands_wait_for_the_console_to_hear_of_the_key(threaded: ThreadedStation) -> None:
    """A command the console asked for before it heard of F12 may reach the station after its DEFLATE ALL:
    until the console says it has heard of the key, no command that raises a pressure is sent; a deflate
    always is. A console that never says so holds them for KEY_CATCH_UP_S at most."""
    await until(lambda: all(c.online for c in threaded.snapshot().cuffs), "every cuff online")
    await threaded.inflate("A2", mmhg=70)
    await asyncio.wrap_future(threaded.fire_emergency_from_key())
    for command in (
        lambda: threaded.inflate("A1", mmhg=80),
        lambda: threaded.nudge_target("A1", 5),
        lambda: threaded.measure_lop("A1"),
        lambda: threaded.session_command("A1", "resume"),
    ):
        with pytest.raises(CommandRefused, match=OVERTAKEN_BY_EMERGENCY):
            await command()
    await threaded.deflate("A2")  # never refused
    await asyncio.sleep(0.2)
    assert firmware_target(threaded, "A1") == 0
    threaded.emergency_key_seen()
    await threaded.inflate("A1", mmhg=80)
    await until(lambda: firmware_target(threaded, "A1") == 80, "an inflate asked after the key goes through")


async def test_a_console_that_never_hears_of_the_key_holds_commands_for_a_bounded_time(
    threaded: ThreadedStation, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(threaded_handle, "KEY_CATCH_UP_S", 0.5)
    await until(lambda: all(c.online for c in threaded.snapshot().cuffs), "every cuff online")
    await asyncio.wrap_future(threaded.fire_emergency_from_key())
    with pytest.raises(CommandRefused, match=OVERTAKEN_BY_EMERGENCY):
        await threaded.inflate("A1", mmhg=80)
    await asyncio.sleep(0.6)
    assert not threaded.waiting_for_console()
    await threaded.inflate("A1", mmhg=80)
    await until(lambda: firmware_target(threaded, "A1") == 80, "commands flow again once the wait is over")


async def test_a_command_asked_before_the_emergency_is_not_sent_after_it(threaded: ThreadedStation) -> None:
    """The station's loop is busy; an inflate is asked, then the emergency: the inflate's turn comes after
    the ask of the emergency, and it is refused rather than sent."""
    await until(lambda: all(c.online for c in threaded.snapshot().cuffs), "every cuff online")
    threaded.host.call_soon(time.sleep, 0.3)
    inflate = asyncio.ensure_future(threaded.inflate("A1", mmhg=80))
    await asyncio.sleep(0)  # the inflate is handed over, then the emergency
    snap = await threaded.emergency_deflate()
    assert snap.confirmed == ("A", "B")
    with pytest.raises(CommandRefused, match=OVERTAKEN_BY_EMERGENCY):
        await inflate
    await asyncio.sleep(0.2)
    assert firmware_target(threaded, "A1") == 0


async def test_a_stopped_station_thread_refuses_the_emergency_at_the_call(tmp_path: Path) -> None:
    host = StationThread()
    host.start()
    station = host.call(lambda: Station(make_config(tmp_path, controllers=1)))
    handle = ThreadedStation(station, host)
    host.stop()
    with pytest.raises(StationThreadStopped):
        handle.fire_emergency()
    with pytest.raises(StationThreadStopped):
        handle.emergency_deflate()
    assert not handle.emergency_in_flight(), "a refused emergency would hold the screen's frames"
    # The input thread does not raise: the app is told to ask the station itself, which says so on screen.
    message = on_input_thread(events.Key("f12", None), handle)
    assert isinstance(message, EmergencyKeyPressed) and message.started is None


# -- the app, with the key handed over as the console's driver does ------------------------------------


def test_the_keys_acted_on_in_the_input_thread_are_the_apps_emergency_keys() -> None:
    keys = {b.key for b in BfrApp.BINDINGS if not isinstance(b, tuple) and getattr(b, "action", "") == "emergency"}
    assert keys == set(EMERGENCY_KEYS)
    other = events.Key("a", "a")
    assert on_input_thread(other, object()) is other  # type: ignore[arg-type]


def type_from_input_thread(app: BfrApp, handle: ThreadedStation | None, *keys: str) -> None:
    """As Textual's input thread: each key through the console's hook (``handle``; None: Textual's own
    driver, no hook), then posted to the app."""

    def run() -> None:
        for key in keys:
            event = events.Key(key, key if len(key) == 1 else None)
            app.post_message(on_input_thread(event, handle) if handle is not None else event)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()


async def test_f12_in_the_console_deflates_while_its_loop_is_blocked(threaded: ThreadedStation) -> None:
    app = BfrApp(threaded, bell=False, term="xterm", emergency_key=threaded)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await wait_for(pilot, lambda: "VENTED" in screen_text(app), 10, "cuffs shown")
        await press(pilot, "i", *"80", "enter")
        await wait_for(pilot, lambda: firmware_target(threaded, "A1") == 80, 10, "A1 inflated")
        type_from_input_thread(app, threaded, "f12")
        blocked_until = time.monotonic() + 3.0
        while time.monotonic() < blocked_until and firmware_target(threaded, "A1") != 0:
            pass  # the console's loop is blocked: no key of it is handled, no frame drawn
        assert firmware_target(threaded, "A1") == 0, "F12 waited for the console's loop"
        await wait_for(pilot, lambda: any("All deflated" in n for n in notices(app)), 10, "the app reports it")
        assert not threaded.waiting_for_console(), "the app told the station it heard of the key"
        await press(pilot, "i", *"70", "enter")
        await wait_for(pilot, lambda: firmware_target(threaded, "A1") == 70, 10, "inflates again after the key")


@pytest.mark.parametrize("hook", [True, False], ids=["input-thread", "app-binding"])
async def test_enter_typed_just_before_f12_does_not_inflate_after_the_emergency(
    threaded: ThreadedStation, hook: bool
) -> None:
    """``i80`` then Enter and F12 in one burst: the input thread writes the DEFLATE ALL before the app has
    acted on Enter, and even the app's own F12 binding runs before the dialog's field takes Enter (the
    app forwards a key to the field's queue). The inflate is not sent after the emergency either way."""
    app = BfrApp(threaded, bell=False, term="xterm", emergency_key=threaded if hook else None)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await wait_for(pilot, lambda: "VENTED" in screen_text(app), 10, "cuffs shown")
        await press(pilot, "i", *"80")
        type_from_input_thread(app, threaded if hook else None, "enter", "f12")
        await wait_for(pilot, lambda: any("All deflated" in n for n in notices(app)), 10, "the emergency reported")
        await pilot.pause(0.5)
        assert firmware_target(threaded, "A1") == 0, "the inflate typed before F12 landed after it"
        assert any("not sent" in n for n in notices(app)), notices(app)
        assert not threaded.waiting_for_console(), "the app told the station it heard of the key"


async def test_frames_wait_for_the_emergency_s_confirmations_but_never_longer_than_the_hold(
    threaded: ThreadedStation,
) -> None:
    """While a DEFLATE ALL is on its way the screen starts no frame (the station gets the machine first):
    until the confirmations are in, and never longer than EMERGENCY_FRAME_HOLD_S when a controller keeps
    silent (its confirmation is then still pending, the frames go on). Frames are counted on the app's
    own clock, which stands still unless the test moves it."""
    from console.common.clock import ManualClock
    from console.ui.app import EMERGENCY_FRAME_HOLD_S

    clock = ManualClock(start=0.0)
    app = BfrApp(threaded, bell=False, term="xterm", emergency_key=threaded, clock=clock.monotonic)

    async def new_frames() -> int:
        before = app.frames
        for _ in range(5):
            app.refresh_now()
            await asyncio.sleep(0.02)  # the emulators stream meanwhile: every frame has a new snapshot
        return app.frames - before

    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: "VENTED" in screen_text(app), 10, "cuffs shown")
        assert await new_frames() > 0 and not threaded.emergency_in_flight()
        # Every controller answers: frames stop while it is on its way and go on once confirmed.
        started = threaded.fire_emergency_from_key()
        await until(lambda: not threaded.emergency_in_flight(), "the emergency confirmed")
        assert started.done() and not started.result().pending
        assert await new_frames() > 0, "frames did not go on once the emergency was confirmed"
        threaded.emergency_key_seen()
        # A controller keeps silent: its confirmation stays pending; frames wait only the hold.
        threaded.host.call(lambda: setattr(threaded.station.emulators["B"].firmware.faults, "silent", True))
        started = threaded.fire_emergency_from_key()
        assert await new_frames() == 0, "a frame was drawn while the DEFLATE ALL was on its way"
        assert threaded.emergency_in_flight() and not started.done()
        clock.advance(EMERGENCY_FRAME_HOLD_S)
        assert await new_frames() > 0, "the screen stayed frozen past the hold"
        assert threaded.emergency_in_flight(), "B's confirmation is still pending"
        threaded.emergency_key_seen()


# -- snapshots handed to the screen by the station's thread ---------------------------------------------


async def test_the_station_thread_hands_snapshots_over_on_its_grid_until_stopped(threaded: ThreadedStation) -> None:
    got: list[tuple[bool, int]] = []
    stop = threaded.push_snapshots(0.05, lambda snap: got.append((threaded.host.in_station_thread, snap.seq)))
    await until(lambda: len(got) >= 5, "five snapshots handed over")
    stop()
    await asyncio.sleep(0.2)
    n = len(got)
    await asyncio.sleep(0.3)
    assert len(got) == n, "none after stop"
    assert all(on_station for on_station, _ in got)
    seqs = [seq for _, seq in got]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), "a new snapshot each tick (samples stream)"


async def test_a_snapshot_handed_over_while_another_waits_replaces_it_and_wakes_the_app_once() -> None:
    loop = asyncio.get_running_loop()
    woken: list[int] = []
    pushed = PushedSnapshots(loop, lambda: woken.append(1))
    first, second = (object(), object())
    t = threading.Thread(target=lambda: (pushed.deliver(first), pushed.deliver(second)))  # type: ignore[func-returns-value,arg-type]
    t.start()
    t.join(5)
    await asyncio.sleep(0.05)
    assert woken == [1] and pushed.waiting()
    assert pushed.take() is second and pushed.take() is None and not pushed.waiting()
    pushed.deliver(first)  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    assert woken == [1, 1]


async def test_the_console_on_a_station_thread_shows_handed_over_snapshots_without_pulling(
    threaded: ThreadedStation, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = BfrApp(threaded, bell=False, term="xterm", emergency_key=threaded)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: "VENTED" in screen_text(app), 10, "cuffs shown")
        pulls = 0
        real = ThreadedStation.snapshot

        def counted(self: ThreadedStation) -> Any:
            nonlocal pulls
            pulls += 1
            return real(self)

        monkeypatch.setattr(ThreadedStation, "snapshot", counted)
        frames = app.frames
        await pilot.pause(1.0)
        assert app.frames - frames >= 5, "the screen kept taking new snapshots"
        # Before, every frame was a pull; now a pull is only the check for a late station (a busy machine).
        assert pulls < (app.frames - frames) / 2, "most of them were handed over, not pulled"


async def test_a_snapshot_that_fails_is_logged_and_the_next_ones_still_come(
    threaded: ThreadedStation, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = threaded.station.snapshot
    calls = 0

    def flaky() -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("a bug in a snapshot")
        return real()

    monkeypatch.setattr(threaded.station, "snapshot", flaky)
    got: list[int] = []
    stop = threaded.push_snapshots(0.05, lambda snap: got.append(snap.seq))
    try:
        await until(lambda: len(got) >= 4, "snapshots after the failed one")
    finally:
        stop()
    assert calls >= 5 and "a snapshot for the screen failed" in caplog.text


async def test_a_snapshot_left_untaken_by_the_app_does_not_stop_the_next_ones_from_waking_it() -> None:
    """The app returns before taking one (a frame held back for an emergency, the dashboard not up yet): the
    next snapshot handed over still wakes it, and the newest is the one waiting."""
    loop = asyncio.get_running_loop()
    woken: list[int] = []
    pushed = PushedSnapshots(loop, lambda: woken.append(1))
    first, second = (object(), object())
    pushed.deliver(first)  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    assert woken == [1]  # ... and the app did not take it
    pushed.deliver(second)  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    assert woken == [1, 1] and pushed.take() is second


def test_lateness_is_three_periods_at_a_low_frame_rate() -> None:
    loop = asyncio.new_event_loop()
    try:
        fast, slow = PushedSnapshots(loop, lambda: None, 0.05), PushedSnapshots(loop, lambda: None, 1.0)
        now = time.monotonic()
        assert fast.late(now + 0.3) and not slow.late(now + 0.3) and slow.late(now + 3.5)
    finally:
        loop.close()
