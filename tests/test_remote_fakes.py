"""An in-memory StationHandle for the remote tests: real sockets, fake cuffs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from console.common.api import (
    AlarmSnapshot,
    CommandRefused,
    ControllerSnapshot,
    CuffSnapshot,
    EmergencySnapshot,
    Priority,
    StationSnapshot,
)


def make_cuff(i: int, trace_points: int = 100) -> CuffSnapshot:
    return CuffSnapshot(
        id=f"C{i}",
        label=f"cuff {i}",
        limb="leg",
        controller="rack",
        channel=i,
        state="HOLDING",
        online=True,
        pressure=100.0 + i,
        target=120.0,
        lop=200.0,
        target_pct_lop=60.0,
        pressure_pct_lop=50.0,
        max_pct_lop=100.0,
        tolerance=15.0,
        latched=False,
        occlusion_s=0.0,
        occlusion_warn_s=540.0,
        occlusion_limit_s=600.0,
        trace=tuple(100.0 + i + k / 7 for k in range(trace_points)),
        samples=0,
        sample_age_s=0.0,
    )


class FakeStation:
    """Counts what it is asked; ``tick()`` makes a new sample visible on every cuff."""

    def __init__(self, cuffs: int = 4, trace_points: int = 100, name: str = "Bay T") -> None:
        self._snap = StationSnapshot(
            name=name,
            time=time.time(),
            cuffs=tuple(make_cuff(i, trace_points) for i in range(1, cuffs + 1)),
            controllers=(ControllerSnapshot(id="rack", port="emu", state="ready"),),
            alarms=(),
            seq=1,
        )
        self.observers: list[Callable[..., Any]] = []
        self.records: list[tuple[str, str]] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.emergencies = 0
        self.hold: asyncio.Event | None = None
        """When set, inflate waits on it: a command stuck in the station."""
        self.alarms: list[AlarmSnapshot] = []

    def add_observer(self, fn: Callable[..., Any]) -> None:
        self.observers.append(fn)

    def remove_observer(self, fn: Callable[..., Any]) -> None:
        self.observers.remove(fn)

    def record_command(self, who: str, what: str) -> None:
        self.records.append((who, what))

    def tick(self, pressure: float | None = None) -> StationSnapshot:
        s = self._snap
        cuffs = tuple(
            replace(c, pressure=pressure if pressure is not None else (c.pressure or 0) + 0.5, samples=c.samples + 1)
            for c in s.cuffs
        )
        self._snap = replace(s, cuffs=cuffs, seq=s.seq + 1, time=time.time())
        for fn in self.observers:
            fn()
        return self._snap

    def raise_alarm(self, cause: str) -> None:
        alarm = AlarmSnapshot(
            id=len(self.alarms) + 1,
            priority=Priority.MEDIUM,
            cause=cause,
            message=f"{cause} on C1",
            cuff="C1",
            controller="rack",
            raised_at=time.time(),
            active=True,
            acknowledged=False,
        )
        self.alarms.insert(0, alarm)
        self._snap = replace(self._snap, alarms=(alarm, *self._snap.alarms), seq=self._snap.seq + 1)

    def snapshot(self) -> StationSnapshot:
        return self._snap

    def alarm_log(self, limit: int = 200) -> list[AlarmSnapshot]:
        return self.alarms[:limit]

    async def emergency_deflate(self) -> EmergencySnapshot:
        self.emergencies += 1
        self.calls.append(("emergency_deflate", {}))
        return EmergencySnapshot(started_at=time.time(), confirmed=("rack",), pending=(), latency_s=0.001, by="t")

    async def _cmd(self, name: str, cuff_id: str | None = None, **kw: Any) -> None:
        self.calls.append((name, {"cuff_id": cuff_id, **kw}))
        if cuff_id is not None and cuff_id not in {c.id for c in self._snap.cuffs}:
            raise CommandRefused(f"There is no cuff {cuff_id}.")

    async def inflate(self, cuff_id: str, *, mmhg: float | None = None, pct_lop: float | None = None) -> None:
        if self.hold is not None:
            await self.hold.wait()
        await self._cmd("inflate", cuff_id, mmhg=mmhg, pct_lop=pct_lop)

    async def nudge_target(self, cuff_id: str, delta_mmhg: float) -> None:
        await self._cmd("nudge_target", cuff_id, delta_mmhg=delta_mmhg)

    async def deflate(self, cuff_id: str) -> None:
        await self._cmd("deflate", cuff_id)

    async def acknowledge(self, alarm_id: int | None = None) -> None:
        await self._cmd("acknowledge", alarm_id=alarm_id)

    async def silence(self, seconds: float = 120.0) -> None:
        await self._cmd("silence", seconds=seconds)

    async def set_lop(
        self, cuff_id: str, lop: float, *, position: str, cuff_width_cm: float | None, source: str = "doppler"
    ) -> None:
        await self._cmd("set_lop", cuff_id, lop=lop, position=position, cuff_width_cm=cuff_width_cm, source=source)

    async def measure_lop(self, cuff_id: str, *, position: str = "seated") -> None:
        await self._cmd("measure_lop", cuff_id, position=position)

    async def set_patient(self, cuff_id: str, patient_id: str) -> None:
        await self._cmd("set_patient", cuff_id, patient_id=patient_id)

    async def start_session(self, cuff_ids: list[str], plan_id: str, patient_id: str) -> None:
        await self._cmd("start_session", cuff_ids=cuff_ids, plan_id=plan_id, patient_id=patient_id)

    async def session_command(self, cuff_id: str, command: str) -> None:
        await self._cmd("session_command", cuff_id, command=command)


async def wait_until(cond: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``cond`` with a generous deadline (never a fixed sleep standing in for a condition)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def ticking(station: FakeStation, period: float = 0.005) -> None:
    while True:
        station.tick()
        await asyncio.sleep(period)
