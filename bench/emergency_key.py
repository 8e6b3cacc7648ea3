"""bench_emergency's second half: F12 pressed in the running console, to the last controller's OK.

The shipped ``bfr-console`` runs on a pseudo-terminal this process holds the
master of (it is the terminal: it reads and drops the screen output, and
types the keys). Before each run every cuff is inflated through the station's
socket (as ``attach`` would) until each reads above 20 mmHg, then 1.50-1.55 s to settle
(any phase of the console's frame; the share of cuffs holding by then is printed). Then F12 goes in
as the bytes a terminal sends (``ESC [ 2 4 ~``), at wall time ``t``; the
station reports the emergency it ran (``started_at``, wall clock, and
``latency_s``, its call to the last ``DEFLATE ALL`` OK), so the key to the last
OK is ``started_at + latency_s - t``, and key to the station's call is
``started_at - t`` (the keyboard, Textual and the app). Interleaved with the
runs, in the same process and under the same load: the bare-pty floor (one
line to an echo process and back).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import random
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path
from typing import Any

from bench.ui_term import connect_when_serving

F12 = b"\x1b[24~"
INFLATED_MMHG = 20.0


class ConsoleOnPty:
    """``bfr-console`` with its stdin/stdout/stderr on a pty whose master this process keeps."""

    def __init__(self, argv: list[str], size: tuple[int, int], term: str = "xterm-256color") -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
        env = {**os.environ, "TERM": term, "COLORTERM": "truecolor"}
        if os.environ.get("BFR_BENCH_CODE"):  # the console from another checkout (before/after)
            env["PYTHONPATH"] = os.environ["BFR_BENCH_CODE"]
        self.proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True, close_fds=True
        )
        os.close(slave)
        self.output = 0
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        """The terminal's side: read the screen output so the console never blocks on a full pty."""
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            self.output += len(data)

    def type(self, data: bytes) -> float:
        """Write keys as the terminal would; returns the wall time just before the write."""
        t = time.time()
        os.write(self.master, data)
        return t

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self.master)


def write_config(base: Path, ports: list[str], channels: int) -> Path:
    lines = [
        "[station]",
        'name = "bench"',
        f'data_dir = "{base / "var"}"',
        f'socket = "{base / "sock" / "bfr.sock"}"',
        "[safety]",
        "deflate_confirm_s = 1.0",
        "[alarms]",
        "bell = false",
    ]
    for i, port in enumerate(ports):
        lines += ["[[controllers]]", f'id = "C{i}"', f'port = "{port}"', f"channels = {channels}", "stream_hz = 100"]
    for i in range(len(ports)):
        for ch in range(1, channels + 1):
            lines += ["[[cuffs]]", f'id = "C{i}-{ch}"', f'controller = "C{i}"', f"channel = {ch}", 'limb = "leg"']
    path = base / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def inflate_all(station: Any, mmhg: float = 60.0, timeout: float = 30.0) -> None:
    """Every cuff to ``mmhg`` (a StationHandle: local or remote); back once every cuff reads above 20 mmHg.

    A cuff left at target 0 (a deflate from the previous emergency still being retried landed after the
    inflate) is asked again every second.
    """
    from console.common.api import CommandRefused

    deadline = time.monotonic() + timeout
    asked: dict[str, float] = {}
    while True:
        cuffs = station.snapshot().cuffs
        if all(c.pressure is not None and c.pressure > INFLATED_MMHG for c in cuffs):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"not every cuff inflated: {[c.pressure for c in cuffs]}")
        for c in cuffs:
            if c.target <= 0 and time.monotonic() - asked.get(c.id, -1e9) > 1.0:
                asked[c.id] = time.monotonic()
                try:
                    await station.inflate(c.id, mmhg=mmhg)
                except CommandRefused as exc:  # e.g. the deflate every station sends when it starts is on its way
                    if "latched" in str(exc):  # the last station's end tripped the watchdog: as a therapist would
                        await station.acknowledge(None)
        await asyncio.sleep(0.02)


async def key_runs(
    ports: list[str], runs: int, floor_once: Any, base: Path, *, supervised: bool = False
) -> tuple[list[float], list[float], list[float], int]:
    """``runs`` F12 presses in the running console: (key to last OK, key to call, floor, output bytes).

    The cuffs are inflated through the station's socket; unless ``supervised``, that connection is closed
    before F12 goes in and opened again after it (a therapist at the keyboard, no remote supervisor: no
    snapshots streamed to a client, in the console or in this process, while the key is measured).
    """
    base.mkdir(parents=True, exist_ok=True)
    config = write_config(base, ports, 4)
    socket = base / "sock" / "bfr.sock"
    exe = Path(sys.executable).with_name("bfr-console")
    console = ConsoleOnPty([str(exe), "--config", str(config)], (160, 50))
    to_ok: list[float] = []
    to_call: list[float] = []
    floor: list[float] = []
    holding = 0
    remote = None
    try:
        deadline = time.monotonic() + 30
        remote = await connect_when_serving(socket, deadline)
        while not all(c.online for c in remote.snapshot().cuffs):
            if time.monotonic() > deadline:
                raise RuntimeError("the console's cuffs never came online")
            await asyncio.sleep(0.05)
        for i in range(runs + 3):
            if remote is None:
                remote = await connect_when_serving(socket, time.monotonic() + 10)
            await inflate_all(remote)
            await asyncio.sleep(1.5 + random.random() * 0.05)  # settled; any phase of the 50 ms frame
            holding += sum(c.state == "HOLDING" for c in remote.snapshot().cuffs)
            if not supervised:
                await remote.close()
                remote = None
                await asyncio.sleep(0.2)  # the console has let the client go
            t_floor = await floor_once()
            t_key = console.type(F12)
            if remote is None:
                await asyncio.sleep(0.05)
                remote = await connect_when_serving(socket, time.monotonic() + 10)
            while True:
                e = remote.snapshot().emergency
                if e is not None and e.started_at >= t_key and e.latency_s is not None:
                    break
                if time.time() - t_key > 10:
                    raise RuntimeError("F12 was not confirmed by every controller within 10 s")
                await asyncio.sleep(0.005)
            if i >= 3:  # warm-up
                to_ok.append(e.started_at + e.latency_s - t_key)
                to_call.append(e.started_at - t_key)
                floor.append(t_floor)
    finally:
        if remote is not None:
            await remote.close()
        console.stop()
    print(f"cuffs HOLDING when F12 went in: {holding / max(1, (runs + 3) * 16):.0%} (the others still INFLATING)")
    return to_ok, to_call, floor, console.output
