"""UI benchmark: what the console's screen costs, and how fresh it is.

Run: ``.venv/bin/python bench/bench_ui.py [--seconds 10] [--fps 20]``. Prints figures; asserts nothing.

16 cuffs stream at 100 Hz from two emulated 8-channel controllers that run as
child processes (``python -m drivers.emulator``) over real ptys, so their
physics is not billed to this process. This process runs the real Station and,
in the second phase, the real :class:`BfrApp` headless (``run_test``) at a size
where all 16 panels are on screen (160x50) and repaint.

1. CPU share of one core (``process_time`` / wall time): the station alone
   (baseline), then the station with the UI; the difference is the UI's cost.
2. Sample-to-frame delay: for every pull-loop tick that showed a new snapshot,
   the time from the newest sample's arrival at the station
   (``snapshot.time - cuff.sample_age_s``, wall clock) to the end of the
   screen refresh that painted it (``call_after_refresh``); p50/p99, for the
   newest sample on screen and for every cuff's newest sample.
3. App start (constructor) to the first painted frame, station already up.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.stats import pct  # noqa: E402
from console.common.api import StationSnapshot  # noqa: E402
from console.config.loader import parse_config  # noqa: E402
from console.config.schema import StationConfig  # noqa: E402
from console.station.station import Station  # noqa: E402
from console.ui.app import BfrApp  # noqa: E402


async def start_emulator(cid: str, channels: int) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "drivers.emulator",
        "--channels",
        str(channels),
        "--serial",
        f"EMU{cid}",
        "--lop",
        ",".join(["200"] * channels),
        "--pulse",
        "1",
        cwd=str(ROOT),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode().strip()
        if line.startswith("PORT "):
            break
        if not line:
            raise RuntimeError(f"emulator {cid} exited before printing its port")

    async def drain() -> None:  # keep its STATE/EVENT lines from filling the pipe
        assert proc.stdout is not None
        while await proc.stdout.readline():
            pass

    asyncio.get_running_loop().create_task(drain())
    return proc, line.split(" ", 1)[1]


def station_config(base: Path, ports: dict[str, str], channels: int) -> StationConfig:
    ctrls = [
        {"id": cid, "port": port, "channels": channels, "stream_hz": 100, "watchdog_ms": 1000}
        for cid, port in ports.items()
    ]
    cuffs = [
        {"id": f"{cid}{ch}", "controller": cid, "channel": ch, "limb": "leg", "label": f"leg {cid}{ch}"}
        for cid in ports
        for ch in range(1, channels + 1)
    ]
    data = {
        "station": {"name": "Bench bay", "data_dir": str(base / "var"), "socket": str(base / "bfr.sock")},
        "controllers": ctrls,
        "cuffs": cuffs,
    }
    return parse_config(data, str(base / "config.toml"))


async def cpu_share(seconds: float) -> float:
    c0, w0 = time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    return (time.process_time() - c0) / (time.monotonic() - w0)


async def main() -> None:
    ap = argparse.ArgumentParser(description="UI CPU share and sample-to-frame delay")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--fps", type=int, default=20)
    args = ap.parse_args()

    procs: list[asyncio.subprocess.Process] = []
    ports: dict[str, str] = {}
    for cid in "AB":
        proc, port = await start_emulator(cid, 8)
        procs.append(proc)
        ports[cid] = port
    base = Path(tempfile.mkdtemp(prefix="bench-ui-"))
    station = Station(station_config(base, ports, 8))
    await station.start()
    try:
        t0 = time.monotonic()
        while not all(c.samples > 50 for c in station.snapshot().cuffs):
            if time.monotonic() - t0 > 15:
                raise RuntimeError("samples are not flowing from the emulators")
            await asyncio.sleep(0.05)
        for i, c in enumerate(station.snapshot().cuffs):
            if i % 2 == 0:
                await station.inflate(c.id, mmhg=100.0)  # half the cuffs hold pressure, half vented
        await asyncio.sleep(2.0)

        idle = await cpu_share(args.seconds)

        delays_newest: list[float] = []
        delays_all: list[float] = []
        app = BfrApp(station, fps=args.fps, bell=False, theme="textual-dark")

        def measure_delays(snap: StationSnapshot) -> None:
            ages = [c.sample_age_s for c in snap.cuffs if c.sample_age_s is not None]
            if not ages:
                return

            def painted() -> None:
                now = time.time()
                delays_newest.append(now - (snap.time - min(ages)))
                delays_all.extend(now - (snap.time - a) for a in ages)

            app.call_after_refresh(painted)

        first_frame: list[float] = []
        t_start = time.monotonic()

        def on_frame(snap: StationSnapshot) -> None:
            if not first_frame:
                app.call_after_refresh(lambda: first_frame.append(time.monotonic() - t_start))
            measure_delays(snap)

        app.on_frame = on_frame
        async with app.run_test(size=(160, 50)):
            await asyncio.sleep(1.0)
            delays_newest.clear()
            delays_all.clear()
            frames0 = app.frames
            t0 = time.monotonic()
            with_ui = await cpu_share(args.seconds)
            fps_seen = (app.frames - frames0) / (time.monotonic() - t0)
            visible = sum(1 for p in app.dashboard.panels.values() if app.screen.region.contains_region(p.region))
    finally:
        await station.stop()
        for proc in procs:
            proc.terminate()
            await proc.wait()

    cores = os.cpu_count()
    print(
        f"16 cuffs at 100 Hz (emulators in 2 child processes), UI at {args.fps} fps, {args.seconds:.0f} s each,"
        f" {cores} cores"
    )
    print(f"  station alone (baseline):  {idle * 100:5.1f} % of one core")
    print(f"  station + UI:              {with_ui * 100:5.1f} % of one core")
    print(f"  UI's share:                {(with_ui - idle) * 100:5.1f} % of one core")
    print(
        f"  app start to first painted frame: {first_frame[0] * 1000 if first_frame else float('nan'):.0f} ms"
        " (station already running)"
    )
    print(f"  frames with a new snapshot: {fps_seen:.1f} /s; panels on screen: {visible}/16")
    ms = [d * 1000 for d in delays_newest]
    ms_all = [d * 1000 for d in delays_all]
    print(
        f"  sample -> painted frame, newest sample: p50 {pct(ms, 0.5):6.1f} ms  p99 {pct(ms, 0.99):6.1f} ms"
        f"  (n={len(ms)})"
    )
    print(
        f"  sample -> painted frame, every cuff:    p50 {pct(ms_all, 0.5):6.1f} ms  p99 {pct(ms_all, 0.99):6.1f} ms"
        f"  mean {statistics.fmean(ms_all) if ms_all else float('nan'):.1f} ms"
    )
    print(f"  (one frame at {args.fps} fps is {1000 / args.fps:.0f} ms; samples arrive every 10 ms per cuff)")


if __name__ == "__main__":
    asyncio.run(main())
