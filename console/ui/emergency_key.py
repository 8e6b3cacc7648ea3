"""F12 and Ctrl+E acted on where they are read: on the station's loop, before the screen's loop sees them.

Textual reads the terminal in a thread of its own and hands each key to the
app's loop, which cannot take it while it draws a frame. A key bound there
(the app's priority binding, still the path in tests and for any driver but
this one) waits for that frame. The console's driver instead has the terminal
read on the station's own loop (:mod:`console.ui.key_reader`; by the input
thread when that loop has stalled) and fires the emergency there
(:meth:`KeyEmergencyPort.fire_emergency_from_key`) the moment the key is
parsed, then tells the app with :class:`EmergencyKeyPressed`, which closes the
dialogs and reports the confirmations as the key binding would. A command
asked for before F12 may still be on its way when the DEFLATE ALL is written;
until the app has heard of the key, the station refuses any command that would
raise a pressure, so none of them lands after it.

What it assumes: the port is safe to call from any thread and returns at once
(:class:`~console.station.threaded_handle.ThreadedStation`); the
terminal sends F12 and Ctrl+E as Textual parses them (``ESC [ 2 4 ~`` and
0x05, the same on xterm and the Linux console).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from typing import Protocol

from textual import events
from textual.driver import Driver
from textual.drivers.linux_driver import LinuxDriver
from textual.message import Message

from console.common.api import EmergencySnapshot
from console.common.os_thread import raise_os_priority
from console.ui.key_reader import LoopKeyReader

log = logging.getLogger(__name__)

EMERGENCY_KEYS = ("f12", "ctrl+e")
"""The keys that deflate every cuff, on every screen (Textual's names)."""


class KeyEmergencyPort(Protocol):
    """What the terminal's reader (the station's loop, or the input thread) may ask of the station: thread-safe,
    returns at once."""

    def fire_emergency_from_key(self) -> concurrent.futures.Future[EmergencySnapshot]:
        """DEFLATE ALL, handed to the station now; until :meth:`emergency_key_seen`, commands that raise a
        pressure are refused (the console asked for them before it heard of the key)."""
        ...

    def emergency_key_seen(self) -> None:
        """The app has heard of the key: from now on it drops what was asked for before it."""
        ...

    def emergency_in_flight(self) -> bool:
        """A DEFLATE ALL was handed over and its confirmations are not all in yet (the screen waits for them)."""
        ...

    def key_loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop the terminal is read on, F12 acted on in the same turn (:mod:`console.ui.key_reader`); None:
        the input thread reads it and hands F12 over."""
        ...


class EmergencyKeyPressed(Message):
    """An emergency key the terminal's reader has already handed to the station (``started``), or failed to
    (``started`` is None: the app asks the station itself)."""

    def __init__(self, key: str, started: concurrent.futures.Future[EmergencySnapshot] | None) -> None:
        super().__init__()
        self.key = key
        self.started = started


def on_input_thread(message: Message, port: KeyEmergencyPort) -> Message:
    """An emergency key is handed to the station here and now, and becomes :class:`EmergencyKeyPressed`
    for the app; any other message passes as it is. Runs where the terminal is read (the station's loop,
    or the input thread)."""
    if not (isinstance(message, events.Key) and message.key in EMERGENCY_KEYS):
        return message
    started: concurrent.futures.Future[EmergencySnapshot] | None
    try:
        started = port.fire_emergency_from_key()
    except Exception:  # the station's loop is gone: the app's own call says so on screen
        log.exception("emergency key: the station could not be asked from the terminal's reader")
        started = None
    return EmergencyKeyPressed(message.key, started)


def emergency_key_driver(port: KeyEmergencyPort) -> type[Driver]:
    """Textual's Linux driver, its terminal read on the station's loop (:mod:`console.ui.key_reader`) and the
    emergency keys acted on there; its input thread watches that loop and reads the terminal itself when the
    loop cannot, ahead of the screen where the system allows it
    (:func:`~console.common.os_thread.raise_os_priority`)."""

    class EmergencyKeyDriver(LinuxDriver):
        def run_input_thread(self) -> None:  # the input thread's body: the terminal to the station's loop
            raise_os_priority()
            reader = LoopKeyReader(self.fileno, self.process_message, debug=self._debug)
            reader.run(port.key_loop(), self.exit_event)

        def process_message(self, message: Message) -> None:  # on the station's loop, or in the input thread
            super().process_message(on_input_thread(message, port))

    return EmergencyKeyDriver
