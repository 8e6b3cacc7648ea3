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
   (``1/fps``) of waiting for the next push, by design. The same for every
   cuff (each cuff's own newest sample, not only the freshest of the 16):
   pooled p50/p99 and the worst cuff's p99.
   Also the snapshot-to-console part alone (``now - snapshot.time``): what the
   socket, the JSON and the push schedule add, without the station's own
   snapshot caching.
3. Frames per second each console received, and frames the server skipped.

``--hostile`` (issue 13; run as root, which it needs to become other users): the same station,
now with its records, and the consoles (as the station's user) measured twice in the same
process: a quiet run, then a run with ``--hostile-connections`` (200) connections from 25 other
users misbehaving in every way :mod:`bench.remote_hostile` lists, and one more observer flooding
emergency deflates. Printed for both: the station's CPU share, sample-to-console p50/p99, its
memory (RSS); for the hostile run also every emergency answered, how many were carried out and
merged, how long a cuff an operator inflates during the flood stays up before the flood's next
emergency deflates it (against a direct emergency in the quiet run), and what the server refused
or cut off.
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

from bench.remote_consoles import consoles  # noqa: E402
from bench.remote_hostile import flooder, fork_as, hostile  # noqa: E402
from bench.stats import cpu_share, pct  # noqa: E402
from console.common.api import Role  # noqa: E402
from console.config.loader import parse_config  # noqa: E402
from console.config.schema import RoleRule  # noqa: E402
from console.records.store import Records  # noqa: E402
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


async def main(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bfr-bench-remote-"))
    socket = tmp / "run" / "bfr.sock"
    station = Station(station_config(tmp, socket))
    await station.start()
    server = StationServer(station, socket, (), fps=args.fps, max_per_user=max(4, args.clients))
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
        every: dict[str, list[float]] = {}
        transit: list[float] = []
        fps: list[float] = []
        connected = True
        for proc in procs:
            assert proc.stdout is not None
            got = json.loads(await asyncio.wait_for(proc.stdout.readline(), 60))
            delays += got["delays"]
            for cid, ds in got["every"].items():
                every.setdefault(cid, []).extend(ds)
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
        pooled = [d for ds in every.values() for d in ds]
        worst = max(every, key=lambda cid: pct(every[cid], 0.99)) if every else "-"
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
            f"sample-to-console delay, every cuff's own newest sample: p50 {pct(pooled, 0.5) * 1000:.1f} ms, "
            f"p99 {pct(pooled, 0.99) * 1000:.1f} ms; worst cuff {worst} p99 "
            f"{pct(every.get(worst, []), 0.99) * 1000:.1f} ms"
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


NOGROUP = 65534
HOSTILE_UID = 61000
FLOOD_UID = 61100


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def start_consoles(socket: Path, args: argparse.Namespace) -> list[asyncio.subprocess.Process]:
    per = [args.clients // args.procs + (1 if i < args.clients % args.procs else 0) for i in range(args.procs)]
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--child", str(socket), "--clients", str(n), "--seconds", str(args.seconds),
            stdout=asyncio.subprocess.PIPE, limit=1 << 26,
        )
        for n in per
        if n
    ]  # fmt: skip
    for proc in procs:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        if line.strip() != b"ready":
            raise SystemExit(f"consoles did not start: {line!r}")
    return procs


async def console_figures(procs: list[asyncio.subprocess.Process]) -> dict[str, float]:
    delays: list[float] = []
    every: list[float] = []
    connected = True
    for proc in procs:
        assert proc.stdout is not None
        got = json.loads(await asyncio.wait_for(proc.stdout.readline(), 120))
        delays += got["delays"]
        every += [d for ds in got["every"].values() for d in ds]
        connected = connected and got["connected"]
        await proc.wait()
    return {
        "p50": pct(delays, 0.5) * 1000,
        "p99": pct(delays, 0.99) * 1000,
        "every_p99": pct(every, 0.99) * 1000,
        "n": len(delays),
        "ok": connected,
    }


async def until_vented(station: Station, timeout: float = 5.0) -> float | None:
    """Seconds until the controller behind A1 has target 0 (polled every ms), or None."""
    fw = station.emulators["A"].firmware
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if fw.channel(1).target == 0:
            return time.perf_counter() - t0
        await asyncio.sleep(0.001)
    return None


async def operator_probe(station: Station, seconds: float, direct: bool) -> tuple[list[float], int]:
    """Every second an operator inflates A1; then the emergency (``direct``: our own; else the flood's) deflates it."""
    latencies: list[float] = []
    missed = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end - 1.0:
        await asyncio.sleep(0.7)
        try:
            with station.acting_as("bench-operator@uid0", "operator"):
                await station.inflate("A1", mmhg=100)
        except Exception:  # noqa: BLE001 - refused (an unconfirmed emergency): try again next round
            continue
        if direct:
            with station.acting_as("bench-operator@uid0", "operator"):
                fired = asyncio.ensure_future(station.emergency_deflate())
        got = await until_vented(station)
        if direct:
            await fired
        if got is None:
            missed += 1
            if os.environ.get("BFR_BENCH_DEBUG"):
                fw = station.emulators["A"].firmware.channel(1)
                cuff = station.cuffs["A1"]
                print(
                    f"MISSED: station target {cuff.target} fw target {fw.target} state {fw.state} "
                    f"emergency {station.snapshot().emergency}",
                    file=sys.stderr,
                )
        else:
            latencies.append(got)
    return latencies, missed


async def measured(
    station: Station, socket: Path, args: argparse.Namespace, *, direct: bool
) -> tuple[dict[str, float], float, float, list[float], int]:
    procs = await start_consoles(socket, args)
    await asyncio.sleep(0.5)
    peak = [rss_mb()]

    async def sample_rss() -> None:
        while True:
            peak.append(rss_mb())
            await asyncio.sleep(0.2)

    lags: list[float] = []

    async def loop_lag() -> None:
        """How late a 10 ms sleep wakes: the station's own loop, apart from what the consoles' process suffers."""
        loop = asyncio.get_running_loop()
        while True:
            t = loop.time()
            await asyncio.sleep(0.01)
            lags.append(loop.time() - t - 0.01)

    sampler = asyncio.create_task(sample_rss())
    lagger = asyncio.create_task(loop_lag())
    probe = asyncio.create_task(operator_probe(station, args.seconds, direct))
    cpu = await cpu_share(args.seconds)
    sampler.cancel()
    lagger.cancel()
    latencies, missed = await probe
    figures = await console_figures(procs)
    figures["lag_p99"] = pct(lags, 0.99) * 1000
    return figures, cpu, max(peak), latencies, missed


GC_PAUSES: list[float] = []


def _gc_timer() -> None:
    import gc

    started = [0.0]

    def note(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        elif info["generation"] == 2:
            GC_PAUSES.append(time.perf_counter() - started[0])

    gc.callbacks.append(note)


def run_hostile(args: argparse.Namespace) -> None:
    if os.geteuid() != 0:
        raise SystemExit("--hostile needs root: its hostile clients run as other users (setuid in forked children)")
    tmp = Path(tempfile.mkdtemp(prefix="bfr-bench-hostile-"))
    os.chmod(tmp, 0o711)
    socket = tmp / "run" / "bfr.sock"
    children = [
        fork_as(HOSTILE_UID + k, NOGROUP, lambda: hostile(str(socket), args.seconds + 6.0))
        for k in range(args.hostile_connections // 8)
    ]
    flood = fork_as(FLOOD_UID, NOGROUP, lambda: flooder(str(socket), (args.seconds + 6.0) * (not args.no_flood)))
    _gc_timer()
    try:
        asyncio.run(hostile_main(args, tmp, socket, children, flood))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


async def hostile_main(
    args: argparse.Namespace, tmp: Path, socket: Path, children: list[tuple[int, int, int]], flood: tuple[int, int, int]
) -> None:
    records = Records.open(tmp / "var")
    station = Station(station_config(tmp, socket), records=records)
    await station.start()
    rules = [RoleRule(role=Role.OBSERVER, group="nogroup")]
    server = StationServer(station, socket, rules, fps=args.fps, group=NOGROUP)
    await server.start()
    try:
        for cuff in [c.id for c in station.snapshot().cuffs][2::2]:
            await station.inflate(cuff, mmhg=100)
        await asyncio.sleep(2.0)
        quiet = await measured(station, socket, args, direct=True)
        rows0 = len(records.commands())
        os.write(flood[1], b"g")  # the flooder first: once attached it keeps its place
        await asyncio.sleep(0.3)
        for _, go, _ in children:
            os.write(go, b"g")
        await asyncio.sleep(0.5)
        attached_peak = 0

        async def watch_clients() -> None:
            nonlocal attached_peak
            while True:
                attached_peak = max(attached_peak, len(server.clients))
                await asyncio.sleep(0.1)

        watcher = asyncio.create_task(watch_clients())
        loud = await measured(station, socket, args, direct=False)
        watcher.cancel()
        results = [json.loads(await asyncio.to_thread(_read_all, out)) for _, _, out in (*children, flood)]
        for pid, _, _ in (*children, flood):
            os.waitpid(pid, 0)
        flood_got = results[-1]
        hostile_got: dict[str, int] = {}
        for r in results[:-1]:
            for k, v in r.items():
                hostile_got[k] = hostile_got.get(k, 0) + v
        records.flush()
        print_hostile(args, quiet, loud, flood_got, hostile_got, server, records, rows0, attached_peak)
    finally:
        await server.stop()
        await station.stop()
        records.close()


def _read_all(fd: int) -> str:
    with os.fdopen(fd, "rb") as f:
        return f.read().decode() or '{"error": "nothing"}'


def print_hostile(
    args: argparse.Namespace,
    quiet: tuple[dict[str, float], float, float, list[float], int],
    loud: tuple[dict[str, float], float, float, list[float], int],
    flood: dict[str, Any],
    hostile_got: dict[str, int],
    server: StationServer,
    records: Records,
    rows0: int,
    attached_peak: int,
) -> None:
    (qc, qcpu, qrss, qlat, qmiss), (hc, hcpu, hrss, hlat, hmiss) = quiet, loud
    print(f"station: 16 cuffs at 100 Hz, records on, {args.clients} consoles measured, {os.cpu_count()} cores")
    print(f"{'':24}{'quiet':>14}{'hostile':>14}")
    print(f"{'station CPU share':24}{qcpu * 100:13.1f}%{hcpu * 100:13.1f}%")
    print(f"{'sample-to-console p50':24}{qc['p50']:12.1f}ms{hc['p50']:12.1f}ms")
    print(f"{'sample-to-console p99':24}{qc['p99']:12.1f}ms{hc['p99']:12.1f}ms")
    print(f"{'... every cuff, p99':24}{qc['every_p99']:12.1f}ms{hc['every_p99']:12.1f}ms")
    print(f"{'station loop lag p99':24}{qc['lag_p99']:12.1f}ms{hc['lag_p99']:12.1f}ms")
    print(f"full garbage collections: {len(GC_PAUSES)}, longest {max(GC_PAUSES, default=0) * 1000:.1f} ms")
    print(f"{'station RSS (peak)':24}{qrss:12.1f}MB{hrss:12.1f}MB")
    print(f"{'consoles all connected':24}{qc['ok']!s:>14}{hc['ok']!s:>14}")
    print(
        f"{'cuff up -> vented':24}{_ms(qlat):>14}{_ms(hlat):>14}   (quiet: a direct emergency; hostile: the flood's "
        f"next; missed: {qmiss} / {hmiss})"
    )
    print(
        f"flood: {flood.get('sent', 0)} emergency deflates sent by an observer ({flood.get('role')}), "
        f"{flood.get('ok', 0)} answered ok, {flood.get('failed', 0)} failed, {flood.get('cut_off', 0)} times cut off "
        f"for not reading its answers ({flood.get('unanswered_when_cut', 0)} then unanswered); at the station "
        f"{server.emergencies.started} carried out, {server.emergencies.merged} merged into one in progress; "
        f"{len(records.emergencies())} emergency rows in all"
    )
    print(
        f"hostile: {args.hostile_connections} connection slots over {args.hostile_connections // 8} users: "
        f"{hostile_got.get('connects', 0)} connects, {hostile_got.get('attached', 0)} attached, "
        f"{hostile_got.get('refused', 0)} refused (caps), {hostile_got.get('commands_sent', 0)} operator commands, "
        f"{hostile_got.get('garbage_sent', 0)} garbage lines; at most {attached_peak} consoles attached at once"
    )
    h = records.health()
    print(
        f"server: {server.refused} refused, {server.cut_off} cut off, {server.closed_for_garbage} closed for garbage; "
        f"audit rows written during the hostile run: {len(records.commands()) - rows0}; records queue now "
        f"{h.queued}, rows lost {h.failed_writes}"
    )


def _ms(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"{pct(values, 0.5) * 1000:.0f}/{pct(values, 0.99) * 1000:.0f}ms"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--fps", type=float, default=20.0)
    parser.add_argument("--procs", type=int, default=4, help="child processes the consoles are spread over")
    parser.add_argument("--child", metavar="SOCKET", help=argparse.SUPPRESS)
    parser.add_argument("--hostile", action="store_true", help="issue 13: a quiet run, then hostile users (root)")
    parser.add_argument("--hostile-connections", type=int, default=200)
    parser.add_argument("--no-flood", action="store_true", help="the hostile connections alone, no emergency flood")
    ns = parser.parse_args()
    if ns.child:
        asyncio.run(consoles(ns.child, ns.clients, ns.seconds))
    elif ns.hostile:
        run_hostile(ns)
    else:
        asyncio.run(main(ns))
