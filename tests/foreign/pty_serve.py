"""Serve a :class:`~tests.foreign.controller.ForeignController` on a pseudo-terminal, like hardware.

The controller runs in a thread of its own on real time (``time.monotonic``), so a stalled event
loop in the console never stalls the controller: its watchdog and its pump keep their own time,
as a box on a USB cable does. The port is reached through a symlink (as ``/dev/serial/by-id/``
names a device): :meth:`PtyServer.unplug` closes the pty and removes the link, :meth:`PtyServer.replug`
opens a fresh pty behind the same link. Both ends are raw; the server keeps the slave open too, so
a host closing and reopening the port is not a hangup for the controller.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import threading
import time
import tty
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from tests.foreign.controller import STEP_S, ForeignController

T = TypeVar("T")


class PtyServer:
    """One controller on one pty, served from a thread until :meth:`stop`."""

    def __init__(self, controller: ForeignController, link_path: str | Path) -> None:
        self.controller = controller
        self.link_path = str(link_path)
        self.lock = threading.RLock()
        self.written = 0
        self.lost_bytes = 0
        """Bytes the pty refused (nobody reading): lost, as on a UART nobody listens to."""
        self._master: int | None = None
        self._slave: int | None = None
        self._gen = 0
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ control (any thread)

    def start(self) -> str:
        """Plug the port in and start serving; returns the symlink path."""
        with self.lock:
            self.controller.run(time.monotonic())
            self._plug()
        self._thread = threading.Thread(target=self._serve, name=f"foreign:{self.link_path}", daemon=True)
        self._thread.start()
        return self.link_path

    def stop(self) -> None:
        self._stop.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self.lock:
            self._unplug()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def call(self, fn: Callable[[ForeignController], T]) -> T:
        """Run ``fn(controller)`` between two steps of the server (the controller brought up to now)."""
        with self.lock:
            self.controller.run(time.monotonic())
            return fn(self.controller)

    @property
    def plugged(self) -> bool:
        return self._master is not None

    def unplug(self) -> None:
        """The cable is pulled: the pty goes away (the host's reads fail) and so does the symlink.
        The controller stays powered: with a cuff up, its watchdog vents it."""
        with self.lock:
            self._unplug()
        self._wake()

    def replug(self, *, serial: str | None = None, reboot: bool = False) -> None:
        """The cable is back: a fresh pty behind the same symlink. ``reboot``: the box was power
        cycled by it (``E BOOT``); ``serial``: another box answers there now (implies a boot)."""
        with self.lock:
            now = time.monotonic()
            if reboot or serial is not None:
                self.controller.reboot(now, serial=serial)
            self.controller.run(now)
            self._plug()
        self._wake()

    def reboot(self, *, serial: str | None = None) -> None:
        with self.lock:
            self.controller.reboot(time.monotonic(), serial=serial)
        self._wake()

    # ------------------------------------------------------------------ the pty (under the lock)

    def _plug(self) -> None:
        if self._master is not None:
            return
        master, slave = os.openpty()
        tty.setraw(master)
        tty.setraw(slave)
        flags = fcntl.fcntl(master, fcntl.F_GETFL)
        fcntl.fcntl(master, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        tmp = f"{self.link_path}.new"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        os.symlink(os.ttyname(slave), tmp)
        os.replace(tmp, self.link_path)
        self._master, self._slave = master, slave
        self._gen += 1
        self.controller.take_output()  # nothing sent while unplugged reaches the new port

    def _unplug(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.link_path)
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None
        self._gen += 1

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    # ------------------------------------------------------------------ the thread

    def _serve(self) -> None:
        ctl = self.controller
        while not self._stop.is_set():
            with self.lock:
                now = time.monotonic()
                ctl.run(now)
                self._flush()
                fd, gen = self._master, self._gen
                timeout = min(max(0.0, ctl.next_due() - now), STEP_S)
            watch = [self._wake_r] if fd is None else [self._wake_r, fd]
            try:
                ready, _, _ = select.select(watch, [], [], timeout)
            except (OSError, ValueError):
                continue  # the pty was closed under the select: go round
            if self._wake_r in ready:
                with contextlib.suppress(OSError):
                    os.read(self._wake_r, 4096)
            if fd is not None and fd in ready:
                with self.lock:
                    if gen != self._gen:
                        continue
                    data = self._read(fd)
                    if data:
                        ctl.feed(data, time.monotonic())

    def _read(self, fd: int) -> bytes:
        try:
            return os.read(fd, 4096)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EIO):
                raise
            return b""

    def _flush(self) -> None:
        data = self.controller.take_output()
        if not data:
            return
        if self._master is None:
            self.lost_bytes += len(data)
            return
        try:
            n = os.write(self._master, data)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EIO):
                raise
            n = 0
        self.written += n
        self.lost_bytes += len(data) - n
