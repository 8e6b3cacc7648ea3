"""Helpers for the therapy tests: a real Station on in-process emulators with TherapyManager attached.

No tests in here. Sessions run on a ManualClock (the driver is stepped by the test);
LOP measurements need real time (the pulse is analysed against sample times).
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from console.common.clock import ManualClock
from console.config.schema import StationConfig
from console.records.store import Records
from console.station.station import Station
from console.therapy.manager import TherapyManager
from console.therapy.plans import Plan, validate_plan
from console.therapy.session import TERMINAL
from tests.station_support import cuff, fresh_samples, make_config, wait_for

TINY = {
    "id": "tiny",
    "name": "Tiny 2 x 3",
    "pct_lop": 60.0,
    "sets": [3, 3],
    "cadence_s": 2.0,
    "rest_s": 5.0,
    "rest_mode": "hold",
    "between_exercises_s": 10.0,
}
"""2 sets of 3 reps at a 2 s cadence, 5 s held rest: 17 s on the manual clock."""

TINY_RELEASE = {
    "id": "tiny-release",
    "name": "Tiny 2 x 2, released rest",
    "pct_lop": 60.0,
    "sets": [2, 2],
    "cadence_s": 2.0,
    "rest_s": 10.0,
    "rest_mode": "release",
    "between_exercises_s": 10.0,
}
"""Vents between its sets: the second set refills (and can be refused)."""

IPC_SHORT = {
    "id": "ipc-short",
    "name": "IPC 1 x 20 s",
    "pct_lop": 100.0,
    "mode": "cycles",
    "on_s": 20.0,
    "off_s": 10.0,
    "cycles": 1,
    "full_occlusion": True,
    "between_exercises_s": 10.0,
}


def therapy_config(
    tmp_path: Path, *, lops: tuple[float, ...] | None = None, pulse_mmhg: float | None = None, **kw: Any
) -> StationConfig:
    """make_config plus the tiny plans (and, if given, other emulated LOPs per channel)."""
    cfg = make_config(tmp_path, **kw)
    plans: dict[str, Plan] = dict(cfg.plans)
    for raw in (TINY, TINY_RELEASE, IPC_SHORT):
        plan = validate_plan(raw)
        plans[plan.id] = plan
    # The same IPC plan without the full_occlusion flag: built directly (the config would refuse it).
    plans["ipc-unflagged"] = dataclasses.replace(plans["ipc-short"], id="ipc-unflagged", full_occlusion=False)
    ctrls = cfg.controllers
    if lops is not None or pulse_mmhg is not None:
        ctrls = tuple(
            dataclasses.replace(
                c,
                emulator=dataclasses.replace(
                    c.emulator,
                    lop=tuple(lops) if lops is not None else c.emulator.lop,
                    pulse_mmhg=pulse_mmhg if pulse_mmhg is not None else c.emulator.pulse_mmhg,
                ),
            )
            for c in ctrls
        )
    return dataclasses.replace(cfg, plans=plans, controllers=ctrls)


@dataclass
class Rig:
    station: Station
    therapy: TherapyManager
    records: Records
    clock: ManualClock | None

    def fw(self, controller: str = "A") -> Any:
        return self.station.emulators[controller].firmware

    async def close(self) -> None:
        await self.station.stop()
        await self.therapy.close()
        self.records.close()


async def manual_rig(tmp_path: Path, **kw: Any) -> Rig:
    """Station + therapy on a ManualClock, no periodic tasks: the test steps everything."""
    clock = ManualClock()
    records = Records.open(tmp_path / "var")
    st = Station(therapy_config(tmp_path, **kw), clock=clock, records=records, check_interval_s=None)
    tm = TherapyManager(st, interval_s=None)
    st.attach_sessions(tm)
    await st.start()
    await wait_for(lambda: all(c.online and c.pressure is not None for c in st.snapshot().cuffs), "cuffs online")
    return Rig(st, tm, records, clock)


async def real_rig(tmp_path: Path, *, lop_options: dict[str, Any] | None = None, **kw: Any) -> Rig:
    """Station + therapy on the real clock with their periodic tasks (for LOP measurement)."""
    records = Records.open(tmp_path / "var")
    st = Station(therapy_config(tmp_path, **kw), records=records)
    tm = TherapyManager(st, lop_options=lop_options)
    st.attach_sessions(tm)
    await st.start()
    await wait_for(lambda: all(c.online and c.pressure is not None for c in st.snapshot().cuffs), "cuffs online")
    return Rig(st, tm, records, None)


async def advance(rig: Rig, seconds: float, dt: float = 0.5) -> None:
    """Step the manual clock in ``dt`` steps: fresh samples, supervisor, then the therapy driver."""
    assert rig.clock is not None
    left = seconds
    while left > 1e-9:
        d = min(dt, left)
        rig.clock.advance(d)
        await fresh_samples(rig.station)
        rig.station.check_now()
        await rig.therapy.step_now()
        left -= d


async def until(rig: Rig, cond: Any, what: str, timeout: float = 15.0) -> None:
    """Step the driver at the present (manual) time until ``cond()``, while the emulator works in real time."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        await rig.therapy.step_now()
        if cond():
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


async def set_lops(rig: Rig, **lops: float) -> None:
    for cid, lop in lops.items():
        await rig.station.set_lop(cid, lop, position="seated", cuff_width_cm=11.5, source="doppler")


async def start_and_fill(rig: Rig, cuffs: list[str], plan: str = "tiny", patient: str = "P-001") -> None:
    await rig.station.start_session(cuffs, plan, patient)
    await until(rig, lambda: phase(rig, cuffs[0]) == "set", f"{cuffs} filled and the set begun")


def phase(rig: Rig, cuff_id: str) -> str | None:
    s = cuff(rig.station, cuff_id).session
    return None if s is None else s.phase


async def vented_at_emulator(rig: Rig, controller: str, ch: int, timeout: float = 10.0) -> None:
    fw = rig.fw(controller)
    await wait_for(
        lambda: (
            fw.channel(ch).target == 0
            and fw.channel(ch).state in ("VENTED", "FAULT")  # FAULT: vented and latched
            and fw.channel(ch).valve_open
            and fw.channel(ch).pressure < 10
        ),
        f"{controller}{ch} vented at the emulator",
        timeout,
    )


__all__ = [
    "TERMINAL",
    "Rig",
    "advance",
    "manual_rig",
    "phase",
    "real_rig",
    "set_lops",
    "start_and_fill",
    "therapy_config",
    "until",
    "vented_at_emulator",
]


@pytest.fixture
async def rig(tmp_path: Path):
    """A manual-clock therapy rig for one test, always closed after it (import it into the test module)."""
    r = await manual_rig(tmp_path)
    try:
        yield r
    finally:
        await r.close()
