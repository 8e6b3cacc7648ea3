"""The setup's test inflate against an emulated controller on a pty: it inflates, and it always deflates."""

from __future__ import annotations

import asyncio
from pathlib import Path

from console.setup.trial import TRIAL_HOLD_S, TRIAL_MMHG
from console.setup.trial import trial_inflate as trial
from drivers.emulator.firmware import ControllerFirmware
from drivers.emulator.pty_port import PtyEmulator
from tests.link_support import heard, until


async def test_trial_inflates_the_channel_low_then_deflates_it(tmp_path: Path) -> None:
    fw = ControllerFirmware(channels=2, serial="T-1", seed=0)
    async with PtyEmulator(fw, link_path=str(tmp_path / "usb-t")) as port:
        got = heard(fw)
        held: list[float] = []

        async def hold(seconds: float) -> None:  # instead of sleeping 3 s: until the cuff really fills
            held.append(seconds)
            await until(lambda: fw.channel(2).reading > 10.0, "channel 2 filling", timeout=10.0)

        result = await trial(port.path, "T-1", 2, sleep=hold)
        await until(lambda: fw.channel(2).state == "VENTED", "channel 2 vented", timeout=10.0)
    assert result.inflated and result.deflated, result.message
    assert held == [TRIAL_HOLD_S]
    sets = [line for line in got if line.startswith("SET")]
    assert sets == [f"SET 2 {TRIAL_MMHG:g}"]
    assert fw.channel(1).target == 0.0  # the other channel never moved
    assert got.index("DEFLATE 2") > got.index(sets[0])
    assert "DEFLATE ALL" in got


async def test_a_refused_trial_still_deflates(tmp_path: Path) -> None:
    fw = ControllerFirmware(channels=2, serial="T-2", seed=0)
    async with PtyEmulator(fw, link_path=str(tmp_path / "usb-t")) as port:
        fw._latch(fw._chan(1), "SENSOR")  # a latched channel answers SET with ERR LATCHED
        got = heard(fw)
        result = await trial(port.path, "T-2", 1, sleep=lambda s: asyncio.sleep(0))
    assert not result.inflated and result.deflated
    assert "LATCHED" in result.message
    assert "DEFLATE 1" in got and "DEFLATE ALL" in got


async def test_a_trial_cancelled_while_holding_still_deflates(tmp_path: Path) -> None:
    fw = ControllerFirmware(channels=1, serial="T-3", seed=0)
    async with PtyEmulator(fw, link_path=str(tmp_path / "usb-t")) as port:
        got = heard(fw)
        task = asyncio.create_task(trial(port.path, "T-3", 1, sleep=lambda s: asyncio.Event().wait()))
        await until(lambda: fw.channel(1).target > 0, "the trial's SET", timeout=10.0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await until(lambda: fw.channel(1).state == "VENTED", "channel 1 vented", timeout=10.0)
    assert "DEFLATE 1" in got


async def test_a_trial_on_another_controller_sends_nothing_that_inflates(tmp_path: Path) -> None:
    fw = ControllerFirmware(channels=1, serial="SOMEONE-ELSE", seed=0)
    async with PtyEmulator(fw, link_path=str(tmp_path / "usb-t")) as port:
        got = heard(fw)
        result = await trial(port.path, "T-4", 1, sleep=lambda s: asyncio.sleep(0))
    assert not result.inflated
    assert not [line for line in got if line.startswith("SET")]
