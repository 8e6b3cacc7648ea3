"""Serve a :class:`ControllerFirmware` on a pseudo-terminal, in the running asyncio loop.

The host opens the pty's slave path (or a symlink to it) exactly as it would
open a USB serial device, so the real driver is what gets tested. Unplug and
replug behave like a USB cable: the pty goes away (the host's reader raises
``SerialException``) and comes back under the same symlink, as udev's
``/dev/serial/by-id/`` links do; a replug can bring another controller back
behind the same symlink (USB renumbering swapping two controllers).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import struct
import termios
import tty

from drivers.emulator.firmware import ControllerFirmware

TICK_S = 0.003
"""How often the firmware runs between host bytes, seconds."""

STALE_BYTES = 2048
"""Unread output beyond this (nobody has the port open) is discarded, oldest first."""

MAX_PENDING = 65536


class PtyEmulator:
    """One emulated controller behind one pseudo-terminal."""

    def __init__(self, firmware: ControllerFirmware, *, link_path: str | None = None) -> None:
        self.firmware = firmware
        self.link_path = link_path
        self.path = ""
        """What the host should open: ``link_path`` if given, else the pty's slave path."""
        self.slave_path = ""
        self.discarded_bytes = 0
        """Output nobody read (no host, or the host fell far behind): lost like on a real port."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._offset = 0.0
        self._master: int | None = None
        self._slave: int | None = None
        self._pending = bytearray()
        self._ticker: asyncio.Task[None] | None = None

    @property
    def plugged(self) -> bool:
        return self._master is not None

    def now(self) -> float:
        """The firmware's time base, driven by the event loop's clock."""
        assert self._loop is not None, "not started"
        return self._loop.time() + self._offset

    async def start(self) -> str:
        if self._loop is not None:
            raise RuntimeError("already started")
        self._loop = asyncio.get_running_loop()
        self._offset = self.firmware.now - self._loop.time()
        self._open()
        self._ticker = self._loop.create_task(self._tick(), name="pty-emulator-tick")
        return self.path

    async def unplug(self) -> None:
        """Pull the cable: the pty and the symlink vanish; the firmware keeps running (its watchdog trips)."""
        self._close()
        if self.link_path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.link_path)

    async def replug(self, *, reboot: bool = False, firmware: ControllerFirmware | None = None) -> str:
        """Plug back in: a fresh pty behind the same symlink; ``reboot`` also power-cycles the firmware.

        ``firmware`` puts another controller behind this symlink, as USB renumbering does when two
        controllers are replugged: the host opening the same path now talks to it. A firmware is
        driven by one emulator at a time (swap two controllers by replugging each with the other's).
        """
        if self.link_path is None:
            raise RuntimeError("replug needs a link_path: a new pty has a new path")
        if self._loop is None:
            raise RuntimeError("not started")
        self._close()
        if firmware is not None and firmware is not self.firmware:
            self.firmware = firmware
            self._offset = firmware.now - self._loop.time()  # its own time base goes on where it was
            firmware.take_output()  # said while it was elsewhere or nowhere: not on this port
        if reboot:
            self.firmware.reboot(self.now())
            self.firmware.take_output()  # said before the port was back: nobody heard it
        self._open()
        return self.path

    async def stop(self) -> None:
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        self._close()
        if self.link_path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.link_path)

    async def __aenter__(self) -> PtyEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ internals

    def _open(self) -> None:
        master, slave = os.openpty()
        tty.setraw(master)
        tty.setraw(slave)
        os.set_blocking(master, False)
        os.set_blocking(slave, False)
        self._master, self._slave = master, slave
        self.slave_path = os.ttyname(slave)
        if self.link_path is not None:
            tmp = f"{self.link_path}.{os.getpid()}.tmp"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            os.symlink(self.slave_path, tmp)
            os.replace(tmp, self.link_path)
            self.path = self.link_path
        else:
            self.path = self.slave_path
        self._pending.clear()
        assert self._loop is not None
        self._loop.add_reader(master, self._on_readable)

    def _close(self) -> None:
        master, self._master = self._master, None
        slave, self._slave = self._slave, None
        if master is not None:
            assert self._loop is not None
            self._loop.remove_reader(master)
            os.close(master)
        if slave is not None:
            os.close(slave)
        self._pending.clear()

    def _on_readable(self) -> None:
        if self._master is None:
            return
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return  # EIO: nobody on the other side right now
        if data:
            self.firmware.receive(data, self.now())
            self._flush()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            self.firmware.advance(self.now())
            self._flush()

    def _flush(self) -> None:
        out = self.firmware.take_output()
        if self._master is None:
            return  # unplugged: what the firmware says goes nowhere
        if out:
            self._pending += out
        if not self._pending:
            return
        self._drop_stale()
        try:
            n = os.write(self._master, self._pending)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError:
            n = len(self._pending)
            self.discarded_bytes += n
        del self._pending[:n]
        if len(self._pending) > MAX_PENDING:
            self.discarded_bytes += len(self._pending)
            self._pending.clear()

    def _drop_stale(self) -> None:
        """If nobody reads the port, read the backlog away ourselves, so a host that opens it later
        gets fresh lines, not seconds-old answers."""
        if self._slave is None:
            return
        try:
            waiting = struct.unpack("i", fcntl.ioctl(self._slave, termios.FIONREAD, b"\0\0\0\0"))[0]
        except OSError:
            return
        if waiting > STALE_BYTES:
            with contextlib.suppress(OSError):
                self.discarded_bytes += len(os.read(self._slave, waiting))


async def serve_emulator(channels: int = 4, *, link_path: str | None = None, **firmware_kw: object) -> PtyEmulator:
    """Make a firmware (keyword arguments as :class:`ControllerFirmware`) and serve it on a started pty."""
    firmware = ControllerFirmware(channels=channels, **firmware_kw)  # type: ignore[arg-type]
    emulator = PtyEmulator(firmware, link_path=link_path)
    await emulator.start()
    return emulator
