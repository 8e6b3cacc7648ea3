"""Serve the foreign controller standalone: ``python -m tests.foreign --channels 4`` prints ``PORT <path>``.

Then it serves until SIGINT/SIGTERM or ``quit`` on stdin (the end of stdin does not stop it). Lines on stdin work the faults:
``unplug``, ``replug [SERIAL]``, ``reboot``, ``nosamples on|off``, ``channels N|off``,
``refuse CH|off``, ``leak CH PER_S``, ``silent on|off``, ``garbage S|off``, ``status``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
from pathlib import Path

from tests.foreign.controller import ForeignController
from tests.foreign.pty_serve import PtyServer


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tests.foreign", description=__doc__.splitlines()[0])
    p.add_argument("--channels", type=int, default=4)
    p.add_argument("--serial", default="FC-0042")
    p.add_argument("--model", default="FCX-4")
    p.add_argument("--max", type=float, default=280.0, dest="max_mmhg")
    p.add_argument("--lop", default="", help="comma list of LOPs in mmHg, one per channel")
    p.add_argument("--pulse", type=float, default=1.6, help="largest pulse in mmHg")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--link", default="", help="symlink path to serve behind (default: a fresh temp dir)")
    p.add_argument("--exercise", action="store_true", help="muscle contractions on every channel")
    p.add_argument("--no-samples", action="store_true")
    p.add_argument("--sample-channels", type=int, default=None)
    p.add_argument("--refuse-deflate", type=int, action="append", default=[], metavar="CH")
    p.add_argument("--leak", type=int, action="append", default=[], metavar="CH")
    return p


def command(server: PtyServer, line: str) -> str:
    """One stdin command; returns what to print."""
    words = line.split()
    if not words:
        return ""
    verb, args = words[0], words[1:]
    arg = args[0] if args else ""
    faults = server.controller.faults
    if verb == "unplug":
        server.unplug()
    elif verb == "replug":
        server.replug(serial=arg or None)
    elif verb == "reboot":
        server.reboot()
    elif verb == "nosamples":
        faults.no_samples = arg != "off"
    elif verb == "channels":
        faults.sample_channels = None if arg in ("", "off") else int(arg)
    elif verb == "refuse":
        faults.deflate_refused = set() if arg in ("", "off") else {int(arg)}
    elif verb == "leak":
        server.call(lambda c: c.set_leak(int(arg), float(args[1]) if len(args) > 1 else 1.5))
    elif verb == "silent":
        faults.silent = arg != "off"
    elif verb == "garbage":
        faults.garbage_every_s = None if arg in ("", "off") else float(arg)
    elif verb == "status":
        return server.call(
            lambda c: " | ".join(
                f"{ch.number} {ch.state} target {ch.target:g} p {c.true_pressure(ch.number):.1f}" for ch in c.channels
            )
        )
    else:
        return f"? {verb}"
    return "ok"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    lops = [float(x) for x in args.lop.split(",") if x] or None
    ctl = ForeignController(
        channels=args.channels,
        serial=args.serial,
        model=args.model,
        max_mmhg=args.max_mmhg,
        lops=lops,
        pulse_mmhg=args.pulse,
        seed=args.seed,
    )
    ctl.faults.no_samples = args.no_samples
    ctl.faults.sample_channels = args.sample_channels
    ctl.faults.deflate_refused = set(args.refuse_deflate)
    for ch in args.leak:
        ctl.set_leak(ch, 1.5)
    if args.exercise:
        for ch in range(1, args.channels + 1):
            ctl.exercise(ch)
    link = args.link or str(Path(tempfile.mkdtemp(prefix="foreign-ctl-")) / "ctl")
    server = PtyServer(ctl, link)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    print(f"PORT {server.start()}", flush=True)

    def read_stdin() -> None:
        for line in sys.stdin:  # at end of input (no terminal, /dev/null) it serves on until a signal
            if line.strip() == "quit":
                done.set()
                return
            try:
                reply = command(server, line)
            except (ValueError, IndexError) as exc:
                reply = f"? {exc}"
            if reply:
                print(reply, flush=True)

    threading.Thread(target=read_stdin, daemon=True).start()
    try:
        done.wait()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
