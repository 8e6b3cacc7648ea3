"""How long records calls hold the station's loop, and what a durable commit costs here.

Run: .venv/bin/python bench/bench_records.py [data_dir]   (default: a temporary directory)

Prints figures; asserts nothing. The loop-side cost is what matters for the
budgets (the writer thread takes the fsync); the commit figure shows the disk.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.stats import pct  # noqa: E402
from console.records.store import Records  # noqa: E402

T0 = 1_800_000_000.0
CUFFS = [f"C{i:02d}" for i in range(16)]


def show(name: str, xs: list[float], unit: float = 1e6, label: str = "us") -> None:
    print(
        f"{name:<44} n={len(xs):>6}  p50 {pct(xs, 0.50) * unit:8.1f} {label}  p99 {pct(xs, 0.99) * unit:8.1f} {label}"
        f"  max {max(xs) * unit:8.1f} {label}"
    )


async def loop_stall(r: Records | None, sid: int, seconds: float) -> list[float]:
    """A 16-cuff station at 100x real time: 16 session_sample calls every 10 ms; ticker lateness measured."""
    late: list[float] = []
    stop = time.perf_counter() + seconds

    async def ticker() -> None:
        while time.perf_counter() < stop:
            t = time.perf_counter()
            await asyncio.sleep(0.001)
            late.append(time.perf_counter() - t - 0.001)

    async def writer() -> None:
        t = 0
        while r is not None and time.perf_counter() < stop:
            for c in CUFFS:
                r.session_sample(sid, c, T0 + 10_000 + t, 150, 160, 170, 160, 0.98)
            t += 1
            await asyncio.sleep(0.01)

    await asyncio.gather(ticker(), writer())
    return late


def main() -> None:
    base = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="bench-records-"))
    print(f"records in {base}")
    r = Records.open(base)
    r.add_patient("BENCH", at=T0)
    sid = r.start_session("BENCH", cuffs=CUFFS, plan_id="b", plan_name="bench", started_at=T0)

    sample_cost = []
    for t in range(600):  # a 10-minute session, 16 cuffs, 1 row a second each
        for c in CUFFS:
            a = time.perf_counter()
            r.session_sample(sid, c, T0 + t, 150.0, 160.0, 170.0, 160.0, 0.97)
            sample_cost.append(time.perf_counter() - a)
    a = time.perf_counter()
    r.flush()
    drain = time.perf_counter() - a
    show("session_sample() on the caller", sample_cost)
    print(f"{'drain 9,600 queued rows (flush)':<44} {drain * 1e3:.1f} ms  ({9600 / max(drain, 1e-9):,.0f} rows/s)")

    alarm_cost, commit = [], []
    for i in range(200):
        a = time.perf_counter()
        r.record_alarm("low", "BENCH", f"alarm {i}", raised_at=T0 + i)
        alarm_cost.append(time.perf_counter() - a)
        a = time.perf_counter()
        r.flush()  # the alarm is urgent: this waits for its durable commit
        commit.append(time.perf_counter() - a)
    show("record_alarm() on the caller", alarm_cost)
    show("durable commit round trip (alarm + flush)", commit, 1e3, "ms")

    show("1 ms ticker lateness, no records (baseline)", asyncio.run(loop_stall(None, sid, 3.0)))
    show("1 ms ticker lateness, 16 cuffs at 100x", asyncio.run(loop_stall(r, sid, 3.0)))
    r.end_session(sid, "completed", ended_at=T0 + 600, sets_done=1, reps_per_set=[1], occlusion_s=600, fidelity=0.97)
    print(f"health: {r.health()}")
    r.close()
    print(f"file size: {(base / 'records.sqlite3').stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
