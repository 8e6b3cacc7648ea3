"""How fast the station answers each controller fault: fault -> alarm, fault -> cuff vented.

Run: ``.venv/bin/python bench/bench_faults.py [--runs 5]``. Prints one row per fault; asserts nothing.

A real Station with real links on the shipped config's safety settings (link timeout 0.5 s,
deflate confirmation 0.25 s, controller watchdog 1 s, 100 Hz) drives two in-process emulated
controllers over real pseudo-terminals in real time. Each run inflates cuff A1 to 100 mmHg,
waits until it holds, switches one fault on, and times, from that moment, the station's alarm
and the moment the emulator's channel is vented (valve open, target 0, under 10 mmHg), or the
alarm alone for faults where the cuff is meant to stay up. The README's safety table quotes it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stats import pct  # noqa: E402
from console.config.loader import parse_config  # noqa: E402
from console.station.station import Station  # noqa: E402
from drivers.emulator.firmware import ControllerFirmware  # noqa: E402


def config(tmp: Path) -> Any:
    ctrls = [
        {
            "id": cid,
            "port": "emulator",
            "watchdog_ms": 1000,
            "stream_hz": 100,
            "emulator": {"channels": 2, "lop": [200.0, 190.0], "pulse_mmhg": 1.0, "seed": i + 1},
        }
        for i, cid in enumerate("AB")
    ]
    cuffs = [
        {"id": f"{cid}{ch}", "controller": cid, "channel": ch, "limb": "leg", "label": f"{cid}{ch}"}
        for cid in "AB"
        for ch in (1, 2)
    ]
    data = {
        "station": {"name": "bench", "data_dir": str(tmp / "var"), "socket": str(tmp / "var/s/bfr.sock")},
        "safety": {"link_timeout_s": 0.5, "deflate_confirm_s": 0.25},
        "controllers": ctrls,
        "cuffs": cuffs,
    }
    return parse_config(data, str(tmp / "config.toml"))


@dataclass
class Result:
    alarm_s: list[float]
    vent_s: list[float]
    alarm: str = ""


def venting(fw: ControllerFirmware, ch: int) -> bool:
    c = fw.channel(ch)
    return c.target == 0 and c.valve_open


def vented(fw: ControllerFirmware, ch: int) -> bool:
    return venting(fw, ch) and fw.channel(ch).pressure < 10


async def until(cond: Callable[[], object], limit_s: float) -> float | None:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit_s:
        if cond():
            return time.perf_counter() - t0
        await asyncio.sleep(0.005)
    return None


Inject = Callable[[Station], Awaitable[None]]


async def no_samples(st: Station) -> None:
    st.emulators["A"].firmware.faults.no_samples = True


async def wrong_channel_count(st: Station) -> None:
    st.emulators["A"].firmware.faults.sample_channels = 3


async def silent(st: Station) -> None:
    st.emulators["A"].firmware.faults.silent = True


async def unplug(st: Station) -> None:
    await st.emulators["A"].unplug()


async def deflate_refused(st: Station) -> None:
    st.emulators["A"].firmware.faults.deflate_refused.add(1)
    try:
        await st.deflate("A1")
    except Exception:
        pass  # refused with a sentence: the retries and the alarms are what is timed


async def leak_beyond_pump(st: Station) -> None:
    await st.deflate("A1")
    await until(lambda: vented(st.emulators["A"].firmware, 1), 10)
    st.emulators["A"].firmware.faults.leak[1] = 60.0
    await st.inflate("A1", mmhg=110)


async def swapped_controller(st: Station) -> None:
    impostor = ControllerFirmware(channels=2, lops=[180.0, 170.0], seed=9, serial="EMU-B")
    await st.emulators["A"].replug(firmware=impostor)


async def emergency(st: Station) -> None:
    await st.emergency_deflate()


FAULTS: list[tuple[str, Inject, str, bool]] = [
    ("answers, but no samples", no_samples, "LINK_LOST", True),
    ("samples with the wrong channel count", wrong_channel_count, "LINK_LOST", True),
    ("silent (answers nothing)", silent, "LINK_LOST", True),
    ("port unplugged", unplug, "LINK_LOST", True),
    ("DEFLATE refused on one channel", deflate_refused, "DEFLATE_UNCONFIRMED", False),
    ("  ... and the cuff stays up", deflate_refused, "RESIDUAL_PRESSURE", False),
    ("leak larger than the pump", leak_beyond_pump, "NOT_REACHED", False),
    ("another controller behind the port", swapped_controller, "WRONG_CONTROLLER", False),
    ("F12 emergency deflate", emergency, "", True),
]


async def one(tmp: Path, inject: Inject, cause: str, vents: bool) -> tuple[float | None, float | None, float | None]:
    st = Station(config(tmp))
    await st.start()
    try:
        fw = st.emulators["A"].firmware
        await st.inflate("A1", mmhg=100)
        await until(lambda: fw.channel(1).state == "HOLDING", 15)
        await asyncio.sleep(0.5)
        t0 = time.perf_counter()
        task = asyncio.ensure_future(inject(st))

        def alarmed() -> bool:
            return any(a.cause == cause and a.active for a in st.snapshot().alarms)

        alarm_at = open_at = vent_at = None
        if cause:
            waited = await until(alarmed, 30)
            alarm_at = None if waited is None else time.perf_counter() - t0
        if vents:
            waited = await until(lambda: venting(fw, 1), 30)
            open_at = None if waited is None else time.perf_counter() - t0
            waited = await until(lambda: vented(fw, 1), 30)
            vent_at = None if waited is None else time.perf_counter() - t0
        await task
        return alarm_at, open_at, vent_at
    finally:
        await st.stop()


def row(label: str, values: list[float | None]) -> str:
    got = [v for v in values if v is not None]
    if not values:
        return f"{'-':>22}"
    if not got:
        return f"{'never':>22}"
    missed = len(values) - len(got)
    text = f"{pct(got, 0.5):5.2f} s (max {max(got):5.2f})"
    return f"{text:>22}" + (f" {missed} missed" if missed else "")


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="runs per fault (default 5)")
    args = ap.parse_args()
    logging.disable(logging.CRITICAL)  # every fault logs warnings by design; the table is the output
    print(f"bench_faults: {args.runs} runs per fault; link timeout 0.5 s, confirm 0.25 s, watchdog 1 s, 100 Hz")
    print(f"{'fault':<38} {'alarm':<20} {'fault -> alarm':>22} {'-> valve open':>22} {'-> under 10 mmHg':>22}")
    for label, inject, cause, vents in FAULTS:
        alarms: list[float | None] = []
        opens: list[float | None] = []
        vents_s: list[float | None] = []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory(prefix="bfr-bench-faults-") as tmp:
                a, o, v = await one(Path(tmp), inject, cause, vents)
            if cause:
                alarms.append(a)
            if vents:
                opens.append(o)
                vents_s.append(v)
        cells = f"{row(label, alarms)} {row(label, opens)} {row(label, vents_s)}"
        print(f"{label:<38} {cause or '-':<20} {cells}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
