"""Remote supervision over a real Unix socket, with an in-memory station behind it."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from console.common.api import (
    OFFLINE,
    CommandRefused,
    EmergencySnapshot,
    Priority,
    Role,
    StationHandle,
)
from console.common.clock import ManualClock
from console.remote import protocol
from console.remote.client import (
    STATION_LOST,
    AccessRefused,
    RemoteStation,
    StationUnavailable,
)
from console.remote.roles import Decision
from console.remote.server import StationServer
from console.remote.socket_file import ServeError
from console.remote.wire import to_wire
from tests.test_remote_fakes import FakeStation, ticking, wait_until


@pytest.fixture
def sock(tmp_path: Path) -> Path:
    return tmp_path / "run" / "station.sock"


@pytest.fixture
async def station() -> FakeStation:
    return FakeStation()


@pytest.fixture
async def server(station: FakeStation, sock: Path) -> AsyncIterator[StationServer]:
    srv = StationServer(station, sock, lambda uid, gid: Decision(uid, "ana", Role.OPERATOR, "test"), fps=100)
    await srv.start()
    yield srv
    await srv.stop()


async def raw(sock: Path, limit: int = protocol.MAX_REPLY) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, dict]:
    """A bare connection; a small ``limit`` makes it stop reading the socket once it holds 2*limit unread."""
    reader, writer = await asyncio.open_unix_connection(str(sock), limit=limit)
    hello = json.loads(await reader.readline())
    return reader, writer, hello


async def test_the_client_is_a_station_handle(server: StationServer, sock: Path, station: FakeStation) -> None:
    remote = await RemoteStation.connect(sock)
    try:
        assert isinstance(remote, StationHandle)
        assert remote.snapshot().name == "Bay T"
        assert remote.snapshot().cuffs == station.snapshot().cuffs
        assert remote.role is Role.OPERATOR and remote.snapshot().role is Role.OPERATOR
    finally:
        await remote.close()


async def test_hello_is_versioned_and_names_role_and_station(server: StationServer, sock: Path) -> None:
    reader, writer, hello = await raw(sock)
    assert hello == {"op": "hello", "proto": 1, "role": "operator", "station": "Bay T", "user": "ana"}
    first = json.loads(await reader.readline())
    assert first["op"] == "snapshot" and first["snapshot"]["name"] == "Bay T"
    writer.close()


async def test_two_clients_see_the_same_pressures(server: StationServer, sock: Path, station: FakeStation) -> None:
    a = await RemoteStation.connect(sock)
    b = await RemoteStation.connect(sock)
    try:
        for p in (150.5, 151.0, 149.25):
            station.tick(pressure=p)
            want = station.snapshot().cuffs
            await wait_until(
                lambda want=want: a.snapshot().cuffs == want and b.snapshot().cuffs == want, what="both clients"
            )
            assert [c.pressure for c in a.snapshot().cuffs] == [p] * 4
    finally:
        await a.close()
        await b.close()


async def test_observer_may_not_inflate_but_may_emergency_deflate(station: FakeStation, sock: Path) -> None:
    srv = StationServer(station, sock, lambda uid, gid: Decision(uid, "olga", Role.OBSERVER, "group"), fps=50)
    await srv.start()
    remote = await RemoteStation.connect(sock)
    try:
        assert remote.snapshot().role is Role.OBSERVER
        with pytest.raises(CommandRefused, match="olga is an observer here.*not inflate a cuff"):
            await remote.inflate("C1", mmhg=150)
        for refused in (remote.deflate("C1"), remote.acknowledge(), remote.silence(), remote.set_patient("C1", "p")):
            with pytest.raises(CommandRefused, match="observer"):
                await refused
        assert not [c for c in station.calls if c[0] != "emergency_deflate"]
        station.raise_alarm("LEAK")
        await wait_until(lambda: [a.cause for a in remote.alarm_log()] == ["LEAK"], what="the observer's alarm log")
        result = await remote.emergency_deflate()
        assert isinstance(result, EmergencySnapshot) and result.confirmed == ("rack",)
        assert station.emergencies == 1
        uid = os.getuid()
        assert (f"olga@uid{uid}", "emergency_deflate") in station.records
        assert (f"olga@uid{uid}", 'inflate {"cuff_id":"C1","mmhg":150,"pct_lop":null} (refused: observer)') in (
            station.records
        )
    finally:
        await remote.close()
        await srv.stop()


async def test_refused_user_gets_the_reason(station: FakeStation, sock: Path) -> None:
    srv = StationServer(station, sock, lambda uid, gid: Decision(uid, "eve", None, "user eve may not attach"))
    await srv.start()
    try:
        with pytest.raises(AccessRefused, match="user eve may not attach"):
            await RemoteStation.connect(sock)
        assert srv.refused == 1 and srv.clients == []
    finally:
        await srv.stop()


async def test_missing_socket_says_no_station_is_serving(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.sock"
    with pytest.raises(StationUnavailable, match=f"no station is serving at {path} \\(is bfr-console running\\?\\)"):
        await RemoteStation.connect(path)


async def test_commands_reach_the_station_and_refusals_carry_its_sentence(
    server: StationServer, sock: Path, station: FakeStation
) -> None:
    remote = await RemoteStation.connect(sock)
    try:
        await remote.inflate("C2", pct_lop=60)
        await remote.nudge_target("C2", -5)
        await remote.set_lop("C2", 210, position="seated", cuff_width_cm=11.5)
        await remote.start_session(["C1", "C2"], "acl-early", "P-7")
        assert station.calls[0] == ("inflate", {"cuff_id": "C2", "mmhg": None, "pct_lop": 60})
        assert station.calls[2][1]["source"] == "doppler"
        assert station.calls[3] == (
            "start_session",
            {"cuff_id": None, "cuff_ids": ["C1", "C2"], "plan_id": "acl-early", "patient_id": "P-7"},
        )
        with pytest.raises(CommandRefused, match="^There is no cuff Z9.$"):
            await remote.deflate("Z9")
        assert [w for who, w in station.records][:3] == [
            f"attach (pid {os.getpid()})",  # issue 13: attaching is on record too
            'inflate {"cuff_id":"C2","mmhg":null,"pct_lop":60}',
            'nudge_target {"cuff_id":"C2","delta_mmhg":-5}',
        ]
    finally:
        await remote.close()


async def test_bad_arguments_and_unknown_commands_are_answered_not_acted_on(
    server: StationServer, sock: Path, station: FakeStation
) -> None:
    reader, writer, _ = await raw(sock)
    await reader.readline()
    sent = [
        {"op": "cmd", "id": 1, "name": "inflate", "args": {"cuff_id": "C1", "mmhg": "lots"}},
        {"op": "cmd", "id": 2, "name": "inflate", "args": {"mmhg": 100}},
        {"op": "cmd", "id": 3, "name": "launch", "args": {}},
        {"op": "cmd", "id": 4, "name": "deflate", "args": {"cuff_id": "C1", "force": True}},
        {"op": "cmd", "id": 5, "name": "nudge_target", "args": {"cuff_id": "C1", "delta_mmhg": True}},
    ]
    for m in sent:
        writer.write(protocol.encode(m))
    answers: dict[int, dict] = {}
    while len(answers) < len(sent):
        m = json.loads(await asyncio.wait_for(reader.readline(), 10))
        if m["op"] == "result":
            answers[m["id"]] = m
    assert all(a["ok"] is False for a in answers.values())
    assert "'mmhg' must be a number" in answers[1]["error"]
    assert "needs 'cuff_id'" in answers[2]["error"]
    assert "no command 'launch'" in answers[3]["error"]
    assert "no argument 'force'" in answers[4]["error"]
    assert "'delta_mmhg' must be a number" in answers[5]["error"]
    assert station.calls == []
    writer.close()


@pytest.mark.parametrize(
    ("line", "words"),
    [
        (b"this is not json\n", "not JSON"),
        (b"[1,2,3]\n", "not a JSON object"),
        (b'{"op":"launch"}\n', "unknown op 'launch'"),
        (b'{"op":"cmd","name":"deflate"}\n', 'integer \\"id\\"'),
        (b'{"op":"cmd","id":1,"name":"deflate","args":"C1"}\n', "args"),
        (b'{"op":"cmd","id":1,"args":{"pad":"' + b"x" * protocol.MAX_REQUEST + b'"}}\n', "over the 65536-byte limit"),
        (b"\xff\xfe\n", "not JSON"),
    ],
)
async def test_garbage_closes_only_that_client(
    server: StationServer, sock: Path, station: FakeStation, line: bytes, words: str
) -> None:
    good = await RemoteStation.connect(sock)
    try:
        reader, writer, _ = await raw(sock)
        writer.write(line)
        seen = []
        while True:
            got = await asyncio.wait_for(reader.readline(), 10)
            if not got:
                break
            seen.append(json.loads(got))
        assert seen[-1]["op"] == "error" and (words in json.dumps(seen[-1]["reason"]) or words in seen[-1]["reason"])
        assert server.closed_for_garbage == 1
        # The other console is untouched: still live, still commanding.
        station.tick(pressure=133.0)
        await wait_until(lambda: good.snapshot().cuffs[0].pressure == 133.0, what="the good client's frame")
        await good.deflate("C1")
        assert good.connected and station.calls[-1][0] == "deflate"
    finally:
        await good.close()


async def test_a_client_that_stops_reading_is_skipped_not_waited_for(sock: Path) -> None:
    station = FakeStation(cuffs=16, trace_points=100)  # ~40 KB a frame: a stalled reader fills up fast
    srv = StationServer(station, sock, lambda uid, gid: Decision(uid, "ana", Role.OPERATOR, "t"), fps=200)
    await srv.start()
    good = await RemoteStation.connect(sock)
    _, stuck_writer, _ = await raw(sock, limit=64 * 1024)  # never reads again
    ticker = asyncio.create_task(ticking(station, 0.002))
    try:
        await wait_until(lambda: any(c.frames_skipped > 0 for c in srv.clients), what="the stuck client skipped")
        skipped_at = max(c.frames_skipped for c in srv.clients)
        seen_at = good.snapshot().cuffs[0].samples
        # While the stuck client is skipped, the good one still gets fresh samples, frame after frame.
        await wait_until(lambda: good.snapshot().cuffs[0].samples > seen_at + 20, what="fresh samples for the good one")
        assert max(c.frames_skipped for c in srv.clients) > skipped_at
        assert sorted(c.frames_skipped == 0 for c in srv.clients) == [False, True]  # only the stuck one skipped
        assert good.connected and len(srv.clients) == 2  # skipped, not cut off (no stall timeout yet)
    finally:
        ticker.cancel()
        stuck_writer.close()
        await good.close()
        await srv.stop()


async def test_a_client_stuck_past_the_stall_timeout_is_cut_off(sock: Path) -> None:
    station = FakeStation(cuffs=16, trace_points=100)
    clock = ManualClock()
    srv = StationServer(
        station,
        sock,
        lambda uid, gid: Decision(uid, "ana", Role.OPERATOR, "t"),
        fps=200,
        clock=clock,
        stall_timeout_s=5.0,
    )
    await srv.start()
    good = await RemoteStation.connect(sock)
    _, stuck_writer, _ = await raw(sock, limit=64 * 1024)
    ticker = asyncio.create_task(ticking(station, 0.002))
    try:
        await wait_until(lambda: any(c.frames_skipped > 0 for c in srv.clients), what="skipping")
        assert srv.cut_off == 0 and len(srv.clients) == 2
        clock.advance(5.5)
        await wait_until(lambda: srv.cut_off == 1 and len(srv.clients) == 1, what="the cut-off")
        assert srv.clients[0].frames_skipped == 0 and good.connected
        seen = good.snapshot().seq
        await wait_until(lambda: good.snapshot().seq > seen, what="the good client still served")
    finally:
        ticker.cancel()
        stuck_writer.close()
        await good.close()
        await srv.stop()


async def test_emergency_deflate_does_not_wait_behind_a_stuck_command(
    server: StationServer, sock: Path, station: FakeStation
) -> None:
    station.hold = asyncio.Event()
    remote = await RemoteStation.connect(sock)
    try:
        inflating = asyncio.create_task(remote.inflate("C1", mmhg=150))
        await wait_until(lambda: any("inflate" in w for _, w in station.records), what="inflate received")
        result = await remote.emergency_deflate()
        assert result.pending == () and not inflating.done()
        station.hold.set()
        await inflating
    finally:
        await remote.close()


async def test_losing_the_station_is_plain_on_screen_and_the_client_reconnects(
    station: FakeStation, sock: Path
) -> None:
    resolver = lambda uid, gid: Decision(uid, "ana", Role.OPERATOR, "t")  # noqa: E731
    srv = StationServer(station, sock, resolver, fps=100)
    await srv.start()
    remote = await RemoteStation.connect(sock, reconnect_delays_s=(0.05,))
    try:
        station.tick(pressure=170.0)
        await wait_until(lambda: remote.snapshot().cuffs[0].pressure == 170.0, what="live pressure")
        before = remote.snapshot().seq
        await srv.stop()
        await wait_until(lambda: not remote.connected, what="the loss noticed")
        lost = remote.snapshot()
        assert lost.seq > before
        assert lost.alarms[0].cause == STATION_LOST and lost.alarms[0].priority is Priority.HIGH
        assert "shutting down" in lost.alarms[0].message
        assert all(c.state == OFFLINE and c.pressure is None and not c.online for c in lost.cuffs)
        assert all(c.state == "lost" for c in lost.controllers)
        assert remote.alarm_log()[0].cause == STATION_LOST
        with pytest.raises(CommandRefused, match="EMERGENCY DEFLATE NOT SENT"):
            remote.emergency_deflate()  # said in the call itself (the key's handler), not when awaited
        with pytest.raises(CommandRefused, match="Not connected"):
            await remote.inflate("C1", mmhg=100)
        srv = StationServer(station, sock, resolver, fps=100)
        await srv.start()
        await wait_until(lambda: remote.connected, what="the reconnect")
        assert remote.reconnects == 1
        assert remote.snapshot().seq > lost.seq
        assert not any(a.cause == STATION_LOST for a in remote.snapshot().alarms)
        assert remote.snapshot().cuffs[0].pressure == 170.0
        await remote.deflate("C1")
    finally:
        await remote.close()
        await srv.stop()


async def test_a_command_in_flight_when_the_link_drops_fails_with_a_sentence(
    server: StationServer, sock: Path, station: FakeStation
) -> None:
    station.hold = asyncio.Event()
    remote = await RemoteStation.connect(sock, reconnect=False)
    try:
        inflating = asyncio.create_task(remote.inflate("C1", mmhg=150))
        await wait_until(lambda: any("inflate" in w for _, w in station.records), what="inflate received")
        await server.stop()
        with pytest.raises(CommandRefused, match="no answer from the station.*check the screen"):
            await inflating
    finally:
        station.hold.set()
        await remote.close()


async def test_a_silent_station_times_out_with_a_sentence(
    server: StationServer, sock: Path, station: FakeStation
) -> None:
    station.hold = asyncio.Event()
    remote = await RemoteStation.connect(sock, command_timeout_s=0.2)
    try:
        with pytest.raises(CommandRefused, match="did not answer inflate within 0.2 s"):
            await remote.inflate("C1", mmhg=150)
        assert remote.connected
    finally:
        station.hold.set()
        await remote.close()


async def test_alarm_log_follows_the_station(server: StationServer, sock: Path, station: FakeStation) -> None:
    remote = await RemoteStation.connect(sock)
    try:
        station.raise_alarm("LEAK")
        station.raise_alarm("OFF_TARGET")
        await wait_until(lambda: [a.cause for a in remote.alarm_log()] == ["OFF_TARGET", "LEAK"], what="log")
        assert remote.alarm_log(limit=1)[0].cause == "OFF_TARGET"
    finally:
        await remote.close()


async def test_socket_directory_and_file_permissions(server: StationServer, sock: Path) -> None:
    assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o750
    assert stat.S_ISSOCK(sock.stat().st_mode)
    assert stat.S_IMODE(sock.stat().st_mode) == 0o660


async def test_the_socket_goes_away_on_stop(station: FakeStation, sock: Path) -> None:
    srv = StationServer(station, sock, lambda u, g: Decision(u, "a", Role.OPERATOR, "t"))
    await srv.start()
    await srv.stop()
    assert not sock.exists()


async def test_a_world_writable_directory_is_refused(station: FakeStation, tmp_path: Path) -> None:
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    os.chmod(open_dir, 0o1777)
    srv = StationServer(station, open_dir / "s.sock", lambda u, g: Decision(u, "a", Role.OPERATOR, "t"))
    with pytest.raises(ServeError, match="may be written by every user \\(mode 1777\\).*fake station"):
        await srv.start()
    assert not (open_dir / "s.sock").exists()


async def test_a_world_enterable_directory_is_served_with_a_warning(station: FakeStation, tmp_path: Path) -> None:
    open_dir = tmp_path / "var"
    open_dir.mkdir()
    os.chmod(open_dir, 0o755)
    srv = StationServer(station, open_dir / "s.sock", lambda u, g: Decision(u, "a", Role.OPERATOR, "t"))
    await srv.start()
    try:
        assert "may be entered by every user (mode 0755)" in srv.warnings[0]
        assert stat.S_IMODE((open_dir / "s.sock").stat().st_mode) == 0o660
        assert stat.S_IMODE(open_dir.stat().st_mode) == 0o755, "an existing directory is never re-moded"
    finally:
        await srv.stop()


async def test_a_stale_socket_is_replaced_but_a_live_one_is_not_stolen(
    server: StationServer, station: FakeStation, sock: Path, tmp_path: Path
) -> None:
    second = StationServer(station, sock, lambda u, g: Decision(u, "a", Role.OPERATOR, "t"))
    with pytest.raises(ServeError, match="another station is already serving"):
        await second.start()
    import socket as socketlib

    stale = tmp_path / "run" / "stale.sock"
    s = socketlib.socket(socketlib.AF_UNIX)
    s.bind(str(stale))
    s.close()  # bound, never listened: what a killed station leaves behind
    third = StationServer(station, stale, lambda u, g: Decision(u, "a", Role.OPERATOR, "t"))
    await third.start()
    remote = await RemoteStation.connect(stale)
    await remote.close()
    await third.stop()


# -- safety review: a remote console must never show stale pressures as live; a client cannot flood the station
async def _odd_station(sock: Path, poison: bytes) -> asyncio.AbstractServer:
    """A station that says hello, sends one good snapshot, then ``poison`` and keeps the connection open."""
    snap = FakeStation().snapshot()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(
            protocol.encode(
                {"op": protocol.HELLO, "proto": protocol.PROTO, "role": "operator", "station": snap.name, "user": "ana"}
            )
        )
        writer.write(protocol.encode({"op": protocol.SNAPSHOT, "snapshot": to_wire(snap)}))
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(poison)
        await writer.drain()
        await reader.read()  # hold the connection open: only the poison may end it

    sock.parent.mkdir(parents=True, exist_ok=True)
    return await asyncio.start_unix_server(serve, path=str(sock))


async def test_a_reply_that_crashes_the_decoder_shows_the_loss_instead_of_freezing_the_screen(tmp_path: Path) -> None:
    """Deeply nested JSON raises RecursionError (not a ProtocolError) inside json.loads."""
    sock = tmp_path / "run" / "station.sock"
    server = await _odd_station(sock, b"[" * 200_000 + b"]" * 200_000 + b"\n")
    remote = await RemoteStation.connect(sock, reconnect=False)
    try:
        assert remote.snapshot().cuffs[0].pressure is not None
        await wait_until(lambda: not remote.connected, what="the loss to be noticed", timeout=5.0)
        snap = remote.snapshot()
        assert snap.alarms[0].cause == STATION_LOST
        assert all(c.state == OFFLINE and c.pressure is None for c in snap.cuffs)
    finally:
        await remote.close()
        server.close()
        await server.wait_closed()


async def test_a_client_that_asks_but_never_reads_cannot_balloon_the_station(tmp_path: Path) -> None:
    """Replies are not snapshots: without a bound, one observer could queue gigabytes in the station."""
    sock = tmp_path / "run" / "station.sock"
    station = FakeStation()
    for i in range(1000):
        station.raise_alarm(f"CAUSE_{i}")
    srv = StationServer(station, sock, lambda uid, gid: Decision(uid, "obs", Role.OBSERVER, "t"), fps=20)
    await srv.start()
    reader, writer = await asyncio.open_unix_connection(str(sock), limit=64 * 1024)
    try:
        await reader.readline()  # hello; from here on it never reads
        asks = 60
        for i in range(asks):
            writer.write(protocol.encode({"op": "cmd", "id": i + 1, "name": "alarm_log", "args": {"limit": 1000}}))
        await writer.drain()
        await wait_until(
            lambda: not srv.clients or srv.clients[0].commands >= asks, what="every request handled", timeout=10.0
        )
        buffered = sum(c.transport.get_write_buffer_size() for c in srv._clients if not c.transport.is_closing())
        assert buffered <= 8 * 1024 * 1024, f"{buffered} bytes queued for a client that does not read"
        station.tick()
        assert srv.station.snapshot().seq > 0  # the station itself carries on
    finally:
        writer.close()
        await srv.stop()


async def test_an_emergency_deflate_with_an_unexpected_argument_is_still_carried_out(tmp_path: Path) -> None:
    """A newer or sloppier client may add a field; an emergency is never refused over its form."""
    sock = tmp_path / "run" / "station.sock"
    station = FakeStation()
    srv = StationServer(station, sock, lambda uid, gid: Decision(uid, "obs", Role.OBSERVER, "t"), fps=20)
    await srv.start()
    reader, writer = await asyncio.open_unix_connection(str(sock), limit=protocol.MAX_REPLY)
    try:
        await reader.readline()
        writer.write(protocol.encode({"op": "cmd", "id": 1, "name": "emergency_deflate", "args": {"reason": "F12"}}))
        await writer.drain()
        await wait_until(lambda: station.emergencies == 1, what="the emergency deflate", timeout=5.0)
    finally:
        writer.close()
        await srv.stop()
