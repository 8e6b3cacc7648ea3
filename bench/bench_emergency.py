"""Emergency deflate benchmark: 16 cuffs streaming at 100 Hz, call to last confirmation.

Run: ``.venv/bin/python bench/bench_emergency.py [--runs 100] [--key-runs 30]``. Prints figures; asserts nothing.

Four emulated 4-channel controllers run as separate processes (``python -m
drivers.emulator``) on their own ptys, so the station process does only the
station's work. The station (real links, real supervisor) streams all 16
cuffs at 100 Hz. Interleaved with the emergency runs, in the same process and
under the same load, the floor: one line out and one line back over a bare pty
to an echo in another process, through pyserial-asyncio-fast; and the same to
four echo processes at once (what four controllers cost a 2-core machine in
process wake-ups alone). Before every run every cuff is inflated again (each
reads above 20 mmHg), so each emergency deflates cuffs that hold pressure.

Then the path a person takes (``bench/emergency_key.py``): the shipped console
on a pty this process is the terminal of, F12 typed into it, to the last
controller's OK; against the bare-pty floor measured between those runs (one echo, the goal's
floor; and four echoes at once, one per controller, printed beside it). The cuffs are inflated
through the console's socket, which is closed before F12 goes in (a therapist at the keyboard);
``--supervised`` keeps it open (a remote supervisor watching: snapshots streamed meanwhile).

Goal (design.md): emergency p99 within 3 x the floor's p99. Each ratio is printed with the range
(5th to 95th percentile) it takes over bootstrap resamples of the same timings: how far it could have
landed by chance in this run (bench/stats.py ``ratio_interval``).
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.emergency_key import inflate_all, key_runs  # noqa: E402
from bench.stats import pct, ratio_interval  # noqa: E402
from console.config.loader import parse_config  # noqa: E402
from console.station.station import Station  # noqa: E402
from drivers.codec import frame  # noqa: E402
from drivers.serial_port import open_port  # noqa: E402

CONTROLLERS = 4
CHANNELS = 4

ECHO = r"""
import os, select, sys, tty
m, s = os.openpty()
tty.setraw(m); tty.setraw(s)
print(os.ttyname(s), flush=True)
while True:
    select.select([m], [], [])
    try:
        data = os.read(m, 4096)
    except OSError:
        continue
    os.write(m, data)
"""


def describe(label: str, values_s: list[float]) -> tuple[float, float]:
    ms = [v * 1000 for v in values_s]
    p50, p99 = pct(ms, 0.50), pct(ms, 0.99)
    print(f"  {label:<52} p50 {p50:7.3f} ms   p99 {p99:7.3f} ms   max {max(ms):7.3f} ms   n={len(ms)}")
    return p50, p99


def hot_path_costs(station: Station) -> None:
    """CPU cost of the station's share of one sample, and of a snapshot, in this process."""
    from drivers.codec import Sample

    ctrl = next(iter(station.controllers.values()))
    listener = station.reports.listener_for(ctrl, station.limits.occlusion_threshold_mmhg)
    samples = [Sample(i, tuple(60.0 + (i % 7) * 0.1 + ch for ch in range(CHANNELS))) for i in range(1000)]
    n = 20_000
    t0 = time.process_time()
    for i in range(n):
        listener(samples[i % 1000])
    per_sample = (time.process_time() - t0) / n
    print(
        f"station listener: {per_sample * 1e6:.1f} us CPU per {CHANNELS}-channel sample line "
        f"-> {per_sample * 100 * CONTROLLERS * 100:.1f} % of a core for {CONTROLLERS * CHANNELS} cuffs at 100 Hz "
        f"(link parsing not included)"
    )
    m = 2000
    t0 = time.process_time()
    for _ in range(m):
        station._dirty = True
        station.snapshot()
    per_snap = (time.process_time() - t0) / m
    t0 = time.process_time()
    for _ in range(m):
        station.snapshot()
    cached = (time.process_time() - t0) / m
    print(f"snapshot(): {per_snap * 1e6:.0f} us to rebuild ({len(station.cuffs)} cuffs), {cached * 1e6:.1f} us cached")


async def spawn(*args: str) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode().strip()
    return proc, line


async def main(runs: int, key_run_count: int, supervised: bool = False) -> None:
    procs: list[asyncio.subprocess.Process] = []
    try:
        ports: list[str] = []
        for i in range(CONTROLLERS):
            proc, line = await spawn(
                sys.executable,
                "-m",
                "drivers.emulator",
                "--channels",
                str(CHANNELS),
                "--seed",
                str(i + 1),
                "--lop",
                "200,190,180,170",
                "--serial",
                f"E{i:04d}",
            )
            procs.append(proc)
            if not line.startswith("PORT "):
                raise SystemExit(f"emulator said {line!r}")
            ports.append(line.split(" ", 1)[1])
        echo_paths: list[str] = []
        for _ in range(CONTROLLERS):
            echo, echo_path = await spawn(sys.executable, "-c", ECHO)
            procs.append(echo)
            echo_paths.append(echo_path)

        tmp = tempfile.mkdtemp(prefix="bench-emergency-")
        data = {
            "station": {"name": "bench", "data_dir": tmp, "socket": f"{tmp}/s.sock"},
            "safety": {"deflate_confirm_s": 1.0},
            "controllers": [
                {"id": f"C{i}", "port": p, "channels": CHANNELS, "stream_hz": 100} for i, p in enumerate(ports)
            ],
            "cuffs": [
                {"id": f"C{i}-{ch}", "controller": f"C{i}", "channel": ch, "limb": "leg"}
                for i in range(CONTROLLERS)
                for ch in range(1, CHANNELS + 1)
            ],
        }
        station = Station(parse_config(data, f"{tmp}/config.toml"))
        await station.start()
        online = [c.id for c in station.controllers.values() if c.online]
        print(f"station: {len(station.cuffs)} cuffs on {len(online)}/{CONTROLLERS} controllers ready")

        echos = [await open_port(p) for p in echo_paths]
        reader, writer = echos[0]
        line = frame("#1 PING")
        floor: list[float] = []
        floor4: list[float] = []
        fire: list[float] = []
        ping4: list[float] = []
        call: list[float] = []
        confirm: list[float] = []
        unconfirmed = 0
        samples0 = sum(c.samples for c in station.cuffs.values())
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for i in range(runs + 10):
            await inflate_all(station)  # every run deflates cuffs that hold pressure
            t0 = time.perf_counter()
            writer.write(line)
            await reader.readline()
            t_floor = time.perf_counter() - t0
            t0 = time.perf_counter()
            for _, w in echos:
                w.write(line)
            await asyncio.gather(*(r.readline() for r, _ in echos))
            t_floor4 = time.perf_counter() - t0
            t0 = time.perf_counter()
            await asyncio.gather(*(link.command("PING") for link in station.links.values()))
            t_ping4 = time.perf_counter() - t0
            t0 = time.perf_counter()
            links = {cid: c.link for cid, c in station.controllers.items()}
            run = station.emergency.fire(links, by="bench (writes only)")  # type: ignore[arg-type]
            t_fire = time.perf_counter() - t0
            await asyncio.wait(list(run.futures.values()))
            await asyncio.sleep(0.01)
            t0 = time.perf_counter()
            snap = await station.emergency_deflate()
            t_call = time.perf_counter() - t0
            if i >= 10:  # warm-up
                floor.append(t_floor)
                floor4.append(t_floor4)
                fire.append(t_fire)
                ping4.append(t_ping4)
                call.append(t_call)
                if snap.latency_s is None:
                    unconfirmed += 1
                else:
                    confirm.append(snap.latency_s)
            station.snapshot()
            await asyncio.sleep(0.02)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        samples = sum(c.samples for c in station.cuffs.values()) - samples0
        hot_path_costs(station)
        await station.stop()

        key_floor4: list[float] = []

        async def floor_once() -> float:
            """The single-echo floor (returned) and, straight after, the four-echo one (kept aside)."""
            t0 = time.perf_counter()
            writer.write(line)
            await reader.readline()
            single = time.perf_counter() - t0
            t0 = time.perf_counter()
            for _, w in echos:
                w.write(line)
            await asyncio.gather(*(r.readline() for r, _ in echos))
            key_floor4.append(time.perf_counter() - t0)
            return single

        key_ok, key_call, key_floor, _ = await key_runs(
            ports, key_run_count, floor_once, Path(tmp) / "key", supervised=supervised
        )
        for _, w in echos:
            w.transport.abort()

        print(
            f"load: {samples / wall:.0f} cuff samples/s received ({len(station.cuffs)} cuffs), "
            f"station process CPU {100 * cpu / wall:.0f} % of one core"
        )
        floor50, floor99 = describe("floor: bare pty round trip (echo process)", floor)
        _, floor4_99 = describe(f"floor x{CONTROLLERS}: {CONTROLLERS} echo processes at once", floor4)
        _, ping99 = describe(f"PING to all {CONTROLLERS} controllers via the links", ping4)
        describe("station: the synchronous DEFLATE ALL writes", fire)
        describe("emergency_deflate(): call to return", call)
        conf50, conf99 = describe("emergency: call to last DEFLATE ALL OK", confirm)
        print(f"  ratio p50 emergency / p50 floor: {conf50 / floor50:.2f}")
        print(f"  unconfirmed within deflate_confirm_s: {unconfirmed}")
        lo, hi = ratio_interval(confirm, floor, 0.99)
        print(f"  ratio p99 emergency / p99 floor: {conf99 / floor99:.2f} (goal <= 3; by chance {lo:.2f} to {hi:.2f})")
        print(f"  ratio p99 emergency / p99 floor x{CONTROLLERS}: {conf99 / floor4_99:.2f}")
        print(f"  ratio p99 emergency / p99 PING-all: {conf99 / ping99:.2f} (station overhead over a no-op command)")
        print(f"  mean floor {statistics.fmean(floor) * 1000:.3f} ms")
        who = "a remote supervisor attached" if supervised else "no remote supervisor attached"
        print(
            f"\nF12 typed into the running console (a pty, 160x50, {who}), {len(key_ok)} runs, "
            "cuffs inflated before each:"
        )
        _, kfloor99 = describe("floor: bare pty round trip, between the runs", key_floor)
        _, kfloor4_99 = describe(
            f"floor x{CONTROLLERS}: {CONTROLLERS} echo processes at once", key_floor4[-len(key_ok) :]
        )
        describe("key to the station's call (terminal, Textual, app)", key_call)
        _, key99 = describe("key to last DEFLATE ALL OK", key_ok)
        worst = ", ".join(f"{v * 1000:.2f}" for v in sorted(key_ok)[-5:])
        worst_floor = ", ".join(f"{v * 1000:.2f}" for v in sorted(key_floor)[-5:])
        print(
            f"  key to last OK p90 {pct(key_ok, 0.90) * 1000:.3f} ms; five slowest: {worst} ms (floor's: {worst_floor})"
        )
        lo, hi = ratio_interval(key_ok, key_floor, 0.99)
        print(
            f"  ratio p99 key-to-last-OK / p99 floor: {key99 / kfloor99:.2f} (goal <= 3; by chance {lo:.2f} to {hi:.2f})"
        )
        print(
            f"  ratio p99 key-to-last-OK / p99 floor x{CONTROLLERS}: {key99 / kfloor4_99:.2f} (as many ptys as controllers)"
        )
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.terminate()
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                proc.kill()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=100, help="emergency calls in this process (default 100)")
    ap.add_argument("--key-runs", type=int, default=30, help="F12 presses in the running console (default 30)")
    ap.add_argument(
        "--supervised",
        action="store_true",
        help="keep the bench's socket client attached while F12 goes in (a remote supervisor watching)",
    )
    os.chdir(Path(__file__).resolve().parent.parent)
    args = ap.parse_args()
    asyncio.run(main(args.runs, args.key_runs, args.supervised))
