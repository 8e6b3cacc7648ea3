"""bench_remote's consoles: real :class:`RemoteStation` clients in a child process, timing every snapshot."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from console.common.api import StationSnapshot
from console.remote.client import RemoteStation


class TimedRemote(RemoteStation):
    """Notes, for every snapshot decoded, how long after its newest sample it arrived."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.delays: list[float] = []
        self.every: dict[str, list[float]] = {}
        """Per cuff: the delay of that cuff's own newest sample in each snapshot."""
        self.transit: list[float] = []
        self.frames = 0
        self.measuring = False

    def _accept(self, snap: StationSnapshot) -> None:
        super()._accept(snap)
        now = time.time()
        ages = [c.sample_age_s for c in snap.cuffs if c.sample_age_s is not None]
        if ages and self.measuring:
            self.delays.append(now - (snap.time - min(ages)))
            for c in snap.cuffs:
                if c.sample_age_s is not None:
                    self.every.setdefault(c.id, []).append(now - (snap.time - c.sample_age_s))
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
    every: dict[str, list[float]] = {}
    for r in remotes:
        for cid, ds in r.every.items():
            every.setdefault(cid, []).extend(ds)
    transit = [d for r in remotes for d in r.transit]
    fps = [r.frames / wall for r in remotes]
    connected = all(r.connected for r in remotes)
    got = {"delays": delays, "every": every, "transit": transit, "fps": fps, "connected": connected}
    print(json.dumps(got), flush=True)
    for r in remotes:
        await r.close()
