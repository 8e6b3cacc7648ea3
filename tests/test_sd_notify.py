"""systemd's notify protocol, checked against a real datagram socket standing in for systemd:
the messages themselves, and ``bfr-console serve`` announcing READY only once every controller is
connected or reported missing, then pinging the watchdog from the station's loop."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from console.common.sd_notify import Notifier
from drivers.emulator.firmware import ControllerFirmware
from drivers.emulator.pty_port import PtyEmulator

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[socket.socket]:
    """What systemd listens on: a Unix datagram socket (its path goes in $NOTIFY_SOCKET)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.settimeout(10)
    yield sock
    sock.close()


def test_ready_status_and_stopping_reach_the_socket(systemd: socket.socket, tmp_path: Path) -> None:
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify")})
    assert n.ready("controllers connected: A; missing: none")
    assert systemd.recv(4096) == b"READY=1\nSTATUS=controllers connected: A; missing: none"
    assert n.stopping()
    assert systemd.recv(4096) == b"STOPPING=1"


def test_the_abstract_namespace_is_spelled_with_an_at() -> None:
    name = f"bfr-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(10)
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).ready()
        assert sock.recv(4096) == b"READY=1"


def test_watchdog_pings_at_most_every_half_period(systemd: socket.socket, tmp_path: Path) -> None:
    now = [100.0]
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "2000000"}, clock=lambda: now[0])
    assert n.watchdog_s == 2.0
    for step in (0.0, 0.4, 0.4, 0.3):  # 100.0, 100.4, 100.8, 101.1: the first and the last ping
        now[0] += step
        n.watchdog()
    systemd.settimeout(0.5)
    got = []
    try:
        while True:
            got.append(systemd.recv(4096))
    except TimeoutError:
        pass
    assert got == [b"WATCHDOG=1", b"WATCHDOG=1"]


def test_no_socket_or_another_process_watchdog_sends_nothing(tmp_path: Path) -> None:
    assert not Notifier({}).ready()
    other = Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"})
    assert other.watchdog_s is None
    assert not Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")}).ready()  # logged, never raised


async def test_serve_is_ready_once_every_controller_is_up_or_missing_then_pings(
    systemd: socket.socket, tmp_path: Path
) -> None:
    emu = PtyEmulator(ControllerFirmware(channels=1, seed=1), link_path=str(tmp_path / "ttyA"))
    await emu.start()
    cfg = tmp_path / "config.toml"
    lines = ["[station]", f'data_dir = "{tmp_path / "var"}"', f'socket = "{tmp_path / "var" / "bfr.sock"}"']
    for cid, port in (("A", emu.path), ("B", str(tmp_path / "ttyB-unplugged"))):
        lines += ["[[controllers]]", f'id = "{cid}"', f'port = "{port}"', "channels = 1"]
        lines += ["[[cuffs]]", f'id = "{cid}1"', f'controller = "{cid}"', "channel = 1", 'limb = "leg"']
    cfg.write_text("\n".join(lines) + "\n")
    env = dict(os.environ, NOTIFY_SOCKET=str(tmp_path / "notify"), WATCHDOG_USEC="1000000")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "console.cli", "serve", "--config", str(cfg), cwd=str(REPO), env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    loop = asyncio.get_running_loop()
    try:
        first = await loop.run_in_executor(None, systemd.recv, 4096)
        assert first == b"READY=1\nSTATUS=controllers connected: A; missing: B", first
        pings = [await loop.run_in_executor(None, systemd.recv, 4096) for _ in range(3)]
        assert pings == [b"WATCHDOG=1"] * 3  # the station's loop keeps feeding systemd's watchdog
        proc.send_signal(signal.SIGTERM)
        rest = []
        while (msg := await loop.run_in_executor(None, systemd.recv, 4096)) != b"STOPPING=1":
            rest.append(msg)
        assert set(rest) <= {b"WATCHDOG=1"}
        assert await asyncio.wait_for(proc.wait(), 15) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await emu.stop()
