"""What each ``bfr-console`` subcommand does, wired from the parts.

The CLI parses arguments; this module puts a station, its records, its
socket server and a console together, and makes sure that every way out
(quit, SIGTERM, SIGHUP, an exception, a crashed supervisor) deflates every
cuff before the process ends. A console process (the local console,
``attach``) also ends within a bounded time once a stop signal came or its
terminal went away, even if its event loop is blocked
(:mod:`console.ui.exit_guard`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from pathlib import Path
from typing import Any

from console.cli_output import fail, say
from console.common import heap
from console.ui.exit_guard import BACKSTOP, ConsoleGuard

log = logging.getLogger("bfr.runner")


def open_records(config: Any) -> Any:
    """The station's records, or None with a warning when they cannot be written."""
    from console.records.rows import RecordsError
    from console.records.store import Records

    try:
        return Records.open(Path(config.station.data_dir))
    except RecordsError as exc:
        raise SystemExit(fail(f"the records cannot be opened, nothing was started:\n{exc}")) from None


def build_station(config: Any, records: Any = None) -> Any:
    """A station with the therapy engine (LOP measurement, sessions) attached."""
    from console.station.station import Station

    station = Station(config, records=records)
    try:
        from console.therapy.manager import TherapyManager
    except ImportError:  # pragma: no cover - the therapy engine ships with the station
        return station
    station.attach_sessions(TherapyManager(station))
    return station


EXIT_GRACE_S = 10.0
"""After a stop signal and a confirmed deflate, how long the process may take to close before it is ended."""
STOP_BOUND_S = 30.0
"""The local console, from a stop signal (or its terminal gone) to its end, whatever its event loop does:
room for the deflate with its confirmations (``deflate_confirm_s`` is at most 10 s) and EXIT_GRACE_S."""
ATTACH_BOUND_S = 5.0
"""An attached console, from a stop signal (or its terminal gone) to its end: it holds no cuff, only a socket."""


def exit_if_stuck(why: str) -> None:
    """Arm a last resort: if the process is still here EXIT_GRACE_S from now (after the deflate), end it.

    A console whose terminal vanished can hang in its screen teardown; a hung process is
    neither restarted by systemd nor any use to anyone. The cuffs are already deflated.
    """
    BACKSTOP.arm(EXIT_GRACE_S, f"{EXIT_GRACE_S:g} s {why} with every cuff deflated")


# ------------------------------------------------------------------ the console on a local station


def run_console(config: Any, *, kiosk: bool = False, theme: str | None = None) -> int:
    """``bfr-console`` / ``bfr-console run``: the station and its console in this terminal."""
    return asyncio.run(_run_console(config, kiosk=kiosk, theme=theme or config.ui.theme))


async def _run_console(config: Any, *, kiosk: bool, theme: str) -> int:
    from console.mqtt.wiring import start_publisher, stop_publisher
    from console.remote.server import serve_station
    from console.remote.socket_file import ServeError
    from console.station.lifecycle import deflate_and_stop
    from console.station.station_thread import StationThread
    from console.station.threaded_handle import ThreadedStation
    from console.ui.app import BfrApp
    from console.ui.quit_words import closed_line

    if await station_serving(config.station.socket):
        return fail(already_serving(config))
    # The station, its socket server and its board publisher live on a loop of their own: nothing the
    # screen draws delays a sample, a safety check or the emergency (console.station.station_thread).
    host = StationThread()
    host.start()
    try:
        records = host.call(lambda: open_records(config))
        station = host.call(lambda: build_station(config, records))
    except BaseException:
        host.stop()
        raise
    handle = ThreadedStation(station, host)
    app = BfrApp(
        handle,
        kiosk=kiosk,
        theme=theme,
        fps=config.ui.fps,
        bell=config.alarms.bell,
        cue_bell=config.ui.cue_bell,
        emergency_key=handle,
    )
    server = None
    publisher = None
    why = ["console closed"]
    loop = asyncio.get_running_loop()
    stopping: list[asyncio.Future[Any]] = []
    vented: list[tuple[list[str], list[str]]] = []

    def begin_stop() -> asyncio.Future[Any]:
        """Deflate and stop the station once, whoever asks first (a signal, the end of the app, a fault)."""
        if not stopping:
            vented.append(app.actions.cuffs_up())
            stopping.append(asyncio.ensure_future(host.run(deflate_and_stop(station, by=f"console exit ({why[0]})"))))
        return stopping[0]

    def on_stop(reason: str) -> None:
        why[0] = reason
        log.warning("runner: %s, deflating every cuff and closing", reason)
        # The deflate starts now, not after the app's teardown: with the terminal gone (SIGHUP) that
        # teardown may block on a dead tty, and the cuffs must not wait for it.
        begin_stop().add_done_callback(lambda _: exit_if_stuck(f"after {reason}"))
        app.exit(return_code=0, message=f"bfr-console: stopped ({reason}); every cuff was deflated.")

    # The signals and the terminal watch need no event loop: if this one is blocked, the process
    # still ends STOP_BOUND_S after the signal (the controllers' watchdogs vent what it could not).
    guard = ConsoleGuard(loop, on_stop, bound_s=STOP_BOUND_S)
    guard.install()
    settling = heap.settle_later(loop)  # the GIL is shared with the station's thread: see console.common.heap
    try:
        try:
            server = await host.run(serve_station(station, config, fps=float(config.ui.fps)))
        except ServeError as exc:
            log.warning("runner: remote supervision is off: %s", exc)
        publisher = host.call(lambda: start_publisher(station, config))
        # The console comes up at once; controllers show CONNECTING until their links are ready.
        starting = host.submit(station.start())

        async def watch_failure() -> None:
            await host.run(station.failed.wait())
            why[0] = "station fault"
            app.exit(
                return_code=3, message="bfr-console: the station stopped itself after a fault; every cuff was deflated."
            )

        watcher = asyncio.create_task(watch_failure(), name="station:watch")
        plug = _watch_ports(config, app)
        try:
            await app.run_async()
        finally:
            watcher.cancel()
            plug.cancel()
            if not starting.done():
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(starting)), 10)
    finally:
        task = begin_stop()
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            await task
        if server is not None:
            with contextlib.suppress(Exception):
                await host.run(server.stop())
        with contextlib.suppress(Exception):
            await host.run(stop_publisher(publisher))
        if records is not None:
            with contextlib.suppress(Exception):
                host.call(records.close, timeout=EXIT_GRACE_S)
        settling.cancel()
        guard.remove()
        host.stop()
    if why[0] == "console closed":  # a signal or a fault has its own last line (the app's exit message)
        say(closed_line(*(vented[0] if vented else ([], []))))
    return int(app.return_code or 0)


def _watch_ports(config: Any, app: Any) -> asyncio.Task[None]:
    """Plug and play: a controller on a port the config does not name shows a notice on this console."""
    from console.setup.watch import PortWatch

    app.new_controllers.config_path = config.path
    known = [c.port for c in config.controllers if not c.is_emulator]
    watch = PortWatch(known, lambda report: app.new_controllers.announce(app, report))
    return asyncio.create_task(watch.run(), name="console:port-watch")


async def station_serving(socket: Any) -> bool:
    """Whether a live station already answers on this config's socket (its console would fight it for the ports)."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(socket)), timeout=1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


def already_serving(config: Any) -> str:
    """Why the local console does not start beside a running station, and the command that attaches to it."""
    cfg = Path(config.path).resolve()
    return (
        f"a station is already running this config (serving at {config.station.socket}); nothing was started.\n"
        f"To watch and run it from here, attach to it:\n"
        f"  bin/console attach --config {cfg}\n"
        f"  (installed: bfr-console attach --config {cfg})"
    )


# ------------------------------------------------------------------ headless station


async def serve(config: Any) -> int:
    """``bfr-console serve``: the station with no console; consoles attach over its socket."""
    from console import service
    from console.common.os_thread import executor_at_process_priority, raise_os_priority
    from console.common.sd_notify import Notifier
    from console.mqtt.wiring import start_publisher, stop_publisher
    from console.remote.server import serve_station
    from console.remote.socket_file import ServeError
    from console.station.lifecycle import run_station_until_signal

    records = open_records(config)
    station = build_station(config, records)
    try:
        server = await serve_station(station, config, fps=float(config.ui.fps))
    except ServeError as exc:
        if records is not None:
            records.close()
        return fail(f"cannot serve the station: {exc}")
    say(f"SERVING {config.station.socket}")
    publisher = start_publisher(station, config)
    # The station's loop is this thread: it runs ahead of attached consoles where the system allows it (the
    # records' writer, started above, keeps the normal priority).
    raise_os_priority()
    asyncio.get_running_loop().set_default_executor(executor_at_process_priority())
    notifier = Notifier()
    service.watch(station, notifier)
    announcing: list[asyncio.Task[str]] = []

    def started(st: Any) -> None:
        say("STARTED " + ",".join(c.id for c in config.controllers))
        announcing.append(asyncio.create_task(service.announce_ready(st, notifier), name="serve:sd-ready"))

    settling = heap.settle_later(asyncio.get_running_loop())
    try:
        why = await run_station_until_signal(station, on_ready=started, on_stopped=_say_stopped)
    finally:
        settling.cancel()
        for task in announcing:
            task.cancel()
        notifier.stopping()
        with contextlib.suppress(Exception):
            await server.stop()
        with contextlib.suppress(Exception):
            await stop_publisher(publisher)
        if records is not None:
            records.close()
    return 0 if why in ("SIGTERM", "SIGINT", "SIGHUP") else 3


def _say_stopped(snap: Any, why: str) -> None:
    """What ``serve`` prints on its way out (the journal keeps it): who confirmed the deflate, and why."""
    if snap is not None:
        say(f"DEFLATED confirmed={','.join(snap.confirmed)} pending={','.join(snap.pending)}")
    say(f"STOPPED {why}")


# ------------------------------------------------------------------ attach to a running station


def run_attached(*, socket_path: str, kiosk: bool = False, theme: str = "auto", cue_bell: bool = False) -> int:
    """``bfr-console attach``: the same console, fed by a station's socket (``cue_bell``: the config's, if read)."""
    return asyncio.run(_run_attached(socket_path, kiosk=kiosk, theme=theme, cue_bell=cue_bell))


async def _run_attached(socket_path: str, *, kiosk: bool, theme: str, cue_bell: bool = False) -> int:
    from console.remote.client import AccessRefused, StationUnavailable, attach
    from console.ui.app import BfrApp
    from console.ui.quit_words import detached_line

    try:
        remote = await attach(socket_path)
    except (StationUnavailable, AccessRefused) as exc:
        return fail(str(exc))
    app = BfrApp(remote, kiosk=kiosk, theme=theme, attached=True, cue_bell=cue_bell)

    def on_stop(reason: str) -> None:
        log.warning("attach: %s, closing", reason)
        app.exit(return_code=0)

    # The same guard as the local console: a dropped SSH session never leaves this process behind.
    guard = ConsoleGuard(asyncio.get_running_loop(), on_stop, bound_s=ATTACH_BOUND_S)
    guard.install()
    settling = heap.settle_later(asyncio.get_running_loop())
    try:
        await app.run_async()
    finally:
        settling.cancel()
        try:
            await remote.close()
        finally:
            guard.remove()
    say(detached_line(app.last_snapshot.name, *app.actions.cuffs_up()))
    return int(app.return_code or 0)


# ------------------------------------------------------------------ LOP without the UI


async def measure_lop(config: Any, *, cuff_id: str, position: str, observer: Any = None) -> int:
    """``bfr-console measure-lop``: measure one cuff and print ``LOP <mmHg>`` or why it failed.

    stdout carries only the answer; ``observer`` (a :class:`console.cli_progress.LopObserver`, by
    default a printer on stderr) is shown the cuff every ``POLL_S`` while the measurement runs.
    """
    from console.cli_progress import POLL_S, LopProgressPrinter
    from console.common.api import CommandRefused
    from console.station.lifecycle import deflate_and_stop, install_signal_handlers

    if config.cuff(cuff_id) is None:
        return fail(f"no cuff {cuff_id!r} in {config.path} (cuffs: {', '.join(c.id for c in config.cuffs)})")
    records = open_records(config)
    station = build_station(config, records)
    stop = asyncio.Event()
    remove = install_signal_handlers(asyncio.get_running_loop(), lambda sig: stop.set())
    code = 1
    try:
        await station.start()
        if stop.is_set():  # a stop signal during start-up: never begin inflating after it
            say("FAILED interrupted")
            return code
        cuff = next(c for c in station.snapshot().cuffs if c.id == cuff_id)
        if not cuff.online:
            say(f"FAILED controller {cuff.controller} is not connected")
            return 1
        try:
            await station.measure_lop(cuff_id, position=position)
        except CommandRefused as exc:
            say(f"FAILED {exc}")
            return 1
        watch = observer if observer is not None else LopProgressPrinter(sys.stderr)
        shown_at: float | None = None
        while not stop.is_set():
            cuff = next(c for c in station.snapshot().cuffs if c.id == cuff_id)
            prog = cuff.lop_measure
            now = asyncio.get_running_loop().time()
            if prog is not None and prog.state in ("done", "failed"):
                watch.finished()
                if prog.state == "done" and prog.lop is not None:
                    conf = f" confidence={prog.confidence:.2f}" if prog.confidence is not None else ""
                    say(f"LOP {prog.lop:.0f}{conf} position={position}")
                    code = 0
                else:
                    say(f"FAILED {prog.message or 'no result'}")
                break
            if not cuff.online:
                watch.finished()
                say(f"FAILED controller {cuff.controller} went offline during the measurement")
                break
            if shown_at is None or now - shown_at >= POLL_S:
                shown_at = now
                watch.progress(cuff)
            await asyncio.sleep(0.1)
        else:
            watch.finished()
            say("FAILED interrupted")
    finally:
        await deflate_and_stop(station, by="measure-lop exit")
        if records is not None:
            records.close()
        remove()
    return code


# ------------------------------------------------------------------ records and config


def describe_config(config: Any) -> str:
    """A short, human summary of a config that passed every check."""
    lines = [f"{config.path}: OK", f"station {config.station.name!r}, ceiling {config.station.ceiling_mmhg:g} mmHg"]
    for c in config.controllers:
        kind = "built-in emulator" if c.is_emulator else c.port
        lines.append(f"controller {c.id}: {kind}, {c.channels} channels, watchdog {c.watchdog_ms} ms, {c.stream_hz} Hz")
    for c in config.cuffs:
        lim = config.limits(c.id)
        lop = f", LOP {c.lop:g}" if c.lop else ""
        lines.append(
            f"cuff {c.id}: {c.label or c.limb} on {c.controller}/{c.channel}, up to {lim.max_pct_lop:g} % LOP{lop}, "
            f"occlusion limit {lim.occlusion_limit_s / 60:g} min"
        )
    lines.append(f"plans: {', '.join(sorted(config.plans))}")
    lines.append(f"records: {config.station.data_dir}; socket: {config.station.socket}")
    m = config.mqtt
    if m is None:
        lines.append("clinic board: off (no [mqtt])")
    else:
        from console.mqtt.topics import station_prefix, topic_name

        who = f" as {m.user}" if m.user else ""
        url = f"{'mqtts' if m.tls else 'mqtt'}://{m.host}:{m.port}"
        lines.append(
            f"clinic board: publishes to {url}{who} under {station_prefix(m.site, topic_name(config.station.name))}/"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------ the clinic board


def run_board(
    url: str, site: str, *, user: str | None, password_file: str | None, ca_file: str | None, theme: str
) -> int:
    """``bfr-console board``: the board on this terminal until q (it needs no station config)."""
    from console.mqtt.board_feed import BoardFeed
    from console.mqtt.board_model import BoardModel
    from console.ui.board_app import BoardApp

    password = None
    if password_file:
        try:
            with open(password_file, encoding="utf-8") as f:
                password = f.readline().rstrip("\r\n")
        except OSError as exc:
            return fail(f"board: cannot read {password_file}: {exc.strerror or exc}")
    feed = BoardFeed(url, BoardModel(site), user=user, password=password, ca_file=ca_file)
    app = BoardApp(feed, theme=theme)
    app.run()
    return int(app.return_code or 0)
