"""UI benchmark in a real terminal: what the shipped console costs, how fast it starts, how fresh it is.

Run: ``.venv/bin/python bench/bench_ui.py [--seconds 20]``. Prints a table; asserts nothing. Needs tmux.

16 cuffs stream at 100 Hz from two emulated 8-channel controllers, each its
own process (``python -m drivers.emulator``) on a real pty. In the same run,
one after the other, on the same config and the same emulators:

- ``bfr-console serve``: the station alone, no screen (the baseline);
- ``bfr-console`` in tmux at 160x50, ``TERM=xterm-256color`` (all 16 panels on screen);
- ``bfr-console --kiosk --theme ansi`` in tmux at 80x24, ``TERM=linux`` (the Pi's text console).

For each: the process's CPU (``/proc/<pid>/stat`` utime+stime over wall time,
every thread) as a share of one core, for ``--seconds`` with every cuff
vented, then again with all 16 holding 100 mmHg (inflated through the
station's socket, as ``attach`` would; the client leaves before measuring),
then with all 16 in a session (vented, given a LOP, a session of the shipped
``legs-30-15`` started on each; measured in its first set, where the cue
beside the digits moves every second).
The tmux server's CPU is shown beside it: what drawing costs the terminal.
Of the console's CPU, the share of its station thread (named ``bfr-station``
for the system) is shown apart: the rest is the screen's (Textual, the
panels, the pull loop, the input and output threads).

Launch: from the shell command (``tmux new-session`` running the real
``.venv/bin/bfr-console``, imports included) until ``capture-pane`` first shows
a cuff in a state only a live controller
gives (``VENTED``, ``VENTING``, ``INFLATING``, ``HOLDING``: its live reading is drawn).
Polled every 10 ms.

Sample to screen: the CPU phases run the console through ``bench/ui_probe.py``
(``bfr-console`` plus one hook). After every tick that took a new snapshot,
once Textual has composed the frame and handed it to its output writer, the
hook logs the wall time and each cuff's newest sample's arrival time at the
station. "newest" is the age of the freshest reading in that frame; "every
cuff" the age of each cuff's reading. It starts at the station's read of the
pty (not the emulator's sensor) and ends where Textual writes to the terminal
(its writer thread and tmux's parsing come after, typically well under 1 ms).
A reading shown in whole mmHg that did not change still counts as on screen.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stats import pct  # noqa: E402
from bench.ui_term import (  # noqa: E402
    BIN,
    ROOT,
    Emulator,
    Pane,
    cpu_share,
    end,
    inflate_all,
    sessions_all,
    thread_cpu_seconds,
    wait_for_screen,
    wait_online,
    write_config,
)

LIVE = ("VENTED", "VENTING", "INFLATING", "HOLDING")
"""States only a cuff whose controller answers is drawn in (not CONNECTING or OFFLINE): a live reading is on screen.
Any of them, not VENTED alone: the phase before leaves cuffs still venting from 100 mmHg when the console starts."""
PHASES = ("vented", "holding", "session")
"""What the cuffs do while each CPU figure is taken: all vented; all holding 100 mmHg (no session);
all in a session of ui_term.SESSION_PLAN, in its first set (the patient's cue moves every second)."""
STATION_THREAD = "bfr-station"
"""The console's station thread as the system names it (console.station.station_thread.OS_THREAD_NAME)."""
CODE_ENV: dict[str, str] = {}
"""``--code DIR``: ``PYTHONPATH`` (and the probe's path) pointing at another checkout, e.g. the code before a change."""


@dataclass
class Row:
    what: str
    cpu: dict[str, float] = field(default_factory=dict)
    station_cpu: dict[str, float] = field(default_factory=dict)
    """The console's station thread (``bfr-station``), part of ``cpu``: the rest is the screen's."""
    term_cpu: dict[str, float] = field(default_factory=dict)
    launch_s: float = math.nan
    newest_ms: list[float] = field(default_factory=list)
    every_ms: list[float] = field(default_factory=list)
    frames_per_s: float = math.nan


def serve_phase(config: Path, socket: Path, seconds: float) -> Row:
    row = Row("`bfr-console serve` (station, no screen)")
    proc = subprocess.Popen(
        [str(BIN / "bfr-console"), "serve", "--config", str(config)],
        cwd=ROOT,
        env={**os.environ, **CODE_ENV},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_online(socket)
        time.sleep(1.0)
        row.cpu["vented"] = cpu_share([proc.pid], seconds)[0]
        inflate_all(socket)
        time.sleep(1.0)
        row.cpu["holding"] = cpu_share([proc.pid], seconds)[0]
        sessions_all(socket)
        time.sleep(1.0)
        row.cpu["session"] = cpu_share([proc.pid], seconds)[0]
    finally:
        end(proc.pid)
        proc.wait(5)
    return row


def read_frames(log: Path, windows: list[tuple[float, float]], row: Row) -> None:
    """Ages of the readings in frames painted inside the measuring windows (wall clock)."""
    frames = 0
    for line in log.read_text().splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        painted = float(parts[0])
        if not any(a <= painted <= b for a, b in windows):
            continue
        frames += 1
        wait = 0.0
        if parts[1].startswith("L"):  # the newest reading's wait in its port (the largest of any controller)
            wait = float(parts.pop(1)[1:])
        arrivals = [float(p) - wait for p in parts[1:]]
        row.newest_ms.append((painted - max(arrivals)) * 1000)
        row.every_ms.extend((painted - a) * 1000 for a in arrivals)
    total = sum(b - a for a, b in windows)
    row.frames_per_s = frames / total if total else math.nan


def screen_phase(
    what: str, size: tuple[int, int], term: str, extra: list[str], config: Path, socket: Path, seconds: float
) -> Row:
    row = Row(what)
    session = f"bench-ui-{os.getpid()}"
    argv = [str(BIN / "bfr-console"), "--config", str(config), *extra]
    t0 = time.monotonic()
    pane = Pane.start(session, size, term, argv, CODE_ENV)
    try:
        row.launch_s = wait_for_screen(pane, LIVE) - t0
    finally:
        pane.close()

    log = socket.parent.parent / f"frames-{size[0]}x{size[1]}.log"
    probe = [sys.executable, str(ROOT / "bench" / "ui_probe.py"), "--config", str(config), *extra]
    pane = Pane.start(session, size, term, probe, {"BFR_FRAME_LOG": str(log), **CODE_ENV})
    windows = []
    try:
        wait_for_screen(pane, LIVE)
        wait_online(socket)
        tmux = pane.server_pid()
        time.sleep(1.0)
        for phase in PHASES:
            if phase == "holding":
                inflate_all(socket)
                time.sleep(1.0)
            if phase == "session":
                sessions_all(socket)
                time.sleep(1.0)
            w0 = time.time()
            s0 = thread_cpu_seconds(pane.pid, STATION_THREAD)
            row.cpu[phase], row.term_cpu[phase] = cpu_share([pane.pid, tmux], seconds)
            s1 = thread_cpu_seconds(pane.pid, STATION_THREAD)
            if s0 is not None and s1 is not None:
                row.station_cpu[phase] = (s1 - s0) / (time.time() - w0)
            windows.append((w0, time.time()))
        if "HOLDING" not in pane.capture():
            print(f"warning: {what}: no cuff shows HOLDING on screen", file=sys.stderr)
    finally:
        pane.close()
    read_frames(log, windows, row)
    return row


def fmt_pct(x: float | None) -> str:
    return "-" if x is None or math.isnan(x) else f"{x * 100:.1f} %"


def fmt_ms(values: list[float], q: float) -> str:
    return "-" if not values else f"{pct(values, q):.0f} ms"


def print_table(rows: list[Row], seconds: float) -> None:
    print(f"\n16 cuffs at 100 Hz from 2 emulator processes; {seconds:.0f} s per figure; {os.cpu_count()} cores")
    print("CPU as a share of one core; tmux = the terminal's own CPU meanwhile\n")
    head = (
        "| what runs | vented | all 16 holding | all 16 in a session"
        " | of which station thread (vented / holding / session)"
        " | tmux (vented / holding / session) | launch to live frame"
        " | frames/s | sample to screen p50 / p99 (newest) | p99 (every cuff) |"
    )
    print(head)
    print("|" + "---|" * head.count(" | ") + "---|")
    for r in rows:
        tmux = "-" if not r.term_cpu else " / ".join(fmt_pct(r.term_cpu.get(p)) for p in PHASES)
        st = r.station_cpu
        station = "-" if not st else " / ".join(fmt_pct(st.get(p)) for p in PHASES)
        launch = "-" if math.isnan(r.launch_s) else f"{r.launch_s:.2f} s"
        fps = "-" if math.isnan(r.frames_per_s) else f"{r.frames_per_s:.1f}"
        fresh = "-" if not r.newest_ms else f"{fmt_ms(r.newest_ms, 0.5)} / {fmt_ms(r.newest_ms, 0.99)}"
        print(
            f"| {r.what} | {' | '.join(fmt_pct(r.cpu.get(p)) for p in PHASES)} | {station} | {tmux}"
            f" | {launch}"
            f" | {fps} | {fresh} | {fmt_ms(r.every_ms, 0.99)} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description="the console's CPU, launch and freshness in a real terminal")
    ap.add_argument("--seconds", type=float, default=20.0, help="measuring time per figure (default 20)")
    ap.add_argument("--only", choices=["serve", "xterm", "linux"], action="append", help="run only these phases")
    ap.add_argument("--code", metavar="DIR", help="run the console from this checkout (e.g. a worktree of the base)")
    args = ap.parse_args()
    if args.code:
        code = str(Path(args.code).resolve())
        CODE_ENV.update({"PYTHONPATH": code, "BFR_BENCH_CODE": code})
        print(f"console code from {code}")
    if shutil.which("tmux") is None:
        sys.exit("bench_ui needs tmux")
    only = set(args.only or ["serve", "xterm", "linux"])

    base = Path(tempfile.mkdtemp(prefix="bench-ui-"))
    emulators = [Emulator(cid, 8, base) for cid in "AB"]
    config = write_config(base, {e.cid: e.port for e in emulators}, 8)
    socket = base / "sock" / "bfr.sock"
    rows: list[Row] = []
    try:
        if "serve" in only:
            rows.append(serve_phase(config, socket, args.seconds))
        if "xterm" in only:
            rows.append(
                screen_phase(
                    "`bfr-console` 160x50, xterm-256color",
                    (160, 50),
                    "xterm-256color",
                    [],
                    config,
                    socket,
                    args.seconds,
                )
            )
        if "linux" in only:
            rows.append(
                screen_phase(
                    "`bfr-console --kiosk --theme ansi` 80x24, TERM=linux",
                    (80, 24),
                    "linux",
                    ["--kiosk", "--theme", "ansi"],
                    config,
                    socket,
                    args.seconds,
                )
            )
    finally:
        for e in emulators:
            e.stop()
    print_table(rows, args.seconds)
    print("\nlaunch: shell command to the first frame showing a live cuff (capture-pane every 10 ms)")
    print(
        "sample to screen: a reading's time stamp (the controller's, on the host clock: its wait in the port"
        " included) to the frame that holds it handed to the terminal"
    )


if __name__ == "__main__":
    main()
