"""Emulators on ptys for the setup tests: one answering, one silent, one busy, two sharing a serial.

No tests in here.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from drivers.emulator.firmware import ControllerFirmware
from drivers.emulator.pty_port import PtyEmulator
from drivers.serial_port import open_port


@dataclass
class Bench:
    """The ports of a bench of emulated controllers, by role, and their firmware."""

    answering: str
    silent: str
    busy: str
    dup_a: str
    dup_b: str
    firmware: dict[str, ControllerFirmware]


@contextlib.asynccontextmanager
async def bench(tmp_path: Path) -> AsyncIterator[Bench]:
    """Five emulated controllers on ptys; ``busy`` is held open (exclusively) by another opener."""
    specs = {
        "answering": {"channels": 2, "serial": "GOOD-1", "model": "EMU-2"},
        "silent": {"channels": 4, "serial": "QUIET-1"},
        "busy": {"channels": 4, "serial": "BUSY-1"},
        "dup_a": {"channels": 1, "serial": "TWIN"},
        "dup_b": {"channels": 1, "serial": "TWIN"},
    }
    emulators: dict[str, PtyEmulator] = {}
    firmware: dict[str, ControllerFirmware] = {}
    holder = None
    try:
        for role, kw in specs.items():
            fw = ControllerFirmware(seed=0, **kw)  # type: ignore[arg-type]
            if role == "silent":
                fw.faults.silent = True
            firmware[role] = fw
            emulators[role] = PtyEmulator(fw, link_path=str(tmp_path / f"usb-{role}"))
            await emulators[role].start()
        holder = await open_port(emulators["busy"].path)  # a running console holds this one
        yield Bench(**{role: e.path for role, e in emulators.items()}, firmware=firmware)
    finally:
        if holder is not None:
            holder[1].transport.abort()
        for e in emulators.values():
            await e.stop()
