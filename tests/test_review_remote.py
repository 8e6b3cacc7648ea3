"""Safety review of remote supervision: a remote console must never show stale pressures as live."""

from __future__ import annotations

import asyncio
from pathlib import Path

from console.common.api import OFFLINE
from console.remote import protocol
from console.remote.client import STATION_LOST, RemoteStation
from console.remote.wire import to_wire
from tests.test_remote_fakes import FakeStation, wait_until


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
    from console.common.api import Role
    from console.remote.roles import Decision
    from console.remote.server import StationServer

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
    from console.common.api import Role
    from console.remote.roles import Decision
    from console.remote.server import StationServer

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
