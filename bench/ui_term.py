"""What bench_ui needs to run the shipped console in a real terminal: emulators, a config, tmux, CPU.

Kept apart from the benchmark's phases so each file stays readable. Nothing
here asserts; it starts processes, reads ``/proc`` and the tmux pane.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TICK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- processes


class Emulator:
    """``python -m drivers.emulator`` in its own process; its report lines go to a file nobody must drain."""

    def __init__(self, cid: str, channels: int, base: Path) -> None:
        self.cid = cid
        self.out = base / f"emulator-{cid}.out"
        with self.out.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "drivers.emulator", "--channels", str(channels), "--serial", f"EMU{cid}"]
                + ["--lop", ",".join(["200"] * channels), "--pulse", "1", "--seed", str(ord(cid))],
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            for line in self.out.read_text().splitlines():
                if line.startswith("PORT "):
                    self.port = line.split(" ", 1)[1].strip()
                    return
            time.sleep(0.02)
        raise RuntimeError(f"emulator {cid} printed no port")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def write_config(base: Path, ports: dict[str, str], channels: int) -> Path:
    """16 leg cuffs (LOP unknown: 100 mmHg is allowed), 100 Hz, the shipped 20 fps, no bell."""
    lines = [
        "[station]",
        'name = "Bench bay"',
        f'data_dir = "{base / "var"}"',
        f'socket = "{base / "sock" / "bfr.sock"}"',
        "[alarms]",
        "bell = false",
        "[ui]",
        "fps = 20",
    ]
    for cid, port in ports.items():
        lines += ["[[controllers]]", f'id = "{cid}"', f'port = "{port}"', f"channels = {channels}"]
        lines += ["stream_hz = 100", "watchdog_ms = 1000"]
    for cid in ports:
        for ch in range(1, channels + 1):
            lines += ["[[cuffs]]", f'id = "{cid}{ch}"', f'controller = "{cid}"', f"channel = {ch}", 'limb = "leg"']
            lines += [f'label = "leg {cid}{ch}"']
    path = base / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of ``pid`` (``/proc/<pid>/stat``), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def thread_cpu_seconds(pid: int, name: str) -> float | None:
    """utime + stime of the threads of ``pid`` the system knows as ``name``; None if it has none."""
    total, found = 0.0, False
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            if (task / "comm").read_text().strip() != name:
                continue
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        total += (int(fields[11]) + int(fields[12])) / TICK
        found = True
    return total if found else None


def cpu_share(pids: list[int], seconds: float) -> list[float]:
    """Each process's CPU over ``seconds`` of wall time, as a share of one core."""
    c0 = [cpu_seconds(p) for p in pids]
    w0 = time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - w0
    return [(cpu_seconds(p) - c) / wall for p, c in zip(pids, c0)]


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()


def end(pid: int, timeout: float = 15.0) -> None:
    """SIGTERM (the station deflates every cuff on it), then wait until the process is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError):
            if not alive(pid):
                return
        if not Path(f"/proc/{pid}").exists():
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


# --------------------------------------------------------------------------- tmux


@dataclass
class Pane:
    """One tmux session running one command; ``pid`` is the command's own (it is exec'd)."""

    session: str
    pid: int

    @classmethod
    def start(cls, session: str, size: tuple[int, int], term: str, argv: list[str], env: dict[str, str]) -> Pane:
        envs = " ".join(f"{k}={v}" for k, v in {"TERM": term, **env}.items())
        command = f"exec env {envs} {' '.join(argv)}"
        subprocess.run(
            ["tmux", "new-session", "-d", "-s", session, "-x", str(size[0]), "-y", str(size[1]), command],
            check=True,
            cwd=ROOT,
        )
        out = subprocess.run(
            ["tmux", "display-message", "-p", "-t", session, "#{pane_pid}"], capture_output=True, text=True, check=True
        )
        return cls(session, int(out.stdout.strip()))

    def capture(self) -> str:
        out = subprocess.run(["tmux", "capture-pane", "-p", "-t", self.session], capture_output=True, text=True)
        return out.stdout

    def server_pid(self) -> int:
        out = subprocess.run(
            ["tmux", "display-message", "-p", "-t", self.session, "#{pid}"], capture_output=True, text=True, check=True
        )
        return int(out.stdout.strip())

    def close(self) -> None:
        end(self.pid)
        subprocess.run(["tmux", "kill-session", "-t", self.session], capture_output=True)


def wait_for_screen(pane: Pane, live: tuple[str, ...], timeout: float = 30.0) -> float:
    """Poll the pane until it shows any of ``live``; returns the monotonic time it was first seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        screen = pane.capture()
        if any(word in screen for word in live):
            return time.monotonic()
        time.sleep(0.01)
    raise RuntimeError(f"{live!r} never appeared on screen:\n{pane.capture()}")


# --------------------------------------------------------------------------- the station's socket


async def _inflate_all(socket: Path, mmhg: float, timeout: float) -> None:
    from console.remote.client import RemoteStation

    remote = await RemoteStation.connect(socket, reconnect=False)
    try:
        deadline = time.monotonic() + timeout
        while not all(c.online for c in remote.snapshot().cuffs):
            if time.monotonic() > deadline:
                raise RuntimeError("cuffs never came online")
            await asyncio.sleep(0.05)
        for cuff in remote.snapshot().cuffs:
            await remote.inflate(cuff.id, mmhg=mmhg)
        while not all(c.state == "HOLDING" for c in remote.snapshot().cuffs):
            if time.monotonic() > deadline:
                raise RuntimeError(f"not every cuff holds: {[c.state for c in remote.snapshot().cuffs]}")
            await asyncio.sleep(0.05)
    finally:
        await remote.close()


SESSION_PLAN = "legs-30-15"
"""The shipped plan the session phase runs on every cuff (30 reps at 1 s up, 1 s down in its first set)."""


async def _sessions_all(socket: Path, timeout: float) -> None:
    from console.remote.client import RemoteStation

    remote = await RemoteStation.connect(socket, reconnect=False)
    try:
        deadline = time.monotonic() + timeout
        for cuff in remote.snapshot().cuffs:
            await remote.deflate(cuff.id)
        while not all(c.state == "VENTED" and c.target == 0 for c in remote.snapshot().cuffs):
            if time.monotonic() > deadline:
                raise RuntimeError(f"not every cuff vented: {[c.state for c in remote.snapshot().cuffs]}")
            await asyncio.sleep(0.05)
        for cuff in remote.snapshot().cuffs:
            await remote.set_lop(cuff.id, 200.0, position="seated", cuff_width_cm=None)
            await remote.start_session([cuff.id], SESSION_PLAN, f"BENCH-{cuff.id}")
        while not all(
            c.state == "HOLDING" and c.session is not None and c.session.phase == "set" for c in remote.snapshot().cuffs
        ):
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"not every session holds its first set: {[c.state for c in remote.snapshot().cuffs]}"
                )
            await asyncio.sleep(0.05)
    finally:
        await remote.close()


def sessions_all(socket: Path, timeout: float = 60.0) -> None:
    """Through the station's socket: every cuff vented, given a LOP of 200 mmHg, then in a session of
    :data:`SESSION_PLAN` (160 mmHg on legs); back once every one holds its first set (the cue moves each second)."""
    asyncio.run(_sessions_all(socket, timeout))


def inflate_all(socket: Path, mmhg: float = 100.0, timeout: float = 30.0) -> None:
    """Through the station's socket (as ``attach`` does): every cuff to ``mmhg``, back once all hold."""
    asyncio.run(_inflate_all(socket, mmhg, timeout))


async def connect_when_serving(socket: Path, deadline: float) -> Any:
    """A RemoteStation on ``socket`` once the station serves it (retried until ``deadline``, monotonic)."""
    from console.remote.client import RemoteStation

    while True:
        try:
            return await RemoteStation.connect(socket, reconnect=False)
        except (ConnectionError, OSError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def _wait_online(socket: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    remote = await connect_when_serving(socket, deadline)
    try:
        while not all(c.online and c.state == "VENTED" for c in remote.snapshot().cuffs):
            if time.monotonic() > deadline:
                raise RuntimeError("cuffs never came online")
            await asyncio.sleep(0.05)
    finally:
        await remote.close()


def wait_online(socket: Path, timeout: float = 30.0) -> None:
    """Until the station serves its socket and every cuff is online and vented."""
    asyncio.run(_wait_online(socket, timeout))
