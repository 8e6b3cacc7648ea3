"""The board: its model and text from published messages, and the real Textual board on a real broker.

Two real stations (in-process, with their emulators) publish to a Mosquitto the test starts;
the board subscribes like any clinic tool would, at 80x24 in the ANSI theme of TERM=linux.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from textual.widgets import Static

from console.common.api import Priority
from console.config.schema import MqttConfig
from console.mqtt.board_feed import BoardFeed
from console.mqtt.board_model import BoardModel
from console.mqtt.wiring import start_publisher, stop_publisher
from console.station.station import Station
from console.ui.board_app import BoardApp
from console.ui.board_text import alarm_lines, header, station_block
from tests.mqtt_support import Broker
from tests.station_support import make_config
from tests.ui_support import screen_text, wait_for

T = 30.0


def _msg(model: BoardModel, topic: str, payload: object, now: float = 100.0) -> bool:
    return model.apply(topic, json.dumps(payload).encode(), now)


def _alarm(aid: int, priority: str, message: str, **kw: object) -> dict[str, object]:
    return {"id": aid, "priority": priority, "cause": "X", "message": message, "raised_at": aid, "active": True,
            "acknowledged": False, **kw}  # fmt: skip


def test_the_model_lists_every_stations_alarms_highest_first_and_ignores_garbage() -> None:
    m = BoardModel("clinic")
    assert _msg(m, "bfr/clinic/bay-a/status", {"state": "online", "name": "Bay A", "cuffs": ["A1"], "alarms": []})
    assert _msg(m, "bfr/clinic/bay-a/alarms", {"event": "raised", **_alarm(1, "low", "A1: low one")})
    assert _msg(m, "bfr/clinic/bay-b/alarms", {"event": "raised", **_alarm(2, "high", "B1: high one")})
    assert _msg(m, "bfr/clinic/bay-b/alarms", {"event": "raised", **_alarm(3, "medium", "B2: medium one")})
    assert [b.alarm["message"] for b in m.alarm_list()] == ["B1: high one", "B2: medium one", "A1: low one"]
    # cleared and acknowledged: gone; the other site, a stray topic, garbage: ignored, counted
    assert _msg(
        m, "bfr/clinic/bay-b/alarms", {"event": "cleared", **_alarm(2, "high", "B1", active=False, acknowledged=True)}
    )
    assert not m.apply("bfr/other/bay-c/status", b'{"state":"online"}', 1.0)
    assert not m.apply("bfr/clinic/bay-a/status", b"\xff not json", 1.0)
    assert not m.apply("bfr/clinic/bay-a/status", b'{"no":"state"}', 1.0)
    assert not m.apply("elsewhere", b"{}", 1.0)
    assert m.ignored == 4
    assert [b.station for b in m.alarm_list()] == ["bay-b", "bay-a"]
    assert "bay-c" not in m.stations
    # the last will: offline, with the way to attach kept
    assert _msg(
        m, "bfr/clinic/bay-a/status", {"state": "offline", "why": "vanished", "attach": "ssh -t a bfr-console attach"}
    )
    text = station_block(m.stations["bay-a"], 80, 100.0).plain
    assert "OFFLINE (vanished)" in text and "ssh -t a bfr-console attach" in text
    assert "2 stations" in header(m) and "2 alarms" in header(m)


def test_tiles_fit_80_columns_and_a_silent_station_is_not_trusted() -> None:
    m = BoardModel("clinic")
    _msg(
        m,
        "bfr/clinic/bay-a/status",
        {"state": "online", "name": "Bay A", "cuffs": ["A1", "A2", "A3", "A4"], "alarms": []},
    )
    for i in range(1, 5):
        cuff = {"cuff": f"A{i}", "state": "HOLDING", "online": True, "pressure": 182.4, "target": 184.0,
                "pct_lop": 80.0, "occlusion_s": 192.0, "alarm": "high" if i == 2 else None}  # fmt: skip
        _msg(m, f"bfr/clinic/bay-a/cuffs/A{i}", cuff)
    lines = station_block(m.stations["bay-a"], 80, 101.0).plain.splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    assert "A1  HOLD  182/184 03:12" in lines[1] and "!H" in lines[1], lines
    silent = station_block(m.stations["bay-a"], 80, 100.0 + 60).plain
    assert "SILENT 60 s" in silent and "182" not in silent, silent
    assert "No alarms on any station" in alarm_lines(m, 80, 6).plain


def _config(tmp_path: Path, name: str, port: int):  # type: ignore[no-untyped-def]
    base = make_config(tmp_path / name, controllers=1, channels=2)
    cfg = MqttConfig(host="127.0.0.1", port=port, tls=False, site="clinic", attach=f"ssh -t {name} bfr-console attach")
    return dataclasses.replace(base, station=dataclasses.replace(base.station, name=name), mqtt=cfg)


async def test_the_board_shows_every_station_their_alarms_and_one_going_offline(
    tmp_path: Path,
    broker: Broker,
) -> None:
    stations = []
    pubs = []
    for name in ("Bay A", "Bay B"):
        (tmp_path / name).mkdir()
        config = _config(tmp_path, name, broker.port)
        st = Station(config)
        await st.start()
        stations.append(st)
        pubs.append(start_publisher(st, config))
    app = BoardApp(BoardFeed(broker.url, BoardModel("clinic")), theme="auto", term="linux")
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            assert app.ansi_mode
            await wait_for(
                pilot,
                lambda: "Bay A [bay-a] ONLINE" in screen_text(app) and "Bay B [bay-b] ONLINE" in screen_text(app),
                T,
                "both stations online",
            )
            assert "ssh -t Bay A bfr-console attach" in screen_text(app)
            stations[0].alarms.raise_alarm("OFF_TARGET", Priority.MEDIUM, "A1: 20 mmHg under target.", cuff="A1")
            stations[1].alarms.raise_alarm("LEAK", Priority.HIGH, "A2: leak, pump ran 8 s.", cuff="A2")
            await wait_for(pilot, lambda: "A2: leak" in screen_text(app), T, "the high alarm")
            await wait_for(pilot, lambda: "A1: 20 mmHg" in screen_text(app), T, "the medium alarm")
            lines = screen_text(app).splitlines()
            high = next(i for i, line in enumerate(lines) if "A2: leak" in line)
            medium = next(i for i, line in enumerate(lines) if "A1: 20 mmHg" in line)
            assert high < medium and "HIGH" in lines[high] and "bay-b" in lines[high], lines
            await stop_publisher(pubs[0])
            pubs[0] = None
            await wait_for(pilot, lambda: "Bay A [bay-a] OFFLINE (stopped)" in screen_text(app), T, "Bay A offline")
            assert "Bay B [bay-b] ONLINE" in screen_text(app)
            assert all(len(line) <= 80 for line in screen_text(app).splitlines())
    finally:
        for pub in pubs:
            await stop_publisher(pub)
        for st in stations:
            await st.stop()


def test_the_board_command_refuses_a_bad_url_or_site(capsys: object) -> None:
    from console.cli import main

    assert main(["board", "--url", "http://broker", "--site", "clinic"]) == 2
    assert main(["board", "--url", "mqtt://broker", "--site", "North Clinic"]) == 2
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert "mqtt://host:port" in err and "--site 'North Clinic'" in err


async def test_a_broker_error_that_looks_like_markup_is_shown_as_written() -> None:
    """The broker line carries outside text (the URL, the error the client library gave): never markup."""
    feed = BoardFeed("mqtt://127.0.0.1:1", BoardModel("clinic"))  # nothing listens there
    app = BoardApp(feed, theme="auto", term="linux")
    async with app.run_test(size=(80, 24)):
        feed.error = "[b]refused[/b] by [red]broker"
        feed.connected = False
        app.refresh_tiles()
        shown = str(app.query_one("#board-broker", Static).render())
        assert "[b]refused[/b] by [red]broker" in shown, shown


async def test_a_tick_after_the_board_closed_is_dropped_not_raised() -> None:
    """Textual prunes the screens before it stops the app's timers: a tick in between must not raise.

    CI once failed on exactly that (NoMatches for #board-alarms as a test ended).
    """
    feed = BoardFeed("mqtt://127.0.0.1:1", BoardModel("clinic"))
    app = BoardApp(feed, theme="auto", term="linux")
    async with app.run_test(size=(80, 24)):
        frames = app.alarm_frames
    feed.model.alarm_version += 1  # an alarm arrived as the board closed
    app.refresh_alarms()
    app.refresh_tiles()
    assert app.alarm_frames == frames
