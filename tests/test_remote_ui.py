"""The real console UI on a RemoteStation: it cannot tell, and a lost station is plain on screen."""

from __future__ import annotations

from pathlib import Path

from console.common.api import Role
from console.remote.client import RemoteStation
from console.remote.roles import Decision
from console.remote.server import StationServer
from console.ui.app import BfrApp
from tests.test_remote_fakes import FakeStation
from tests.ui_support import press, screen_text, wait_for


async def test_observer_console_over_the_socket_deflates_and_shows_the_loss(tmp_path: Path) -> None:
    station = FakeStation(cuffs=4)
    sock = tmp_path / "run" / "bfr.sock"
    server = StationServer(station, sock, lambda uid, gid: Decision(uid, "olga", Role.OBSERVER, "t"), fps=50)
    await server.start()
    remote = await RemoteStation.connect(sock, reconnect_delays_s=(60.0,))
    app = BfrApp(remote, bell=False, term="xterm")
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            station.tick(pressure=142.5)
            await wait_for(pilot, lambda: app.last_snapshot.cuffs[0].pressure == 142.5, what="the live frame")
            assert "HOLDING" in screen_text(app) and "[observer]" in screen_text(app)
            await press(pilot, "i", "d")
            await press(pilot, "f12")
            await wait_for(pilot, lambda: station.emergencies == 1, what="the emergency over the socket")
            assert [c for c in station.calls if c[0] != "emergency_deflate"] == []
            await server.stop()
            await wait_for(pilot, lambda: "OFFLINE" in screen_text(app), what="the loss on screen")
            text = screen_text(app)
            assert "HOLDING" not in text and "Station unreachable: pressures unknown" in text
            await press(pilot, "l", "enter")  # the technical cause, one key away in the alarm list
            assert "Lost the connection to station Bay T" in screen_text(app)
            assert not remote.connected and app.last_snapshot.cuffs[0].pressure is None
    finally:
        await remote.close()
        await server.stop()
