"""A loop of the station's own, in a thread of its own, for the console that draws a screen.

The local console used to run the station on Textual's loop. That loop cannot be
interrupted while it draws a frame (a few ms at 160x50), so every sample, every
safety check, the emergency's DEFLATE ALL and its confirmations waited behind
whatever frame was being drawn. On a station thread they wait for nothing the
screen does: the UI reaches the station only through
:class:`~console.station.threaded_handle.ThreadedStation`, which hands each call
to this loop.

What it assumes of the other side: nothing on the UI's thread touches the
station's objects (every read and command goes through :meth:`call` or
:meth:`submit`), and the interpreter hands the GIL over often enough
(:data:`SWITCH_INTERVAL_S`) that a thread woken by a serial read or a key is
not held for Python's default 5 ms behind a frame being drawn.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from console.common.os_thread import executor_at_process_priority, name_os_thread, raise_os_priority

log = logging.getLogger(__name__)

T = TypeVar("T")

SWITCH_INTERVAL_S = 0.0005
"""How long a thread that holds the GIL keeps it while another waits (Python's default is 5 ms): the longest
the station's thread, woken by a controller's answer or by F12, waits for a frame being drawn."""
OS_THREAD_NAME = b"bfr-station"
"""The thread's name as the system shows it (``top -H``, ``ps -L``, ``/proc/<pid>/task/*/comm``): what the
station costs, told apart from what the screen costs, in the same process."""
JOIN_S = 5.0
"""How long stopping waits for the thread to end (its loop has finished its work by then)."""


class StationThreadStopped(RuntimeError):
    """The station's loop is no longer running: nothing more can be handed to it."""


class StationThread:
    """An asyncio loop running in a daemon thread (daemon: a stuck station never holds the process open;
    the controllers' watchdogs vent what it could not)."""

    def __init__(self, name: str = "station", *, safety_priority: bool = True) -> None:
        """``safety_priority``: the thread runs ahead of the screen where the system allows it
        (:func:`~console.common.os_thread.raise_os_priority`)."""
        self.safety_priority = safety_priority
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._ready = threading.Event()
        self._previous_switch: float | None = None

    def start(self) -> None:
        """Start the loop, and shorten the GIL's switch interval while it runs."""
        self._previous_switch = sys.getswitchinterval()
        sys.setswitchinterval(min(self._previous_switch, SWITCH_INTERVAL_S))
        self._thread.start()
        self._ready.wait()

    def _run(self) -> None:
        name_os_thread(OS_THREAD_NAME)
        if self.safety_priority:
            raise_os_priority()
            self.loop.set_default_executor(executor_at_process_priority())
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        try:
            self.loop.run_forever()
        finally:
            try:
                pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
                for task in pending:
                    task.cancel()
                if pending:
                    self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            except Exception:  # pragma: no cover - the process is ending; nothing left to tell
                log.exception("station thread: closing its loop")
            finally:
                self.loop.close()

    @property
    def in_station_thread(self) -> bool:
        return threading.current_thread() is self._thread

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self.loop.is_closed()

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the station's loop as soon as it is free; from any thread."""
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError as exc:  # the loop is closed
            raise StationThreadStopped("the station has stopped") from exc

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run a coroutine on the station's loop; from any thread but the station's."""
        try:
            return asyncio.run_coroutine_threadsafe(coro, self.loop)
        except RuntimeError as exc:
            coro.close()
            raise StationThreadStopped("the station has stopped") from exc

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await, on the caller's loop, a coroutine run on the station's loop."""
        return await asyncio.wrap_future(self.submit(coro))

    def call(self, fn: Callable[[], T], *, timeout: float | None = None) -> T:
        """``fn()`` run on the station's loop, its result (or exception) back here; blocks the caller.

        Raises ``TimeoutError`` when the station's loop does not get to it within ``timeout``.
        """
        if self.in_station_thread:
            return fn()
        done: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            if not done.set_running_or_notify_cancel():
                return
            try:
                done.set_result(fn())
            except BaseException as exc:  # handed to the caller, SystemExit included
                done.set_exception(exc)

        self.call_soon(run)
        try:
            return done.result(timeout)
        except TimeoutError:
            if done.done():  # fn's own TimeoutError
                raise
            done.cancel()
            raise TimeoutError(f"the station did not answer within {timeout} s") from None

    def stop(self) -> None:
        """Stop the loop (its tasks are cancelled), wait for the thread, put the switch interval back."""
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.loop.stop)
        if self._thread.is_alive() and not self.in_station_thread:
            self._thread.join(JOIN_S)
            if self._thread.is_alive():
                log.warning("station thread: still running %.0f s after it was asked to stop", JOIN_S)
        if self._previous_switch is not None:
            sys.setswitchinterval(self._previous_switch)
            self._previous_switch = None
