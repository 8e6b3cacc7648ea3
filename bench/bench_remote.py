"""Remote supervision benchmark: what 20 attached consoles cost the station, and how fresh they see it.

Run: ``.venv/bin/python bench/bench_remote.py [--clients 20] [--seconds 5] [--fps 20]``.
Prints figures; asserts nothing.

The station runs here with 16 cuffs streaming at 100 Hz (two in-process
emulated controllers of 8 channels, over real ptys) and serves its socket.
The consoles run in child processes (so their decoding is not billed to the
station; ``--procs``, 4 by default: a real console is a process of its own,
and 20 in one process queue behind each other's JSON decoding), each a real
:class:`RemoteStation`.

1. Station process CPU share (``process_time`` over wall time) with 0 consoles,
   then with N consoles attached, in the same run.
2. Sample-to-console delay: for every snapshot a console receives, the time
   from the newest sample's arrival at the station (``snapshot.time -
   cuff.sample_age_s``, wall clock, same machine) to the moment the console
   has decoded it; p50/p99 over all consoles. Includes up to one frame
   (``1/fps``) of waiting for the next push, by design.
   Also the snapshot-to-console part alone (``now - snapshot.time``): what the
   socket, the JSON and the push schedule add, without the station's own
   snapshot caching.
3. Frames per second each console received, and frames the server skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stats import pct  # noqa: E402
from console.common.api import StationSnapshot  # noqa: E402
from console.config.loader import parse_config  # noqa: E402
from console.remote.client import RemoteStation  # noqa: E402
from console.remote.server import StationServer  # noqa: E402
from console.station.station import Station  # noqa: E402


def station_config(base: Path, socket: Path) -> Any:
    ctrls, cuffs = [], []
    for i, cid in enumerate("AB"):
        ctrls.append(
            {
                "id": cid,
                "port": "emulator",
                "stream_hz": 100,
                "watchdog_ms": 1000,
                "emulator": {"channels": 8, "lop": [200.0] * 8, "pulse_mmhg": 1.0, "seed": i + 1},
            }
        )
        for ch in range(1, 9):
            cuffs.append({"id": f"{cid}{ch}", "controller": cid, "channel": ch, "limb": "leg", "label": f"{cid}{ch}"})
    data = {
        "station": {"name": "Bench bay", "data_dir": "var", "socket": str(socket)},
        "controllers": ctrls,
        "cuffs": cuffs,
    }
    return parse_config(data, str(base / "config.toml"))


# ----------------------------------------------------------------------------- consoles (child process)


class TimedRemote(RemoteStation):
    """Notes, for every snapshot decoded, how long after its newest sample it arrived."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.delays: list[float] = []
        self.transit: list[float] = []
        self.frames = 0
        self.measuring = False

    def _accept(self, snap: StationSnapshot) -> None:
        super()._accept(snap)
        now = time.time()
        ages = [c.sample_age_s for c in snap.cuffs if c.sample_age_s is not None]
        if ages and self.measuring:
            self.delays.append(now - (snap.time - min(ages)))
            self.transit.append(now - snap.time)
            self.frames += 1


async def consoles(socket: str, count: int, seconds: float) -> None:
    remotes: list[TimedRemote] = []
    for _ in range(count):
        remotes.append(await TimedRemote.connect(socket, reconnect=False))  # type: ignore[arg-type]
    print("ready", flush=True)
    await asyncio.sleep(0.5)
    for r in remotes:
        r.measuring = True
    t0 = time.monotonic()
    await asyncio.sleep(seconds)
    wall = time.monotonic() - t0
    for r in remotes:
        r.measuring = False
    delays = [d for r in remotes for d in r.delays]
    transit = [d for r in remotes for d in r.transit]
    fps = [r.frames / wall for r in remotes]
    connected = all(r.connected for r in remotes)
    print(json.dumps({"delays": delays, "transit": transit, "fps": fps, "connected": connected}), flush=True)
    for r in remotes:
        await r.close()


# ----------------------------------------------------------------------------- station (this process)


async def cpu_share(seconds: float) -> float:
    c0, w0 = time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    return (time.process_time() - c0) / (time.monotonic() - w0)


async def main(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bfr-bench-remote-"))
    socket = tmp / "run" / "bfr.sock"
    station = Station(station_config(tmp, socket))
    await station.start()
    server = StationServer(station, socket, (), fps=args.fps)
    await server.start()
    try:
        for cuff in [c.id for c in station.snapshot().cuffs][::2]:
            await station.inflate(cuff, mmhg=100)
        await asyncio.sleep(2.0)  # inflating, streaming, settled
        samples0 = sum(c.samples for c in station.snapshot().cuffs)
        t0 = time.monotonic()
        idle = await cpu_share(args.seconds)
        rate = (sum(c.samples for c in station.snapshot().cuffs) - samples0) / (time.monotonic() - t0)
        per = [args.clients // args.procs + (1 if i < args.clients % args.procs else 0) for i in range(args.procs)]
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                __file__,
                "--child",
                str(socket),
                "--clients",
                str(n),
                "--seconds",
                str(args.seconds),
                stdout=asyncio.subprocess.PIPE,
                limit=1 << 26,
            )
            for n in per
            if n
        ]
        for proc in procs:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            if line.strip() != b"ready":
                raise SystemExit(f"consoles did not start: {line!r}")
        await asyncio.sleep(0.5)
        busy = await cpu_share(args.seconds)
        delays: list[float] = []
        transit: list[float] = []
        fps: list[float] = []
        connected = True
        for proc in procs:
            assert proc.stdout is not None
            got = json.loads(await asyncio.wait_for(proc.stdout.readline(), 60))
            delays += got["delays"]
            transit += got["transit"]
            fps += got["fps"]
            connected = connected and got["connected"]
            await proc.wait()
        result = {
            "p50_ms": pct(delays, 0.5) * 1000,
            "p99_ms": pct(delays, 0.99) * 1000,
            "max_ms": max(delays) * 1000 if delays else float("nan"),
            "transit_p50_ms": pct(transit, 0.5) * 1000,
            "transit_p99_ms": pct(transit, 0.99) * 1000,
            "fps_min": min(fps),
            "fps_mean": sum(fps) / len(fps),
            "all_connected": connected,
        }
        skipped = sum(c.frames_skipped for c in server.clients)
        print(f"station: 16 cuffs, {rate:.0f} samples/s received; server at {args.fps:g} fps; {os.cpu_count()} cores")
        print(f"consoles: {args.clients} in {len(procs)} child processes")
        print(f"station CPU share, 0 consoles:  {idle * 100:5.1f} % of one core")
        print(
            f"station CPU share, {args.clients} consoles: {busy * 100:5.1f} % of one core "
            f"(+{(busy - idle) * 100:.1f} points, {(busy - idle) * 100 / max(args.clients, 1):.2f} per console)"
        )
        print(
            f"sample-to-console delay: p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, "
            f"max {result['max_ms']:.1f} ms (frame period {1000 / args.fps:.0f} ms)"
        )
        print(
            f"snapshot-built-to-console (the socket's own share): p50 {result['transit_p50_ms']:.1f} ms, "
            f"p99 {result['transit_p99_ms']:.1f} ms"
        )
        print(
            f"frames per console: mean {result['fps_mean']:.1f}/s, min {result['fps_min']:.1f}/s; "
            f"frames skipped by the server: {skipped}; all connected: {result['all_connected']}"
        )
    finally:
        await server.stop()
        await station.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--fps", type=float, default=20.0)
    parser.add_argument("--procs", type=int, default=4, help="child processes the consoles are spread over")
    parser.add_argument("--child", metavar="SOCKET", help=argparse.SUPPRESS)
    ns = parser.parse_args()
    if ns.child:
        asyncio.run(consoles(ns.child, ns.clients, ns.seconds))
    else:
        asyncio.run(main(ns))
