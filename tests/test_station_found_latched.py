"""A controller that latched its channels before the station was there (the station restarted while
its watchdog vented the cuffs): the therapist is told, and acknowledging clears it.

Found with the emergency benchmark: the console started on such controllers refused every inflate with
"acknowledge its alarm first" while there was no alarm to acknowledge, so each cuff stayed unusable
until someone power-cycled its controller. The controller here is the foreign one (built from
protocol.md alone, its own thread and clock), latched by its own watchdog before the station starts.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

import pytest

from console.common.api import CommandRefused, Priority
from tests.foreign.wire import frame
from tests.station_support import alarms, cuff, wait_for
from tests.test_foreign_controller import Make, foreign, run_station  # noqa: F401  (fixtures)


def latched(server: Any, channel: int) -> bool:
    return bool(server.call(lambda c: c.channel(channel).latched))


async def latch_by_its_watchdog(server: Any, channels: int) -> None:
    """A host that set a target and went quiet: the controller's watchdog vents and latches every channel."""
    await wait_for(lambda: not server.call(lambda c: c.booting), "the controller booted", 10)
    server.call(lambda c: c.feed(frame("#1 WATCHDOG 500") + frame("#2 SET 1 60"), time.monotonic()))
    await wait_for(
        lambda: all(latched(server, ch) for ch in range(1, channels + 1)), "the controller latched by its watchdog", 10
    )
    # Its E WDT went into the pty with nobody reading: gone, as it is for a station that was not running.
    await wait_for(lambda: b"E WDT" in drain(server.link_path), "the E WDT line read and dropped", 10)


def drain(path: Any) -> bytes:
    """Read and drop what the controller wrote while no station had the port open."""
    fd = os.open(str(path), os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        out = b""
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(fd, 65536):
                out += chunk
        return out
    finally:
        os.close(fd)


async def test_channels_found_latched_at_start_are_an_alarm_that_acknowledging_clears(
    foreign: Make,  # noqa: F811
    run_station: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    server = foreign("A", channels=2)
    await latch_by_its_watchdog(server, 2)

    st = await run_station({"A": (str(tmp_path / "usb-A"), 2)})
    await wait_for(lambda: all(cuff(st, c).latched for c in ("A1", "A2")), "both cuffs known latched", 10)
    await wait_for(lambda: alarms(st, "LATCHED"), "the LATCHED alarm, once no event came to explain it", 10)
    (found,) = alarms(st, "LATCHED")  # one alarm for the controller: its CLEAR clears both
    assert found.controller == "A" and found.priority is Priority.MEDIUM
    assert "A1, A2" in found.message, found.message
    link = st.controllers["A"].link
    assert link is not None
    for _ in range(3):  # the same latch, said again by every status: still the one alarm
        await link.status()
    assert [a.id for a in alarms(st, "LATCHED")] == [found.id]

    with pytest.raises(CommandRefused) as refused:
        await st.inflate("A1", mmhg=60)
    assert "acknowledge its alarm (a)" in str(refused.value) and "fault fault" not in str(refused.value)
    assert latched(server, 1), "a refused inflate sends nothing that could clear the latch"

    await st.acknowledge(found.id)  # what `a` on either cuff does
    await wait_for(lambda: not latched(server, 1) and not latched(server, 2), "CLEAR reached the controller", 10)
    await wait_for(lambda: not cuff(st, "A1").latched, "the station knows the latch is gone", 10)
    await st.inflate("A1", mmhg=60)
    await wait_for(lambda: server.call(lambda c: c.channel(1).target) == 60, "the inflate reached the controller")
    await st.deflate("A1")


async def test_a_clear_that_failed_is_tried_again_by_acknowledging_again(
    foreign: Make,  # noqa: F811
    run_station: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Acknowledged while the cable was out, the CLEAR could not go: the alarm is acknowledged already,
    and without a retry the cuff would stay latched with nothing left to acknowledge (found in review)."""
    server = foreign("A", channels=1)
    await latch_by_its_watchdog(server, 1)
    st = await run_station({"A": (str(tmp_path / "usb-A"), 1)})
    await wait_for(lambda: alarms(st, "LATCHED"), "the LATCHED alarm", 10)
    (found,) = alarms(st, "LATCHED")
    server.unplug()
    await wait_for(lambda: not st.snapshot().controllers[0].state == "ready", "the link lost", 10)
    await st.acknowledge(found.id)  # the CLEAR cannot go out
    assert latched(server, 1)
    server.replug()
    await wait_for(lambda: st.snapshot().controllers[0].state == "ready", "the link back", 15)
    assert latched(server, 1) and cuff(st, "A1").latched, "nothing cleared it meanwhile"
    await st.acknowledge(found.id)  # nothing new to acknowledge: the CLEAR is tried again
    await wait_for(lambda: not latched(server, 1), "CLEAR reached the controller", 10)
    await wait_for(lambda: not cuff(st, "A1").latched, "the station knows", 10)
