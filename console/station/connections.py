"""Bringing the station's controller links up and down.

Start-up opens every link (serving the built-in emulator on a fresh
pseudo-terminal behind a symlink), waits briefly for READY and vents whatever
the controllers were doing; stop deflates every cuff before anything closes.
:class:`Connections` is a mixin of :class:`~console.station.station.Station`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

from console.common.clock import Clock
from console.station.emergency import EmergencyDeflater
from console.station.events import StationEvent
from console.station.supervisor import ControllerState
from drivers.link import CuffLink

log = logging.getLogger("console.station.station")


class Connections:
    """start() and stop() of the links and emulators (a mixin of Station)."""

    config: Any
    clock: Clock
    emergency: EmergencyDeflater
    controllers: dict[str, ControllerState]
    links: dict[str, CuffLink]
    emulators: dict[str, Any]
    ready_timeout_s: float
    check_interval_s: float | None
    started: bool
    stopped: bool
    _tmpdir: str | None
    _tasks: set[asyncio.Task[Any]]
    _check_task: asyncio.Task[None] | None
    _listener_for: Callable[[ControllerState], Callable[[object], None]]
    _emit: Callable[[StationEvent], None]
    _check_loop: Callable[[], Any]
    _all_targets_zero: Callable[[], None]

    async def start(self) -> None:
        """Open every link (serving emulators on fresh ptys), wait briefly for READY, DEFLATE ALL."""
        if self.started:
            return
        self.started = True
        now = self.clock.monotonic()
        for ctrl in self.controllers.values():
            ctrl.down_since = now
        for cc in self.config.controllers:
            ctrl = self.controllers[cc.id]
            url = cc.port
            try:
                if cc.is_emulator:
                    url = await self._start_emulator(cc)
            except Exception as exc:
                log.exception("station: emulator %s failed to start", cc.id)
                ctrl.error = f"emulator failed: {exc}"
                continue
            link = CuffLink(url, name=cc.id, watchdog_ms=cc.watchdog_ms, stream_hz=cc.stream_hz)
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
        self._emit(StationEvent("station", self.clock.wall(), "station", "station started"))
        if self.check_interval_s is not None:
            self._check_task = asyncio.create_task(self._check_loop(), name="station:supervisor")

    async def _start_emulator(self, cc: Any) -> str:
        from drivers.emulator.firmware import ControllerFirmware
        from drivers.emulator.pty_port import PtyEmulator

        e = cc.emulator
        fw = ControllerFirmware(
            channels=e.channels,
            lops=list(e.lop),
            heart_rate=e.heart_rate,
            pulse_amplitude=e.pulse_mmhg,
            seed=e.seed,
            serial=f"EMU-{cc.id}"[:16].replace(" ", "_").replace("*", "_"),
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

    async def stop(self) -> None:
        """Deflate every cuff, then close every link and emulator. Safe to call twice."""
        if self.stopped:
            return
        self.stopped = True
        if self._check_task is not None:
            self._check_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._check_task
        self._all_targets_zero()
        try:
            links = {cid: ctrl.link for cid, ctrl in self.controllers.items() if ctrl.link is not None}
            run = self.emergency.fire(links, by="station stop")  # type: ignore[arg-type]
            if run.futures:
                await asyncio.wait(list(run.futures.values()), timeout=max(0.5, self.emergency.confirm_s))
        finally:
            await self.emergency.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            for link in self.links.values():
                with contextlib.suppress(Exception):
                    await link.stop(deflate=True)
            for emu in self.emulators.values():
                with contextlib.suppress(Exception):
                    res = emu.stop()
                    if asyncio.iscoroutine(res):
                        await res
            if self._tmpdir is not None:
                shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._emit(StationEvent("station", self.clock.wall(), "station", "station stopped"))
