"""kill -9 during a real session: the records lose at most 0.5 s, and duration and occlusion agree.

A child process runs a real Station with therapy on its emulated controllers (real
clock: the point is what a real process has committed when it dies) and a real
records file, starts a session and prints the wall time of each sample it feeds.
The parent kills it with SIGKILL about 4 s into the session, late in a wall-clock
second (the worst moment for per-second rows), and reopens the file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from console.records.store import Records

ROOT = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from console.records.store import Records
    from console.station.station import Station
    from console.therapy.manager import TherapyManager
    from tests.therapy_support import therapy_config

    async def main(tmp: Path) -> None:
        records = Records.open(tmp / "var")
        st = Station(therapy_config(tmp), records=records)
        tm = TherapyManager(st)
        st.attach_sessions(tm)
        await st.start()
        while not all(c.online and c.pressure is not None for c in st.snapshot().cuffs):
            await asyncio.sleep(0.02)
        await st.set_lop("A1", 200, position="seated", cuff_width_cm=11.5, source="doppler")
        offset = st.clock.wall() - st.clock.monotonic()
        last = [0.0]
        held = [False]
        prev = [None]
        stalled = [0.0]

        def fed(cuff: str, t: float, p: float, taken: float) -> None:
            if cuff != "A1":
                return
            if prev[0] is not None and t - prev[0] > 0.2:
                stalled[0] += t - prev[0]  # a busy machine held the samples back: not counted as occlusion
            prev[0] = t
            if t - last[0] >= 0.05:
                last[0] = t
                if not held[0] and st.cuffs["A1"].target > 0:
                    held[0] = True  # the station has the cuff's first target: occlusion counts from here
                    print(f"held {t + offset:.3f}", flush=True)
                print(f"fed {t + offset:.3f} {stalled[0]:.3f}", flush=True)

        await st.start_session(["A1"], "tiny", "P-001")
        print(f"started {records.sessions()[-1].id}", flush=True)
        st.add_sample_listener(fed)
        await asyncio.sleep(60)

    asyncio.run(main(Path(sys.argv[1])))
    """
)


def test_sigkill_four_seconds_into_a_session_loses_at_most_half_a_second(tmp_path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    killer = threading.Timer(90.0, child.kill)  # never hang the suite if the child misbehaves
    killer.start()
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        while line.startswith("fed"):
            line = child.stdout.readline()
        assert line.startswith("started"), (line, child.stderr.read() if child.stderr else "")
        sid = int(line.split()[1])
        with Records.open(tmp_path / "var", readonly=True) as r:
            started_at = r.session(sid).started_at
        last_fed = 0.0
        stalled = 0.0
        held_at: float | None = None
        deadline = time.monotonic() + 30.0
        # Kill late in a wall-clock second: a record kept only in whole seconds would lose over 0.7 s here.
        while not (last_fed >= started_at + 4.0 and 0.7 <= last_fed % 1.0 <= 0.95) and time.monotonic() < deadline:
            line = child.stdout.readline()
            if line.startswith("fed"):
                last_fed, stalled = (float(x) for x in line.split()[1:])
            elif line.startswith("held"):
                held_at = float(line.split()[1])
        assert last_fed >= started_at + 4.0, "the child never got 4 s into its session"
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    finally:
        killer.cancel()
    assert child.returncode == -signal.SIGKILL
    assert held_at is not None, "the cuff never got its target"

    with Records.open(tmp_path / "var") as r:
        assert r.recovered == (sid,)
        s = r.session(sid)
        assert s.end_reason == "crash" and s.ended_at is not None and s.occlusion_s is not None
        lost = last_fed - s.ended_at  # the child fed at least up to last_fed before it died
        duration = s.ended_at - s.started_at
        print(f"fed up to {last_fed - started_at:.2f} s, kept {duration:.2f} s (lost <= {lost:.2f} s)")
        print(f"occlusion {s.occlusion_s:.2f} s of a {duration:.2f} s session")
        assert lost <= 0.5
        assert duration >= 3.5
        # Both figures come from the same samples: never more occlusion than session, and the gap is
        # the time the cuff took to get its first target after the start (as the child saw it, to
        # 0.05 s), plus the stalls of a busy machine (samples held back over 0.2 s: not counted as
        # occlusion; under .ci/stress they once came to over a second).
        to_target = held_at - s.started_at
        print(f"first target {to_target:.2f} s after the start, samples stalled {stalled:.2f} s in all")
        assert 0.0 <= duration - s.occlusion_s
        assert to_target - 0.1 <= duration - s.occlusion_s <= to_target + stalled + 0.3
        samples = r.samples(sid, "A1")
        assert samples[-1].t_end is not None and samples[-1].t_end == s.ended_at
        assert sum(x.held_s or 0.0 for x in samples) == s.occlusion_s
