"""Helpers for the station tests: configs on in-process emulators, waiting on conditions.

No tests in here; the station, supervisor, alarms and signal tests import it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from console.common.api import AlarmSnapshot, CuffSnapshot
from console.common.clock import ManualClock
from console.config.loader import parse_config
from console.config.schema import StationConfig
from console.station.station import Station

LOADED_MACHINE_TIMEOUT_S = 5.0
"""Link timeout and deflate confirmation for tests that are not about them.

The in-process emulators share the test's event loop; on a busy 2-core CI machine one stall of
that loop (another process holding both cores, a Textual frame, a LOP fit) can pass 0.5 s, which
raised LINK_LOST or DEFLATE_UNCONFIRMED in tests about something else. Tests of those very rules
pass ``safety=SHORT_TIMEOUTS`` (or their own values) and make the stall themselves: a silenced or
unplugged emulator, or a ManualClock stepped past the limit."""

SHORT_TIMEOUTS: dict[str, Any] = {"link_timeout_s": 0.5, "deflate_confirm_s": 0.5}
"""The values the station tests used before: for the tests of the link-silence and confirmation rules."""


def make_config(
    tmp_path: Path,
    *,
    controllers: int = 2,
    channels: int = 2,
    safety: dict[str, Any] | None = None,
    cuff_overrides: dict[str, dict[str, Any]] | None = None,
    watchdog_ms: int = 3000,
) -> StationConfig:
    """Controllers A, B, ... each an in-process emulator; cuffs A1, A2, B1, ... (legs on A, arms after).

    The emulators share the test's event loop, so a loop stalled by a loaded machine (or a
    Textual app in the same loop) starves their watchdog too: 3 s, not 1 s, keeps tests that are
    not about the watchdog from latching. Watchdog tests switch the keepalive off and wait."""
    ctrls = []
    cuffs = []
    for i in range(controllers):
        cid = chr(ord("A") + i)
        ctrls.append(
            {
                "id": cid,
                "port": "emulator",
                "watchdog_ms": watchdog_ms,
                "stream_hz": 100,
                "emulator": {
                    "channels": channels,
                    "lop": [200.0 - 10 * ch for ch in range(channels)],
                    "pulse_mmhg": 1.0,
                    "seed": i + 1,
                },
            }
        )
        for ch in range(1, channels + 1):
            cuff = {
                "id": f"{cid}{ch}",
                "controller": cid,
                "channel": ch,
                "limb": "leg" if i == 0 else "arm",
                "label": f"cuff {cid}{ch}",
            }
            cuff.update((cuff_overrides or {}).get(f"{cid}{ch}", {}))
            cuffs.append(cuff)
    data = {
        "station": {"name": "Test bay", "data_dir": "var", "socket": "var/bfr.sock", "occlusion_threshold_mmhg": 20.0},
        "safety": {
            "tolerance_mmhg": 15.0,
            "grace_s": 1.0,
            "link_timeout_s": LOADED_MACHINE_TIMEOUT_S,
            "leak_pump_s": 7.0,
            "occlusion_warn_s": 600.0,
            "occlusion_limit_s": 900.0,
            "deflate_confirm_s": LOADED_MACHINE_TIMEOUT_S,
            "max_pct_lop_arm": 60.0,
            "max_pct_lop_leg": 90.0,
            "max_mmhg_without_lop_arm": 80.0,
            "max_mmhg_without_lop_leg": 120.0,
            **(safety or {}),
        },
        "controllers": ctrls,
        "cuffs": cuffs,
    }
    return parse_config(data, str(tmp_path / "config.toml"))


async def wait_for(
    cond: Callable[[], Any], what: str, timeout: float = 10.0, seen: Callable[[], str] | None = None
) -> Any:
    """Poll until ``cond()`` is truthy (generous deadline; never a fixed sleep). On timeout the
    message ends with ``seen()``, what was there instead, so a failure in CI can be diagnosed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = cond()
        if value:
            return value
        if loop.time() > deadline:
            instead = f"; seen instead: {seen()}" if seen is not None else ""
            raise AssertionError(f"timed out after {timeout} s waiting for {what}{instead}")
        await asyncio.sleep(0.01)


def cuff(station: Station, cuff_id: str) -> CuffSnapshot:
    for c in station.snapshot().cuffs:
        if c.id == cuff_id:
            return c
    raise KeyError(cuff_id)


def alarms(station: Station, cause: str | None = None) -> list[AlarmSnapshot]:
    return [a for a in station.snapshot().alarms if cause is None or a.cause == cause]


async def fresh_samples(station: Station, controllers: list[str] | None = None) -> None:
    """Wait until every online controller has sent a sample stamped at the clock's present time.

    With a ManualClock, stepping the clock makes every earlier sample look old; the rules must judge
    against samples that arrived after the step, as they would in real time.
    """
    now = station.clock.monotonic()
    ids = controllers or [c.id for c in station.controllers.values() if c.online]
    await wait_for(
        lambda: all((station.controllers[c].last_sample_at or -1) >= now for c in ids),
        f"fresh samples from {ids}",
    )


async def inflate_and_hold(station: Station, cuff_id: str, mmhg: float, timeout: float = 15.0) -> None:
    await station.inflate(cuff_id, mmhg=mmhg)
    await wait_for(
        lambda: cuff(station, cuff_id).state == "HOLDING" and abs((cuff(station, cuff_id).pressure or 0) - mmhg) < 5,
        f"{cuff_id} holding {mmhg} mmHg",
        timeout,
    )


async def manual_station(tmp_path: Path, **cfg: Any) -> tuple[Station, ManualClock]:
    """A started station on a ManualClock with no periodic tick: the test calls ``check_now()``."""
    clock = ManualClock()
    st = Station(make_config(tmp_path, **cfg), clock=clock, check_interval_s=None)
    await st.start()
    return st, clock


async def step(st: Station, clock: ManualClock, seconds: float) -> None:
    """Advance the clock, wait for samples stamped after it, then run the rules."""
    clock.advance(seconds)
    await fresh_samples(st)
    st.check_now()
