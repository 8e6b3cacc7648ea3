"""An emulated CUFF-LINK/1 controller: firmware over a cuff-and-limb physics model.

In-process: :class:`drivers.emulator.firmware.ControllerFirmware` (drive it with
bytes and a manual time). Over a pseudo-terminal:
:class:`drivers.emulator.pty_port.PtyEmulator`, or ``python -m drivers.emulator``.
"""
