"""Safety review of remote supervision: a remote console must never show stale pressures as live."""

from __future__ import annotations

import asyncio
from pathlib import Path

from console.remote import protocol
from console.remote.client import STATION_LOST, RemoteStation
from console.station.api import OFFLINE
from console.station.wire import to_wire
from tests.test_remote_fakes import FakeStation, wait_until


async def _odd_station(sock: Path, poison: bytes) -> asyncio.AbstractServer:
    """A station that says hello, sends one good snapshot, then ``poison`` and keeps the connection open."""
    snap = FakeStation().snapshot()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(protocol.encode({"op": protocol.HELLO, "proto": protocol.PROTO, "role": "operator",
                                      "station": snap.name, "user": "ana"}))
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
