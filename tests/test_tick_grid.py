"""The station's periodic work on one clock grid: the read tick, the supervisor's check, the therapy driver.

Real event loop, real time (a few hundred ms): what wakes when, and that a kick still wakes the driver at
once while a step that kicks does not make it spin.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable

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

    # Start between a 0.025 tick that is not a 0.05 one and the next 0.05 tick, so the next tick of both is
    # the same moment (a late wakeup on a busy machine lands elsewhere: align again).
    while True:
        await asyncio.sleep(next_tick(loop.time() + 0.03, 0.05) - 0.025 - loop.time() + 0.001)
        start = loop.time()
        if next_tick(start, 0.025) == next_tick(start, 0.05) and next_tick(start, 0.05) - start > 0.005:
            break
    loop.call_soon(tick_counter)

    # Start just after a 0.025 tick that is not a 0.05 one, so the next tick of both is the same moment.
    await asyncio.sleep(next_tick(loop.time() + 0.03, 0.05) - 0.025 - loop.time() + 0.001)
    start = loop.time()
    loop.call_soon(tick_counter)
    await asyncio.gather(sleeper("check", 0.05), sleeper("read", 0.025))
    (_, pass_a, _), (_, pass_b, _) = woke
    assert {w[0] for w in woke} == {"check", "read"}
    assert pass_a == pass_b, "both sleepers of the 0.05 tick ran in one pass"


async def test_a_kick_wakes_the_sleeper_at_once_and_the_tick_does_not_fire_later() -> None:
    loop = asyncio.get_running_loop()
    wake = loop.create_future()
    loop.call_later(0.01, wake.set_result, None)
    t0 = loop.time()
    await sleep_until_tick(60.0, wake)
    assert loop.time() - t0 < 5.0  # the kick, not the tick 60 s away
    assert not [h for h in loop._scheduled if not h.cancelled() and h.when() > loop.time() + 1]  # type: ignore[attr-defined]


async def test_the_driver_sleeps_on_its_grid_wakes_on_a_kick_and_a_step_that_kicks_does_not_spin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from console.therapy import driver as driver_module

    loop = asyncio.get_running_loop()
    sleeps: list[tuple[float, bool]] = []
    real_sleep = driver_module.sleep_until_tick

    async def recorded(period_s: float, wake: asyncio.Future[None] | None = None) -> None:
        sleeps.append((period_s, wake is not None))
        await real_sleep(period_s, wake)

    monkeypatch.setattr(driver_module, "sleep_until_tick", recorded)
    steps: list[float] = []
    kicking = False
    driver: Driver

    def step() -> None:
        steps.append(loop.time())
        if kicking:
            driver.kick()

    # A tick 10 s away: any step after the first comes from a kick.
    driver = Driver(step, lambda: True, 10.0)
    driver.ensure_running()
    try:
        await until_true(lambda: len(steps) == 1 and bool(sleeps))
        assert sleeps[0] == (10.0, True), "it sleeps until its grid's next tick, a kick able to cut it short"
        driver.kick()
        await until_true(lambda: len(steps) == 2)
    finally:
        await driver.close()
    # A step that kicks is not stepped again at once, for ever: at most about 20 steps a second.
    steps.clear()
    kicking = True
    driver = Driver(step, lambda: True, 0.05)
    driver.ensure_running()
    try:
        await asyncio.sleep(0.3)
        assert 1 <= len(steps) <= 9, steps
    finally:
        await driver.close()


async def until_true(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.005)
