"""The broker's accounts and ACL as docs/mosquitto/acl ships them, on a real Mosquitto.

A station may publish only under its own name; a board reads them all; a station whose
login is refused keeps working and says so on its snapshot.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import aiomqtt

from console.config.schema import MqttConfig
from console.mqtt.wiring import start_publisher, stop_publisher
from console.station.station import Station
from tests.mqtt_support import Broker, Listener
from tests.station_support import make_config, wait_for

REPO = Path(__file__).resolve().parent.parent
T = 30.0
USERS = {"bay-a": "secret-a", "bay-b": "secret-b", "board-reception": "secret-board"}


def _broker(tmp_path: Path) -> Broker:
    broker = Broker(tmp_path, users=USERS, acl=(REPO / "docs" / "mosquitto" / "acl").read_text())
    broker.start()
    return broker


async def test_a_station_cannot_publish_under_another_stations_name(tmp_path: Path) -> None:
    broker = _broker(tmp_path)
    try:
        async with Listener(broker.port, "bfr/clinic/#", username="board-reception", password="secret-board") as board:
            async with aiomqtt.Client("127.0.0.1", broker.port, username="bay-a", password="secret-a") as bay_a:
                await bay_a.publish("bfr/clinic/bay-b/status", b'{"state":"forged"}', qos=1, retain=True)
                await bay_a.publish("bfr/clinic/bay-a/status", b'{"state":"mine"}', qos=1, retain=True)
            # Same connection, in order: once bay-a's own message is at the board, the forged one would be too.
            await wait_for(lambda: board.got, "bay-a's own status", T, board.seen)
            assert [t for t, _, _ in board.got] == ["bfr/clinic/bay-a/status"], board.seen()
        async with Listener(
            broker.port, "bfr/clinic/+/status", username="board-reception", password="secret-board"
        ) as late:
            await wait_for(lambda: late.got, "the retained statuses", T)
            assert [p["state"] for _, p, _ in late.got] == ["mine"], late.seen()
    finally:
        broker.stop()


async def test_a_refused_login_is_shown_and_changes_nothing_for_the_station(tmp_path: Path) -> None:
    broker = _broker(tmp_path)
    (tmp_path / "pw").write_text("wrong\n")
    (tmp_path / "pw-good").write_text("secret-a\n")
    base = make_config(tmp_path)
    cfg = MqttConfig(
        host="127.0.0.1", port=broker.port, tls=False, site="clinic", user="bay-a", password_file=tmp_path / "pw"
    )
    config = dataclasses.replace(base, station=dataclasses.replace(base.station, name="Bay A"), mqtt=cfg)
    station = Station(config)
    await station.start()
    pub = start_publisher(station, config)
    try:
        await wait_for(
            lambda: any("refused the connection" in n for n in station.snapshot().notices),
            "the refused login on the snapshot",
            T,
            lambda: repr(station.snapshot().notices),
        )
        await wait_for(lambda: all(c.online for c in station.snapshot().cuffs), "every cuff online", T)
        emergency = await station.emergency_deflate()
        assert emergency.pending == ()
    finally:
        await stop_publisher(pub)
        await station.stop()
    # The right password: the station's own topics go through under its name.
    config = dataclasses.replace(config, mqtt=dataclasses.replace(cfg, password_file=tmp_path / "pw-good"))
    station = Station(config)
    await station.start()
    pub = start_publisher(station, config)
    try:
        async with Listener(broker.port, "bfr/clinic/#", username="board-reception", password="secret-board") as board:
            await wait_for(
                lambda: board.matching(lambda t, p: t == "bfr/clinic/bay-a/cuffs/A1"), "bay-a's cuff A1", T, board.seen
            )
    finally:
        await stop_publisher(pub)
        await station.stop()
        broker.stop()
