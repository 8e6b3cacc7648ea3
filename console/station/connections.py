"""Bringing the station's controller links up and down.

Opening serves each built-in emulator on a fresh pseudo-terminal behind a symlink,
starts every link, waits briefly for READY and vents whatever the controllers were
doing; closing stops every link (deflating) and emulator. The station owns one
:class:`Connections` and decides when: it deflates every cuff before anything closes.

Each link is told which controller it expects: the config's ``serial`` for a real
port (else the link learns it at first connect), ``EMU-<id>`` for a built-in
emulator. A port that later answers as another controller is refused by the link.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence

from console.config.schema import ControllerConfig
from console.station.controller_state import ControllerState
from drivers.emulator.firmware import ControllerFirmware
from drivers.emulator.pty_port import PtyEmulator
from drivers.link import CuffLink

log = logging.getLogger(__name__)


def emulator_serial(controller_id: str) -> str:
    """The serial a built-in emulator answers HELLO with (and its link expects): ``EMU-<id>``."""
    return f"EMU-{controller_id}"[:16].replace(" ", "_").replace("*", "_")


class Connections:
    """The links of one station (and the emulators behind ``port = "emulator"``).

    Args:
        configs: the config's controllers, in order.
        controllers: the station's live state per controller id (``link`` is set here).
        listener_for: builds the link listener of a controller (the station's report handler).
        ready_timeout_s: how long :meth:`open` waits for READY before going on without a link.
        blind_after_s: passed to every link (:mod:`drivers.link_quiet`): the station's link timeout;
            also how long a link waits without any answer before it gives its port up as silent
            (never less than one command's attempts).
    """

    def __init__(
        self,
        configs: Sequence[ControllerConfig],
        controllers: dict[str, ControllerState],
        listener_for: Callable[[ControllerState], Callable[[object], None]],
        ready_timeout_s: float,
        blind_after_s: float | None = None,
    ) -> None:
        self.configs = tuple(configs)
        self.controllers = controllers
        self._listener_for = listener_for
        self.ready_timeout_s = ready_timeout_s
        self.blind_after_s = blind_after_s
        """No usable sample for this long: the link stops feeding the controller's watchdog (the station's
        link timeout, so the blind vent and the quiet rule start together)."""
        self.links: dict[str, CuffLink] = {}
        self.emulators: dict[str, PtyEmulator] = {}
        """Controller id -> PtyEmulator for ``port = "emulator"`` (tests reach the firmware here)."""
        self._tmpdir: str | None = None

    async def open(self) -> None:
        """Open every link (serving emulators on fresh ptys), wait briefly for READY, DEFLATE ALL."""
        for cc in self.configs:
            ctrl = self.controllers[cc.id]
            url = cc.port
            serial = emulator_serial(cc.id) if cc.is_emulator else cc.serial
            try:
                if cc.is_emulator:
                    url = await self._start_emulator(cc)
            except Exception as exc:
                log.exception("station: emulator %s failed to start", cc.id)
                ctrl.error = f"emulator failed: {exc}"
                continue
            link = CuffLink(
                url,
                name=cc.id,
                watchdog_ms=cc.watchdog_ms,
                stream_hz=cc.stream_hz,
                serial=serial,
                blind_after_s=self.blind_after_s,
                silent_after_s=self.blind_after_s,
            )
            link.add_listener(self._listener_for(ctrl))
            ctrl.link = link
            self.links[cc.id] = link
            await link.start()
        waits = [link.wait_ready(self.ready_timeout_s) for link in self.links.values()]
        results = await asyncio.gather(*waits, return_exceptions=True)
        for cid, res in zip(self.links, results):
            if isinstance(res, BaseException):
                log.warning("station: controller %s not ready at start: %s", cid, res)
        # Whatever the controllers were doing before we came: vent them.
        ready = [link for link in self.links.values() if link.state.value == "ready"]
        outcomes = await asyncio.gather(*(link.deflate("ALL") for link in ready), return_exceptions=True)
        for link, out in zip(ready, outcomes):
            if isinstance(out, BaseException):
                log.warning("station: start-up DEFLATE ALL on %s failed: %s", link.name, out)
            else:
                self.controllers[link.name].startup_deflated = True

    async def _start_emulator(self, cc: ControllerConfig) -> str:
        e = cc.emulator
        if e is None:
            raise ValueError(f"controller {cc.id}: no [controllers.emulator] settings")
        fw = ControllerFirmware(
            channels=e.channels,
            lops=list(e.lop),
            heart_rate=e.heart_rate,
            pulse_amplitude=e.pulse_mmhg,
            seed=e.seed,
            serial=emulator_serial(cc.id),
        )
        if e.exercise:
            for ch in range(1, e.channels + 1):
                fw.exercise(ch)
        if self._tmpdir is None:
            self._tmpdir = tempfile.mkdtemp(prefix="bfr-station-")
        # Served through a symlink, like /dev/serial/by-id/: a test can unplug and replug it.
        emu = PtyEmulator(fw, link_path=os.path.join(self._tmpdir, f"ctl-{len(self.emulators)}"))
        path = await emu.start()
        self.emulators[cc.id] = emu
        return str(path)

    async def close(self) -> None:
        """Stop every link (each deflates its channels on the way) and every emulator."""
        for link in self.links.values():
            with contextlib.suppress(Exception):
                await link.stop(deflate=True)
        for emu in self.emulators.values():
            with contextlib.suppress(Exception):
                await emu.stop()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
