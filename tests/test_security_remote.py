"""Issue 13, items 2, 3 and 5 at the socket: floods merged or bounded, every refusal on record without
becoming a flood of rows, the socket's directory and the station's identity checked, group rules
that cannot demote the station's own user.

The station here is in memory (fast, exact counts); tests/test_security_observer.py does the same
against the real station with a real second user.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import stat
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from console.common.api import EmergencySnapshot, Role
from console.config.schema import RoleRule
from console.remote import protocol
from console.remote.client import AccessRefused, RemoteStation, StationUnavailable
from console.remote.emergencies import at_rest
from console.remote.roles import Decision, RoleResolver
from console.remote.server import StationServer
from console.remote.socket_file import ServeError
from console.remote.wire import to_wire
from tests.test_remote_fakes import FakeStation, ticking, wait_until
from tests.test_security_support import NOBODY, NOGROUP, needs_root, shared_directory


class RestingStation(FakeStation):
    """A fake station whose emergency deflate zeroes every target and takes ``confirm_s`` to be confirmed."""

    def __init__(self, confirm_s: float = 0.05, pending: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.confirm_s = confirm_s
        self.pending = pending
        self.fired_at: list[float] = []

    def set_targets(self, mmhg: float) -> None:
        s = self._snap
        self._snap = replace(s, cuffs=tuple(replace(c, target=mmhg) for c in s.cuffs), seq=s.seq + 1)

    async def emergency_deflate(self) -> EmergencySnapshot:
        self.emergencies += 1
        self.fired_at.append(asyncio.get_running_loop().time())
        self.set_targets(0.0)  # the writes and the zeroing come first, as in the real station
        await asyncio.sleep(self.confirm_s)
        return EmergencySnapshot(started_at=0.0, confirmed=("rack",), pending=self.pending, latency_s=0.001)


def observer(uid: int, gid: int) -> Decision:
    return Decision(uid, "olga", Role.OBSERVER, "test")


def operator(uid: int, gid: int) -> Decision:
    return Decision(uid, "ana", Role.OPERATOR, "test")


@pytest.fixture
def sock(tmp_path: Path) -> Path:
    return tmp_path / "run" / "station.sock"


async def connect_raw(
    sock: Path, limit: int = protocol.MAX_REPLY
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, dict]:
    """A bare connection; a small ``limit`` makes it stop reading the socket once it holds 2*limit unread."""
    reader, writer = await asyncio.open_unix_connection(str(sock), limit=limit)
    return reader, writer, json.loads(await reader.readline())


async def results(reader: asyncio.StreamReader, ids: set[int], timeout: float = 30.0) -> dict[int, dict]:
    """Read until every id in ``ids`` has its result (snapshots are skipped)."""
    got: dict[int, dict] = {}

    async def read() -> None:
        while len(got) < len(ids):
            m = json.loads(await reader.readline())
            if m["op"] == "result" and m["id"] in ids:
                got[m["id"]] = m

    await asyncio.wait_for(read(), timeout)
    return got


def emergency(i: int) -> bytes:
    return protocol.encode({"op": "cmd", "id": i, "name": "emergency_deflate", "args": {}})


# ----------------------------------------------------------------------------- item 2: emergencies merged


async def test_a_flood_of_emergencies_is_merged_into_the_first_which_goes_out_at_once(sock: Path) -> None:
    station = RestingStation(confirm_s=0.2)
    station.set_targets(120.0)
    srv = StationServer(station, sock, observer, fps=20)
    await srv.start()
    reader, writer, _ = await connect_raw(sock)
    try:
        t0 = asyncio.get_running_loop().time()
        writer.write(b"".join(emergency(i) for i in range(1, 5001)))  # thousands in one read
        await wait_until(lambda: station.emergencies == 1, what="the first")
        # at once, not after the flood (5000 read at 2000 a second past a burst of 2000: 1.5 s at least); the
        # bound is that, not a speed: 0.13 s was seen on a 2-core machine with both cores busy
        assert station.fired_at[0] - t0 < 1.0, "the first goes out at once"
        got = await results(reader, set(range(1, 5001)))
        assert all(m["ok"] for m in got.values()), "every request is answered as carried out"
        # merged while nothing was raised; read at 2000 a second once past the burst, so the 1 s hold may end
        # once before the last: at most one more carried out
        assert station.emergencies == srv.emergencies.started <= 2
        assert srv.emergencies.started + srv.emergencies.merged == 5000
        await wait_until(lambda: joined_total(station) == srv.emergencies.merged, what="every joined request told")
        rows = [w for who, w in station.records if "EMERGENCY" in w or w == "emergency_deflate"]
        assert rows[0] == "emergency_deflate" and len(rows) <= 8, rows  # each start, then a few summing rows
        # how many the first summing row holds depends on how the reads fell (1023: the rest of the first read;
        # 1055 was seen on a busy machine); together they hold every merged one (joined_total, above)
        joined = re.match(
            rf"EMERGENCY DEFLATE ALL \((\d+) times; joined the one olga@uid{os.getuid()} began at ", rows[1]
        )
        assert joined is not None and int(joined[1]) >= 1, rows[1]
    finally:
        writer.close()
        await srv.stop()


async def test_an_emergency_after_something_was_raised_again_goes_out_at_once(sock: Path) -> None:
    station = RestingStation(confirm_s=3.0)  # joined to the first instead, it would wait for these 3 s
    srv = StationServer(station, sock, observer, fps=20)
    await srv.start()
    reader, writer, _ = await connect_raw(sock)
    try:
        writer.write(emergency(1))
        await wait_until(lambda: station.emergencies == 1, what="the first")
        writer.write(emergency(2))  # in progress, nothing raised: joins
        await asyncio.sleep(0.05)
        assert station.emergencies == 1
        station.set_targets(150.0)  # an operator inflated meanwhile
        writer.write(emergency(3))
        await wait_until(lambda: station.emergencies == 2, what="a second, at once", timeout=1.5)
        got = await results(reader, {1, 2, 3})
        assert all(m["ok"] for m in got.values())
    finally:
        writer.close()
        await srv.stop()


async def test_a_flooding_console_never_delays_another_consoles_emergency(sock: Path) -> None:
    station = RestingStation(confirm_s=3.0)  # a slow confirmation: the flooder's requests pile up behind it
    srv = StationServer(station, sock, observer, fps=20)
    await srv.start()
    flood_reader, flooder, _ = await connect_raw(sock)
    other_reader, other, _ = await connect_raw(sock)
    try:
        flooder.write(b"".join(emergency(i) for i in range(1, 3001)))
        await wait_until(lambda: srv.emergencies.merged >= 1023, what="the flooder waiting for its answers")
        station.set_targets(150.0)  # an operator inflated meanwhile
        t0 = asyncio.get_running_loop().time()
        other.write(emergency(1))
        await wait_until(lambda: station.emergencies == 2, what="the other console's emergency", timeout=1.5)
        assert station.fired_at[1] - t0 < 1.0, "it went out at once, not after the flood (3 s behind the first)"
        got = await results(flood_reader, set(range(1, 3001)))
        assert all(m["ok"] for m in got.values())
        assert (await results(other_reader, {1}))[1]["ok"]
    finally:
        flooder.close()
        other.close()
        await srv.stop()


async def test_a_blocked_flooder_is_read_again_the_moment_its_next_request_would_deflate_anew(sock: Path) -> None:
    station = RestingStation(confirm_s=3.0)
    srv = StationServer(station, sock, observer, fps=20)
    await srv.start()
    reader, flooder, _ = await connect_raw(sock)
    try:
        flooder.write(b"".join(emergency(i) for i in range(1, 3001)))
        await wait_until(lambda: srv.emergencies.merged >= 1023, what="the flooder waiting for its answers")
        await asyncio.sleep(0.1)
        assert station.emergencies == 1, "blocked behind the one in progress"
        station.set_targets(150.0)  # an operator inflated meanwhile: the flooder's next line must deflate it
        t0 = asyncio.get_running_loop().time()
        await wait_until(lambda: station.emergencies == 2, what="its next request carried out", timeout=1.5)
        assert station.fired_at[1] - t0 < 1.0, "read again at once, not once the first is confirmed (3 s)"
        got = await results(reader, set(range(1, 3001)), timeout=30)
        assert all(m["ok"] for m in got.values())
    finally:
        flooder.close()
        await srv.stop()


async def test_requests_that_change_nothing_are_read_at_a_pace_and_at_once_again_when_one_would(sock: Path) -> None:
    station = RestingStation(confirm_s=0.01)
    srv = StationServer(station, sock, observer, fps=20, emergency_hold_s=30.0)
    await srv.start()
    reader, flooder, _ = await connect_raw(sock)
    try:
        flooder.write(b"".join(emergency(i) for i in range(1, 20001)))
        await asyncio.sleep(1.0)
        read = srv.emergencies.started + srv.emergencies.merged
        assert 2000 <= read <= 2000 + 2000 * 1.5, f"{read} read in 1 s: not held to 2000 a second past the burst"
        station.set_targets(150.0)  # an operator inflated meanwhile
        t0 = asyncio.get_running_loop().time()
        await wait_until(lambda: station.emergencies == 2, what="its next request carried out", timeout=1.5)
        assert station.fired_at[1] - t0 < 1.0, "read again at once, not at the pace of 2000 a second (30 s hold)"
        got = await results(reader, set(range(1, 5001)), timeout=30)
        assert all(m["ok"] for m in got.values())
    finally:
        flooder.close()
        await srv.stop()


async def test_merging_ends_with_the_hold_and_never_covers_an_unconfirmed_controller(sock: Path) -> None:
    station = RestingStation(confirm_s=0.01)
    srv = StationServer(station, sock, observer, fps=20, emergency_hold_s=0.3)
    await srv.start()
    reader, writer, _ = await connect_raw(sock)
    try:
        writer.write(emergency(1))
        await results(reader, {1})
        writer.write(emergency(2))  # done, confirmed, within the hold, at rest: joins
        await results(reader, {2})
        assert station.emergencies == 1
        await asyncio.sleep(0.35)
        writer.write(emergency(3))  # the hold is over
        await results(reader, {3})
        assert station.emergencies == 2
        station.pending = ("rack",)
        await asyncio.sleep(0.35)
        writer.write(emergency(4))
        await results(reader, {4})
        writer.write(emergency(5))  # the last left a controller unconfirmed: deflate again
        await results(reader, {5})
        assert station.emergencies == 4
    finally:
        writer.close()
        await srv.stop()


def joined_total(station: FakeStation) -> int:
    rows = [w for _, w in station.records if w.startswith("EMERGENCY DEFLATE ALL (")]
    return sum(1 if "(once;" in w else int(w.split("(")[1].split()[0]) for w in rows)


def test_at_rest_means_nothing_raised() -> None:
    station = RestingStation()
    assert not at_rest(station.snapshot())  # targets 120
    station.set_targets(0.0)
    assert at_rest(station.snapshot())


# ----------------------------------------------------------------------------- item 2: caps and budgets


async def test_connections_are_capped_per_user_and_in_all_but_the_station_user_still_gets_in(sock: Path) -> None:
    station = FakeStation()
    srv = StationServer(station, sock, observer, fps=20, max_per_user=3)
    await srv.start()
    held = []
    try:
        for _ in range(3):
            held.append(await RemoteStation.connect(sock, reconnect=False))
        with pytest.raises(AccessRefused, match="too many connections from this user \\(at most 3\\)"):
            await RemoteStation.connect(sock, reconnect=False)
        assert len(srv.clients) == 3 and srv.refused == 1
        assert any(w.startswith("refused to attach") and "too many connections" in w for _, w in station.records)
    finally:
        for r in held:
            await r.close()
        await srv.stop()


@needs_root
async def test_the_total_cap_never_locks_out_the_station_user() -> None:
    from tests.test_security_support import as_user

    with shared_directory() as shared:
        sock = shared / "run" / "bfr.sock"
        station = FakeStation()
        srv = StationServer(station, sock, observer, fps=5, group=NOGROUP, max_clients=2, max_per_user=8)
        await srv.start()
        try:
            said = await asyncio.to_thread(as_user, NOBODY, NOGROUP, _open_many, str(sock), 4)
            assert (
                said[:2] == ["hello", "hello"]
                and said[2:] == ["refused: the station has too many consoles attached"] * 2
            )
            root = await RemoteStation.connect(sock, reconnect=False)  # the station's own user: not counted
            await root.close()
        finally:
            await srv.stop()


def _open_many(path: str, n: int) -> list[str]:
    """As another user: open ``n`` connections at once and keep them open while reading each first line."""
    conns = []
    said = []
    for _ in range(n):
        s = socket.socket(socket.AF_UNIX)
        s.connect(path)
        conns.append(s)
        line = s.makefile("rb").readline()
        m = json.loads(line)
        said.append("hello" if m["op"] == "hello" else "refused: " + m["reason"].split(" (")[0])
    return said


async def test_commands_past_the_budget_are_refused_then_the_console_is_closed_and_rows_summed_up(sock: Path) -> None:
    station = FakeStation()
    srv = StationServer(station, sock, operator, fps=20, commands_per_s=10, command_burst=20)
    await srv.start()
    reader, writer, _ = await connect_raw(sock)
    try:
        n = 3000
        writer.write(
            b"".join(
                protocol.encode({"op": "cmd", "id": i, "name": "deflate", "args": {"cuff_id": "C1"}})
                for i in range(1, n + 1)
            )
        )
        answers: list[dict] = []
        while True:
            line = await asyncio.wait_for(reader.readline(), 10)
            if not line:
                break
            m = json.loads(line)
            if m["op"] in ("result", "error"):
                answers.append(m)
        results_ = [m for m in answers if m["op"] == "result"]
        assert sum(m["ok"] for m in results_) == 20, "the burst is carried out"
        assert [m["error"] for m in results_ if not m["ok"]] == ["too many commands from this console (more than "
                                                                  "10 a second); slow down"] * 20  # fmt: skip
        assert "too many refused commands" in answers[-1]["reason"], "then closed, not answered line by line"
        assert len([c for c in station.calls if c[0] == "deflate"]) == 20
        await wait_until(lambda: any(w.startswith("detach") for _, w in station.records), what="detach")
        refused_rows = [w for _, w in station.records if "(refused" in w]
        assert len(refused_rows) == 20 and refused_rows[0].endswith("(refused: too many commands)")
        detach = next(w for _, w in station.records if w.startswith("detach"))
        assert detach.endswith(
            "closed by the station: too many refused commands (more than 20 at once, or 5 a second))"
        )
    finally:
        writer.close()
        await srv.stop()


async def test_a_user_connecting_too_often_is_refused_for_a_moment(sock: Path) -> None:
    srv = StationServer(FakeStation(), sock, observer, fps=20)
    srv.caps.trusted = frozenset()  # in-process the client is root; count it like anyone else here
    srv.caps.per_s = 1.0
    await srv.start()
    try:
        attached = 0
        with pytest.raises(AccessRefused, match="connecting too often \\(more than 1 a second\\)"):
            while attached < 15:
                remote = await RemoteStation.connect(sock, reconnect=False)
                await remote.close()
                attached += 1
        assert 5 <= attached <= 6  # a burst of 5
        await asyncio.sleep(1.1)  # one a second comes back
        remote = await RemoteStation.connect(sock, reconnect=False)
        await remote.close()
    finally:
        await srv.stop()


async def test_a_console_that_never_reads_is_let_go_even_below_the_high_water_mark(sock: Path) -> None:
    """Frames are skipped past the high-water mark; a console that takes nothing at all is cut off well before."""
    station = FakeStation(cuffs=16, trace_points=100)
    srv = StationServer(station, sock, operator, fps=200, stall_timeout_s=1.0, high_water=64 * 1024 * 1024)
    await srv.start()
    _, stuck, _ = await connect_raw(sock, limit=64 * 1024)  # reads its hello, never anything again
    ticker = asyncio.create_task(ticking(station, 0.005))
    try:
        await wait_until(
            lambda: any(c.transport.get_write_buffer_size() for c in srv._clients), what="bytes waiting for it"
        )
        ticker.cancel()  # the station goes quiet: what waits for it stays under the mark for ever
        await wait_until(lambda: srv.cut_off == 1 and not srv.clients, what="the cut-off", timeout=5.0)
    finally:
        ticker.cancel()
        stuck.close()
        await srv.stop()


# ----------------------------------------------------------------------------- item 5: the socket


@pytest.fixture
def root_dir(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "run"
    d.mkdir(mode=0o750)
    yield d


@pytest.mark.parametrize(
    ("mode", "words"), [(0o770, "may be written by its group"), (0o730, "may be written by its group")]
)
async def test_a_group_writable_socket_directory_is_refused(root_dir: Path, mode: int, words: str) -> None:
    os.chmod(root_dir, mode)
    srv = StationServer(FakeStation(), root_dir / "s.sock", operator)
    with pytest.raises(ServeError, match=words + ".*fake station"):
        await srv.start()
    assert stat.S_IMODE(root_dir.stat().st_mode) == mode, "an existing directory is never re-moded"


async def test_a_socket_directory_owned_by_someone_else_is_refused(root_dir: Path) -> None:
    os.chown(root_dir, NOBODY, -1)
    srv = StationServer(FakeStation(), root_dir / "s.sock", operator)
    with pytest.raises(ServeError, match="belongs to user nobody \\(uid 65534\\).*fake station"):
        await srv.start()


async def test_a_socket_directory_others_could_rename_is_refused(tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.mkdir()
    os.chmod(loose, 0o777)  # writable by all, no sticky bit: anyone could rename run/ away
    (loose / "run").mkdir(mode=0o750)
    srv = StationServer(FakeStation(), loose / "run" / "s.sock", operator)
    with pytest.raises(ServeError, match="could swap the directory"):
        await srv.start()


async def test_the_socket_takes_the_group_of_a_directory_made_for_the_supervisors(root_dir: Path) -> None:
    os.chown(root_dir, -1, NOGROUP)
    srv = StationServer(FakeStation(), root_dir / "s.sock", operator)
    await srv.start()
    try:
        assert (root_dir / "s.sock").stat().st_gid == NOGROUP
    finally:
        await srv.stop()


@needs_root
async def test_attach_refuses_a_station_that_runs_as_someone_else(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir(mode=0o750)  # root's: the station's user here is root
    path = run / "s.sock"
    snap = FakeStation().snapshot()
    lines = protocol.encode(
        {"op": protocol.HELLO, "proto": protocol.PROTO, "role": "operator", "station": snap.name, "user": "x"}
    ) + protocol.encode({"op": protocol.SNAPSHOT, "snapshot": to_wire(snap)})
    listening = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the fake station: bound by root, listening as nobody
        try:
            s = socket.socket(socket.AF_UNIX)
            s.bind(str(path))
            os.setgroups([])
            os.setgid(NOGROUP)
            os.setuid(NOBODY)
            s.listen(1)
            os.write(listening[1], b"x")
            conn, _ = s.accept()
            conn.sendall(lines)
            conn.recv(1)
        finally:
            os._exit(0)
    try:
        os.read(listening[0], 1)
        with pytest.raises(StationUnavailable, match="runs as user nobody \\(uid 65534\\).*fake station"):
            await RemoteStation.connect(path, reconnect=False)
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)


def test_a_group_rule_cannot_demote_the_station_user_or_root_but_a_user_rule_can() -> None:
    rules = [RoleRule(Role.OBSERVER, group="root"), RoleRule(Role.OBSERVER, group="nogroup")]
    assert RoleResolver(rules, station_uid=NOBODY)(NOBODY, NOGROUP).role is Role.OPERATOR
    assert RoleResolver(rules, station_uid=NOBODY)(0, 0).role is Role.OPERATOR
    assert RoleResolver([RoleRule(Role.OBSERVER, user="nobody")], station_uid=NOBODY)(NOBODY, NOGROUP).role is (
        Role.OBSERVER
    )
