"""Run a station until told to stop, and deflate every cuff on the way out, whatever the way.

SIGTERM (systemd stop), SIGHUP (the SSH session or terminal went away),
SIGINT (Ctrl-C), an exception, a cancelled task or a crashed supervisor all
end in the same place: DEFLATE ALL on every controller, then the links close.
Only SIGKILL and a power cut skip it, and for those the controllers' own
watchdogs vent the cuffs.

``python -m console.station.lifecycle --config PATH`` runs a headless
station: it prints ``READY`` once every link is ready, and on a signal
prints ``DEFLATED ...`` and ``STOPPED``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable
from typing import Any

from console.common.api import EmergencySnapshot
from console.station.station import Station

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


def install_signal_handlers(
    loop: asyncio.AbstractEventLoop,
    on_signal: Callable[[signal.Signals], None],
    signals: tuple[signal.Signals, ...] = STOP_SIGNALS,
) -> Callable[[], None]:
    """Route ``signals`` to ``on_signal`` inside the loop; returns a function that puts back what was there.

    asyncio's own removal resets a signal to SIG_DFL, so a station started under ``nohup`` (SIGHUP
    ignored) would, after removing its handlers, die of the hang-up it was told to ignore.
    """
    installed: list[tuple[signal.Signals, Any]] = []
    for sig in signals:
        try:
            before = signal.getsignal(sig)
            loop.add_signal_handler(sig, on_signal, sig)
            installed.append((sig, before))
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no such signal
            log.warning("cannot handle %s here", sig.name)

    def remove() -> None:
        for sig, before in installed:
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
                if before is not None:  # None: set from outside Python; SIG_DFL is the best guess left
                    signal.signal(sig, before)

    return remove


def needs_emergency(station: Station) -> bool:
    """Anything inflated, or a controller we cannot see: the way out is an emergency deflate (recorded)."""
    threshold = station.limits.occlusion_threshold_mmhg
    return any(c.target > 0 or (c.pressure or 0.0) >= threshold for c in station.cuffs.values()) or not all(
        c.online for c in station.controllers.values()
    )


async def deflate_and_stop(station: Station, *, by: str) -> EmergencySnapshot | None:
    """Deflate every controller, then stop the station; never raises.

    With a cuff inflated (or a controller out of sight) this is an emergency deflate, with its
    confirmations, alarms and record; otherwise :meth:`Station.stop`'s own DEFLATE ALL to every
    controller is enough, and a routine exit does not fill the records with emergencies.
    """
    snap: EmergencySnapshot | None = None
    if station.started and not station.stopped and needs_emergency(station):
        try:
            with station.acting_as(by):
                snap = await station.emergency_deflate()
        except Exception:
            log.exception("deflate on the way out failed; stopping anyway (the links deflate on stop)")
    try:
        await station.stop()
    except Exception:
        log.exception("station stop failed")
    return snap


async def run_station_until_signal(
    station: Station,
    *,
    on_ready: Callable[[Station], None] | None = None,
    on_stopped: Callable[[EmergencySnapshot | None, str], None] | None = None,
    signals: tuple[signal.Signals, ...] = STOP_SIGNALS,
) -> str:
    """Start the station, run until a signal or a station fault, deflate, stop. Returns why it stopped.

    An exception or cancellation anywhere in here also deflates before it propagates.
    """
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    reason = ["cancelled or exception"]

    def on_signal(sig: signal.Signals) -> None:
        if not done.is_set():
            reason[0] = sig.name
            done.set()

    remove = install_signal_handlers(loop, on_signal, signals)
    snap: EmergencySnapshot | None = None
    try:
        await station.start()
        if on_ready is not None:
            on_ready(station)
        waits = [asyncio.ensure_future(done.wait()), asyncio.ensure_future(station.failed.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        if station.failed.is_set() and not done.is_set():
            reason[0] = "station fault"
    finally:
        # Shielded, so that a second Ctrl-C or a cancel cannot cut the deflate short.
        task = asyncio.ensure_future(deflate_and_stop(station, by=f"station exit ({reason[0]})"))
        try:
            snap = await asyncio.shield(task)
        except asyncio.CancelledError:
            snap = await task
            raise
        finally:
            remove()
            if on_stopped is not None:
                on_stopped(snap, reason[0])
    return reason[0]


# ---------------------------------------------------------------------- headless CLI


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def _serve(config_path: str, ready_timeout: float) -> int:
    from console.config.loader import load_config

    station = Station(load_config(config_path))

    def ready(st: Station) -> None:
        async def wait_all() -> None:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + ready_timeout
            while not all(c.online for c in st.controllers.values()):
                if loop.time() > deadline:
                    down = [c.id for c in st.controllers.values() if not c.online]
                    _say(f"NOT-READY {','.join(down)}")
                    return
                await asyncio.sleep(0.02)
            _say("READY " + ",".join(st.controllers))

        st._spawn(wait_all(), "lifecycle:ready")

    def stopped(snap: EmergencySnapshot | None, why: str) -> None:
        if snap is not None:
            _say(f"DEFLATED confirmed={','.join(snap.confirmed)} pending={','.join(snap.pending)}")
        else:
            _say("DEFLATED nothing was inflated")
        _say(f"STOPPED {why}")

    await run_station_until_signal(station, on_ready=ready, on_stopped=stopped)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m console.station.lifecycle", description="Run a headless station.")
    p.add_argument("--config", required=True, help="the station's config.toml")
    p.add_argument("--ready-timeout", type=float, default=10.0, help="seconds to wait for every link (default 10)")
    p.add_argument("--log-level", default="WARNING")
    args = p.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    from console.config.loader import ConfigError

    try:
        return asyncio.run(_serve(args.config, args.ready_timeout))
    except ConfigError as exc:
        print(f"config refused:\n{exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
