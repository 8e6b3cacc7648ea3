"""The ``bfr-console`` entry point: one program, a few subcommands.

``bfr-console`` alone runs the station of the config with its console on this
terminal. The other subcommands serve the same station headless, attach a
second console to it, run the controller emulator, measure a LOP without the
UI, or print a session report. Every subcommand reads and checks the whole
config before any port opens.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from console.common.facts import POSITIONS

if TYPE_CHECKING:
    from console.config.schema import StationConfig

log = logging.getLogger("bfr")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bfr-console",
        description="BFR station console: runs several blood flow restriction cuffs at once.",
        epilog="Emergency deflate of every cuff: F12 (or Ctrl+E) on any console screen.",
    )
    p.add_argument("--config", metavar="PATH", help="station config (default: ./config.toml, or $BFR_CONFIG)")
    p.add_argument("--kiosk", action="store_true", help="kiosk mode: quitting needs a confirmation")
    p.add_argument("--theme", choices=["auto", "textual-dark", "ansi"], help="colour theme (default: from config)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run the station with its console here (the default)")
    run.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS)
    run.add_argument("--kiosk", action="store_true", default=argparse.SUPPRESS)
    run.add_argument("--theme", choices=["auto", "textual-dark", "ansi"], default=argparse.SUPPRESS)

    serve = sub.add_parser("serve", help="run the station headless; consoles attach to it")
    serve.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS)

    attach = sub.add_parser("attach", help="attach a console to a running station (e.g. over SSH)")
    attach.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS)
    attach.add_argument("--socket", metavar="PATH", help="the station's socket (default: from the config)")
    attach.add_argument("--kiosk", action="store_true", default=argparse.SUPPRESS)
    attach.add_argument("--theme", choices=["auto", "textual-dark", "ansi"], default=argparse.SUPPRESS)

    check = sub.add_parser("check-config", help="check a config and print what it describes")
    check.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS)

    lop = sub.add_parser("measure-lop", help="measure one cuff's limb occlusion pressure, without the UI")
    lop.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS)
    lop.add_argument("--cuff", required=True, help="cuff id from the config")
    lop.add_argument("--position", default="seated", choices=POSITIONS)

    rep = sub.add_parser("report", help="list sessions, or print / export one, or list the audit trail")
    rep.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS)
    rep.add_argument("--session", type=int, help="session number")
    rep.add_argument("--csv", metavar="PATH", help="write the session's samples as CSV")
    rep.add_argument(
        "--audit", action="store_true", help="list who did what, in which role: of --session N, else of --day"
    )
    rep.add_argument("--day", metavar="YYYY-MM-DD", type=_day, help="the day for --audit (default: today)")
    rep.add_argument(
        "--pdf", metavar="PATH", help="write --session N (or --patient ID's course and sessions) as a PDF with plots"
    )
    rep.add_argument("--patient", metavar="ID", help="with --pdf: the patient's course, then each of their sessions")
    rep.add_argument("--from", dest="first_day", metavar="YYYY-MM-DD", type=_day, help="with --patient: from this day")
    rep.add_argument("--to", dest="last_day", metavar="YYYY-MM-DD", type=_day, help="with --patient: to this day")

    setup = sub.add_parser("setup", help="find the controllers and write a config (a screen, or --write FILE)")
    setup.add_argument("--ports", nargs="+", metavar="PORT", default=[], help="try exactly these ports")
    setup.add_argument("--write", metavar="FILE", help="no screen: write a config for what answered to FILE")
    setup.add_argument("--out", default="station.toml", metavar="FILE", help="the screen's file to write (default)")
    setup.add_argument("--yes", action="store_true", help="with --write: replace FILE (the old one is kept as .bak)")
    setup.add_argument("--timeout", type=float, default=1.0, metavar="S", help="seconds a port has to answer")
    setup.add_argument("--kiosk", action="store_true", default=argparse.SUPPRESS)
    setup.add_argument("--theme", choices=["auto", "textual-dark", "ansi"], default=argparse.SUPPRESS)

    board = sub.add_parser("board", help="a read-only board of every station of a site, from the MQTT broker")
    board.add_argument("--url", required=True, help="the broker: mqtt://host:port or mqtts://host:port")
    board.add_argument("--site", required=True, help="the site's topic level (the stations' [mqtt] site)")
    board.add_argument("--user", help="the board's broker account")
    board.add_argument("--password-file", metavar="PATH", help="a file whose first line is the account's password")
    board.add_argument("--ca-file", metavar="PATH", help="with mqtts://: the clinic's CA certificate")
    board.add_argument("--theme", choices=["auto", "textual-dark", "ansi"], default=argparse.SUPPRESS)

    sub.add_parser("emulator", help="run a controller emulator on a pseudo-terminal (see --help)", add_help=False)
    return p


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a day: {text!r} (write it YYYY-MM-DD)") from None


def _load(args: argparse.Namespace) -> StationConfig:
    from console.config.loader import ConfigError, default_config_path, load_config

    path = Path(args.config) if getattr(args, "config", None) else default_config_path()
    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"bfr-console: the config was refused, nothing was started:\n{exc}", file=sys.stderr)
        raise SystemExit(2) from None


def private_log_handler(path: Path) -> logging.FileHandler:
    """The log file, created 0600 (it names patients and users), never through a planted link."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)  # left readable by an older version
    finally:
        os.close(fd)
    return logging.FileHandler(path)


def _setup_logging(config: StationConfig, to_stderr: bool) -> None:
    handlers: list[logging.Handler] = []
    data_dir = Path(config.station.data_dir)
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        handlers.append(private_log_handler(data_dir / "bfr-console.log"))
    except OSError as exc:
        print(f"bfr-console: cannot write the log in {data_dir}: {exc}", file=sys.stderr)
    if to_stderr:
        handlers.append(logging.StreamHandler(sys.stderr))
    logging.basicConfig(
        level=os.environ.get("BFR_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )


def _setup(args: argparse.Namespace) -> int:
    """``setup``: headless with ``--write``, else the setup screen (no config needed: it makes one)."""
    if args.write:
        from console.setup.headless import run

        return run(args.ports, args.write, yes=args.yes, timeout=args.timeout)
    from console.ui.setup_app import run_setup_app

    theme = getattr(args, "theme", None) or "auto"
    return run_setup_app(ports=args.ports, timeout=args.timeout, write_to=args.out, theme=theme)


def _board(args: argparse.Namespace) -> int:
    """``board``: needs no station config, only the broker and the site."""
    from console.app_runner import run_board
    from console.mqtt.topics import parse_url, valid_level

    try:
        parse_url(args.url)
    except ValueError as exc:
        print(f"bfr-console board: --url {args.url!r}: {exc}", file=sys.stderr)
        return 2
    if not valid_level(args.site):
        print(
            f"bfr-console board: --site {args.site!r}: expected lower-case letters, digits, '-' or '_'", file=sys.stderr
        )
        return 2
    theme = getattr(args, "theme", None) or "auto"
    return run_board(
        args.url, args.site, user=args.user, password_file=args.password_file, ca_file=args.ca_file, theme=theme
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["emulator"]:
        from drivers.emulator.__main__ import main as emulator_main

        return emulator_main(argv[1:])
    args = _parser().parse_args(argv)
    command = args.command or "run"
    if command == "attach" and getattr(args, "socket", None):
        from console.app_runner import run_attached

        return run_attached(
            socket_path=args.socket, kiosk=getattr(args, "kiosk", False), theme=getattr(args, "theme", None) or "auto"
        )
    if command == "setup":
        return _setup(args)
    if command == "board":
        return _board(args)
    config = _load(args)
    if command == "check-config":
        from console.app_runner import describe_config

        print(describe_config(config))
        return 0
    if command == "report":
        from console.report_runner import run_report

        if args.pdf or args.patient or args.first_day or args.last_day:
            from console.report_runner import run_pdf_report

            return run_pdf_report(
                config,
                session=args.session,
                patient=args.patient,
                pdf=args.pdf,
                first_day=args.first_day,
                last_day=args.last_day,
            )
        return run_report(config, session=args.session, csv=args.csv, audit=args.audit, day=args.day)
    # measure-lop keeps the terminal for its progress (stderr) and its answer (stdout): log to the file only.
    _setup_logging(config, to_stderr=command == "serve")
    from console import app_runner

    if command == "run":
        return app_runner.run_console(config, kiosk=getattr(args, "kiosk", False), theme=getattr(args, "theme", None))
    if command == "serve":
        return asyncio.run(app_runner.serve(config))
    if command == "attach":
        return app_runner.run_attached(
            socket_path=str(config.station.socket),
            kiosk=getattr(args, "kiosk", False),
            theme=getattr(args, "theme", None) or config.ui.theme,
            cue_bell=config.ui.cue_bell,  # the kiosk is the screen the patient sees
        )
    if command == "measure-lop":
        return asyncio.run(app_runner.measure_lop(config, cuff_id=args.cuff, position=args.position))
    raise SystemExit(f"bfr-console: unknown command {command!r}")


if __name__ == "__main__":
    raise SystemExit(main())
