"""A console process ends within its bound once told to stop, even with its event loop blocked (issue 11,
item 6).

Each test runs the real ``bfr-console`` entry point (``console.cli.main``) in a child process on its own
pseudo-terminal, as ``attach`` over the station's socket or as the local console, and blocks the app's
event loop in a futex wait (a lock taken twice), the way Textual blocks in ``queue.put`` once its
terminal is gone. Then SIGTERM, SIGHUP, or the terminal itself goes away (the pty's master closes, no
signal at all): the child must end within its bound. Before the backstop it never ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from console.common.api import Role
from console.remote.roles import Decision
from console.remote.server import StationServer
from console.ui.exit_guard import terminal_gone
from tests.test_remote_fakes import FakeStation

REPO = Path(__file__).resolve().parents[1]
BOUND_S = 1.0
"""The child's bound (the product's are 5 s for attach and 30 s for the local console)."""
ENDS_WITHIN_S = 15.0
"""What the test waits for: the bound plus a generous margin for a loaded machine. Before the fix: never."""

CHILD = """
import sys, threading
from pathlib import Path

from console import app_runner
import console.ui.app as ui_app

marker = Path(sys.argv[1])
app_runner.ATTACH_BOUND_S = app_runner.STOP_BOUND_S = float(sys.argv[2])


class BlockedApp(ui_app.BfrApp):
    CSS_PATH = str(Path(ui_app.__file__).with_name("app.tcss"))

    def on_mount(self) -> None:
        self.set_timer(0.5, self.block)  # after the first frames are drawn

    def block(self) -> None:
        marker.write_text("BLOCKED")
        held = threading.Lock()
        held.acquire()
        held.acquire()  # a futex wait on the event loop's thread, for ever


ui_app.BfrApp = BlockedApp
from console.cli import main

sys.exit(main(sys.argv[3:]))
"""


class Child:
    """The console in a child process on its own pty (80x24, TERM=linux); its screen output is drained."""

    def __init__(self, tmp_path: Path, argv: list[str]) -> None:
        self.marker = tmp_path / "blocked"
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        env = dict(os.environ, TERM="linux", PYTHONPATH=str(REPO))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(self.marker), str(BOUND_S), *argv],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=REPO,
            env=env,
            start_new_session=True,  # no controlling terminal: a closed pty sends it no SIGHUP
        )
        os.close(slave)
        self.output = bytearray()
        self._draining = True
        self._drain = threading.Thread(target=self._read, daemon=True)
        self._drain.start()

    def _read(self) -> None:
        while self._draining:
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if ready:
                try:
                    data = os.read(self.master, 65536)
                except OSError:
                    return
                if not data:
                    return
                self.output += data

    def close_terminal(self) -> None:
        """The terminal goes away: its master side closes, as sshd or tmux do."""
        self._draining = False
        self._drain.join(5)
        os.close(self.master)
        self.master = -1

    async def blocked(self) -> None:
        deadline = time.monotonic() + 60
        while not self.marker.exists():
            if self.proc.poll() is not None:
                raise AssertionError(f"the console ended early ({self.proc.returncode}): {self.tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"the console never blocked its loop: {self.tail()}")
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)

    async def ended_within(self, seconds: float) -> float | None:
        """Seconds until the child ended, or None if it is still running after ``seconds``."""
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            if self.proc.poll() is not None:
                return time.monotonic() - start
            await asyncio.sleep(0.05)
        return None

    def tail(self) -> str:
        return bytes(self.output[-2000:]).decode(errors="replace")

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            self.proc.wait(10)
        if self.master >= 0:
            self._draining = False
            self._drain.join(5)
            os.close(self.master)
            self.master = -1


@pytest.fixture
def children() -> Iterator[list[Child]]:
    made: list[Child] = []
    yield made
    for child in made:
        child.kill()


@pytest.fixture
async def station_socket(tmp_path: Path) -> AsyncIterator[Path]:
    sock = tmp_path / "run" / "bfr.sock"
    server = StationServer(FakeStation(cuffs=2), sock, lambda uid, gid: Decision(uid, "olga", Role.OPERATOR, "t"))
    await server.start()
    try:
        yield sock
    finally:
        await server.stop()


def local_config(tmp_path: Path) -> Path:
    cfg = tmp_path / "station.toml"
    cfg.write_text(
        f"""
[station]
name = "Exit bay"
data_dir = "{tmp_path / "var"}"
socket = "{tmp_path / "sock" / "bfr.sock"}"

[[controllers]]
id = "A"
port = "emulator"
watchdog_ms = 3000

[controllers.emulator]
channels = 2
lop = [200.0, 190.0]

[[cuffs]]
id = "A1"
controller = "A"
channel = 1
limb = "leg"
label = "left thigh"

[[cuffs]]
id = "A2"
controller = "A"
channel = 2
limb = "leg"
label = "right thigh"
"""
    )
    return cfg


async def _stop(child: Child, how: str) -> None:
    if how == "terminal gone":
        child.close_terminal()
    else:
        child.proc.send_signal(signal.SIGTERM if how == "SIGTERM" else signal.SIGHUP)


@pytest.mark.parametrize("how", ["SIGTERM", "SIGHUP", "terminal gone"])
async def test_attach_with_its_loop_blocked_ends_within_its_bound(
    tmp_path: Path, station_socket: Path, children: list[Child], how: str
) -> None:
    child = Child(tmp_path, ["attach", "--socket", str(station_socket)])
    children.append(child)
    await child.blocked()
    await _stop(child, how)
    took = await child.ended_within(ENDS_WITHIN_S)
    assert took is not None, f"attach still running {ENDS_WITHIN_S:g} s after {how} with its loop blocked"
    assert child.proc.returncode == 0


@pytest.mark.parametrize("how", ["SIGTERM", "SIGHUP", "terminal gone"])
async def test_the_local_console_with_its_loop_blocked_ends_within_its_bound(
    tmp_path: Path, children: list[Child], how: str
) -> None:
    cfg = local_config(tmp_path)
    child = Child(tmp_path, ["--config", str(cfg), "--kiosk"])
    children.append(child)
    await child.blocked()
    await _stop(child, how)
    took = await child.ended_within(ENDS_WITHIN_S)
    assert took is not None, f"the console still running {ENDS_WITHIN_S:g} s after {how} with its loop blocked"
    assert child.proc.returncode == 0
    log = (tmp_path / "var" / "bfr-console.log").read_text()
    assert "ending the process" in log, "the backstop says why it ended the process"


def test_a_pty_whose_master_closed_reads_as_a_terminal_gone() -> None:
    master, slave = os.openpty()
    try:
        assert not terminal_gone(slave)
        os.close(master)
        assert terminal_gone(slave), "a hung-up terminal answers EIO"
    finally:
        os.close(slave)
