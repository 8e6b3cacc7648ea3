"""The station's periodic work on one clock grid: the read tick, the supervisor's check, the therapy driver.

Real event loop, real time (a few hundred ms): what wakes when, and that a kick still wakes the driver at
once while a step that kicks does not make it spin.
"""

from __future__ import annotations

import asyncio
import math
import random

import pytest

from console.common.ticks import next_tick, sleep_until_tick
from console.station.station import CHECK_INTERVAL_S
from console.therapy.driver import DRIVE_INTERVAL_S, Driver
from drivers import read_pacing
from drivers.read_pacing import READ_PACE_S


def on_grid(x: float, period: float) -> bool:
    return math.isclose(x / period, round(x / period), abs_tol=1e-6)


def test_next_tick_is_the_first_multiple_after_now_and_the_20_hz_work_falls_on_read_ticks() -> None:
    assert next_tick(0.06, 0.02) == pytest.approx(0.08)  # 0.06 / 0.02 = 2.999...: not the present moment
    assert next_tick(1.0, 0.05) == pytest.approx(1.05)
    assert next_tick(1.01, 0.05) == pytest.approx(1.05)
    rng = random.Random(7)
    for _ in range(2000):
        now = rng.uniform(0, 1e6)
        for period in (READ_PACE_S, CHECK_INTERVAL_S, DRIVE_INTERVAL_S):
            t = next_tick(now, period)
            assert now < t <= now + period + 1e-6 and on_grid(t, period)
            assert read_pacing.next_tick(now, period) == t  # the drivers' grid is the console's
        # The 20 Hz work wakes on a read tick: one wakeup of the loop, not two.
        assert on_grid(next_tick(now, CHECK_INTERVAL_S), READ_PACE_S)
        assert on_grid(next_tick(now, DRIVE_INTERVAL_S), READ_PACE_S)


async def test_sleepers_of_one_tick_wake_in_the_same_pass_of_the_loop() -> None:
    loop = asyncio.get_running_loop()
    passes = 0

    def count_pass() -> None:
        nonlocal passes
        passes += 1

    woke: list[tuple[str, int, float]] = []

    async def sleeper(name: str, period: float) -> None:
        await sleep_until_tick(period)
        woke.append((name, passes, loop.time()))

    # A pass counter: a callback that reschedules itself runs once per pass of the loop.
    def tick_counter() -> None:
        count_pass()
        if len(woke) < 2:
            loop.call_soon(tick_counter)

    # Start just after a 0.025 tick that is not a 0.05 one, so the next tick of both is the same moment.
    await asyncio.sleep(next_tick(loop.time() + 0.03, 0.05) - 0.025 - loop.time() + 0.001)
    start = loop.time()
    loop.call_soon(tick_counter)
    await asyncio.gather(sleeper("check", 0.05), sleeper("read", 0.025))
    (_, pass_a, t_a), (_, pass_b, t_b) = woke
    assert {w[0] for w in woke} == {"check", "read"}
    assert pass_a == pass_b, "both sleepers of the 0.05 tick ran in one pass"
    assert start + 0.015 < min(t_a, t_b) < start + 0.2


async def test_a_kick_wakes_the_sleeper_at_once_and_the_tick_does_not_fire_later() -> None:
    loop = asyncio.get_running_loop()
    wake = loop.create_future()
    loop.call_later(0.01, wake.set_result, None)
    t0 = loop.time()
    await sleep_until_tick(60.0, wake)
    assert loop.time() - t0 < 0.05
    assert not [h for h in loop._scheduled if not h.cancelled() and h.when() > loop.time() + 1]  # type: ignore[attr-defined]


async def test_the_driver_steps_on_its_grid_wakes_on_a_kick_and_a_step_that_kicks_does_not_spin() -> None:
    loop = asyncio.get_running_loop()
    steps: list[float] = []
    kicking = False
    driver: Driver

    def step() -> None:
        steps.append(loop.time())
        if kicking:
            driver.kick()

    driver = Driver(step, lambda: True, 0.05)
    driver.ensure_running()
    try:
        await asyncio.sleep(0.33)
        spaced = [b - a for a, b in zip(steps[1:], steps[2:])]
        assert 4 <= len(steps) <= 9 and all(0.03 < d < 0.08 for d in spaced), steps
        assert all(on_grid(t, 0.05) or (t % 0.05) < 0.01 for t in steps[1:])  # at or just after a 0.05 tick
        # A kick steps at once, not at the next tick.
        await asyncio.sleep(next_tick(loop.time(), 0.05) - loop.time() + 0.005)
        before = len(steps)
        driver.kick()
        await asyncio.sleep(0.01)
        assert len(steps) == before + 1
        # A step that kicks is not stepped again at once, for ever: still about 20 steps a second.
        kicking = True
        n0 = len(steps)
        await asyncio.sleep(0.3)
        assert len(steps) - n0 <= 9
    finally:
        await driver.close()
