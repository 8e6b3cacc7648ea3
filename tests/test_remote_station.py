"""Remote consoles on the real Station, its emulators on real ptys, over a real Unix socket.

Clients run in-process as root (the station's own uid: operators) and in child
processes as other users (``nobody``, and a uid with no account), so the
kernel's peer credentials, the passwd/group lookups and the role rules are the
real ones.
"""

from __future__ import annotations

import asyncio
import atexit
import dataclasses
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from console.common.api import Role
from console.config.schema import RoleRule, StationConfig
from console.remote.client import RemoteStation
from console.remote.server import StationServer, serve_station
from console.station.station import Station
from tests.station_support import inflate_and_hold, make_config, wait_for
from tests.test_remote import raw

NOBODY = 65534
NO_ACCOUNT = 54321

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="running a client as another uid needs root")


@pytest.fixture
def shared_dir() -> AsyncIterator[Path]:
    """A directory other users may enter (pytest's tmp_path is private to root)."""
    d = Path(tempfile.mkdtemp(prefix="bfr-remote-"))
    os.chmod(d, 0o711)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def configured(tmp_path: Path, socket: Path, roles: tuple[RoleRule, ...] = (), **kw: object) -> StationConfig:
    cfg = make_config(tmp_path, **kw)  # type: ignore[arg-type]
    return dataclasses.replace(cfg, station=dataclasses.replace(cfg.station, socket=socket), roles=roles)


@pytest.fixture
async def station(tmp_path: Path, shared_dir: Path) -> AsyncIterator[Station]:
    roles = (RoleRule(role=Role.OBSERVER, user="nobody"),)
    st = Station(configured(tmp_path, shared_dir / "run" / "bfr.sock", roles))
    await st.start()
    try:
        yield st
    finally:
        await st.stop()


CHILD = textwrap.dedent(
    """
    import asyncio, json, sys
    from console.remote.client import RemoteStation, AccessRefused, StationUnavailable
    from console.common.api import CommandRefused

    async def main(path, deflate):
        out = {}
        try:
            remote = await RemoteStation.connect(path, reconnect=False)
        except (AccessRefused, StationUnavailable) as exc:
            print(json.dumps({"refused": type(exc).__name__, "reason": str(exc)}))
            return
        out["role"] = remote.snapshot().role.value
        out["cuffs"] = [c.id for c in remote.snapshot().cuffs]
        try:
            await remote.inflate("A2", mmhg=80)
            out["inflate"] = "done"
        except CommandRefused as exc:
            out["inflate"] = str(exc)
        if deflate:
            em = await remote.emergency_deflate()
            out["emergency_by"] = em.by
            out["confirmed"] = list(em.confirmed)
        await remote.close()
        print(json.dumps(out))

    asyncio.run(main(sys.argv[1], sys.argv[2] == "deflate"))
    """
)


def python_for(uid: int, gid: int) -> str:
    """An interpreter that ``uid`` may run (the venv's may sit under a home only root can enter)."""
    for exe in (sys.executable, "/usr/bin/python3.11", "/usr/bin/python3"):
        try:
            subprocess.run([exe, "-c", "pass"], user=uid, group=gid, extra_groups=[], cwd="/", check=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            continue
        return exe
    pytest.skip(f"no Python that uid {uid} may run")


_CLIENT_CODE: list[Path] = []


def client_code() -> Path:
    """A copy of this repo's packages that any uid may read: the checkout itself may sit under a
    directory only root can enter (a clone in ``mktemp -d``). Made once; only the stdlib and
    these packages are needed by the client."""
    if not _CLIENT_CODE:
        root = Path(tempfile.mkdtemp(prefix="bfr-client-code-"))
        atexit.register(shutil.rmtree, root, True)
        for package in ("console", "drivers"):
            shutil.copytree(
                Path(__file__).parents[1] / package, root / package, ignore=shutil.ignore_patterns("__pycache__")
            )
        for path in (root, *root.rglob("*")):
            path.chmod(0o755 if path.is_dir() else 0o644)
        _CLIENT_CODE.append(root)
    return _CLIENT_CODE[0]


async def run_as(uid: int, gid: int, socket: Path, action: str) -> dict:
    """The client in a child process running as ``uid``: only the stdlib and this repo are needed."""
    proc = await asyncio.create_subprocess_exec(
        await asyncio.to_thread(python_for, uid, gid),
        "-c",
        CHILD,
        str(socket),
        action,
        user=uid,
        group=gid,
        extra_groups=[],
        cwd="/",
        env={"PYTHONPATH": str(client_code())},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    return json.loads(out.decode().strip().splitlines()[-1])


@needs_root
async def test_observer_in_another_process_may_emergency_deflate_but_not_inflate(
    station: Station, shared_dir: Path
) -> None:
    sock = shared_dir / "run" / "bfr.sock"
    server = StationServer(station, sock, station.config.roles, group=NOBODY)
    await server.start()
    try:
        # The group the server was given owns the directory (0750) and the socket (0660): nobody's way in.
        assert (sock.parent.stat().st_gid, stat.S_IMODE(sock.parent.stat().st_mode)) == (NOBODY, 0o750)
        assert (sock.stat().st_gid, stat.S_IMODE(sock.stat().st_mode)) == (NOBODY, 0o660)
        await inflate_and_hold(station, "A1", 100)
        got = await run_as(NOBODY, NOBODY, sock, "deflate")
        assert got["role"] == "observer"
        assert got["cuffs"] == ["A1", "A2", "B1", "B2"]
        assert "nobody is an observer here" in got["inflate"] and "not inflate a cuff" in got["inflate"]
        assert got["emergency_by"] == f"nobody@uid{NOBODY}"
        fw = station.emulators["A"].firmware
        await wait_for(lambda: fw.channel(1).state == "VENTED" and fw.channel(1).target == 0, "A1 vented", 10)
        assert fw.channel(2).target == 0, "the refused inflate never reached the controller"
        log = station.command_log()
        assert (f"nobody@uid{NOBODY}", "EMERGENCY DEFLATE ALL") in [(who, what) for _, who, what in log]
        assert any(who == f"nobody@uid{NOBODY}" and "(refused: observer)" in what for _, who, what in log)
    finally:
        await server.stop()


@needs_root
async def test_a_user_with_no_role_is_refused_with_the_reason(station: Station, shared_dir: Path) -> None:
    sock = shared_dir / "run" / "bfr.sock"
    server = StationServer(station, sock, station.config.roles, group=NOBODY)
    await server.start()
    try:
        got = await run_as(NO_ACCOUNT, NOBODY, sock, "watch")
        assert got["refused"] == "AccessRefused"
        assert f"uid{NO_ACCOUNT} (uid {NO_ACCOUNT}) may not attach" in got["reason"]
        assert "allowed: user nobody" in got["reason"]
        assert server.refused == 1
    finally:
        await server.stop()


@needs_root
async def test_a_user_outside_the_socket_group_cannot_even_reach_it(station: Station, shared_dir: Path) -> None:
    sock = shared_dir / "run" / "bfr.sock"
    server = StationServer(station, sock, station.config.roles)  # directory root:root 0750
    await server.start()
    try:
        got = await run_as(NOBODY, NOBODY, sock, "watch")
        assert got["refused"] == "StationUnavailable"
        assert "may not reach the station's socket" in got["reason"]
        assert server.refused == 0, "the kernel stopped it before the server saw it"
    finally:
        await server.stop()


async def test_two_operators_see_the_same_live_pressures(station: Station) -> None:
    server = await serve_station(station, station.config)
    a = await RemoteStation.connect(station.config.station.socket)
    b = await RemoteStation.connect(station.config.station.socket)
    try:
        assert a.role is Role.OPERATOR and b.role is Role.OPERATOR  # root runs the station
        await a.inflate("A1", mmhg=120)
        seen_a: dict[int, float | None] = {}
        seen_b: dict[int, float | None] = {}

        def both_saw_enough() -> bool:
            for remote, seen in ((a, seen_a), (b, seen_b)):
                c = remote.snapshot().cuffs[0]
                seen[c.samples] = c.pressure
            return len(seen_a.keys() & seen_b.keys()) >= 20 and max(seen_a.values(), key=lambda p: p or 0) > 60

        await wait_for(both_saw_enough, "20 shared frames with the cuff inflating", 20)
        common = seen_a.keys() & seen_b.keys()
        assert all(seen_a[k] == seen_b[k] for k in common)
        local = station.snapshot().cuffs[0]
        await wait_for(lambda: a.snapshot().cuffs[0].samples >= local.samples, "the client caught up")
        assert station.emulators["A"].firmware.channel(1).target == 120
        assert ("root@uid0", "inflate A1 120 mmHg") in [(w, t) for _, w, t in station.command_log()]
        await b.deflate("A1")
        await wait_for(lambda: station.emulators["A"].firmware.channel(1).target == 0, "deflated by b")
    finally:
        await a.close()
        await b.close()
        await server.stop()


async def test_a_stalled_console_does_not_hold_back_the_others(tmp_path: Path, shared_dir: Path) -> None:
    cfg = configured(tmp_path, shared_dir / "run" / "bfr.sock", controllers=2, channels=8)
    station = Station(cfg)
    await station.start()
    server = StationServer(station, cfg.station.socket, (), fps=50)
    await server.start()
    try:
        good = await RemoteStation.connect(cfg.station.socket)
        _, stuck, _ = await raw(cfg.station.socket, limit=16 * 1024)
        await wait_for(lambda: any(c.frames_skipped > 0 for c in server.clients), "the stalled console skipped", 20)
        first = good.snapshot().cuffs[-1].samples
        await wait_for(lambda: good.snapshot().cuffs[-1].samples > first + 50, "fresh samples for the good one", 20)
        assert sorted(c.frames_skipped == 0 for c in server.clients) == [False, True]
        assert good.connected and len(server.clients) == 2
        stuck.close()
        await good.close()
    finally:
        await server.stop()
        await station.stop()
