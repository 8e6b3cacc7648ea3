"""Clinic board benchmark: 40 stations of 16 cuffs publishing to one Mosquitto and one board.

Run: ``.venv/bin/python bench/bench_board.py [--stations 40] [--cuffs 16] [--seconds 8]``.
Prints figures; asserts nothing. Needs ``mosquitto`` (PATH or /usr/sbin); it starts its
own on a free port with its own config, never the system's.

Three processes besides the broker, so that no figure pays for another's work:

1. the fleet (a child): ``--stations`` simulated stations in one process, each the real
   :class:`~console.mqtt.publisher.MqttPublisher` over its own connection, fed by a
   snapshot of ``--cuffs`` cuffs whose pressures move, at ``cuff_hz`` 1; every 0.2 s one
   of them raises an alarm (the station observer's event, as the alarm manager sends it);
2. the board (a child): the real :class:`~console.ui.board_app.BoardApp` headless at
   120x40 (``run_test``), subscribed to the site; it prints its CPU share (process time
   over wall time), and for every alarm the delay from the station's event (wall clock,
   same machine) to the board's model having it, and to the alarm list redrawn with it;
3. here: one real station (16 cuffs on two in-process emulators streaming at 100 Hz over
   real ptys), its CPU share measured with publishing off, then on, twice, in the same run,
   while the fleet and the board are running: the cost of publishing is on minus off.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stats import cpu_share, pct  # noqa: E402
from console.common.api import AlarmSnapshot, CuffSnapshot, Priority, StationSnapshot  # noqa: E402
from console.config.loader import parse_config  # noqa: E402
from console.config.schema import MqttConfig  # noqa: E402
from console.mqtt.publisher import MqttPublisher  # noqa: E402
from console.station.events import StationEvent  # noqa: E402

SITE = "bench"


def mqtt_cfg(port: int) -> MqttConfig:
    return MqttConfig(host="127.0.0.1", port=port, tls=False, site=SITE, cuff_hz=1.0, queue=1000)


# ------------------------------------------------------------------ the fleet


class FakeStation:
    """What a publisher reads of a station: a snapshot whose pressures move, and its observers."""

    def __init__(self, name: str, cuffs: int) -> None:
        self.name = name
        self.observers: list[Any] = []
        self.cuffs = [
            CuffSnapshot(
                id=f"C{i + 1}",
                label=f"cuff {i + 1}",
                limb="leg",
                controller="R",
                channel=i % 8 + 1,
                state="HOLDING",
                online=True,
                pressure=150.0,
                target=150.0,
                lop=200.0,
                target_pct_lop=75.0,
                pressure_pct_lop=75.0,
                max_pct_lop=90.0,
                tolerance=15.0,
                latched=False,
                occlusion_s=0.0,
                occlusion_warn_s=600.0,
                occlusion_limit_s=900.0,
                trace=(),
                samples=0,
                sample_age_s=0.01,
            )  # fmt: skip
            for i in range(cuffs)
        ]
        self.alarm_id = 0

    def snapshot(self) -> StationSnapshot:
        cuffs = tuple(dataclasses.replace(c, pressure=150.0 + random.uniform(-3, 3)) for c in self.cuffs)
        return StationSnapshot(name=self.name, time=time.time(), cuffs=cuffs, controllers=(), alarms=())

    def add_observer(self, fn: Any) -> Any:
        self.observers.append(fn)
        return lambda: self.observers.remove(fn)

    def raise_alarm(self) -> None:
        self.alarm_id += 1
        now = time.time()
        a = AlarmSnapshot(self.alarm_id, Priority.HIGH, "LEAK", f"C1: bench alarm {self.alarm_id}", "C1", "R", now,
                          True, False)  # fmt: skip
        for fn in self.observers:
            fn(StationEvent("alarm", now, "station", a.message, action="raised", alarm=a, cuff="C1"))


async def fleet(port: int, stations: int, cuffs: int, seconds: float) -> None:
    fakes = [FakeStation(f"Bay {i:02d}", cuffs) for i in range(stations)]
    pubs = []
    for f in fakes:
        pub = MqttPublisher(
            mqtt_cfg(port), station=f"bay-{f.name[-2:]}", snapshot=f.snapshot, add_observer=f.add_observer
        )
        pub.start()
        pubs.append(pub)
    while not all(p.connected for p in pubs):
        await asyncio.sleep(0.05)
    print("ready", flush=True)
    end = time.monotonic() + seconds
    raised = 0
    while time.monotonic() < end:
        await asyncio.sleep(0.2)
        random.choice(fakes).raise_alarm()
        raised += 1
    await asyncio.sleep(2.0)  # the last alarms reach the board
    lost = sum(p.outbox.lost_alarms for p in pubs)
    for p in pubs:
        await p.stop()
    print(json.dumps({"raised": raised, "lost": lost}), flush=True)


# ------------------------------------------------------------------ the board


async def board(port: int, seconds: float) -> None:
    from console.mqtt.board_feed import BoardFeed
    from console.mqtt.board_model import BoardModel
    from console.ui.board_app import BoardApp

    received: dict[str, float] = {}
    drawn: dict[str, float] = {}
    sent: dict[str, float] = {}

    class TimedModel(BoardModel):
        def apply(self, topic: str, payload: bytes, now: float) -> bool:
            ok = super().apply(topic, payload, now)
            if topic.endswith("/alarms"):
                d = json.loads(payload)
                key = f"{d['station']}:{d['id']}"
                received[key], sent[key] = time.time(), d["raised_at"]
            return ok

    class TimedApp(BoardApp):
        def refresh_alarms(self) -> None:
            before = self.alarm_frames
            super().refresh_alarms()
            if self.alarm_frames != before:
                now = time.time()
                for key in received:
                    drawn.setdefault(key, now)

    app = TimedApp(BoardFeed(f"mqtt://127.0.0.1:{port}", TimedModel(SITE)), theme="ansi")
    async with app.run_test(size=(120, 40)) as pilot:
        while not app.feed.connected:
            await pilot.pause(0.05)
        print("ready", flush=True)
        await pilot.pause(1.0)
        c0, w0 = time.process_time(), time.monotonic()
        await pilot.pause(seconds)
        cpu = (time.process_time() - c0) / (time.monotonic() - w0)
        heard = len(app.model.stations)
        cuffs = sum(len(v.cuffs) for v in app.model.stations.values())
    to_model = [received[k] - sent[k] for k in received]
    to_screen = [drawn[k] - sent[k] for k in drawn]
    print(json.dumps({"cpu": cpu, "to_model": to_model, "to_screen": to_screen, "stations": heard, "cuffs": cuffs}))


# ------------------------------------------------------------------ the station, publishing off and on


def station_config(base: Path, port: int) -> Any:
    ctrls, cuffs = [], []
    for i, cid in enumerate("AB"):
        ctrls.append({"id": cid, "port": "emulator", "stream_hz": 100, "watchdog_ms": 1000,
                      "emulator": {"channels": 8, "lop": [200.0] * 8, "pulse_mmhg": 1.0, "seed": i + 1}})  # fmt: skip
        for ch in range(1, 9):
            cuffs.append({"id": f"{cid}{ch}", "controller": cid, "channel": ch, "limb": "leg"})
    data = {
        "station": {"name": "Bench bay", "data_dir": "var", "socket": str(base / "bfr.sock")},
        "mqtt": {"url": f"mqtt://127.0.0.1:{port}", "site": SITE, "attach": "ssh -t bench bfr-console attach"},
        "controllers": ctrls,
        "cuffs": cuffs,
    }
    return parse_config(data, str(base / "config.toml"))


async def child(role: str, *args: str) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--role", role, *args, stdout=asyncio.subprocess.PIPE, limit=1 << 26
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 120)
    if line.strip() != b"ready":
        raise SystemExit(f"{role} did not start: {line!r}")
    return proc


async def main(args: argparse.Namespace) -> None:
    from console.mqtt.wiring import start_publisher, stop_publisher
    from console.station.station import Station
    from tests.mqtt_support import Broker

    tmp = Path(tempfile.mkdtemp(prefix="bfr-bench-board-"))
    broker = Broker(tmp)
    broker.start()
    config = station_config(tmp, broker.port)
    station = Station(config)
    await station.start()
    span = 4 * args.seconds + 6
    try:
        for cuff in [c.id for c in station.snapshot().cuffs][::2]:
            await station.inflate(cuff, mmhg=100)
        board_proc = await child("board", "--port", str(broker.port), "--seconds", str(span))
        fleet_proc = await child("fleet", "--port", str(broker.port), "--stations", str(args.stations),
                                 "--cuffs", str(args.cuffs), "--seconds", str(span))  # fmt: skip
        off: list[float] = []
        on: list[float] = []
        for _ in range(2):
            off.append(await cpu_share(args.seconds))
            pub = start_publisher(station, config)
            await asyncio.sleep(0.5)
            on.append(await cpu_share(args.seconds))
            sent = pub.outbox.sent if pub else 0
            await stop_publisher(pub)
        fleet_out = json.loads(await asyncio.wait_for(fleet_proc.stdout.readline(), span + 60))  # type: ignore[union-attr]
        board_out = json.loads(await asyncio.wait_for(board_proc.stdout.readline(), span + 60))  # type: ignore[union-attr]
        await fleet_proc.wait()
        await board_proc.wait()
    finally:
        await station.stop()
        broker.stop()
    ms = 1000.0
    print(f"bench_board: {args.stations} stations x {args.cuffs} cuffs at 1 Hz to one Mosquitto and one board")
    print(
        f"  alarms raised {fleet_out['raised']}, lost {fleet_out['lost']}, heard by the board {len(board_out['to_model'])}"
    )
    print(f"  board heard {board_out['stations']} stations, {board_out['cuffs']} cuffs")
    tm, ts = board_out["to_model"], board_out["to_screen"]
    print(
        f"  alarm -> board model   p50 {pct(tm, 0.5) * ms:6.1f} ms  p99 {pct(tm, 0.99) * ms:6.1f} ms  max {max(tm, default=0) * ms:6.1f} ms"
    )
    print(
        f"  alarm -> board screen  p50 {pct(ts, 0.5) * ms:6.1f} ms  p99 {pct(ts, 0.99) * ms:6.1f} ms  max {max(ts, default=0) * ms:6.1f} ms"
    )
    print(f"  board CPU  {board_out['cpu'] * 100:5.1f} % of a core")
    print(f"  station (16 cuffs at 100 Hz) CPU, publishing off: {', '.join(f'{x * 100:.1f} %' for x in off)}")
    print(f"  station (16 cuffs at 100 Hz) CPU, publishing on:  {', '.join(f'{x * 100:.1f} %' for x in on)}")
    cost = (sum(on) - sum(off)) / len(on) * 100
    print(f"  publishing costs the station {cost:+.2f} points of a core (goal: under 1); last run sent {sent} messages")


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--role", choices=["main", "fleet", "board"], default="main")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--stations", type=int, default=40)
    p.add_argument("--cuffs", type=int, default=16)
    p.add_argument("--seconds", type=float, default=8.0)
    return p.parse_args(argv)


if __name__ == "__main__":
    a = parse(sys.argv[1:])
    if a.role == "fleet":
        asyncio.run(fleet(a.port, a.stations, a.cuffs, a.seconds))
    elif a.role == "board":
        asyncio.run(board(a.port, a.seconds))
    else:
        asyncio.run(main(a))
