"""Safety review of the link: failure paths a patient would feel.

Real CuffLink against the real emulator over a real pty (fixtures from test_link).
"""

from __future__ import annotations

import asyncio
import math

import pytest

from drivers.codec import format_pressure
from drivers.link_errors import LinkError, LinkState, Superseded
from tests.link_support import until


async def test_set_in_flight_at_a_reboot_is_not_resent_to_the_rebooted_controller(emu, make_link):
    """A reboot vents every channel; the SET the old firmware never answered must not re-inflate the new one."""
    rig = await make_link(answer_timeout=0.25, retries=2)
    await rig.link.wait_ready(5.0)
    emu.fw.faults.slow_answer_s = 5.0  # the SET acts at once, its OK is still queued when the power goes
    fut = asyncio.ensure_future(rig.link.set_target(1, 40))
    await until(lambda: emu.fw.channel(1).target == 40, "SET acted on")
    emu.fw.reboot(emu.port.now())  # the queued OK is lost with the power
    emu.fw.faults.slow_answer_s = 0.0
    with pytest.raises(LinkError):
        await asyncio.wait_for(fut, 5.0)
    boot_at = len(rig.rec.msgs)
    await until(lambda: emu.fw.stream_hz == 100, "stream set up again")
    await until(lambda: rig.link.stats.samples > 0 and len(rig.rec.msgs) > boot_at + 50, "samples after the boot")
    assert emu.fw.channel(1).target == 0, "the link re-inflated a cuff the reboot had vented"
    assert "SET 1 40" not in rig.spy.verbs()[rig.spy.verbs().index("SET 1 40") + 1 :]
    assert rig.link.state is LinkState.READY


async def test_set_queued_at_a_reboot_does_not_go_out_after_it(emu, make_link):
    rig = await make_link(answer_timeout=2.0)
    await rig.link.wait_ready(5.0)
    emu.fw.faults.slow_answer_s = 1.0  # fill the window so the next SET waits in the queue
    pings = [asyncio.ensure_future(rig.link.command("PING")) for _ in range(4)]
    queued = asyncio.ensure_future(rig.link.set_target(2, 50))
    await asyncio.sleep(0)
    assert "SET 2 50" not in rig.spy.verbs()
    emu.fw.reboot(emu.port.now())
    emu.fw.faults.slow_answer_s = 0.0
    with pytest.raises(Superseded):
        await asyncio.wait_for(queued, 5.0)
    await asyncio.gather(*pings, return_exceptions=True)
    await until(lambda: emu.fw.stream_hz == 100, "stream set up again")
    assert "SET 2 50" not in rig.spy.verbs()
    assert emu.fw.channel(2).target == 0


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_format_pressure_refuses_non_finite_with_value_error(bad):
    with pytest.raises(ValueError):
        format_pressure(bad)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
async def test_set_target_refuses_non_finite_before_the_wire(emu, make_link, bad):
    rig = await make_link()
    await rig.link.wait_ready(5.0)
    sent = len(rig.spy.sent)
    with pytest.raises(ValueError):
        await rig.link.set_target(1, bad)
    assert len(rig.spy.sent) == sent
    assert emu.fw.channel(1).target == 0


@pytest.mark.parametrize(
    "field,value", [("max", "nan"), ("max", "inf"), ("max", "0"), ("channels", "0"), ("channels", "9")]
)
async def test_a_hello_with_an_impossible_maximum_or_channel_count_is_refused(field, value):
    """A controller maximum of NaN would make every 'above the controller's maximum' check pass."""
    from drivers.codec import Ok
    from drivers.link import CuffLink

    fields = {"proto": "1", "model": "X", "fw": "1", "serial": "S", "channels": "4", "max": "300", "rates": "10,100"}
    fields[field] = value
    link = CuffLink("/dev/null", name="t")

    async def answer(verb, *args):
        return Ok(1, fields)

    link._request = answer  # type: ignore[method-assign]  # the HELLO answer, as parsed from the wire
    with pytest.raises(LinkError):
        await link._hello()
