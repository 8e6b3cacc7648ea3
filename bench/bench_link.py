"""Link benchmark: the bare pty round trip, a PING through the link, and parse throughput.

Run: ``.venv/bin/python bench/bench_link.py``. Prints figures; asserts nothing.

1. Floor: one line out and back over a raw ``os.openpty`` pair, pyserial-asyncio-fast
   on one end and a raw echo (``loop.add_reader``) on the other.
2. PING through :class:`drivers.link.CuffLink` against the emulator over a pty,
   with the stream off and at 100 Hz; ratio of its p99 to the floor's p99 (goal <= 2);
   and ``deflate_all_now()`` until its OK (the emulator vents 4 channels on it).
3. Samples per CPU-second the link parses: pre-framed ``S`` lines through the
   reader path (LineReader, parse, checks, listener), timed with ``process_time``.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
import tty
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stats import pct
from drivers.codec import LineReader, frame, sample_body
from drivers.link import CuffLink
from drivers.link_connection import Connection
from drivers.link_errors import HelloInfo
from drivers.serial_port import open_port

TRIPS = 2000
WARMUP = 100


def describe(label: str, values_s: list[float]) -> tuple[float, float]:
    ms = [v * 1000 for v in values_s]
    p50, p99 = pct(ms, 0.50), pct(ms, 0.99)
    print(f"  {label:<38} p50 {p50:7.3f} ms   p99 {p99:7.3f} ms   mean {statistics.fmean(ms):7.3f} ms   n={len(ms)}")
    return p50, p99


class FloorPair:
    """A raw pty pair: pyserial-asyncio-fast on the slave end, a raw echo on the master end."""

    async def open(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.master)
        tty.setraw(self.slave)
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(self.master, self._echo)
        self.reader, self.writer = await open_port(os.ttyname(self.slave))
        self.line = frame("#1 PING")

    def _echo(self) -> None:
        try:
            data = os.read(self.master, 4096)
        except OSError:
            return
        os.write(self.master, data)

    async def trip(self) -> float:
        t0 = time.perf_counter()
        self.writer.write(self.line)
        await self.reader.readline()
        return time.perf_counter() - t0

    async def close(self) -> None:
        self.writer.transport.abort()
        self.loop.remove_reader(self.master)
        await asyncio.sleep(0.05)
        os.close(self.master)
        os.close(self.slave)


async def interleaved(stream_hz: int | None) -> tuple[list[float], list[float], list[float], CuffLink | None]:
    """Floor trips, alternating trip by trip with link PINGs (same noise for both), if stream_hz is given."""
    floor = FloorPair()
    await floor.open()
    link = emu = None
    if stream_hz is not None:
        from drivers.emulator.firmware import ControllerFirmware
        from drivers.emulator.pty_port import PtyEmulator

        emu = PtyEmulator(ControllerFirmware(channels=4, lops=[180.0, 200.0, 220.0, 240.0], seed=1))
        path = await emu.start()
        link = CuffLink(path, name="bench", stream_hz=stream_hz, answer_timeout=1.0)
        link.add_listener(lambda msg: None)
        await link.start()
        await link.wait_ready(5.0)
    floor_times: list[float] = []
    link_times: list[float] = []
    deflate_times: list[float] = []
    try:
        for i in range(TRIPS + WARMUP):
            ft = await floor.trip()
            if link is not None:
                t0 = time.perf_counter()
                await link.command("PING")
                lt = time.perf_counter() - t0
                t0 = time.perf_counter()
                await link.deflate_all_now()
                dt = time.perf_counter() - t0
            if i >= WARMUP:
                floor_times.append(ft)
                if link is not None:
                    link_times.append(lt)
                    deflate_times.append(dt)
    finally:
        if link is not None:
            await link.stop()
        if emu is not None:
            await emu.stop()
        await floor.close()
    return floor_times, link_times, deflate_times, link


def parse_throughput(n: int = 200_000, chunk_lines: int = 1) -> float:
    """Samples parsed per CPU-second; ``chunk_lines`` lines arrive per read."""
    link = CuffLink("bench://", name="parse")
    link.info = HelloInfo(1, "EMU-4", "1.0", "E0001", 4, 300.0, (10, 25, 50, 100))
    seen = 0

    def listener(msg: object) -> None:
        nonlocal seen
        seen += 1

    link.add_listener(listener)
    loop = asyncio.new_event_loop()  # for the Connection's future; the reader path itself needs no running loop
    conn = Connection(None, LineReader(), loop.create_future())  # type: ignore[arg-type]  # no writer: nothing is sent
    lines = [frame(sample_body(i * 10, [182.4 + (i % 7) * 0.1, 181.9, 0.3, 120.0])) for i in range(1000)]
    chunks = [b"".join(lines[i : i + chunk_lines]) for i in range(0, len(lines), chunk_lines)]
    rounds = n // len(lines)
    t0 = time.process_time()
    for _ in range(rounds):
        for chunk in chunks:
            link._on_data(conn, chunk)
    cpu = time.process_time() - t0
    loop.close()
    assert seen == rounds * len(lines), "bench bug: samples lost"
    return seen / cpu


async def main() -> None:
    print(f"CUFF-LINK/1 link benchmark  (python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {TRIPS} trips each)")
    print("round trip of one line (floor and link trips alternate, so both see the same machine noise):")
    floor, _, _, _ = await interleaved(None)
    describe("floor alone: raw pty echo", floor)
    for hz in (0, 100):
        try:
            floor, times, deflates, link = await interleaved(hz)
        except ImportError as exc:
            print(f"  link PING: emulator not available ({exc})")
            break
        assert link is not None
        _, floor_p99 = describe(f"floor, beside the {hz} Hz run", floor)
        _, p99 = describe(f"link PING vs emulator, stream {hz} Hz", times)
        print(
            f"  {'':<38} p99/floor p99 = {p99 / floor_p99:5.2f}x (goal <= 2x)   "
            f"timeouts={link.stats.timeouts} samples={link.stats.samples}"
        )
        _, p99 = describe(f"deflate_all_now() until its OK, {hz} Hz", deflates)
        print(f"  {'':<38} p99/floor p99 = {p99 / floor_p99:5.2f}x")
    print("parse throughput (S lines with 4 channels, reader path + one listener):")
    for per_read in (1, 16):
        rate = parse_throughput(chunk_lines=per_read)
        print(
            f"  {per_read:>2} line(s) per read: {rate:>10,.0f} samples/CPU-s"
            f"  = {rate / 100:,.0f} controllers at 100 Hz per core"
        )


if __name__ == "__main__":
    asyncio.run(main())
