"""The station publishing to a real Mosquitto (started by the test on a free port, own config).

What a board relies on: the retained status, each cuff's state, alarms at QoS 1 that
survive a broker restart, a station that works the same with its broker down, and the
last will when the station's process is killed outright.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
import sys
from pathlib import Path

from console.common.api import Priority
from console.config.schema import MqttConfig, StationConfig
from console.mqtt.wiring import start_publisher, stop_publisher
from console.station.station import Station
from tests.mqtt_support import Broker, Listener
from tests.station_support import make_config, wait_for

REPO = Path(__file__).resolve().parent.parent
T = 30.0
"""Deadline for anything crossing the broker on a loaded machine (a deadline, never a wait)."""


def with_mqtt(config: StationConfig, port: int, **kw: object) -> StationConfig:
    cfg = MqttConfig(host="127.0.0.1", port=port, tls=False, site="clinic", attach="ssh -t bay bfr-console attach")
    return dataclasses.replace(config, mqtt=dataclasses.replace(cfg, **kw))


async def test_retained_status_and_cuff_states(tmp_path: Path, broker: Broker) -> None:
    config = with_mqtt(make_config(tmp_path), broker.port, cuff_hz=2.0)
    station = Station(config)
    await station.start()
    pub = start_publisher(station, config)
    try:
        async with Listener(broker.port, "bfr/clinic/#") as live:
            await wait_for(
                lambda: live.matching(lambda t, p: t == "bfr/clinic/test-bay/cuffs/A1" and p["online"]),
                "A1's state online",
                T,
                live.seen,
            )
            await station.inflate("A1", mmhg=100)
            await wait_for(
                lambda: live.matching(lambda t, p: t.endswith("/cuffs/A1") and p["target"] == 100.0),
                "A1's new target",
                T,
                live.seen,
            )
        a1 = [p for t, p, _ in live.got if t.endswith("/cuffs/A1")][-1]
        assert {"state", "pressure", "target", "pct_lop", "phase", "occlusion_s", "limb", "label"} <= set(a1)
        assert not any("patient" in json.dumps(p) for _, p, _ in live.got)
        # A board that comes later still gets the status: it is retained.
        async with Listener(broker.port, "bfr/clinic/+/status") as late:
            got = await wait_for(lambda: late.got, "the retained status", T)
        topic, status, retained = got[0]
        assert topic == "bfr/clinic/test-bay/status" and retained
        assert status["state"] == "online" and status["name"] == "Test bay"
        assert status["cuffs"] == ["A1", "A2", "B1", "B2"]
        assert status["attach"] == "ssh -t bay bfr-console attach"
    finally:
        await stop_publisher(pub)
        await station.stop()
    async with Listener(broker.port, "bfr/clinic/+/status") as after:
        got = await wait_for(lambda: after.got, "the retained status after stop", T)
    assert got[0][1]["state"] == "offline" and got[0][1]["why"] == "stopped"


async def test_alarms_reach_a_board_through_a_broker_restart(tmp_path: Path) -> None:
    broker = Broker(tmp_path, persist=True)
    broker.start()
    station = None
    pub = None
    try:
        board = Listener(broker.port, "bfr/clinic/+/alarms", identifier="board-1", clean_session=False)
        async with board:
            config = with_mqtt(make_config(tmp_path), broker.port)
            station = Station(config)
            await station.start()
            pub = start_publisher(station, config)
            await wait_for(lambda: pub is not None and pub.connected, "the publisher connected", T)
            broker.stop()
            await wait_for(lambda: not pub.connected, "the publisher to notice the broker is gone", T)
            # With the broker away the station works as ever: the emergency is confirmed, the alarm raised.
            emergency = await asyncio.wait_for(station.emergency_deflate(), T)
            assert emergency.pending == ()
            station.alarms.raise_alarm("TEST_CAUSE", Priority.HIGH, "A1: raised while the broker was away.", cuff="A1")
            await wait_for(
                lambda: any("Clinic board: broker" in n for n in station.snapshot().notices),
                "the notice on the station's snapshot",
                T,
            )
            broker.start()
            await wait_for(
                lambda: board.matching(lambda t, p: p["event"] == "raised" and p["cause"] == "TEST_CAUSE"),
                "the alarm raised while the broker was down",
                T,
                board.seen,
            )
            await wait_for(
                lambda: board.matching(lambda t, p: p["event"] == "emergency_deflate" and not p["pending"]),
                "the emergency deflate",
                T,
                board.seen,
            )
            raised = board.matching(lambda t, p: p.get("cause") == "TEST_CAUSE")[0][1]
            assert raised["priority"] == "high" and raised["cuff"] == "A1" and raised["active"]
            await station.acknowledge()
            await wait_for(
                lambda: board.matching(lambda t, p: p["event"] == "acknowledged" and p.get("cause") == "TEST_CAUSE"),
                "the acknowledgement",
                T,
                board.seen,
            )
            assert pub.outbox.lost_alarms == 0
            await wait_for(lambda: not station.snapshot().notices, "the notice gone once the broker is back", T)
    finally:
        await stop_publisher(pub)
        if station is not None:
            await station.stop()
        broker.stop()


async def test_a_broker_down_at_start_changes_nothing_for_the_station(tmp_path: Path) -> None:
    broker = Broker(tmp_path)  # not started: nothing listens on its port yet
    config = with_mqtt(make_config(tmp_path), broker.port)
    station = Station(config)
    await station.start()
    pub = start_publisher(station, config)
    try:
        await wait_for(lambda: any("unreachable" in n for n in station.snapshot().notices), "the broker-down notice", T)
        await wait_for(lambda: all(c.online for c in station.snapshot().cuffs), "every cuff online", T)
        await station.inflate("A1", mmhg=80)
        await wait_for(lambda: (station.snapshot().cuffs[0].pressure or 0) > 60, "A1 inflating", T)
        await station.deflate("A1")
        broker.start()
        async with Listener(broker.port, "bfr/clinic/+/status") as board:
            await wait_for(lambda: board.matching(lambda t, p: p["state"] == "online"), "status online", T)
        async with Listener(broker.port, "bfr/clinic/+/status") as late:
            got = await wait_for(lambda: late.got, "the retained status", T)
        assert got[0][1]["state"] == "online" and got[0][2], got
        await wait_for(lambda: not station.snapshot().notices, "the notice gone", T)
    finally:
        await stop_publisher(pub)
        await station.stop()
        broker.stop()


def _station_toml(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "station.toml"
    path.write_text(
        f"""
[station]
name = "Bay K"
data_dir = "{tmp_path / "var"}"
socket = "{tmp_path / "var" / "bfr.sock"}"

[mqtt]
url = "mqtt://127.0.0.1:{port}"
site = "clinic"

[[controllers]]
id = "K"
port = "emulator"
emulator = {{ channels = 2 }}

[[cuffs]]
id = "K1"
controller = "K"
channel = 1
limb = "leg"
"""
    )
    return path


async def test_last_will_marks_a_killed_station_offline(tmp_path: Path, broker: Broker) -> None:
    cfg = _station_toml(tmp_path, broker.port)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "console.cli", "serve", "--config", str(cfg), cwd=str(REPO),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        async with Listener(broker.port, "bfr/clinic/bay-k/status") as board:
            await wait_for(
                lambda: board.matching(lambda t, p: p["state"] == "online" and p["cuffs"] == ["K1"]),
                "the station online",
                T,
                board.seen,
            )
            proc.send_signal(signal.SIGKILL)
            await asyncio.wait_for(proc.wait(), T)
            got = await wait_for(
                lambda: board.matching(lambda t, p: p["state"] == "offline"), "the last will", T, board.seen
            )
        assert got[0][1]["why"] == "vanished" and got[0][1]["station"] == "bay-k"
        async with Listener(broker.port, "bfr/clinic/bay-k/status") as late:
            kept = await wait_for(lambda: late.got, "the retained will", T)
        assert kept[0][1]["state"] == "offline" and kept[0][2]
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_the_console_says_the_clinic_board_is_not_updated(tmp_path: Path) -> None:
    """The real console at 80x24 on a station whose broker is down: a line says so, the cuffs are as ever."""
    from console.ui.app import BfrApp
    from tests.ui_support import screen_text
    from tests.ui_support import wait_for as ui_wait

    broker = Broker(tmp_path)  # never started
    config = with_mqtt(make_config(tmp_path), broker.port)
    station = Station(config)
    await station.start()
    pub = start_publisher(station, config)
    app = BfrApp(station, bell=False, term="linux")
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await ui_wait(
                pilot, lambda: "Clinic board: broker unreachable" in screen_text(app), T, "the notice in the header"
            )
            await ui_wait(pilot, lambda: "VENTED" in screen_text(app), T, "the cuffs")
            header = next(line for line in screen_text(app).splitlines() if "Clinic board: broker unreachable" in line)
            assert "Station: Test bay" in header and len(header) <= 80, header
    finally:
        await stop_publisher(pub)
        await station.stop()


async def test_a_hung_broker_changes_nothing_and_the_alarms_follow_once_it_answers(tmp_path: Path) -> None:
    """The broker stops answering (SIGSTOP) with the station's connection open: publishes block in it,
    never in the station; alarms raised meanwhile reach a board once it answers again."""
    broker = Broker(tmp_path)
    broker.start()
    station = None
    pub = None
    try:
        board = Listener(broker.port, "bfr/clinic/+/alarms", identifier="board-hung", clean_session=False)
        async with board:
            config = with_mqtt(make_config(tmp_path), broker.port, cuff_hz=2.0)
            station = Station(config)
            await station.start()
            pub = start_publisher(station, config)
            await wait_for(lambda: pub is not None and pub.connected, "the publisher connected", T)
            broker.pause()
            await wait_for(lambda: all(c.online for c in station.snapshot().cuffs), "every cuff online", T)
            station.alarms.raise_alarm("HUNG_CAUSE", Priority.HIGH, "A1: raised while the broker hung.", cuff="A1")
            await station.inflate("A1", mmhg=80)
            await wait_for(lambda: (station.snapshot().cuffs[0].pressure or 0) > 60, "A1 inflating", T)
            emergency = await asyncio.wait_for(station.emergency_deflate(), T)
            assert emergency.pending == ()
            assert len(pub.outbox.alarms) <= pub.cfg.queue
            broker.resume()
            await wait_for(
                lambda: board.matching(lambda t, p: p["event"] == "raised" and p["cause"] == "HUNG_CAUSE"),
                "the alarm raised while the broker hung",
                60,
                board.seen,
            )
    finally:
        await stop_publisher(pub)
        if station is not None:
            await station.stop()
        broker.stop()
