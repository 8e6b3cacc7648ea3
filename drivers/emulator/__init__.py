"""An emulated CUFF-LINK/1 controller: firmware over a cuff-and-limb physics model.

In-process: :class:`ControllerFirmware` (drive it with bytes and a manual time).
Over a pseudo-terminal: :class:`PtyEmulator`, or ``python -m drivers.emulator``.
"""

from __future__ import annotations

from drivers.emulator.channel import ChannelView, Faults
from drivers.emulator.firmware import ControllerFirmware
from drivers.emulator.pty_port import PtyEmulator, serve_emulator

__all__ = ["ChannelView", "ControllerFirmware", "Faults", "PtyEmulator", "serve_emulator"]
